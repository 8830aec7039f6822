// Uniform affine quantization as pure functions on Float32Array: ranges -> scales and zero points -> integer codes
// -> dequantized values. Nothing here knows about ONNX graphs; the writers turn the results into tensors.
//
// Two conventions, because ONNX Runtime itself has two and a written model should hold exactly the codes ORT's
// own tools would write:
//   'onnx' — ORT's quantize_static / quantize_dynamic (quant_utils.compute_scale_zp + quantize_nparray), which is
//            also QuantizeLinear's arithmetic: the range is widened to include 0; symmetric ranges become
//            [-absmax, absmax] over the *narrow* code range (int8 [-127, 127], uint8 [0, 254]); the scale is
//            computed in float64 and stored as float32; zero points and codes round half to even; codes are
//            round(x / scale) + zp saturated to the b-bit range.
//   'mlas' — ORT's MatMulNBits quantizer (MLAS BlockwiseQuantizer behind matmul_nbits_quantizer.py), all in
//            float32: symmetric keeps the sign of the larger-magnitude end m and uses scale = -m / 2^(b-1) with the
//            implicit zero point 2^(b-1), so m itself lands on code 0 and the full [0, 2^b - 1] range is used;
//            asymmetric uses scale = (max - min) / (2^b - 1) with zp = roundf(-min / scale); codes are
//            roundf(x * (1 / scale) + zp) clamped to [0, 2^b - 1]. roundf rounds half away from zero. Signed codes
//            (int4 for DequantizeLinear) are the unsigned ones minus 2^(b-1), which dequantize identically.
// Dequantization is (code - zp) * scale in float32 under both, as DequantizeLinear and MatMulNBits compute it.

export type Convention = 'onnx' | 'mlas';

/** Which elements share a scale and zero point. Axes are normalised (negative counts from the end). */
export type Granularity =
  | { kind: 'tensor' }
  | { kind: 'channel'; axis: number }
  /** Runs of `blockSize` consecutive elements along `axis`; a short last block acts as one padded with zeros. */
  | { kind: 'block'; axis: number; blockSize: number };

export interface QuantSpec {
  /** Code width, 2..8. */
  bits: number;
  /** Codes are two's complement (int) rather than plain binary (uint). */
  signed: boolean;
  symmetric: boolean;
  granularity: Granularity;
  /** Default 'onnx'. */
  convention?: Convention;
}

/** Clipping range per group (what min/max, percentile or entropy calibration produced), in group order. */
export interface GroupRanges {
  min: ArrayLike<number>;
  max: ArrayLike<number>;
}

export interface Quantized {
  dims: number[];
  spec: Required<QuantSpec>;
  /** One code per element, row-major like the input. */
  codes: Int16Array;
  /** One per group; see `paramDims` for their layout. */
  scales: Float32Array;
  zeroPoints: Int16Array;
  /**
   * Shape of `scales`/`zeroPoints` as DequantizeLinear takes them: [] per tensor, [dims[axis]] per channel, and
   * per block the input's dims with dims[axis] replaced by ceil(dims[axis] / blockSize) (opset 21 layout).
   */
  paramDims: number[];
  /** The b-bit code range codes are saturated to. */
  qmin: number;
  qmax: number;
}

export const MIN_BITS = 2;
export const MAX_BITS = 8;
const FLT_MIN = 1.1754943508222875e-38; // numpy.finfo(float32).tiny, ORT's "scale too small" threshold
const f32 = Math.fround;

// --- rounding and ranges ----------------------------------------------------------------------------------

/** Nearest integer, ties to even (numpy.round, QuantizeLinear, the default FPU mode). */
export function roundHalfToEven(x: number): number {
  const r = Math.round(x); // ties toward +inf
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Nearest integer, ties away from zero (C's roundf, which MLAS's blockwise quantizer uses). */
export function roundHalfAwayFromZero(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/** The b-bit code range; `narrow` drops the most negative code (signed) or the top code (unsigned). */
export function codeRange(bits: number, signed: boolean, narrow = false): { qmin: number; qmax: number } {
  checkBits(bits);
  if (signed) {
    const half = 2 ** (bits - 1);
    return { qmin: narrow ? -(half - 1) : -half, qmax: half - 1 };
  }
  return { qmin: 0, qmax: 2 ** bits - (narrow ? 2 : 1) };
}

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits < MIN_BITS || bits > MAX_BITS) {
    throw new RangeError(`bits must be an integer from ${MIN_BITS} to ${MAX_BITS}, got ${bits}`);
  }
}

// --- groups -----------------------------------------------------------------------------------------------

/** How a shape splits around the quantization axis: outer x axisLen x inner elements. */
interface Layout {
  outer: number;
  axisLen: number;
  inner: number;
  groups: number;
  paramDims: number[];
  /** Group of element (o, a, i). */
  group: (o: number, a: number, i: number) => number;
}

/** QuantizeLinear/DequantizeLinear attributes for a granularity: axis, and block_size for blocks (opset 21). */
export function linearAttributes(g: Granularity): Record<string, number> {
  const attrs: Record<string, number> = {};
  if (g.kind !== 'tensor') attrs.axis = g.axis;
  if (g.kind === 'block') attrs.block_size = g.blockSize;
  return attrs;
}

function normalizeGranularity(g: Granularity, rank: number): Granularity {
  if (g.kind === 'tensor') return g;
  const axis = g.axis < 0 ? g.axis + rank : g.axis;
  if (!Number.isInteger(axis) || axis < 0 || axis >= rank) throw new RangeError(`axis ${g.axis} is out of range for rank ${rank}`);
  if (g.kind === 'block' && (!Number.isInteger(g.blockSize) || g.blockSize < 1)) {
    throw new RangeError(`block size must be a positive integer, got ${g.blockSize}`);
  }
  return { ...g, axis };
}

function layoutOf(dims: readonly number[], g: Granularity): Layout {
  const count = dims.reduce((a, b) => a * b, 1);
  if (g.kind === 'tensor') return { outer: 1, axisLen: count, inner: 1, groups: 1, paramDims: [], group: () => 0 };
  const outer = dims.slice(0, g.axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(g.axis + 1).reduce((a, b) => a * b, 1);
  const axisLen = dims[g.axis];
  if (g.kind === 'channel') return { outer, axisLen, inner, groups: axisLen, paramDims: [axisLen], group: (_o, a) => a };
  const blocks = Math.ceil(axisLen / g.blockSize);
  const bs = g.blockSize;
  const paramDims = [...dims];
  paramDims[g.axis] = blocks;
  return { outer, axisLen, inner, groups: outer * blocks * inner, paramDims, group: (o, a, i) => (o * blocks + Math.floor(a / bs)) * inner + i };
}

/** Calls fn(element index, group index) for every element in row-major order. */
function visit(l: Layout, fn: (e: number, g: number) => void): void {
  let e = 0;
  for (let o = 0; o < l.outer; o++) for (let a = 0; a < l.axisLen; a++) for (let i = 0; i < l.inner; i++) fn(e++, l.group(o, a, i));
}

function checkShape(x: ArrayLike<number>, dims: readonly number[]): void {
  const count = dims.reduce((a, b) => a * b, 1);
  if (x.length !== count) throw new RangeError(`shape [${dims.join(', ')}] needs ${count} values, got ${x.length}`);
}

/** Min and max of each group, from the data (what MinMax calibration of a weight gives). */
export function groupRanges(x: ArrayLike<number>, dims: readonly number[], granularity: Granularity): GroupRanges {
  checkShape(x, dims);
  const l = layoutOf(dims, normalizeGranularity(granularity, dims.length));
  const min = new Float32Array(l.groups).fill(Infinity);
  const max = new Float32Array(l.groups).fill(-Infinity);
  visit(l, (e, g) => {
    const v = x[e];
    if (v < min[g]) min[g] = v;
    if (v > max[g]) max[g] = v;
  });
  return { min, max };
}

// --- parameters -------------------------------------------------------------------------------------------

export interface ScaleZeroPoint {
  scale: number;
  zeroPoint: number;
}

function resolve(spec: QuantSpec): Required<QuantSpec> {
  checkBits(spec.bits);
  return { convention: 'onnx', ...spec };
}

/** The code range codes saturate to: the full b-bit range of the code type. */
export function saturationRange(spec: QuantSpec): { qmin: number; qmax: number } {
  return codeRange(spec.bits, spec.signed);
}

/** Scale and zero point for one group's clipping range [min, max], in the spec's convention. */
export function scaleZeroPoint(min: number, max: number, spec: QuantSpec): ScaleZeroPoint {
  const s = resolve(spec);
  if (!(min <= max)) throw new RangeError(`bad range [${min}, ${max}]`);
  return s.convention === 'mlas' ? mlasParams(f32(min), f32(max), s) : onnxParams(f32(min), f32(max), s);
}

function onnxParams(min: number, max: number, s: Required<QuantSpec>): ScaleZeroPoint {
  const { qmin, qmax } = codeRange(s.bits, s.signed, s.symmetric);
  let rmin = Math.min(min, 0);
  let rmax = Math.max(max, 0);
  if (s.symmetric) {
    const absmax = Math.max(Math.abs(rmin), Math.abs(rmax));
    rmin = -absmax;
    rmax = absmax;
  }
  // compute_scale_zp: rmax - rmin in float32 (numpy arrays of the data's dtype), the division in float64.
  const scale = f32(rmax - rmin) / (qmax - qmin);
  if (scale < FLT_MIN) return { scale: 1, zeroPoint: 0 };
  const zeroPoint = s.symmetric ? roundHalfToEven((qmin + qmax) / 2) : roundHalfToEven(qmin - rmin / scale);
  return { scale: f32(scale), zeroPoint };
}

function mlasParams(min: number, max: number, s: Required<QuantSpec>): ScaleZeroPoint {
  const half = 2 ** (s.bits - 1);
  const top = 2 ** s.bits - 1;
  const shift = s.signed ? half : 0; // MLAS works on unsigned codes; signed ones are shifted down afterwards
  if (s.symmetric) {
    // range2scale: the end with the larger magnitude, sign kept (ties take min), maps to code 0.
    const m = Math.abs(max) > Math.abs(min) ? max : min;
    return { scale: f32(-m / half), zeroPoint: half - shift };
  }
  // range2scalezp
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  const scale = f32(f32(hi - lo) / top);
  const zpf = scale !== 0 ? f32(0 - f32(lo / scale)) : lo;
  const zp = zpf < 0 ? 0 : zpf > top ? top : roundHalfAwayFromZero(zpf);
  return { scale, zeroPoint: zp - shift };
}

// --- quantize / dequantize --------------------------------------------------------------------------------

/** One value's code under given parameters, saturated to [qmin, qmax]. */
export function quantizeValue(x: number, scale: number, zeroPoint: number, spec: QuantSpec): number {
  return coder(resolve(spec))(x, scale, zeroPoint);
}

/** The per-element code function of a spec, with everything that does not depend on the value worked out once. */
function coder(s: Required<QuantSpec>): (x: number, scale: number, zeroPoint: number) => number {
  const { qmin, qmax } = saturationRange(s);
  const clamp = (q: number): number => (q < qmin ? qmin : q > qmax ? qmax : q);
  if (s.convention === 'onnx') return (x, scale, zp) => clamp(roundHalfToEven(f32(x / scale)) + zp);
  const shift = s.signed ? 2 ** (s.bits - 1) : 0;
  return (x, scale, zp) => {
    const reciprocal = scale !== 0 ? f32(1 / scale) : 0;
    return clamp(roundHalfAwayFromZero(f32(f32(x * reciprocal) + (zp + shift))) - shift);
  };
}

/**
 * Quantizes a tensor. `ranges` (one [min, max] per group, in the order of `paramDims`) replaces the data's own
 * min/max, so percentile or entropy thresholds from calibration clip here; values outside saturate.
 */
export function quantize(x: ArrayLike<number>, dims: readonly number[], spec: QuantSpec, ranges?: GroupRanges): Quantized {
  checkShape(x, dims);
  const s = { ...resolve(spec), granularity: normalizeGranularity(spec.granularity, dims.length) };
  const l = layoutOf(dims, s.granularity);
  const r = ranges ?? groupRanges(x, dims, s.granularity);
  if (r.min.length !== l.groups || r.max.length !== l.groups) {
    throw new RangeError(`expected ${l.groups} ranges for shape [${dims.join(', ')}], got ${r.min.length}/${r.max.length}`);
  }
  const scales = new Float32Array(l.groups);
  const zeroPoints = new Int16Array(l.groups);
  for (let g = 0; g < l.groups; g++) {
    const p = scaleZeroPoint(r.min[g], r.max[g], s);
    scales[g] = p.scale;
    zeroPoints[g] = p.zeroPoint;
  }
  return { ...quantizeWith(x, dims, s, scales, zeroPoints), spec: s };
}

/** Codes for given per-group scales and zero points (for algorithms that choose the parameters themselves). */
export function quantizeWith(
  x: ArrayLike<number>,
  dims: readonly number[],
  spec: QuantSpec,
  scales: Float32Array,
  zeroPoints: Int16Array,
): Quantized {
  checkShape(x, dims);
  const s = { ...resolve(spec), granularity: normalizeGranularity(spec.granularity, dims.length) };
  const l = layoutOf(dims, s.granularity);
  if (scales.length !== l.groups || zeroPoints.length !== l.groups) {
    throw new RangeError(`expected ${l.groups} scales and zero points, got ${scales.length}/${zeroPoints.length}`);
  }
  const codes = new Int16Array(x.length);
  const code = coder(s);
  visit(l, (e, g) => {
    codes[e] = code(x[e], scales[g], zeroPoints[g]);
  });
  return { dims: [...dims], spec: s, codes, scales, zeroPoints, paramDims: l.paramDims, ...saturationRange(s) };
}

/** (code - zero point) * scale in float32, per element. */
export function dequantize(q: Quantized): Float32Array {
  const l = layoutOf(q.dims, q.spec.granularity);
  const out = new Float32Array(q.codes.length);
  visit(l, (e, g) => {
    out[e] = f32((q.codes[e] - q.zeroPoints[g]) * q.scales[g]);
  });
  return out;
}

/** Signal-to-quantization-noise ratio in dB: 10 log10(sum x^2 / sum (x - y)^2); Infinity when y equals x. */
export function sqnrDb(reference: ArrayLike<number>, approx: ArrayLike<number>): number {
  if (reference.length !== approx.length) throw new RangeError(`lengths differ: ${reference.length} vs ${approx.length}`);
  let signal = 0;
  let noise = 0;
  for (let i = 0; i < reference.length; i++) {
    signal += reference[i] * reference[i];
    const d = reference[i] - approx[i];
    noise += d * d;
  }
  if (noise === 0) return Infinity;
  return 10 * Math.log10(signal / noise);
}

// --- bit packing ------------------------------------------------------------------------------------------

/**
 * Packs b-bit codes into bytes as one little-endian bit stream: code i occupies bits [i*b, (i+1)*b), low bits
 * first. For 2, 4 and 8 bits this is the usual "first value in the low bits" layout of ONNX int4/int2 and
 * MatMulNBits; for other widths codes straddle bytes (MatMulNBits' documented layout for 3/5/6/7 bits). Signed
 * codes are stored as their two's complement low bits. `out` receives them at `byteOffset` (default a new array).
 */
export function packBits(codes: ArrayLike<number>, bits: number, out?: Uint8Array, byteOffset = 0): Uint8Array {
  checkBits(bits);
  const bytes = Math.ceil((codes.length * bits) / 8);
  const dst = out ?? new Uint8Array(bytes);
  if (byteOffset + bytes > dst.length) throw new RangeError(`packBits: ${bytes} bytes do not fit at offset ${byteOffset}`);
  const mask = (1 << bits) - 1;
  for (let i = 0, bit = byteOffset * 8; i < codes.length; i++, bit += bits) {
    const v = (codes[i] & mask) << (bit & 7); // at most 15 bits: fits the next two bytes
    dst[bit >> 3] |= v & 0xff;
    if (v > 0xff) dst[(bit >> 3) + 1] |= v >> 8;
  }
  return dst;
}

/** Inverse of packBits: `count` codes of `bits` bits from `bytes` (signed: sign-extended). */
export function unpackBits(bytes: Uint8Array, bits: number, count: number, signed = false, byteOffset = 0): Int16Array {
  checkBits(bits);
  const out = new Int16Array(count);
  const mask = (1 << bits) - 1;
  const sign = 1 << (bits - 1);
  for (let i = 0, bit = byteOffset * 8; i < count; i++, bit += bits) {
    const word = bytes[bit >> 3] | ((bytes[(bit >> 3) + 1] ?? 0) << 8);
    const v = (word >> (bit & 7)) & mask;
    out[i] = signed && v & sign ? v - (mask + 1) : v;
  }
  return out;
}
