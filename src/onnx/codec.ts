// Protobuf <-> plain-object conversion for ONNX messages. This is the only module that knows protobuf.
import protobuf from 'protobufjs';
import Long from 'long';
import { OnnxCompressError } from '../errors.js';
import { ONNX_PROTO } from './schema.js';
import type { ModelProto, TensorProto } from './types.js';

// protobufjs looks for `long` through a dynamic require that bundlers and ESM loaders can miss; without it
// int64 values decode as lossy doubles.
protobuf.util.Long = Long as unknown as protobuf.Constructor<protobuf.Long>;
protobuf.configure();

const root = protobuf.parse(ONNX_PROTO, { keepCase: false }).root;
root.resolveAll();
const ModelType = root.lookupType('onnx.ModelProto');
const TensorType = root.lookupType('onnx.TensorProto');

/** protobuf's own cap on one message: larger models must keep weights in external data. */
export const PROTOBUF_LIMIT_BYTES = 2 ** 31 - 1;

/**
 * A malformed message, with the dotted field path where it was found. Not a ModelError: model.ts imports this
 * module, so extending its class here would be a circular import; loadModel rewraps it with the file name.
 */
export class OnnxFormatError extends OnnxCompressError {
  constructor(message: string) {
    super('bad-model', message);
  }
}

// int64 fields whose values may not fit a double. Everything else 64-bit becomes a number.
const BIGINT_FIELDS = new Set([
  'AttributeProto.i',
  'AttributeProto.ints',
  'TensorProto.int64Data',
  'TensorProto.uint64Data',
]);
const LONG_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

type FieldKind = 'message' | 'bigint' | 'number64' | 'plain';
interface FieldPlan {
  name: string;
  repeated: boolean;
  kind: FieldKind;
  unsigned: boolean;
  type?: protobuf.Type;
}

const plans = new Map<protobuf.Type, FieldPlan[]>();
function planOf(type: protobuf.Type): FieldPlan[] {
  let plan = plans.get(type);
  if (!plan) {
    plan = type.fieldsArray.map((f) => {
      const resolved = f.resolvedType instanceof protobuf.Type ? f.resolvedType : undefined;
      const kind: FieldKind = resolved
        ? 'message'
        : LONG_TYPES.has(f.type)
          ? BIGINT_FIELDS.has(`${type.name}.${f.name}`)
            ? 'bigint'
            : 'number64'
          : 'plain';
      return { name: f.name, repeated: f.repeated, kind, unsigned: f.type === 'uint64' || f.type === 'fixed64', type: resolved };
    });
    plans.set(type, plan);
  }
  return plan;
}

function longToBigint(v: Long | number): bigint {
  return typeof v === 'number' ? BigInt(v) : BigInt(v.toString());
}

function longToNumber(v: Long | number, where: string): number {
  const n = typeof v === 'number' ? v : v.toNumber();
  if (!Number.isSafeInteger(n)) throw new OnnxFormatError(`${where} = ${v.toString()} does not fit a safe integer`);
  return n;
}

function fromWire(type: protobuf.Type, msg: Record<string, unknown>, where: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of planOf(type)) {
    const own = Object.prototype.hasOwnProperty.call(msg, f.name);
    const value = own ? msg[f.name] : undefined;
    const at = `${where}.${f.name}`;
    if (f.repeated) {
      const arr = (value as unknown[] | undefined) ?? [];
      switch (f.kind) {
        case 'message':
          out[f.name] = arr.map((m, i) => fromWire(f.type!, m as Record<string, unknown>, `${at}[${i}]`));
          break;
        case 'bigint':
          out[f.name] = arr.map((v) => longToBigint(v as Long));
          break;
        case 'number64':
          out[f.name] = arr.map((v) => longToNumber(v as Long, at));
          break;
        default:
          out[f.name] = own ? arr : [];
      }
    } else if (own && value != null) {
      switch (f.kind) {
        case 'message':
          out[f.name] = fromWire(f.type!, value as Record<string, unknown>, at);
          break;
        case 'bigint':
          out[f.name] = longToBigint(value as Long);
          break;
        case 'number64':
          out[f.name] = longToNumber(value as Long, at);
          break;
        default:
          out[f.name] = value;
      }
    }
  }
  return out;
}

function bigintToLong(v: bigint, unsigned: boolean): Long {
  return Long.fromString(v.toString(), unsigned);
}

/** Lets a writer substitute tensors (e.g. point them at external data) without touching the model. */
export type TensorMapper = (t: TensorProto) => TensorProto;

function toWire(type: protobuf.Type, input: Record<string, unknown>, mapTensor?: TensorMapper): Record<string, unknown> {
  const obj = mapTensor && type === TensorType ? (mapTensor(input as unknown as TensorProto) as unknown as Record<string, unknown>) : input;
  const out: Record<string, unknown> = {};
  for (const f of planOf(type)) {
    const value = obj[f.name];
    if (value == null) continue;
    if (f.repeated) {
      const arr = value as unknown[];
      if (arr.length === 0) continue;
      if (f.kind === 'message') out[f.name] = arr.map((m) => toWire(f.type!, m as Record<string, unknown>, mapTensor));
      else if (f.kind === 'bigint') out[f.name] = arr.map((v) => bigintToLong(BigInt(v as bigint), f.unsigned));
      else out[f.name] = arr;
    } else if (f.kind === 'message') out[f.name] = toWire(f.type!, value as Record<string, unknown>, mapTensor);
    else if (f.kind === 'bigint') out[f.name] = bigintToLong(BigInt(value as bigint), f.unsigned);
    else out[f.name] = value;
  }
  return out;
}

function decodeWith<T>(type: protobuf.Type, bytes: Uint8Array, what: string): T {
  let wire: protobuf.Message;
  try {
    wire = type.decode(bytes);
  } catch (e) {
    // protobufjs reports a message cut short (a partial download or copy) as a read past the end of the buffer.
    if (e instanceof RangeError && /index out of range/.test(e.message)) {
      throw new OnnxFormatError(`not a valid ONNX ${what}: truncated, it ends in the middle of a field after ${bytes.length.toLocaleString('en-US')} bytes (an incomplete download or copy?)`);
    }
    throw new OnnxFormatError(`not a valid ONNX ${what}: ${(e as Error).message}`);
  }
  return fromWire(type, wire as unknown as Record<string, unknown>, type.name) as T;
}

function encodeWith(type: protobuf.Type, obj: object, mapTensor?: TensorMapper): Uint8Array {
  const wire = toWire(type, obj as Record<string, unknown>, mapTensor);
  try {
    return type.encode(wire).finish();
  } catch (e) {
    throw new OnnxFormatError(`cannot encode ${type.name}: ${(e as Error).message}`);
  }
}

export function decodeModel(bytes: Uint8Array): ModelProto {
  return decodeWith<ModelProto>(ModelType, bytes, 'model');
}

export function encodeModel(model: ModelProto, mapTensor?: TensorMapper): Uint8Array {
  return encodeWith(ModelType, model, mapTensor);
}

export function decodeTensor(bytes: Uint8Array): TensorProto {
  return decodeWith<TensorProto>(TensorType, bytes, 'tensor');
}

export function encodeTensor(tensor: TensorProto): Uint8Array {
  return encodeWith(TensorType, tensor);
}

/** Field-by-field view of a message, for comparing two encodings whose field order differs. */
export function modelToJson(model: ModelProto): unknown {
  return ModelType.toObject(ModelType.decode(encodeModel(model)), { longs: String, bytes: String, defaults: false });
}
