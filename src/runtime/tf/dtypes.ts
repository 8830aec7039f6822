// ONNX element types as TensorFlow.js holds them, and the conversions between the project's DecodedTensor (typed
// arrays + dims, src/onnx/tensor.ts) and tf.Tensor.
//
// tfjs has three numeric element types: float32, int32 and bool. Every ONNX float type is computed in float32;
// every integer type in int32. That is exact for float32, the 8/16-bit integers, int32 and bool; it *narrows*
// float64 (to float32 precision), float16/bfloat16 (computed wider, rounded back on output), int64 and the
// unsigned 32/64-bit types (to the int32 range). int64 is what ONNX uses for every shape, index and axis, so
// the narrowing matters only for values beyond ±2^31: constants such as Slice's INT64_MAX "to the end" sentinel
// are clamped to the int32 range (which keeps their meaning), while a feed outside the range is refused.
import * as tf from '@tensorflow/tfjs-core';
import { dtypeName } from '../../onnx/dtypes.js';
import { ModelError } from '../../onnx/model.js';
import { type DecodedTensor, roundTo, type TensorData } from '../../onnx/tensor.js';
import { DataType } from '../../onnx/types.js';

type TfNumericType = 'float32' | 'int32' | 'bool';

const TF_TYPE: ReadonlyMap<DataType, TfNumericType> = new Map([
  [DataType.FLOAT, 'float32'],
  [DataType.DOUBLE, 'float32'],
  [DataType.FLOAT16, 'float32'],
  [DataType.BFLOAT16, 'float32'],
  [DataType.INT8, 'int32'],
  [DataType.UINT8, 'int32'],
  [DataType.INT16, 'int32'],
  [DataType.UINT16, 'int32'],
  [DataType.INT32, 'int32'],
  [DataType.INT64, 'int32'],
  [DataType.UINT32, 'int32'],
  [DataType.UINT64, 'int32'],
  [DataType.BOOL, 'bool'],
]);

/** Types whose values tfjs holds with less range or precision than ONNX gives them (see the file comment). */
export const NARROWED_TYPES: ReadonlySet<DataType> = new Set([
  DataType.DOUBLE,
  DataType.FLOAT16,
  DataType.BFLOAT16,
  DataType.INT64,
  DataType.UINT32,
  DataType.UINT64,
]);

/** The tfjs element type an ONNX type is computed in, or undefined for types tfjs cannot hold (string, complex, float8, int4...). */
export function tfTypeOf(dtype: number | undefined): TfNumericType | undefined {
  return dtype === undefined ? undefined : TF_TYPE.get(dtype);
}

export function tfTypeOrThrow(dtype: number | undefined, what: string): TfNumericType {
  const t = tfTypeOf(dtype);
  if (!t) throw new ModelError(`${what}: element type ${describeType(dtype)} cannot be held by TensorFlow.js`);
  return t;
}

function describeType(dtype: number | undefined): string {
  try {
    return dtypeName(dtype);
  } catch {
    return String(dtype);
  }
}

/** The ONNX type a tfjs tensor reports when the graph does not declare one. */
export function onnxTypeOfTf(dtype: tf.DataType): DataType {
  return dtype === 'int32' ? DataType.INT32 : dtype === 'bool' ? DataType.BOOL : DataType.FLOAT;
}

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

/** What to do with an integer outside the int32 range: clamp it (constants) or refuse it (feeds). */
export type Int64Overflow = 'clamp' | 'throw';

function toInt32(values: TensorData, overflow: Int64Overflow, what: string): Int32Array {
  if (values instanceof Int32Array) return values;
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = Number(values[i] as number | bigint);
    if (v < INT32_MIN || v > INT32_MAX) {
      if (overflow === 'throw') throw new ModelError(`${what}: value ${values[i]} at index ${i} is outside the int32 range TensorFlow.js computes in`);
      out[i] = v < 0 ? INT32_MIN : INT32_MAX;
    } else {
      out[i] = v;
    }
  }
  return out;
}

/** A decoded tensor as a tf.Tensor in the type tfjs computes it in (see the file comment for narrowing). */
export function toTfTensor(v: DecodedTensor, overflow: Int64Overflow, what = `tensor '${v.name ?? ''}'`): tf.Tensor {
  const type = tfTypeOrThrow(v.dtype, what);
  if (type === 'float32') {
    const data = v.data instanceof Float32Array ? v.data : Float32Array.from(v.data as ArrayLike<number>);
    return tf.tensor(data, v.dims, 'float32');
  }
  if (type === 'bool') return tf.tensor(v.data as Uint8Array, v.dims, 'bool');
  return tf.tensor(toInt32(v.data, overflow, what), v.dims, 'int32');
}

/** A tf.Tensor's values in the container tensor.ts uses for `dtype` (small floats rounded to that type). */
export function fromTfTensor(t: tf.Tensor, dtype: DataType, name?: string): DecodedTensor {
  const values = t.dataSync() as Float32Array | Int32Array | Uint8Array;
  const dims = [...t.shape];
  return { ...(name !== undefined ? { name } : {}), dtype, dims, data: convertValues(values, dtype) };
}

function convertValues(values: Float32Array | Int32Array | Uint8Array, dtype: DataType): TensorData {
  switch (dtype) {
    case DataType.FLOAT:
      return Float32Array.from(values);
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return roundTo(dtype, values);
    case DataType.DOUBLE:
      return Float64Array.from(values);
    case DataType.INT64:
      return BigInt64Array.from(values, (v) => BigInt(v));
    case DataType.UINT64:
      return BigUint64Array.from(values, (v) => BigInt.asUintN(64, BigInt(v)));
    case DataType.INT32:
      return Int32Array.from(values);
    // The typed-array constructors wrap out-of-range values, which is what ONNX's fixed-width integers do.
    case DataType.INT8:
      return Int8Array.from(values);
    case DataType.UINT8:
    case DataType.BOOL:
      return Uint8Array.from(values);
    case DataType.INT16:
      return Int16Array.from(values);
    case DataType.UINT16:
      return Uint16Array.from(values);
    case DataType.UINT32:
      return Uint32Array.from(values);
    default:
      throw new ModelError(`element type ${describeType(dtype)} cannot be produced by TensorFlow.js`);
  }
}
