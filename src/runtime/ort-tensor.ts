// Conversions between the project's tensors (TensorProto, DecodedTensor from src/onnx/tensor.ts) and
// onnxruntime-node's Tensor. Which element types can cross the JS boundary is dtypes.ts's `ort` column.
import { Tensor } from 'onnxruntime-node';
import { OnnxCompressError } from '../errors.js';
import { dtypeInfo, type OrtTypeName } from '../onnx/dtypes.js';
import { bitsOf, type DecodedTensor, fromBits, tensorValues, toBits } from '../onnx/tensor.js';
import { DataType, type TensorProto } from '../onnx/types.js';

/** A tensor whose element type cannot be handed to or read from onnxruntime-node. */
export class UnsupportedTypeError extends OnnxCompressError {
  constructor(
    readonly dataType: number | undefined,
    what: string,
  ) {
    super('bad-model', `${what}: element type ${DataType[dataType ?? 0] ?? dataType} cannot cross the onnxruntime-node boundary`);
  }
}

/** ORT's type name for an ONNX element type, or undefined when onnxruntime-node cannot carry it. */
export function ortTypeOf(dataType: number | undefined): OrtTypeName | undefined {
  try {
    return dtypeInfo(dataType).ort ?? undefined;
  } catch {
    return undefined; // unknown or missing code
  }
}

function ortTypeOrThrow(dataType: number | undefined, what: string): OrtTypeName {
  const type = ortTypeOf(dataType);
  if (!type) throw new UnsupportedTypeError(dataType, what);
  return type;
}

/** Decoded values as an ORT tensor. float16 values are rounded to half bits, which is what ORT takes. */
export function toOrtTensor(v: DecodedTensor, what = `tensor '${v.name ?? ''}'`): Tensor {
  const type = ortTypeOrThrow(v.dtype, what);
  const data = v.dtype === DataType.FLOAT16 ? toBits(DataType.FLOAT16, v.data as Float32Array) : v.data;
  // ORT wants exactly the typed array of its type; bool travels as Uint8Array 0/1, as decoded.
  return new Tensor(type, data as never, v.dims);
}

/** An ORT tensor as decoded values, in tensor.ts's containers (float16 widened to Float32Array). */
export function fromOrtTensor(t: Tensor, name?: string): DecodedTensor {
  const dtype = dtypeOfOrt(t.type);
  const data = dtype === DataType.FLOAT16 ? fromBits(DataType.FLOAT16, t.data as Uint16Array) : (t.data as DecodedTensor['data']);
  return { ...(name !== undefined ? { name } : {}), dtype, dims: [...t.dims], data };
}

const DTYPE_OF_ORT = new Map<string, DataType>(
  (Object.values(DataType).filter((v) => typeof v === 'number') as DataType[]).flatMap((d) => {
    const o = ortTypeOf(d);
    return o ? [[o, d] as const] : [];
  }),
);

function dtypeOfOrt(type: Tensor.Type): DataType {
  const d = DTYPE_OF_ORT.get(type);
  if (d === undefined) throw new UnsupportedTypeError(undefined, `onnxruntime tensor type '${type}'`);
  return d;
}

/**
 * A TensorProto as an ORT tensor; `raw` supplies the bytes of an external tensor (OnnxModel.rawBytes). float16
 * goes over as its stored bits, untouched.
 */
export function tensorProtoToOrt(t: TensorProto, raw?: Uint8Array): Tensor {
  const what = `tensor '${t.name ?? ''}'`;
  const type = ortTypeOrThrow(t.dataType, what);
  const data = t.dataType === DataType.FLOAT16 ? bitsOf(t, raw) : tensorValues(t, raw).data;
  return new Tensor(type, data as never, [...t.dims]);
}

/** Stacks tensors of one type along axis 0; their other dimensions must agree. */
export function concatAxis0(parts: readonly Tensor[], name = 'tensor'): Tensor {
  const first = parts[0];
  // RangeError: callers stack at least one sample (an API contract, not input); the others are the samples' shapes.
  if (!first) throw new RangeError(`cannot concatenate zero tensors for '${name}'`);
  if (first.dims.length === 0) throw new OnnxCompressError('bad-data', `'${name}' is a scalar: it has no axis 0 to concatenate along`);
  const tail = first.dims.slice(1);
  let rows = 0;
  for (const p of parts) {
    if (p.type !== first.type) throw new OnnxCompressError('bad-data', `'${name}' mixes ${first.type} and ${p.type}`);
    if (p.dims.length !== first.dims.length || p.dims.slice(1).some((d, i) => d !== tail[i])) {
      throw new OnnxCompressError('bad-data', `'${name}' shapes [${first.dims.join(',')}] and [${p.dims.join(',')}] differ beyond axis 0`);
    }
    rows += p.dims[0];
  }
  const dims = [rows, ...tail];
  if (first.type === 'string') return new Tensor('string', parts.flatMap((p) => p.data as string[]), dims);
  const total = parts.reduce((n, p) => n + p.size, 0);
  const Ctor = (first.data as Float32Array).constructor as new (n: number) => Float32Array;
  const out = new Ctor(total);
  let at = 0;
  for (const p of parts) {
    out.set(p.data as Float32Array, at);
    at += p.size;
  }
  return new Tensor(first.type, out as never, dims);
}
