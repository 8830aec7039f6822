// The pure quantizers: conventions on tiny hand-checked inputs, then bit-exact agreement with ONNX Runtime's own
// QuantizeLinear / DequantizeLinear (opsets 13 and 21) and MatMulNBits kernels, fed the same data and parameters.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Tensor } from 'onnxruntime-node';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { OnnxModel } from '../src/onnx/model.js';
import { DataType } from '../src/onnx/types.js';
import {
  codeRange,
  dequantize,
  groupRanges,
  packBits,
  quantize,
  linearAttributes,
  quantizeValue,
  quantizeWith,
  roundHalfAwayFromZero,
  roundHalfToEven,
  scaleZeroPoint,
  sqnrDb,
  unpackBits,
  type Granularity,
  type Quantized,
  type QuantSpec,
} from '../src/quantization/quantizers.js';
import { packMatMulNBits } from '../src/quantization/writers/matmulnbits.js';
import { Session } from '../src/runtime/session.js';
import { mulberry32 } from './support/prng.js';

function randomFloats(count: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: count }, () => lo + (hi - lo) * r());
}

/**
 * Asserts two float arrays hold the same bit patterns; returns how many were compared. A matrix product sums
 * from +0, so it cannot return -0 where the weight dequantizes to -0: `signedZero: false` lets those match.
 */
function assertBitExact(actual: Float32Array, expected: Float32Array, what: string, signedZero = true): number {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i] && (signedZero || actual[i] !== 0 || expected[i] !== 0)) {
      assert.fail(`${what}: element ${i} is ${actual[i]} in ORT, ${expected[i]} here`);
    }
  }
  return a.length;
}

function assertCodesEqual(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): number {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) assert.fail(`${what}: code ${i} is ${actual[i]} in ORT, ${expected[i]} here`);
  }
  return actual.length;
}

async function runModel(b: GraphBuilder, opset: number, feeds: Record<string, Tensor>, extra: Record<string, number> = {}) {
  const model = new OnnxModel(modelFrom(b.graph, { opsets: { '': opset, ...extra } }), undefined, 'test');
  const s = await Session.create(model, { graphOptimization: 'disabled', intraOpThreads: 1 });
  try {
    return await s.run(feeds);
  } finally {
    await s.dispose();
  }
}

// --- conventions on tiny inputs ---------------------------------------------------------------------------

describe('rounding and ranges', () => {
  it('rounds ties to even and away from zero', () => {
    assert.deepEqual([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4, -2.6].map(roundHalfToEven), [-2, -2, -0, 0, 2, 2, 2, -3]);
    assert.deepEqual([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4, -2.6].map(roundHalfAwayFromZero), [-3, -2, -1, 1, 2, 3, 2, -3]);
  });

  it('gives full and narrow code ranges', () => {
    assert.deepEqual(codeRange(8, true), { qmin: -128, qmax: 127 });
    assert.deepEqual(codeRange(8, true, true), { qmin: -127, qmax: 127 });
    assert.deepEqual(codeRange(8, false, true), { qmin: 0, qmax: 254 });
    assert.deepEqual(codeRange(4, false), { qmin: 0, qmax: 15 });
    assert.deepEqual(codeRange(3, true), { qmin: -4, qmax: 3 });
    assert.throws(() => codeRange(9, true), /bits must be an integer from 2 to 8/);
    assert.throws(() => codeRange(1, false), /bits must be/);
  });
});

describe("'onnx' convention (quantize_static / QuantizeLinear)", () => {
  const spec = (bits: number, signed: boolean, symmetric: boolean): QuantSpec => ({ bits, signed, symmetric, granularity: { kind: 'tensor' } });

  it('symmetric int8: scale = absmax / 127, zero point 0', () => {
    const p = scaleZeroPoint(-0.5, 1.27, spec(8, true, true));
    assert.equal(p.scale, Math.fround(1.27 / 127));
    assert.equal(p.zeroPoint, 0);
    assert.deepEqual(scaleZeroPoint(-2, 1, spec(4, true, true)), { scale: Math.fround(2 / 7), zeroPoint: 0 });
  });

  it('asymmetric uint8 widens the range to include 0 and rounds the zero point half to even', () => {
    const p = scaleZeroPoint(-1, 3, spec(8, false, false));
    assert.equal(p.scale, Math.fround(4 / 255));
    assert.equal(p.zeroPoint, roundHalfToEven(255 / 4));
    assert.deepEqual(scaleZeroPoint(0.5, 2, spec(8, false, false)), { scale: Math.fround(2 / 255), zeroPoint: 0 });
  });

  it('an all-zero range gives scale 1 and zero point 0 (as ORT)', () => {
    assert.deepEqual(scaleZeroPoint(0, 0, spec(8, false, false)), { scale: 1, zeroPoint: 0 });
    assert.deepEqual(scaleZeroPoint(0, 0, spec(8, true, true)), { scale: 1, zeroPoint: 0 });
  });

  it('codes are round(x / scale) + zp saturated to the type, and dequantize back', () => {
    const x = Float32Array.from([-1.3, -0.26, 0, 0.25, 0.9, 5]);
    const q = quantize(x, [6], spec(8, true, true), { min: [-1.27], max: [1.27] }); // a clipped range
    assert.equal(q.scales[0], Math.fround(0.01));
    assert.deepEqual([...q.codes], [-128, -26, 0, 25, 90, 127]); // -1.3 and 5 saturate to the int8 range
    assert.deepEqual([...dequantize(q)], [...q.codes].map((c) => Math.fround(c * q.scales[0])));
  });
});

describe("'mlas' convention (MatMulNBits quantizer)", () => {
  const spec = (bits: number, symmetric: boolean, signed = false): QuantSpec => ({
    bits,
    signed,
    symmetric,
    granularity: { kind: 'tensor' },
    convention: 'mlas',
  });

  it('symmetric 4-bit: scale = m / -8 with m the signed end of larger magnitude, which lands on code 0', () => {
    const x = Float32Array.from([-1, 0.5, 0.25, 2, -1.9]);
    const q = quantize(x, [5], spec(4, true));
    assert.equal(q.scales[0], -0.25);
    assert.equal(q.zeroPoints[0], 8);
    // -1 -> 4+8, 0.5 -> -2+8, 0.25 -> -1+8, 2 -> 0, -1.9 -> 15.6 rounds to 16, clamped to 15
    assert.deepEqual([...q.codes], [12, 6, 7, 0, 15]);
    // ties between |min| and |max| take min
    assert.equal(scaleZeroPoint(-2, 2, spec(4, true)).scale, 0.25);
  });

  it('asymmetric 4-bit: scale = (max - min) / 15, zero point roundf(-min / scale)', () => {
    const p = scaleZeroPoint(-1, 2, spec(4, false));
    assert.equal(p.scale, Math.fround(3 / 15));
    assert.equal(p.zeroPoint, 5);
    assert.deepEqual(scaleZeroPoint(1, 2, spec(4, false)), { scale: Math.fround(2 / 15), zeroPoint: 0 });
    assert.deepEqual(scaleZeroPoint(0, 0, spec(4, false)), { scale: 0, zeroPoint: 0 });
  });

  it('rounds half away from zero after adding the zero point, in float32', () => {
    // x * (1 / scale) = -2.5 exactly; + 8 = 5.5 rounds to 6 (rounding -2.5 first would give 5).
    assert.equal(quantizeValue(-0.625, 0.25, 8, spec(4, true)), 6);
    assert.equal(quantizeValue(0.625, 0.25, 8, spec(4, true)), 11);
    assert.equal(quantizeValue(1, 0, 8, spec(4, true)), 8); // a zero scale maps everything to the zero point
  });

  it('signed codes are the unsigned ones shifted by 2^(bits-1) and dequantize identically', () => {
    const x = randomFloats(64, 7);
    for (const symmetric of [true, false]) {
      const u = quantize(x, [64], spec(4, symmetric));
      const s = quantize(x, [64], spec(4, symmetric, true));
      assert.deepEqual([...s.codes], [...u.codes].map((c) => c - 8));
      assert.deepEqual([...s.zeroPoints], [...u.zeroPoints].map((z) => z - 8));
      assert.deepEqual(dequantize(s), dequantize(u));
    }
  });
});

describe('granularity', () => {
  const x = Float32Array.from({ length: 24 }, (_, i) => (i % 7) - 3 + i / 100); // [2, 3, 4]

  it('per tensor, per channel on any axis, and per block with a short last block', () => {
    assert.deepEqual(quantize(x, [2, 3, 4], { bits: 8, signed: true, symmetric: true, granularity: { kind: 'tensor' } }).paramDims, []);
    for (const axis of [0, 1, 2, -1]) {
      const q = quantize(x, [2, 3, 4], { bits: 8, signed: true, symmetric: true, granularity: { kind: 'channel', axis } });
      const a = axis < 0 ? axis + 3 : axis;
      assert.deepEqual(q.paramDims, [[2, 3, 4][a]]);
      // each channel's scale comes from the largest magnitude in that slice
      for (let c = 0; c < q.paramDims[0]; c++) {
        let m = 0;
        for (let e = 0; e < 24; e++) {
          const idx = [Math.floor(e / 12), Math.floor(e / 4) % 3, e % 4][a];
          if (idx === c) m = Math.max(m, Math.abs(x[e]));
        }
        assert.equal(q.scales[c], Math.fround(m / 127));
      }
    }
    const g: Granularity = { kind: 'block', axis: 2, blockSize: 3 };
    const q = quantize(x, [2, 3, 4], { bits: 4, signed: true, symmetric: true, granularity: g, convention: 'mlas' });
    assert.deepEqual(q.paramDims, [2, 3, 2]);
    // block (0, 0, 1) holds the single element x[3]: the last block, padded
    const r = groupRanges(x, [2, 3, 4], g);
    assert.equal(r.min[1], x[3]);
    assert.equal(r.max[1], x[3]);
    assert.equal(q.codes[3], -8); // its own extreme: unsigned code 0, shifted to signed
  });

  it('takes supplied ranges per group and checks their count', () => {
    const ranges = { min: [-1, -1, -1], max: [1, 1, 1] };
    const q = quantize(x, [2, 3, 4], { bits: 8, signed: true, symmetric: true, granularity: { kind: 'channel', axis: 1 } }, ranges);
    assert.deepEqual([...q.scales], [1, 1, 1].map(() => Math.fround(1 / 127)));
    assert.ok(q.codes.every((c) => c >= -128 && c <= 127));
    assert.throws(() => quantize(x, [2, 3, 4], { bits: 8, signed: true, symmetric: true, granularity: { kind: 'tensor' } }, ranges), /expected 1 ranges/);
    assert.throws(() => quantize(x, [2, 3, 4], { bits: 8, signed: true, symmetric: true, granularity: { kind: 'channel', axis: 3 } }), /axis 3 is out of range/);
  });
});

describe('packing and SQNR', () => {
  it('packs low bits first for every width and unpacks back', () => {
    assert.deepEqual([...packBits([1, 2, 3, 4, 5], 4)], [0x21, 0x43, 0x05]);
    assert.deepEqual([...packBits([1, 2, 3, 0], 2)], [0b00111001]);
    assert.deepEqual([...packBits([-1, 7, -8], 4)], [0x7f, 0x08]); // two's complement nibbles, as ONNX int4
    assert.deepEqual([...packBits([7, 7, 7], 3)], [0xff, 0x01]); // 3-bit codes straddle bytes
    const r = mulberry32(3);
    for (let bits = 2; bits <= 8; bits++) {
      for (const signed of [false, true]) {
        const { qmin, qmax } = codeRange(bits, signed);
        const codes = Int16Array.from({ length: 37 }, () => qmin + Math.floor(r() * (qmax - qmin + 1)));
        const packed = packBits(codes, bits);
        assert.equal(packed.length, Math.ceil((37 * bits) / 8));
        assert.deepEqual(unpackBits(packed, bits, 37, signed), codes);
      }
    }
  });

  it('measures SQNR in dB', () => {
    assert.equal(sqnrDb([1, 2], [1, 2]), Infinity);
    assert.ok(Math.abs(sqnrDb([3, 4], [3, 4.5]) - 10 * Math.log10(25 / 0.25)) < 1e-12);
    const x = randomFloats(4096, 11);
    const db = (bits: number) => sqnrDb(x, dequantize(quantize(x, [4096], { bits, signed: true, symmetric: true, granularity: { kind: 'tensor' } })));
    assert.ok(db(8) - db(4) > 20, 'four more bits give about 24 dB');
  });
});

// --- bit-exact against ONNX Runtime -----------------------------------------------------------------------

/** A Q -> DQ model at `opset`: outputs the codes (8-bit types only) and the dequantized values. */
async function ortQdq(x: Float32Array, dims: number[], q: Quantized, codeType: DataType, opset: number) {
  const b = new GraphBuilder('qdq');
  b.input('x', DataType.FLOAT, dims);
  const s = b.initializer('s', DataType.FLOAT, q.paramDims, q.scales);
  const z = b.initializer('z', codeType, q.paramDims, q.zeroPoints);
  const attrs = linearAttributes(q.spec.granularity);
  const y = b.op('QuantizeLinear', ['x', s, z], attrs);
  b.output('deq', DataType.FLOAT, dims);
  b.node('DequantizeLinear', [y, s, z], ['deq'], attrs);
  const byteCodes = codeType === DataType.INT8 || codeType === DataType.UINT8;
  if (byteCodes) {
    b.output('codes', codeType, dims);
    b.node('Identity', [y], ['codes']);
  } else {
    // int4 cannot leave the graph: read the codes as (code - 0) * 1 through a second DequantizeLinear
    const ones = b.initializer('ones', DataType.FLOAT, q.paramDims, new Float32Array(q.scales.length).fill(1));
    const zeros = b.initializer('zeros', codeType, q.paramDims, new Int8Array(q.scales.length));
    b.output('codes', DataType.FLOAT, dims);
    b.node('DequantizeLinear', [y, ones, zeros], ['codes'], attrs);
  }
  const out = await runModel(b, opset, { x: new Tensor('float32', x, dims) });
  return { codes: Array.from(out.codes.data as ArrayLike<number>, Number), deq: out.deq.data as Float32Array };
}

/** DequantizeLinear over our own codes stored as an initializer of `codeType`. */
async function ortDequantize(q: Quantized, codeType: DataType, opset: number): Promise<Float32Array> {
  const b = new GraphBuilder('dq');
  const c = b.initializer('c', codeType, q.dims, q.codes);
  const s = b.initializer('s', DataType.FLOAT, q.paramDims, q.scales);
  const z = b.initializer('z', codeType, q.paramDims, q.zeroPoints);
  const attrs = linearAttributes(q.spec.granularity);
  b.input('one', DataType.FLOAT, [1]); // a runtime input keeps ORT from constant-folding the DequantizeLinear away
  const d = b.op('DequantizeLinear', [c, s, z], attrs);
  b.output('deq', DataType.FLOAT, q.dims);
  b.node('Mul', [d, 'one'], ['deq']);
  const out = await runModel(b, opset, { one: new Tensor('float32', Float32Array.from([1]), [1]) });
  return out.deq.data as Float32Array;
}

const TYPE_OF = (bits: number, signed: boolean): DataType =>
  bits === 4 ? (signed ? DataType.INT4 : DataType.UINT4) : signed ? DataType.INT8 : DataType.UINT8;

describe('bit-exact against ORT QuantizeLinear / DequantizeLinear', () => {
  const dims = [6, 40];
  const x = randomFloats(240, 2024, -3, 2);
  const cases: { name: string; spec: QuantSpec; opset: number }[] = [];
  for (const [signed, symmetric] of [
    [true, true],
    [false, false],
    [true, false],
  ] as const) {
    const t = `${signed ? 'int8' : 'uint8'} ${symmetric ? 'symmetric' : 'asymmetric'}`;
    cases.push({ name: `per-tensor ${t}`, spec: { bits: 8, signed, symmetric, granularity: { kind: 'tensor' } }, opset: 13 });
    for (const axis of [0, 1]) {
      cases.push({ name: `per-channel axis ${axis} ${t}`, spec: { bits: 8, signed, symmetric, granularity: { kind: 'channel', axis } }, opset: 13 });
    }
    cases.push({ name: `blocked axis 1 ${t}`, spec: { bits: 8, signed, symmetric, granularity: { kind: 'block', axis: 1, blockSize: 16 } }, opset: 21 });
  }
  for (const [signed, symmetric] of [
    [true, true],
    [false, false],
  ] as const) {
    for (const axis of [0, 1]) {
      const g: Granularity = { kind: 'block', axis, blockSize: 16 }; // 40 along axis 1: a padded last block
      cases.push({ name: `blocked ${signed ? 'int4' : 'uint4'} axis ${axis}`, spec: { bits: 4, signed, symmetric, granularity: g }, opset: 21 });
    }
    cases.push({ name: `per-channel ${signed ? 'int4' : 'uint4'}`, spec: { bits: 4, signed, symmetric, granularity: { kind: 'channel', axis: 1 } }, opset: 21 });
  }

  for (const c of cases) {
    it(`${c.name}: codes and dequantized values`, async (t) => {
      const q = quantize(x, dims, c.spec);
      const ort = await ortQdq(x, dims, q, TYPE_OF(c.spec.bits, c.spec.signed), c.opset);
      const n = assertCodesEqual(ort.codes, q.codes, 'codes') + assertBitExact(ort.deq, dequantize(q), 'dequantized');
      t.diagnostic(`${n} values bit-exact`);
    });
  }

  it('ties round half to even, int8 and uint8', async (t) => {
    // x / 0.25 = k + 0.5 exactly
    const ties = Float32Array.from({ length: 41 }, (_, i) => (i - 20 + 0.5) * 0.25);
    let n = 0;
    for (const [signed, zp] of [
      [true, 0],
      [false, 3],
      [false, 128],
    ] as const) {
      const spec: QuantSpec = { bits: 8, signed, symmetric: signed, granularity: { kind: 'tensor' } };
      const q = quantizeWith(ties, [41], spec, Float32Array.from([0.25]), Int16Array.from([zp]));
      assert.ok(q.codes.some((c, i) => c - zp === roundHalfToEven(ties[i] / 0.25) && Math.abs(ties[i] / 0.25) % 2 === 0.5));
      const ort = await ortQdq(ties, [41], q, signed ? DataType.INT8 : DataType.UINT8, 13);
      n += assertCodesEqual(ort.codes, q.codes, 'tie codes') + assertBitExact(ort.deq, dequantize(q), 'tie values');
    }
    t.diagnostic(`${n} values bit-exact`);
  });

  it("'mlas' codes (what w4-qdq writes) through ORT DequantizeLinear: int4/uint4 blocked, int8, 3-bit in int8", async (t) => {
    let n = 0;
    for (const axis of [0, 1]) {
      for (const symmetric of [true, false]) {
        for (const bits of [4, 8, 3]) {
          const signed = symmetric;
          const spec: QuantSpec = { bits, signed, symmetric, granularity: { kind: 'block', axis, blockSize: 16 }, convention: 'mlas' };
          const q = quantize(x, dims, spec);
          n += assertBitExact(await ortDequantize(q, TYPE_OF(bits, signed), 21), dequantize(q), `${bits}-bit axis ${axis}`);
        }
      }
    }
    t.diagnostic(`${n} values bit-exact`);
  });
});

// --- MatMulNBits ------------------------------------------------------------------------------------------

/** Y = I x dequant(B): row k of Y is row k of the dequantized [K, N] weight. */
async function ortMatMulNBits(q: Quantized, reductionAxis: 0 | 1, withZeroPoints: boolean): Promise<Float32Array> {
  const w = packMatMulNBits(q, reductionAxis, withZeroPoints);
  const b = new GraphBuilder('nbits');
  b.input('A', DataType.FLOAT, [w.k, w.k]);
  const inputs = [
    'A',
    b.initializer('B', DataType.UINT8, [w.n, w.kBlocks, w.blobSize], w.b),
    b.initializer('scales', DataType.FLOAT, [w.scales.length], w.scales),
  ];
  if (w.zeroPoints) inputs.push(b.initializer('zp', DataType.UINT8, [w.zeroPoints.length], w.zeroPoints));
  b.output('Y', DataType.FLOAT, [w.k, w.n]);
  b.node('MatMulNBits', inputs, ['Y'], { K: w.k, N: w.n, bits: w.bits, block_size: w.blockSize }, { domain: 'com.microsoft' });
  const eye = new Float32Array(w.k * w.k);
  for (let i = 0; i < w.k; i++) eye[i * w.k + i] = 1;
  const out = await runModel(b, 21, { A: new Tensor('float32', eye, [w.k, w.k]) }, { 'com.microsoft': 1 });
  return out.Y.data as Float32Array;
}

function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c];
  return out;
}

describe('bit-exact against ORT MatMulNBits', () => {
  for (const bits of [2, 4, 8]) {
    for (const symmetric of [true, false]) {
      it(`${bits}-bit ${symmetric ? 'symmetric' : 'with zero points'}, blocks 16/32/64/128, K padded and not`, async (t) => {
        let n = 0;
        for (const blockSize of [16, 32, 64, 128]) {
          for (const k of [2 * blockSize, 2 * blockSize + blockSize / 2]) {
            const N = 5;
            const x = randomFloats(k * N, blockSize * 31 + bits + k, -0.2, 0.35);
            const spec: QuantSpec = { bits, signed: false, symmetric, granularity: { kind: 'block', axis: 0, blockSize }, convention: 'mlas' };
            const q = quantize(x, [k, N], spec);
            n += assertBitExact(await ortMatMulNBits(q, 0, !symmetric), dequantize(q), `block ${blockSize}, K ${k}`, false);
          }
        }
        t.diagnostic(`${n} values bit-exact`);
      });
    }
  }

  it('Gemm layout (transB: weight [N, K], blocks along axis 1) packs to the same kernel input', async (t) => {
    const [N, K] = [3, 80];
    const x = randomFloats(N * K, 5);
    const q = quantize(x, [N, K], { bits: 4, signed: false, symmetric: false, granularity: { kind: 'block', axis: 1, blockSize: 32 }, convention: 'mlas' });
    const y = await ortMatMulNBits(q, 1, true); // [K, N]
    t.diagnostic(`${assertBitExact(y, transpose(dequantize(q), N, K), 'transposed', false)} values bit-exact`);
  });

  it('ORT 1.30 CPU refuses 3, 5, 6 and 7 bits', async () => {
    for (const bits of [3, 5, 6, 7]) {
      const b = new GraphBuilder('nbits');
      b.input('A', DataType.FLOAT, [1, 32]);
      b.initializer('B', DataType.UINT8, [2, 1, (32 * bits) / 8], new Uint8Array(8 * bits));
      b.initializer('scales', DataType.FLOAT, [2], [1, 1]);
      b.output('Y', DataType.FLOAT, [1, 2]);
      b.node('MatMulNBits', ['A', 'B', 'scales'], ['Y'], { K: 32, N: 2, bits, block_size: 32 }, { domain: 'com.microsoft' });
      await assert.rejects(runModel(b, 21, { A: new Tensor('float32', new Float32Array(32), [1, 32]) }, { 'com.microsoft': 1 }), /Only 2b, 4b and 8b/);
    }
  });
});
