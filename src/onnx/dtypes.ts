// One row per ONNX element type: how wide it is, how its decoded values are held in JS, where a TensorProto keeps
// it when raw_data is absent, and what onnxruntime-node calls it. Every other module asks this table instead of
// switching on DataType itself, so a new element type is one row here.
import { ModelError } from './model.js';
import { DataType } from './types.js';

/** The JS container decoded values of a type live in (see tensor.ts). */
export type ValueArrayName =
  | 'Float32Array'
  | 'Float64Array'
  | 'Int8Array'
  | 'Uint8Array'
  | 'Int16Array'
  | 'Uint16Array'
  | 'Int32Array'
  | 'Uint32Array'
  | 'BigInt64Array'
  | 'BigUint64Array'
  | 'string[]';

/** The TensorProto repeated field that holds a type's values when raw_data is absent (onnx.proto comments). */
export type TypedField = 'floatData' | 'int32Data' | 'int64Data' | 'uint64Data' | 'doubleData' | 'stringData';

/** Tensor type strings onnxruntime-node accepts for feeds and returns for fetches. */
export type OrtTypeName =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool'
  | 'string';

/**
 * What an element is, which picks the conversion path in tensor.ts: `float` types narrower than 32 bits are
 * stored as bit patterns of a small float format, `int`/`uint` as two's complement or plain binary.
 */
export type DTypeKind = 'float' | 'complex' | 'int' | 'uint' | 'bool' | 'string';

export interface DTypeInfo {
  code: DataType;
  name: string;
  /** Bits per element as stored in raw_data (0 for string, which has no fixed width). */
  bits: number;
  kind: DTypeKind;
  array: ValueArrayName;
  field: TypedField;
  ort: OrtTypeName | null;
}

// bits / array / field / ort per type; `null` ort means onnxruntime-node cannot pass the type across the JS
// boundary, so such tensors must stay inside the graph.
const ROWS: DTypeInfo[] = [
  { code: DataType.FLOAT, name: 'float32', bits: 32, kind: 'float', array: 'Float32Array', field: 'floatData', ort: 'float32' },
  { code: DataType.UINT8, name: 'uint8', bits: 8, kind: 'uint', array: 'Uint8Array', field: 'int32Data', ort: 'uint8' },
  { code: DataType.INT8, name: 'int8', bits: 8, kind: 'int', array: 'Int8Array', field: 'int32Data', ort: 'int8' },
  { code: DataType.UINT16, name: 'uint16', bits: 16, kind: 'uint', array: 'Uint16Array', field: 'int32Data', ort: 'uint16' },
  { code: DataType.INT16, name: 'int16', bits: 16, kind: 'int', array: 'Int16Array', field: 'int32Data', ort: 'int16' },
  { code: DataType.INT32, name: 'int32', bits: 32, kind: 'int', array: 'Int32Array', field: 'int32Data', ort: 'int32' },
  { code: DataType.INT64, name: 'int64', bits: 64, kind: 'int', array: 'BigInt64Array', field: 'int64Data', ort: 'int64' },
  { code: DataType.STRING, name: 'string', bits: 0, kind: 'string', array: 'string[]', field: 'stringData', ort: 'string' },
  { code: DataType.BOOL, name: 'bool', bits: 8, kind: 'bool', array: 'Uint8Array', field: 'int32Data', ort: 'bool' },
  { code: DataType.FLOAT16, name: 'float16', bits: 16, kind: 'float', array: 'Float32Array', field: 'int32Data', ort: 'float16' },
  { code: DataType.DOUBLE, name: 'float64', bits: 64, kind: 'float', array: 'Float64Array', field: 'doubleData', ort: 'float64' },
  { code: DataType.UINT32, name: 'uint32', bits: 32, kind: 'uint', array: 'Uint32Array', field: 'uint64Data', ort: 'uint32' },
  { code: DataType.UINT64, name: 'uint64', bits: 64, kind: 'uint', array: 'BigUint64Array', field: 'uint64Data', ort: 'uint64' },
  { code: DataType.COMPLEX64, name: 'complex64', bits: 64, kind: 'complex', array: 'Float32Array', field: 'floatData', ort: null },
  { code: DataType.COMPLEX128, name: 'complex128', bits: 128, kind: 'complex', array: 'Float64Array', field: 'doubleData', ort: null },
  { code: DataType.BFLOAT16, name: 'bfloat16', bits: 16, kind: 'float', array: 'Float32Array', field: 'int32Data', ort: null },
  { code: DataType.FLOAT8E4M3FN, name: 'float8e4m3fn', bits: 8, kind: 'float', array: 'Float32Array', field: 'int32Data', ort: null },
  { code: DataType.FLOAT8E4M3FNUZ, name: 'float8e4m3fnuz', bits: 8, kind: 'float', array: 'Float32Array', field: 'int32Data', ort: null },
  { code: DataType.FLOAT8E5M2, name: 'float8e5m2', bits: 8, kind: 'float', array: 'Float32Array', field: 'int32Data', ort: null },
  { code: DataType.FLOAT8E5M2FNUZ, name: 'float8e5m2fnuz', bits: 8, kind: 'float', array: 'Float32Array', field: 'int32Data', ort: null },
  { code: DataType.UINT4, name: 'uint4', bits: 4, kind: 'uint', array: 'Uint8Array', field: 'int32Data', ort: null },
  { code: DataType.INT4, name: 'int4', bits: 4, kind: 'int', array: 'Int8Array', field: 'int32Data', ort: null },
  { code: DataType.FLOAT4E2M1, name: 'float4e2m1', bits: 4, kind: 'float', array: 'Float32Array', field: 'int32Data', ort: null },
  { code: DataType.FLOAT8E8M0, name: 'float8e8m0', bits: 8, kind: 'float', array: 'Float32Array', field: 'int32Data', ort: null },
  { code: DataType.UINT2, name: 'uint2', bits: 2, kind: 'uint', array: 'Uint8Array', field: 'int32Data', ort: null },
  { code: DataType.INT2, name: 'int2', bits: 2, kind: 'int', array: 'Int8Array', field: 'int32Data', ort: null },
];

const BY_CODE = new Map(ROWS.map((r) => [r.code as number, r]));
const BY_NAME = new Map(ROWS.map((r) => [r.name, r]));

/** An element type code this module does not know (or UNDEFINED), with the code in the message. */
export class DTypeError extends ModelError {}

/** Every element type, in DataType order. */
export const ALL_DTYPES: readonly DTypeInfo[] = ROWS;

export function dtypeInfo(code: number | undefined): DTypeInfo {
  const info = code === undefined ? undefined : BY_CODE.get(code);
  if (!info) {
    const what = code === undefined ? 'missing' : code === DataType.UNDEFINED ? '0 (UNDEFINED)' : String(code);
    throw new DTypeError(`unknown ONNX element type: data_type ${what}`);
  }
  return info;
}

export function dtypeName(code: number | undefined): string {
  return dtypeInfo(code).name;
}

/** The code for a name from this table ('float32', 'int4'...); the DataType enum spelling ('FLOAT') also works. */
export function dtypeByName(name: string): DTypeInfo {
  const info = BY_NAME.get(name) ?? BY_CODE.get((DataType as unknown as Record<string, number>)[name.toUpperCase()] ?? -1);
  if (!info) throw new DTypeError(`unknown ONNX element type name '${name}'`);
  return info;
}

/** Bytes `elementCount` elements take in raw_data; sub-byte types are packed, so a partial last byte counts. */
export function byteSize(code: number, elementCount: number): number {
  const info = dtypeInfo(code);
  if (info.bits === 0) throw new DTypeError(`${info.name} tensors have no fixed byte size`);
  if (!Number.isSafeInteger(elementCount) || elementCount < 0) {
    throw new RangeError(`element count must be a non-negative integer, got ${elementCount}`);
  }
  return Math.ceil((elementCount * info.bits) / 8);
}

/** Sub-byte types, packed several to a byte in raw_data and in int32_data. */
export function isPacked(code: number): boolean {
  const bits = dtypeInfo(code).bits;
  return bits > 0 && bits < 8;
}
