// TensorProto <-> JS values for every ONNX element type.
//
// Each tensor goes through a "storage" form between its bytes and its values:
//   - native types (float32/64, complex, 8..64-bit ints, bool): storage is the typed array of values itself, and
//     raw_data is its little-endian bytes;
//   - coded types (float16, bfloat16, the float8s, float4e2m1, float8e8m0, int4/uint4/int2/uint2): storage is one
//     bit pattern per element (Uint16Array or Uint8Array), raw_data packs sub-byte codes low bits first, and
//     values come from decoding the codes (small floats widen exactly to float32).
// Encoding goes values -> storage -> raw_data or a typed field; decoding runs the other way. Conversions are
// exact: small floats round to nearest even from the input's own value (no double rounding through float32),
// integers round half to even and saturate, so decoding then encoding gives the same bits back.
import { byteSize, dtypeInfo, type DTypeInfo, type TypedField, type ValueArrayName } from './dtypes.js';
import { ModelError } from './model.js';
import { DataLocation, DataType, type TensorProto } from './types.js';

/** A decoded tensor's values (see DecodedTensor for which container each type uses). */
export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

/** Values accepted for encoding: any numeric array-like (bigints too), booleans for bool, strings for string. */
export type TensorValues = TensorData | ArrayLike<number | bigint | boolean> | readonly string[];

/**
 * A decoded tensor. `data` holds one entry per element in row-major order (complex: real and imaginary parts
 * interleaved, so twice as many). Container per type: float32, float16, bfloat16, float8*, float4e2m1 and
 * float8e8m0 -> Float32Array; float64 -> Float64Array; int4/int2 -> Int8Array; uint4/uint2 and bool ->
 * Uint8Array; int64 -> BigInt64Array; uint64 -> BigUint64Array; string -> string[]; others their own typed array.
 */
export interface DecodedTensor {
  name?: string;
  dtype: DataType;
  dims: number[];
  data: TensorData;
}

/** How FLOAT8E8M0 picks between the two powers of two around a value (Cast's `round_mode`). */
export type E8M0RoundMode = 'up' | 'down' | 'nearest';

export interface EncodeOptions {
  /** Store values in raw_data (default) or in the type's repeated field (float_data, int32_data...). */
  raw?: boolean;
  /**
   * Float8 and float8e8m0 only, as Cast's `saturate` (default true): out-of-range values and infinities become
   * the largest finite value instead of inf/NaN. Float16/bfloat16 always overflow to inf and float4e2m1 always
   * saturates, as the spec has it. An E5M2 tensor holding ±inf therefore needs saturate=false to round-trip.
   */
  saturate?: boolean;
  /** Float8e8m0 only (default 'up'); ties of 'nearest' go up. */
  roundMode?: E8M0RoundMode;
}

/** Bad tensor contents or values; the message names the tensor. */
export class TensorError extends ModelError {}

type Codes = Uint8Array | Uint16Array;
type Storage = TensorData;
interface Opts {
  saturate: boolean;
  roundMode: E8M0RoundMode;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------------------------
// Small float formats. `special` says how a format spends its top codes: 'ieee' reserves the top exponent for
// inf/NaN; 'fn' has no inf and only all-ones as NaN; 'fnuz' has no inf and no -0, with the -0 pattern as its
// only NaN; 'none' (float4e2m1) has neither; 'e8m0' is a bare unsigned exponent with 0xFF as NaN.

type Special = 'ieee' | 'fn' | 'fnuz' | 'none' | 'e8m0';

interface MiniFloat {
  bits: number;
  expBits: number;
  manBits: number;
  bias: number;
  special: Special;
  /** Whether Cast's saturate attribute applies (the float8 family). */
  saturable: boolean;
}

interface Format extends MiniFloat {
  signBit: number;
  topExp: number;
  maxCode: number;
  max: number;
  /** float32 bit pattern of every code, built on first use. */
  table?: Uint32Array;
}

const MINIFLOATS: [DataType, MiniFloat][] = [
  [DataType.FLOAT16, { bits: 16, expBits: 5, manBits: 10, bias: 15, special: 'ieee', saturable: false }],
  [DataType.BFLOAT16, { bits: 16, expBits: 8, manBits: 7, bias: 127, special: 'ieee', saturable: false }],
  [DataType.FLOAT8E4M3FN, { bits: 8, expBits: 4, manBits: 3, bias: 7, special: 'fn', saturable: true }],
  [DataType.FLOAT8E4M3FNUZ, { bits: 8, expBits: 4, manBits: 3, bias: 8, special: 'fnuz', saturable: true }],
  [DataType.FLOAT8E5M2, { bits: 8, expBits: 5, manBits: 2, bias: 15, special: 'ieee', saturable: true }],
  [DataType.FLOAT8E5M2FNUZ, { bits: 8, expBits: 5, manBits: 2, bias: 16, special: 'fnuz', saturable: true }],
  [DataType.FLOAT4E2M1, { bits: 4, expBits: 2, manBits: 1, bias: 1, special: 'none', saturable: false }],
  [DataType.FLOAT8E8M0, { bits: 8, expBits: 8, manBits: 0, bias: 127, special: 'e8m0', saturable: true }],
];

const FORMATS = new Map<number, Format>(MINIFLOATS.map(([code, f]) => [code, deriveFormat(f)]));

function deriveFormat(f: MiniFloat): Format {
  const signBit = f.special === 'e8m0' ? 0 : 1 << (f.bits - 1);
  const topExp = (1 << f.expBits) - 1;
  const allMan = (1 << f.manBits) - 1;
  const maxCode =
    f.special === 'ieee'
      ? ((topExp - 1) << f.manBits) | allMan
      : f.special === 'fn'
        ? (topExp << f.manBits) | (allMan - 1)
        : f.special === 'e8m0'
          ? topExp - 1
          : (topExp << f.manBits) | allMan;
  const format: Format = { ...f, signBit, topExp, maxCode, max: 0 };
  format.max = codeValue(format, maxCode);
  return format;
}

/** The exact value of a code (NaN for NaN codes). */
function codeValue(f: Format, code: number): number {
  if (f.special === 'e8m0') return code === f.topExp ? NaN : 2 ** (code - f.bias);
  const magnitude = code & (f.signBit - 1);
  const exp = magnitude >> f.manBits;
  const man = magnitude & ((1 << f.manBits) - 1);
  if (isNaNCode(f, code)) return NaN;
  const v =
    f.special === 'ieee' && exp === f.topExp
      ? Infinity
      : exp === 0
        ? man * 2 ** (1 - f.bias - f.manBits)
        : (2 ** f.manBits + man) * 2 ** (exp - f.bias - f.manBits);
  return code & f.signBit ? -v : v;
}

function isNaNCode(f: Format, code: number): boolean {
  const magnitude = code & (f.signBit - 1);
  switch (f.special) {
    case 'ieee':
      return magnitude >> f.manBits === f.topExp && (magnitude & ((1 << f.manBits) - 1)) !== 0;
    case 'fn':
      return magnitude === f.signBit - 1;
    case 'fnuz':
      return code === f.signBit;
    case 'e8m0':
      return code === f.topExp;
    default:
      return false;
  }
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float32 bits of a code; IEEE NaNs keep sign and payload so that encoding them again restores the code. */
function codeToF32Bits(f: Format, code: number): number {
  if (isNaNCode(f, code)) {
    if (f.special !== 'ieee') return (f.special === 'fn' && code & f.signBit ? 0xffc00000 : 0x7fc00000) >>> 0;
    const payload = code & ((1 << f.manBits) - 1);
    return ((code & f.signBit ? 0x80000000 : 0) | 0x7f800000 | (payload << (23 - f.manBits))) >>> 0;
  }
  f32Scratch[0] = codeValue(f, code);
  return u32Scratch[0];
}

function tableOf(f: Format): Uint32Array {
  if (!f.table) {
    f.table = new Uint32Array(1 << f.bits);
    for (let code = 0; code < f.table.length; code++) f.table[code] = codeToF32Bits(f, code);
  }
  return f.table;
}

const f64Scratch = new Float64Array(1);
const f64HighWord = new Uint32Array(f64Scratch.buffer, LITTLE_ENDIAN ? 4 : 0, 1);

/** floor(log2(a)) for finite a > 0, read from the exponent field (exact, unlike Math.log2 near powers of 2). */
function floorLog2(a: number): number {
  f64Scratch[0] = a;
  const biased = (f64HighWord[0] >>> 20) & 0x7ff;
  return biased !== 0 ? biased - 1023 : floorLog2(a * 2 ** 64) - 64;
}

// 2^k for every k a conversion can ask for; a table lookup is several times cheaper than `2 ** k`.
const POW2_OFFSET = 1200;
const POW2 = Float64Array.from({ length: 2 * POW2_OFFSET }, (_, i) => 2 ** (i - POW2_OFFSET));

function pow2(k: number): number {
  return POW2[k + POW2_OFFSET];
}

function roundHalfEven(m: number): number {
  const f = Math.floor(m);
  const d = m - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

/** NaN code; `nanBits` (float32 bits of the source NaN, when known) carries sign and payload into IEEE formats. */
function nanCode(f: Format, nanBits: number | undefined): number {
  const negative = nanBits !== undefined && nanBits >>> 31 === 1;
  switch (f.special) {
    case 'ieee': {
      const payload = nanBits === undefined ? 0 : (nanBits & 0x7fffff) >>> (23 - f.manBits);
      return (negative ? f.signBit : 0) | (f.topExp << f.manBits) | (payload || 1 << (f.manBits - 1));
    }
    case 'fn':
      return (negative ? f.signBit : 0) | (f.signBit - 1);
    case 'fnuz':
      return f.signBit;
    case 'e8m0':
      return f.topExp;
    default:
      return f.maxCode; // float4e2m1 has no NaN; the ONNX reference maps NaN to +6
  }
}

function overflowCode(f: Format, sign: number, saturate: boolean): number {
  if (saturate || f.special === 'none') return sign | f.maxCode;
  if (f.special === 'ieee') return sign | (f.topExp << f.manBits);
  return f.special === 'fn' ? sign | (f.signBit - 1) : f.signBit;
}

function encodeCode(f: Format, x: number, o: Opts, nanBits: number | undefined): number {
  if (x !== x) return nanCode(f, nanBits);
  if (f.special === 'e8m0') return encodeE8M0(f, x, o);
  const saturate = f.saturable && o.saturate;
  const negative = x < 0 || (x === 0 && 1 / x < 0);
  const sign = negative ? f.signBit : 0;
  const a = negative ? -x : x;
  if (a === Infinity) return overflowCode(f, sign, saturate);
  const emin = 1 - f.bias;
  const e = a === 0 ? emin : Math.max(floorLog2(a), emin);
  // Scaling by a power of two is exact, so the value is rounded once, straight from the input.
  let r = roundHalfEven(a * pow2(f.manBits - e));
  if (r === 0) return f.special === 'fnuz' ? 0 : sign;
  if (r * pow2(e - f.manBits) > f.max) return overflowCode(f, sign, saturate);
  const hidden = 1 << f.manBits;
  if (r < hidden) return sign | r; // subnormal
  let exp = e;
  if (r === 2 * hidden) {
    exp += 1;
    r = hidden;
  }
  return sign | ((exp + f.bias) << f.manBits) | (r - hidden);
}

// Unlike the float8 tables, the E8M0 table judges range on the value before rounding (x > E8M0_MAX,
// x < E8M0_MIN). The spec leaves negative inputs unspecified; as in onnxruntime they count as below the range.
function encodeE8M0(f: Format, x: number, o: Opts): number {
  const outOfRange = o.saturate ? undefined : f.topExp;
  if (x > f.max) return outOfRange ?? f.maxCode;
  if (x < pow2(-f.bias)) return outOfRange ?? 0;
  let e = floorLog2(x);
  const fraction = x * pow2(-e);
  if (fraction > 1 && (o.roundMode === 'up' || (o.roundMode === 'nearest' && fraction >= 1.5))) e += 1;
  return Math.min(e + f.bias, f.maxCode);
}

function formatOf(dtype: number, label: string): Format {
  const f = FORMATS.get(dtype);
  if (!f) throw new TensorError(`${label}: ${dtypeInfo(dtype).name} is not a small float type`);
  return f;
}

/** float32 bits of NaN source values (sign and top payload bits), for typed float inputs. */
function nanBitsReader(values: TensorValues): (i: number) => number | undefined {
  if (values instanceof Float32Array) {
    const u32 = new Uint32Array(values.buffer, values.byteOffset, values.length);
    return (i) => u32[i];
  }
  if (values instanceof Float64Array) {
    const u32 = new Uint32Array(values.buffer, values.byteOffset, values.length * 2);
    return (i) => ((u32[2 * i + 1] & 0x80000000) | 0x7f800000 | ((u32[2 * i + 1] & 0xfffff) << 3) | (u32[2 * i] >>> 29)) >>> 0;
  }
  return () => undefined;
}

function floatsToCodes(f: Format, values: TensorValues, o: Opts): Codes {
  const out = f.bits === 16 ? new Uint16Array(values.length) : new Uint8Array(values.length);
  const nanBits = nanBitsReader(values);
  for (let i = 0; i < values.length; i++) {
    const x = Number(values[i]);
    out[i] = encodeCode(f, x, o, x !== x ? nanBits(i) : undefined);
  }
  return out;
}

function codesToFloats(f: Format, codes: Codes): Float32Array {
  const table = tableOf(f);
  const bits = new Uint32Array(codes.length);
  for (let i = 0; i < codes.length; i++) bits[i] = table[codes[i] & (table.length - 1)];
  return new Float32Array(bits.buffer);
}

// ---------------------------------------------------------------------------------------------------------------
// Integers: round half to even, then saturate to the type's range.

function intRange(info: DTypeInfo): [bigint, bigint] {
  const bits = BigInt(info.bits);
  return info.kind === 'int' ? [-(1n << (bits - 1n)), (1n << (bits - 1n)) - 1n] : [0n, (1n << bits) - 1n];
}

function toInteger(x: number | bigint | boolean | string, info: DTypeInfo, label: string): bigint {
  if (typeof x === 'bigint') return x;
  const n = Number(x);
  if (n !== n) throw new TensorError(`${label}: NaN cannot be stored as ${info.name}`);
  if (!Number.isFinite(n)) return n > 0 ? 1n << 64n : -(1n << 64n);
  return BigInt(roundHalfEven(n));
}

function saturated(x: number | bigint | boolean | string, info: DTypeInfo, range: [bigint, bigint], label: string): bigint {
  const v = toInteger(x, info, label);
  return v < range[0] ? range[0] : v > range[1] ? range[1] : v;
}

/** `saturated` for types up to 32 bits, where doubles hold every value exactly and bigints are not needed. */
function saturateSmall(x: number | bigint | boolean | string, info: DTypeInfo, lo: number, hi: number, label: string): number {
  const n = typeof x === 'bigint' ? (x < lo ? lo : x > hi ? hi : Number(x)) : Number(x);
  if (n !== n) throw new TensorError(`${label}: NaN cannot be stored as ${info.name}`);
  const r = roundHalfEven(n);
  return r < lo ? lo : r > hi ? hi : r;
}

// ---------------------------------------------------------------------------------------------------------------
// Values <-> storage.

const CTORS = {
  Float32Array,
  Float64Array,
  Int8Array,
  Uint8Array,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  BigInt64Array,
  BigUint64Array,
};
type NumericArrayName = Exclude<ValueArrayName, 'string[]'>;

/** A zero-filled container of `count` values in the layout `tensorValues` decodes `dtype` to (not strings). */
export function zeroValues(dtype: DataType, count: number): Exclude<TensorData, string[]> {
  const info = infoFor(dtype, 'tensor');
  if (info.array === 'string[]') throw new TensorError(`${info.name} tensors have no numeric container`);
  return new CTORS[info.array as NumericArrayName](count) as Exclude<TensorData, string[]>;
}

/** Entries in the decoded array: complex types hold two per element. */
function valueCount(info: DTypeInfo, count: number): number {
  return info.kind === 'complex' ? 2 * count : count;
}

function toStorage(info: DTypeInfo, values: TensorValues, o: Opts, label: string): Storage {
  const format = FORMATS.get(info.code);
  if (format) return floatsToCodes(format, values, o);
  if (info.kind === 'string') return Array.from(values as ArrayLike<unknown>, (s) => stringValue(s, label));
  const Ctor = CTORS[info.array as NumericArrayName];
  // Same container, nothing to convert: copy as is, which keeps float NaN payloads bit for bit.
  if (info.bits >= 8 && info.kind !== 'bool' && values instanceof Ctor) return (values as Exclude<Storage, string[]>).slice();
  const out = new Ctor(values.length);
  fillConverted(info, values, out, label);
  if (info.bits < 8) return codesOfSmallInts(out as Int8Array | Uint8Array, info.bits);
  return out;
}

function fillConverted(info: DTypeInfo, values: TensorValues, out: Exclude<Storage, string[]>, label: string): void {
  const n = values.length;
  if (info.kind === 'float' || info.kind === 'complex') {
    for (let i = 0; i < n; i++) out[i] = Number(values[i]);
  } else if (info.kind === 'bool') {
    for (let i = 0; i < n; i++) out[i] = truthy(values[i]) ? 1 : 0;
  } else if (info.bits === 64) {
    const range = intRange(info);
    for (let i = 0; i < n; i++) out[i] = saturated(values[i], info, range, label);
  } else {
    const [lo, hi] = intRange(info).map(Number);
    for (let i = 0; i < n; i++) out[i] = saturateSmall(values[i], info, lo, hi, label);
  }
}

function truthy(x: number | bigint | boolean | string): boolean {
  // Cast: +/-0 is false, everything else (NaN included) true.
  return typeof x === 'bigint' ? x !== 0n : typeof x === 'boolean' ? x : Number(x) !== 0;
}

function stringValue(s: unknown, label: string): string {
  if (typeof s !== 'string') throw new TensorError(`${label}: string tensor values must be strings, got ${typeof s}`);
  return s;
}

function codesOfSmallInts(values: Int8Array | Uint8Array, bits: number): Uint8Array {
  const mask = (1 << bits) - 1;
  const codes = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) codes[i] = values[i] & mask;
  return codes;
}

function fromStorage(info: DTypeInfo, storage: Storage): TensorData {
  const format = FORMATS.get(info.code);
  if (format) return codesToFloats(format, storage as Codes);
  if (info.bits >= 8 || info.kind === 'string') return storage;
  if (info.kind === 'uint') return storage;
  const codes = storage as Uint8Array;
  const half = 1 << (info.bits - 1);
  const values = new Int8Array(codes.length);
  for (let i = 0; i < codes.length; i++) values[i] = (codes[i] ^ half) - half;
  return values;
}

// ---------------------------------------------------------------------------------------------------------------
// Storage <-> raw bytes and typed fields.

function storageFromRaw(info: DTypeInfo, bytes: Uint8Array, count: number, label: string): Storage {
  if (info.kind === 'string') throw new TensorError(`${label}: string tensors cannot use raw_data`);
  assertLittleEndian();
  const expected = byteSize(info.code, count);
  if (bytes.length !== expected) {
    throw new TensorError(
      `${label}: ${count} ${info.name} element${count === 1 ? '' : 's'} need ${expected} bytes, raw data has ${bytes.length}`,
    );
  }
  const copy = new Uint8Array(bytes); // aligned and detached from the caller's buffer
  if (info.bits < 8) return unpack(copy, info.bits, count);
  if (FORMATS.has(info.code)) return info.bits === 16 ? new Uint16Array(copy.buffer) : copy;
  return new CTORS[info.array as NumericArrayName](copy.buffer);
}

function storageToRaw(info: DTypeInfo, storage: Storage, label: string): Uint8Array {
  if (info.kind === 'string') throw new TensorError(`${label}: string tensors cannot use raw_data`);
  assertLittleEndian();
  if (info.bits < 8) return pack(storage as Uint8Array, info.bits);
  const s = storage as Exclude<Storage, string[]>;
  return new Uint8Array(s.buffer, s.byteOffset, s.byteLength);
}

// Sub-byte codes: element i sits at bit offset i*bits, so the first element is in the low bits of byte 0.
function unpack(bytes: Uint8Array, bits: number, count: number): Uint8Array {
  const mask = (1 << bits) - 1;
  const out = new Uint8Array(count);
  for (let i = 0, at = 0; i < count; i++, at += bits) out[i] = (bytes[at >> 3] >> (at & 7)) & mask;
  return out;
}

function pack(codes: Uint8Array, bits: number): Uint8Array {
  const mask = (1 << bits) - 1;
  const out = new Uint8Array(Math.ceil((codes.length * bits) / 8));
  for (let i = 0, at = 0; i < codes.length; i++, at += bits) out[at >> 3] |= (codes[i] & mask) << (at & 7);
  return out;
}

/** Entries the type's typed field holds for `count` elements: packed types keep one packed byte per int32. */
function fieldLength(info: DTypeInfo, count: number): number {
  return info.bits > 0 && info.bits < 8 ? byteSize(info.code, count) : valueCount(info, count);
}

function storageFromField(info: DTypeInfo, t: TensorProto, count: number, label: string): Storage {
  const field = t[info.field] as ArrayLike<number | bigint | Uint8Array>;
  const want = fieldLength(info, count);
  if (field.length !== want) throw new TensorError(`${label}: ${fieldMismatch(info, t, count, want, field.length)}`);
  if (info.kind === 'string') return Array.from(field as ArrayLike<Uint8Array>, (b) => UTF8.decode(b));
  if (info.bits < 8) return unpack(Uint8Array.from(field as ArrayLike<number>), info.bits, count);
  if (FORMATS.has(info.code)) {
    const mask = (1 << info.bits) - 1;
    const codes = info.bits === 16 ? new Uint16Array(want) : new Uint8Array(want);
    for (let i = 0; i < want; i++) codes[i] = Number(field[i]) & mask;
    return codes;
  }
  const out = new CTORS[info.array as NumericArrayName](want);
  const big = out instanceof BigInt64Array || out instanceof BigUint64Array;
  for (let i = 0; i < want; i++) out[i] = big ? BigInt(field[i] as number | bigint) : Number(field[i]);
  return out;
}

function fieldMismatch(info: DTypeInfo, t: TensorProto, count: number, want: number, got: number): string {
  const fields = Object.keys(PROTO_FIELD) as TypedField[];
  const elsewhere = got === 0 ? fields.find((f) => t[f].length > 0) : undefined;
  const hint = elsewhere ? ` (its values are in ${PROTO_FIELD[elsewhere]}, which ${info.name} does not use)` : '';
  const none = got === 0 && !elsewhere && t.rawData === undefined ? ' and no raw_data' : '';
  const elements = `${count} ${info.name} element${count === 1 ? '' : 's'}`;
  return `${elements} need ${want} entries in ${PROTO_FIELD[info.field]}, found ${got}${none}${hint}`;
}

const PROTO_FIELD: Record<TypedField, string> = {
  floatData: 'float_data',
  int32Data: 'int32_data',
  int64Data: 'int64_data',
  uint64Data: 'uint64_data',
  doubleData: 'double_data',
  stringData: 'string_data',
};

function storageToField(info: DTypeInfo, storage: Storage): Partial<TensorProto> {
  if (info.kind === 'string') return { stringData: (storage as string[]).map((s) => UTF8_ENCODER.encode(s)) };
  const s = info.bits < 8 ? pack(storage as Uint8Array, info.bits) : (storage as Exclude<Storage, string[]>);
  const big = info.field === 'int64Data' || info.field === 'uint64Data';
  const values: (number | bigint)[] = Array.from(s as ArrayLike<number | bigint>, (v) => (big ? BigInt(v) : Number(v)));
  return { [info.field]: values };
}

const UTF8 = new TextDecoder('utf-8');
const UTF8_ENCODER = new TextEncoder();

function assertLittleEndian(): void {
  // Plain Error: a limit of the host, not of the input.
  if (!LITTLE_ENDIAN) throw new Error('raw tensor data is little endian; big-endian hosts are not supported');
}

// ---------------------------------------------------------------------------------------------------------------
// Public API.

function tensorLabel(t: TensorProto): string {
  return t.name ? `tensor '${t.name}'` : 'unnamed tensor';
}

function infoFor(dtype: number | undefined, label: string): DTypeInfo {
  try {
    return dtypeInfo(dtype);
  } catch (e) {
    throw new TensorError(`${label}: ${(e as Error).message}`);
  }
}

function options(o: EncodeOptions): Opts {
  return { saturate: o.saturate ?? true, roundMode: o.roundMode ?? 'up' };
}

/** Number of elements of a shape; every dim must be a non-negative integer. */
export function elementCount(dims: readonly number[], label = 'tensor'): number {
  let n = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new TensorError(`${label}: bad dimension ${d} in shape [${dims.join(', ')}]`);
    n *= d;
  }
  return n;
}

function tensorStorage(t: TensorProto, raw: Uint8Array | undefined): { info: DTypeInfo; storage: Storage } {
  const label = tensorLabel(t);
  const info = infoFor(t.dataType, label);
  const count = elementCount(t.dims, label);
  const external = t.dataLocation === DataLocation.EXTERNAL;
  if (raw === undefined && external) {
    throw new TensorError(`${label}: data is in an external file; pass its bytes (OnnxModel.rawBytes) to decode it`);
  }
  const bytes = raw ?? t.rawData;
  const storage = bytes !== undefined ? storageFromRaw(info, bytes, count, label) : storageFromField(info, t, count, label);
  return { info, storage };
}

/**
 * The values of a tensor, from raw_data, from `raw` when given (external data: pass OnnxModel.rawBytes(t)), or
 * from its typed field.
 */
export function tensorValues(t: TensorProto, raw?: Uint8Array): DecodedTensor {
  const { info, storage } = tensorStorage(t, raw);
  return { name: t.name, dtype: info.code, dims: [...t.dims], data: fromStorage(info, storage) };
}

/**
 * Bit patterns of a small-float tensor, one per element: Uint16Array for float16/bfloat16 (what onnxruntime-node
 * takes for a float16 feed), Uint8Array for the float8 types, float4e2m1 (unpacked) and float8e8m0.
 */
export function bitsOf(t: TensorProto, raw?: Uint8Array): Codes {
  const label = tensorLabel(t);
  formatOf(infoFor(t.dataType, label).code, label);
  return tensorStorage(t, raw).storage as Codes;
}

/** Values -> small-float bit patterns (see bitsOf for the containers), rounding as Cast does. */
export function toBits(dtype: DataType, values: TensorValues, opts: EncodeOptions = {}): Codes {
  return floatsToCodes(formatOf(dtype, 'toBits'), values, options(opts));
}

/** Small-float bit patterns -> their exact float32 values. */
export function fromBits(dtype: DataType, codes: ArrayLike<number>): Float32Array {
  const f = formatOf(dtype, 'fromBits');
  return codesToFloats(f, codes instanceof Uint8Array || codes instanceof Uint16Array ? codes : Uint16Array.from(codes));
}

/** Each value rounded to the nearest value of a small float type (a cast there and back), as float32. */
export function roundTo(dtype: DataType, values: TensorValues, opts: EncodeOptions = {}): Float32Array {
  return fromBits(dtype, toBits(dtype, values, opts));
}

/** Raw little-endian bytes -> values, for `count` elements (packed types: the padding bits are ignored). */
export function decodeRaw(dtype: DataType, bytes: Uint8Array, count: number, label = 'tensor'): TensorData {
  const info = infoFor(dtype, label);
  return fromStorage(info, storageFromRaw(info, bytes, count, label));
}

/** Values -> raw little-endian bytes in the layout raw_data and external data use. */
export function encodeRaw(dtype: DataType, values: TensorValues, opts: EncodeOptions = {}, label = 'tensor'): Uint8Array {
  const info = infoFor(dtype, label);
  return storageToRaw(info, toStorage(info, values, options(opts), label), label);
}

/** A TensorProto holding `values` (row-major; complex interleaved), in raw_data unless `raw: false`. */
export function makeTensor(
  name: string,
  dtype: DataType,
  dims: readonly number[],
  values: TensorValues,
  opts: EncodeOptions = {},
): TensorProto {
  const label = name ? `tensor '${name}'` : 'unnamed tensor';
  const info = infoFor(dtype, label);
  const count = elementCount(dims, label);
  const want = valueCount(info, count);
  if (values.length !== want) {
    throw new TensorError(`${label}: shape [${dims.join(', ')}] needs ${want} ${info.name} values, got ${values.length}`);
  }
  const storage = toStorage(info, values, options(opts), label);
  const useRaw = (opts.raw ?? true) && info.kind !== 'string';
  return {
    dims: [...dims],
    dataType: dtype,
    ...(name ? { name } : {}),
    floatData: [],
    int32Data: [],
    stringData: [],
    int64Data: [],
    externalData: [],
    doubleData: [],
    uint64Data: [],
    metadataProps: [],
    ...(useRaw ? { rawData: storageToRaw(info, storage, label) } : storageToField(info, storage)),
  };
}
