// GPTQ on Conv weights: the im2col Hessian (src/calibration/conv-hessian.ts) against a naive im2col written here
// and against ONNX Runtime's own Conv (Σ_p y_o² = w_o H w_oᵀ, which pins the patch order to the weight's layout),
// GPTQ on a Conv against GPTQ on the explicitly im2col'd 2-D problem, the dequantized Conv's output error measured
// in ONNX Runtime, and `quantize --method gptq` solving a CNN's Convs.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Tensor } from 'onnxruntime-node';
import { ConvHessianAccumulator } from '../src/calibration/conv-hessian.js';
import type { Hessian } from '../src/calibration/hessian.js';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { encodeTensor } from '../src/onnx/codec.js';
import { OnnxModel } from '../src/onnx/model.js';
import { saveModel } from '../src/onnx/save.js';
import { makeTensor } from '../src/onnx/tensor.js';
import { DataType, type NodeProto } from '../src/onnx/types.js';
import { gptqQuantize, layerError } from '../src/quantization/gptq.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { dequantize, quantize, type QuantSpec } from '../src/quantization/quantizers.js';
import { Session } from '../src/runtime/session.js';
import { seededRandom } from '../src/util/prng.js';

function normal(random: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/**
 * Images whose channels share a few smooth random fields plus noise: neighbouring pixels and channels are
 * correlated, as a Conv's inputs are. The channel mix is fixed, so any two draws come from one distribution.
 */
function correlatedImages(items: number, channels: number, sizes: readonly number[], seed: number): Float32Array {
  const factors = 3;
  const mix = Array.from({ length: factors * channels }, normal(seededRandom(1000 + channels)));
  const g = normal(seededRandom(seed));
  const plane = sizes.reduce((a, b) => a * b, 1);
  const x = new Float32Array(items * channels * plane);
  for (let n = 0; n < items; n++) {
    const fields = Array.from({ length: factors }, () => {
      const f = Array.from({ length: sizes.length }, () => ({ w: 0.3 + Math.abs(g()), phase: 6 * g() }));
      const amp = g();
      return (p: number): number => {
        let v = 0;
        let rest = p;
        for (let i = sizes.length - 1; i >= 0; i--) {
          v += Math.sin(f[i].w * (rest % sizes[i]) + f[i].phase);
          rest = Math.floor(rest / sizes[i]);
        }
        return amp * v;
      };
    });
    for (let c = 0; c < channels; c++) {
      for (let p = 0; p < plane; p++) {
        let v = 0.3 * g();
        for (let f = 0; f < factors; f++) v += mix[f * channels + c] * fields[f](p);
        x[(n * channels + c) * plane + p] = v;
      }
    }
  }
  return x;
}

interface Geometry {
  channels: number;
  out: number;
  kernel: number[];
  strides?: number[];
  pads?: number[];
  dilations?: number[];
  group?: number;
  autoPad?: string;
}

/** A one-Conv model (weight `w`, optional bias) and its Conv node. */
function convModel(geo: Geometry, w: Float32Array, bias?: Float32Array): { model: OnnxModel; node: NodeProto; weightDims: number[] } {
  const b = new GraphBuilder('conv');
  const spatial = geo.kernel.map((_, i) => `s${i}`);
  const x = b.input('x', DataType.FLOAT, ['n', geo.channels, ...spatial]);
  const weightDims = [geo.out, geo.channels / (geo.group ?? 1), ...geo.kernel];
  const inputs = [x, b.initializer('w', DataType.FLOAT, weightDims, w)];
  if (bias) inputs.push(b.initializer('b', DataType.FLOAT, [geo.out], bias));
  const attrs: Record<string, number | number[] | string> = { kernel_shape: geo.kernel };
  if (geo.strides) attrs.strides = geo.strides;
  if (geo.pads) attrs.pads = geo.pads;
  if (geo.dilations) attrs.dilations = geo.dilations;
  if (geo.group) attrs.group = geo.group;
  if (geo.autoPad) attrs.auto_pad = geo.autoPad;
  b.output('y', DataType.FLOAT);
  b.node('Conv', inputs, ['y'], attrs, { name: 'the_conv' });
  const model = new OnnxModel(modelFrom(b.graph, { opsets: { '': 17 } }), undefined, 'conv');
  return { model, node: model.graph.node.find((n) => n.opType === 'Conv')!, weightDims };
}

/** The explicit padding before/after each spatial axis: auto_pad SAME_UPPER resolved as the ONNX spec words it. */
function explicitPads(geo: Geometry, sizes: readonly number[]): { before: number[]; after: number[] } {
  const n = sizes.length;
  if (geo.autoPad === 'SAME_UPPER') {
    const before: number[] = [];
    const after: number[] = [];
    sizes.forEach((size, i) => {
      const s = geo.strides?.[i] ?? 1;
      const extent = (geo.kernel[i] - 1) * (geo.dilations?.[i] ?? 1) + 1;
      const total = Math.max(0, (Math.ceil(size / s) - 1) * s + extent - size);
      before.push(Math.floor(total / 2));
      after.push(total - Math.floor(total / 2));
    });
    return { before, after };
  }
  const pads = geo.pads ?? new Array(2 * n).fill(0);
  return { before: pads.slice(0, n), after: pads.slice(n) };
}

/** XᵀX and Σx per group over im2col patches, the straightforward way: 2-D only (a 1-D input is [.., 1, L]). */
function naiveHessians(geo: Geometry, x: Float32Array, dims: readonly number[]): { h: Float64Array[]; sum: Float64Array[]; rows: number } {
  const [items, channels, height, width] = dims;
  const group = geo.group ?? 1;
  const cg = channels / group;
  const [kh, kw] = geo.kernel;
  const [sh, sw] = geo.strides ?? [1, 1];
  const [dh, dw] = geo.dilations ?? [1, 1];
  const { before, after } = explicitPads(geo, [height, width]);
  const oh = Math.floor((height + before[0] + after[0] - ((kh - 1) * dh + 1)) / sh) + 1;
  const ow = Math.floor((width + before[1] + after[1] - ((kw - 1) * dw + 1)) / sw) + 1;
  const k = cg * kh * kw;
  const h = Array.from({ length: group }, () => new Float64Array(k * k));
  const sum = Array.from({ length: group }, () => new Float64Array(k));
  for (let g = 0; g < group; g++) {
    for (let n = 0; n < items; n++) {
      for (let y = 0; y < oh; y++) {
        for (let xo = 0; xo < ow; xo++) {
          const patch = new Float64Array(k);
          for (let c = 0; c < cg; c++) {
            for (let i = 0; i < kh; i++) {
              for (let j = 0; j < kw; j++) {
                const iy = y * sh - before[0] + i * dh;
                const ix = xo * sw - before[1] + j * dw;
                const inside = iy >= 0 && iy < height && ix >= 0 && ix < width;
                patch[(c * kh + i) * kw + j] = inside ? x[((n * channels + g * cg + c) * height + iy) * width + ix] : 0;
              }
            }
          }
          for (let a = 0; a < k; a++) {
            sum[g][a] += patch[a];
            for (let b = 0; b < k; b++) h[g][a * k + b] += patch[a] * patch[b];
          }
        }
      }
    }
  }
  return { h, sum, rows: items * oh * ow };
}

/** The accumulator's per-group Hessians of `x`, fed in two batches. */
function convHessians(geo: Geometry, x: Float32Array, dims: readonly number[], weight?: Float32Array): Hessian[] {
  const { node, weightDims } = convModel(geo, weight ?? new Float32Array(geo.out * (geo.channels / (geo.group ?? 1)) * geo.kernel.reduce((a, b) => a * b, 1)));
  const acc = new ConvHessianAccumulator([{ key: 'the_conv', node, weightDims }]);
  assert.deepEqual(acc.targets, ['x']);
  const half = Math.floor(dims[0] / 2);
  const item = x.length / dims[0];
  acc.add('x', x.subarray(0, half * item), [half, ...dims.slice(1)]);
  acc.add('x', x.subarray(half * item), [dims[0] - half, ...dims.slice(1)]);
  acc.finish();
  const hs = acc.get('the_conv');
  assert.ok(hs, 'Hessians after finish');
  return hs;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= rel * scale, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

const CASES: { name: string; geo: Geometry; sizes: number[] }[] = [
  { name: '3x3, pads 1', geo: { channels: 3, out: 4, kernel: [3, 3], pads: [1, 1, 1, 1] }, sizes: [6, 7] },
  { name: 'strides 2, asymmetric pads, dilation 2', geo: { channels: 2, out: 3, kernel: [3, 2], strides: [2, 2], pads: [0, 1, 2, 1], dilations: [2, 1] }, sizes: [9, 8] },
  { name: '2 groups, stride (1, 2)', geo: { channels: 4, out: 6, kernel: [3, 3], strides: [1, 2], pads: [1, 1, 1, 1], group: 2 }, sizes: [5, 7] },
  { name: 'depthwise, multiplier 2', geo: { channels: 5, out: 10, kernel: [3, 3], pads: [1, 1, 1, 1], group: 5 }, sizes: [6, 6] },
  { name: 'auto_pad SAME_UPPER, even kernel, stride 2', geo: { channels: 3, out: 2, kernel: [4, 3], strides: [2, 2], autoPad: 'SAME_UPPER' }, sizes: [7, 9] },
  { name: 'auto_pad SAME_UPPER, groups, dilation', geo: { channels: 4, out: 4, kernel: [2, 3], dilations: [2, 2], group: 2, autoPad: 'SAME_UPPER' }, sizes: [6, 5] },
];

describe('Conv Hessian over im2col patches', () => {
  for (const c of CASES) {
    it(`${c.name}: equals the naive im2col XᵀX per group`, () => {
      const dims = [3, c.geo.channels, ...c.sizes];
      const x = correlatedImages(3, c.geo.channels, c.sizes, 5);
      const hs = convHessians(c.geo, x, dims);
      const naive = naiveHessians(c.geo, x, dims);
      assert.equal(hs.length, c.geo.group ?? 1);
      for (const [g, h] of hs.entries()) {
        assert.equal(h.tensor, 'x');
        assert.equal(h.rows, naive.rows);
        assert.equal(h.k, (c.geo.channels / (c.geo.group ?? 1)) * c.geo.kernel[0] * c.geo.kernel[1]);
        assertClose(h.h, naive.h[g], 1e-12, `group ${g} h`);
        assertClose(h.sum, naive.sum[g], 1e-12, `group ${g} sum`);
      }
    });
  }

  it('1-D: equals the naive 2-D im2col of the same input as [N, C, 1, L]', () => {
    const geo: Geometry = { channels: 3, out: 2, kernel: [3], strides: [2], pads: [2, 1], dilations: [2] };
    const x = correlatedImages(4, 3, [11], 9);
    const hs = convHessians(geo, x, [4, 3, 11]);
    const lifted: Geometry = { ...geo, kernel: [1, 3], strides: [1, 2], pads: [0, 2, 0, 1], dilations: [1, 2] };
    const naive = naiveHessians(lifted, x, [4, 3, 1, 11]);
    assert.equal(hs[0].rows, naive.rows);
    assertClose(hs[0].h, naive.h[0], 1e-12, 'h');
  });

  it("ONNX Runtime's Conv output: Σ y_o² = w_o H w_oᵀ and Σ y_o = w_o · Σx per output channel", async () => {
    for (const c of [CASES[1], CASES[2], CASES[3], CASES[4]]) {
      const geo = c.geo;
      const random = normal(seededRandom(3));
      const group = geo.group ?? 1;
      const k = (geo.channels / group) * geo.kernel[0] * geo.kernel[1];
      const w = Float32Array.from({ length: geo.out * k }, random);
      const dims = [3, geo.channels, ...c.sizes];
      const x = correlatedImages(3, geo.channels, c.sizes, 6);
      const hs = convHessians(geo, x, dims, w);
      const session = await Session.create(convModel(geo, w).model);
      try {
        const y = (await session.run({ x: new Tensor('float32', x, dims) })).y;
        const [items, outs] = y.dims;
        const plane = y.data.length / (items * outs);
        const per = geo.out / group;
        for (let o = 0; o < outs; o++) {
          let squares = 0;
          let total = 0;
          for (let n = 0; n < items; n++) {
            for (let p = 0; p < plane; p++) {
              const v = (y.data as Float32Array)[(n * outs + o) * plane + p];
              squares += v * v;
              total += v;
            }
          }
          const h = hs[Math.floor(o / per)];
          let quadratic = 0;
          let linear = 0;
          for (let a = 0; a < k; a++) {
            linear += w[o * k + a] * h.sum[a];
            for (let b = 0; b < k; b++) quadratic += w[o * k + a] * h.h[a * k + b] * w[o * k + b];
          }
          assert.ok(Math.abs(squares - quadratic) <= 1e-4 * quadratic, `${c.name}, channel ${o}: Σy² ${squares} vs wHwᵀ ${quadratic}`);
          assert.ok(Math.abs(total - linear) <= 1e-4 * Math.sqrt(quadratic * h.rows), `${c.name}, channel ${o}: Σy ${total} vs w·Σx ${linear}`);
        }
      } finally {
        await session.dispose();
      }
    }
  });

  it('bad input is a one-line error naming the node', () => {
    const geo: Geometry = { channels: 4, out: 2, kernel: [3, 3], group: 2 };
    const { node, weightDims } = convModel(geo, new Float32Array(2 * 2 * 9));
    const acc = new ConvHessianAccumulator([{ key: 'the_conv', node, weightDims }]);
    assert.throws(() => acc.add('x', new Float32Array(3 * 25), [1, 3, 5, 5]), (e: Error) => /node the_conv: input 'x' has 3 channels/.test(e.message) && !e.message.includes('\n'));
    assert.throws(() => acc.add('x', new Float32Array(4 * 5), [1, 4, 5]), (e: Error) => /node the_conv: input 'x' is 3-D/.test(e.message));
  });
});

const CHANNEL4: Required<QuantSpec> = { bits: 4, signed: true, symmetric: true, granularity: { kind: 'channel', axis: 0 }, convention: 'onnx' };

function randomWeight(count: number, seed: number): Float32Array {
  const g = normal(seededRandom(seed));
  return Float32Array.from({ length: count }, () => g() * 0.1);
}

describe('GPTQ on a Conv weight', () => {
  it('per channel, 3 groups: the codes of GPTQ on each group as the explicit 2-D [O/g, K] problem', () => {
    const geo: Geometry = { channels: 6, out: 9, kernel: [3, 3], pads: [1, 1, 1, 1], group: 3 };
    const hs = convHessians(geo, correlatedImages(4, 6, [6, 6], 21), [4, 6, 6, 6]);
    const k = 2 * 9;
    const w = randomWeight(9 * k, 22);
    for (const actOrder of [false, true]) {
      const conv = gptqQuantize(w, [9, 2, 3, 3], 1, CHANNEL4, hs.map((h) => h.h), { actOrder });
      assert.deepEqual(conv.q.dims, [9, 2, 3, 3]);
      for (let g = 0; g < 3; g++) {
        const flat = gptqQuantize(w.subarray(g * 3 * k, (g + 1) * 3 * k), [3, k], 1, CHANNEL4, hs[g].h, { actOrder });
        assert.deepEqual([...conv.q.codes.subarray(g * 3 * k, (g + 1) * 3 * k)], [...flat.q.codes], `group ${g}, act order ${actOrder}: codes`);
        assert.deepEqual([...conv.q.scales.subarray(g * 3, (g + 1) * 3)], [...flat.q.scales], `group ${g}: scales`);
      }
      const rtn = quantize(w, [9, 2, 3, 3], CHANNEL4);
      const hh = hs.map((h) => h.h);
      assert.ok(layerError(w, dequantize(conv.q), [9, 2, 3, 3], 1, hh) < layerError(w, dequantize(rtn), [9, 2, 3, 3], 1, hh), 'below RTN on its Hessians');
    }
  });

  it('blocked along C/group: a 1x1 Conv equals the 2-D blocked problem; with H = I the codes are round to nearest', () => {
    const blocked: Required<QuantSpec> = { bits: 4, signed: false, symmetric: false, granularity: { kind: 'block', axis: 1, blockSize: 4 }, convention: 'onnx' };
    const one = convHessians({ channels: 16, out: 8, kernel: [1, 1] }, correlatedImages(2, 16, [5, 5], 31), [2, 16, 5, 5]);
    const w1 = randomWeight(8 * 16, 32);
    const conv = gptqQuantize(w1, [8, 16, 1, 1], 1, blocked, one[0].h);
    const flat = gptqQuantize(w1, [8, 16], 1, blocked, one[0].h);
    assert.deepEqual([...conv.q.codes], [...flat.q.codes]);
    assert.deepEqual([...conv.q.scales], [...flat.q.scales]);
    assert.deepEqual(conv.q.paramDims, [8, 4, 1, 1]);

    const dims = [6, 10, 3, 3];
    const k = 90;
    const w3 = randomWeight(6 * k, 33);
    const identity = new Float64Array(k * k);
    for (let i = 0; i < k; i++) identity[i * k + i] = 1;
    const got = gptqQuantize(w3, dims, 1, blocked, identity);
    const rtn = quantize(w3, dims, blocked);
    assert.deepEqual(got.q.paramDims, rtn.paramDims);
    assert.deepEqual([...got.q.codes], [...rtn.codes]);
    assert.deepEqual([...got.q.scales], [...rtn.scales]);
  });

  it('blocked 3x3: codes do not depend on the lazy batch width (a block spans batches), and beat RTN', () => {
    const blocked: Required<QuantSpec> = { bits: 3, signed: false, symmetric: false, granularity: { kind: 'block', axis: 1, blockSize: 4 }, convention: 'onnx' };
    const dims = [6, 10, 3, 3];
    const hs = convHessians({ channels: 10, out: 6, kernel: [3, 3], pads: [1, 1, 1, 1] }, correlatedImages(3, 10, [6, 6], 41), [3, 10, 6, 6]);
    const w = randomWeight(6 * 90, 42);
    const wide = gptqQuantize(w, dims, 1, blocked, hs[0].h);
    const narrow = gptqQuantize(w, dims, 1, blocked, hs[0].h, { blockColumns: 7 });
    assert.deepEqual([...wide.q.codes], [...narrow.q.codes]);
    for (let i = 0; i < wide.q.scales.length; i++) assert.ok(Math.abs(wide.q.scales[i] - narrow.q.scales[i]) <= 1e-6 * Math.abs(wide.q.scales[i]), `scale ${i}`);
    const rtn = quantize(w, dims, blocked);
    assert.ok(layerError(w, dequantize(wide.q), dims, 1, hs[0].h) < layerError(w, dequantize(rtn), dims, 1, hs[0].h));
  });

  it("ONNX Runtime: the dequantized Conv's output error is below RTN's on held-out inputs, and as its Hessian predicts", async () => {
    const geo: Geometry = { channels: 8, out: 12, kernel: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] };
    const dims = [16, 8, 10, 10];
    const calibration = correlatedImages(16, 8, [10, 10], 51);
    const held = correlatedImages(16, 8, [10, 10], 52);
    const wdims = [12, 8, 3, 3];
    const w = randomWeight(12 * 72, 53);
    const bias = randomWeight(12, 54);
    const hs = convHessians(geo, calibration, dims, w);
    const gptq = dequantize(gptqQuantize(w, wdims, 1, CHANNEL4, hs[0].h).q);
    const rtn = dequantize(quantize(w, wdims, CHANNEL4));
    const outputs = async (weights: Float32Array, x: Float32Array): Promise<Float32Array> => {
      const session = await Session.create(convModel(geo, weights, bias).model);
      try {
        return (await session.run({ x: new Tensor('float32', x, dims) })).y.data as Float32Array;
      } finally {
        await session.dispose();
      }
    };
    const mse = (a: Float32Array, b: Float32Array): number => a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0) / a.length;
    const float = await outputs(w, held);
    const errGptq = mse(await outputs(gptq, held), float);
    const errRtn = mse(await outputs(rtn, held), float);
    assert.ok(errGptq < 0.9 * errRtn, `held-out output MSE: GPTQ ${errGptq} vs RTN ${errRtn}`);
    // On the calibration inputs the measured MSE is what layerError says: tr(ΔHΔᵀ) / (outputs x positions).
    const floatCal = await outputs(w, calibration);
    const measured = mse(await outputs(gptq, calibration), floatCal);
    const predicted = layerError(w, gptq, wdims, 1, hs[0].h) / hs[0].rows;
    assert.ok(Math.abs(measured - predicted) <= 1e-3 * predicted, `measured ${measured} vs predicted ${predicted}`);
  });
});

describe('quantize --method gptq on a CNN', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptq-conv-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Stem Conv, a grouped Conv, a depthwise Conv with auto_pad, a pointwise Conv, global pooling, a Gemm head. */
  function writeCnn(): { model: string; data: string } {
    const random = normal(seededRandom(61));
    const b = new GraphBuilder('cnn');
    const weight = (name: string, dims: number[]): string => {
      const count = dims.reduce((a, c) => a * c, 1);
      const fanIn = count / dims[0];
      return b.initializer(name, DataType.FLOAT, dims, Float32Array.from({ length: count }, () => random() * Math.sqrt(2 / fanIn)));
    };
    let x = b.input('image', DataType.FLOAT, ['n', 3, 12, 12]);
    x = b.op('Relu', [b.op('Conv', [x, weight('c0.w', [8, 3, 3, 3])], { pads: [1, 1, 1, 1] }, { name: 'stem' })]);
    x = b.op('Relu', [b.op('Conv', [x, weight('c1.w', [8, 4, 3, 3])], { pads: [1, 1, 1, 1], group: 2, strides: [2, 2] }, { name: 'grouped' })]);
    x = b.op('Relu', [b.op('Conv', [x, weight('c2.w', [8, 1, 3, 3])], { auto_pad: 'SAME_UPPER', group: 8 }, { name: 'depthwise' })]);
    x = b.op('Relu', [b.op('Conv', [x, weight('c3.w', [16, 8, 1, 1])], {}, { name: 'pointwise' })]);
    const flat = b.op('Flatten', [b.op('GlobalAveragePool', [x])]);
    b.output('logits', DataType.FLOAT, ['n', 4]);
    b.node('Gemm', [flat, weight('fc.w', [4, 16])], ['logits'], { transB: 1 }, { name: 'head' });
    const model = join(dir, 'cnn.onnx');
    saveModel(new OnnxModel(modelFrom(b.graph, { opsets: { '': 17 } }), undefined, 'cnn'), model);
    const data = join(dir, 'images');
    const images = correlatedImages(8, 3, [12, 12], 62);
    for (let s = 0; s < 8; s++) {
      const folder = join(data, `test_data_set_${s}`);
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(folder, 'input_0.pb'), encodeTensor(makeTensor('image', DataType.FLOAT, [1, 3, 12, 12], images.subarray(s * 432, (s + 1) * 432))));
    }
    return { model, data };
  }

  it('W4A8 per channel: every Conv (grouped, depthwise too) solved by GPTQ, each below RTN on its layer error', async () => {
    const { model, data } = writeCnn();
    const report = await quantizePass(model, 'w8a8', { out: join(dir, 'q.onnx'), calibration: { data }, method: 'gptq', bits: 4, perChannel: true });
    const layers = report.plan.layers!;
    for (const name of ['stem', 'grouped', 'depthwise', 'pointwise', 'head']) {
      const l = layers.find((r) => r.node === name);
      assert.ok(l, `${name} has a record`);
      assert.equal(l.solver, 'gptq', `${name}: ${l.reason ?? ''}`);
      assert.ok(l.errorGptq! <= l.errorRtn!, `${name}: GPTQ ${l.errorGptq} vs RTN ${l.errorRtn}`);
      assert.ok(l.errorAfter !== undefined && l.errorBefore !== undefined, `${name}: output errors`);
    }
    const grouped = layers.find((r) => r.node === 'grouped')!;
    assert.equal(grouped.groups, 2);
    assert.equal(grouped.k, 4 * 9);
    assert.equal(grouped.tokens, 8 * 6 * 6, 'patches: 8 images x 6 x 6 positions');
    const depthwise = layers.find((r) => r.node === 'depthwise')!;
    assert.equal(depthwise.groups, 8);
    assert.equal(depthwise.k, 9);
  });
});
