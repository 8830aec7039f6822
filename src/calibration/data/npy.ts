// A reader for NumPy .npy files (format versions 1.0, 2.0 and 3.0): parses the header, then reads any run of
// rows along axis 0 straight from the file, so a large array is never loaded whole. Little-endian (or
// byte-order-free) numeric and bool arrays in C order only; anything else is refused with a message that says
// how to save the array instead.
import { closeSync, fstatSync, openSync } from 'node:fs';
import { readFully } from '../../onnx/model.js';
import { decodeRaw, type DecodedTensor } from '../../onnx/tensor.js';
import { DataType } from '../../onnx/types.js';
import { CalibrationDataError } from './errors.js';

export interface NpyArray {
  path: string;
  dtype: DataType;
  shape: number[];
  /** Byte offset of the first element. */
  dataOffset: number;
  /** Bytes per element. */
  itemSize: number;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

// NumPy type character + size -> ONNX element type.
const DTYPES: Record<string, [DataType, number]> = {
  f2: [DataType.FLOAT16, 2],
  f4: [DataType.FLOAT, 4],
  f8: [DataType.DOUBLE, 8],
  i1: [DataType.INT8, 1],
  i2: [DataType.INT16, 2],
  i4: [DataType.INT32, 4],
  i8: [DataType.INT64, 8],
  u1: [DataType.UINT8, 1],
  u2: [DataType.UINT16, 2],
  u4: [DataType.UINT32, 4],
  u8: [DataType.UINT64, 8],
  b1: [DataType.BOOL, 1],
};

/** Reads and checks the header; the data stays on disk. */
export function readNpyHeader(path: string): NpyArray {
  const fd = openFile(path);
  try {
    const size = fstatSync(fd).size;
    const fixed = readAt(fd, path, 0, Math.min(size, 12));
    if (fixed.length < 10 || MAGIC.some((b, i) => fixed[i] !== b)) throw new CalibrationDataError(`${path}: not a .npy file (bad magic)`);
    const major = fixed[6];
    if (major < 1 || major > 3) throw new CalibrationDataError(`${path}: unsupported .npy format version ${major}.${fixed[7]}`);
    // Version 1 stores the header length in 2 bytes; 2 and 3 in 4 (3 also allows UTF-8 in the header).
    const view = new DataView(fixed.buffer, fixed.byteOffset, fixed.length);
    const prefix = major === 1 ? 10 : 12;
    if (fixed.length < prefix) throw new CalibrationDataError(`${path}: truncated .npy header`);
    const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
    if (prefix + headerLength > size) throw new CalibrationDataError(`${path}: truncated .npy header`);
    const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(readAt(fd, path, prefix, headerLength));
    const array = parseHeader(header, path, prefix + headerLength);
    const needed = array.dataOffset + array.shape.reduce((a, b) => a * b, 1) * array.itemSize;
    if (size < needed) {
      throw new CalibrationDataError(`${path}: truncated: shape (${array.shape.join(', ')}) needs ${needed} bytes, the file has ${size}`);
    }
    return array;
  } finally {
    closeSync(fd);
  }
}

/** Rows [start, start + count) along axis 0, as a tensor of shape [count, ...shape[1:]]. */
export function readNpyRows(array: NpyArray, start: number, count: number): DecodedTensor {
  const rowElements = array.shape.slice(1).reduce((a, b) => a * b, 1);
  const fd = openFile(array.path);
  try {
    const bytes = readAt(fd, array.path, array.dataOffset + start * rowElements * array.itemSize, count * rowElements * array.itemSize);
    return { dtype: array.dtype, dims: [count, ...array.shape.slice(1)], data: decodeRaw(array.dtype, bytes, count * rowElements, array.path) };
  } finally {
    closeSync(fd);
  }
}

/** The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } */
function parseHeader(header: string, path: string, dataOffset: number): NpyArray {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new CalibrationDataError(`${path}: unsupported .npy header (structured arrays are not supported): ${header.trim()}`);
  }
  if (fortran === 'True') {
    throw new CalibrationDataError(`${path}: array is in Fortran order; save it in C order (numpy.ascontiguousarray) instead`);
  }
  const order = descr[0];
  if (order === '>') throw new CalibrationDataError(`${path}: array is big-endian ('${descr}'); save it little-endian (arr.astype('<${descr.slice(1)}'))`);
  const type = DTYPES[order === '<' || order === '|' || order === '=' ? descr.slice(1) : descr];
  if (!type) {
    throw new CalibrationDataError(`${path}: unsupported element type '${descr}' (supported: ${Object.keys(DTYPES).join(', ')})`);
  }
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw new CalibrationDataError(`${path}: bad shape (${shapeText}) in .npy header`);
  return { path, dtype: type[0], shape, dataOffset, itemSize: type[1] };
}

function openFile(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    throw new CalibrationDataError(`${path}: cannot be opened (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}

function readAt(fd: number, path: string, position: number, length: number): Uint8Array {
  const out = Buffer.allocUnsafe(length);
  try {
    readFully(fd, out, position);
  } catch {
    throw new CalibrationDataError(`${path}: unexpected end of file`);
  }
  return out;
}
