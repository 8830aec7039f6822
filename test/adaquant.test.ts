// AdaQuant (src/quantization/adaquant/) against exhaustive rounding search on a tiny weight, its tfjs gradients
// against finite differences of a plain-JS re-implementation of the same loss, every weight format on held-out
// rows, Conv layers scored by ONNX Runtime, the Gram form (XᵀX) against the row form and against the output error
// on the rows themselves, the tuned bias stored in a written tiny-gpt2 checked in ONNX Runtime, determinism, and
// bad input.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { Tensor } from 'onnxruntime-node';
import { ConvHessianAccumulator } from '../src/calibration/conv-hessian.js';
import { GraphBuilder, makeNode, modelFrom } from '../src/onnx/builder.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import { tensorValues } from '../src/onnx/tensor.js';
import { DataType } from '../src/onnx/types.js';
import { adaquantLayer, adaquantSolver, type AdaquantOptions, type LayerInputs } from '../src/quantization/adaquant/index.js';
import { GramProblem } from '../src/quantization/adaquant/gram-problem.js';
import { LayerProblem } from '../src/quantization/adaquant/problem.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { codeRange, dequantize, quantize, type QuantSpec, type Quantized } from '../src/quantization/quantizers.js';
import { QuantizationError } from '../src/quantization/schemes.js';
import type { SolveRequest } from '../src/quantization/solvers.js';
import { selectBackend } from '../src/runtime/tf/backend.js';
import { Session } from '../src/runtime/session.js';
import { mulberry32 } from './support/prng.js';

function normal(seed: number): () => number {
  const random = mulberry32(seed);
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** Rows of width k sharing a few random factors (correlated columns, unequal scales), as layer inputs are. */
function correlatedRows(rows: number, k: number, seed: number): Float32Array {
  const g = normal(seed);
  const factors = 3;
  const mix = Array.from({ length: factors * k }, g);
  const scale = Array.from({ length: k }, () => 0.3 + Math.abs(g()));
  const x = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const f = Array.from({ length: factors }, g);
    for (let i = 0; i < k; i++) {
      let v = g() * 0.5;
      for (let p = 0; p < factors; p++) v += f[p] * mix[p * k + i];
      x[r * k + i] = v * scale[i];
    }
  }
  return x;
}

function randomValues(count: number, seed: number, scale = 0.1): Float32Array {
  const g = normal(seed);
  return Float32Array.from({ length: count }, () => g() * scale);
}

/** Mean squared difference of x·a + bias and x·b + bias over rows [from, to), in float64 (weights [K, N] or [N, K]). */
function outputMse(x: Float32Array, k: number, from: number, to: number, a: ArrayLike<number>, b: ArrayLike<number>, dims: number[], reductionAxis: number): number {
  const n = dims[1 - reductionAxis];
  const at = (w: ArrayLike<number>, kk: number, nn: number) => (reductionAxis === 0 ? w[kk * n + nn] : w[nn * k + kk]);
  let sum = 0;
  for (let r = from; r < to; r++) {
    for (let j = 0; j < n; j++) {
      let d = 0;
      for (let kk = 0; kk < k; kk++) d += x[r * k + kk] * (at(a, kk, j) - at(b, kk, j));
      sum += d * d;
    }
  }
  return sum / ((to - from) * n);
}

function request(values: Float32Array, dims: number[], spec: Required<QuantSpec>, reductionAxis: number, channelAxis: number): SolveRequest {
  return { node: 'layer/MatMul', weight: 'W', values, dims, spec, reductionAxis, channelAxis, activation: 'x' };
}

/** What quantize() normalises a spec to, so requests carry what the planner hands solvers. */
function spec(s: QuantSpec): Required<QuantSpec> {
  return { convention: 'onnx', ...s };
}

before(async () => {
  await selectBackend();
});

describe('AdaQuant against exhaustive rounding search', () => {
  // W [K=4, N=2] per output channel with the scales held at round-to-nearest's: the output error is a sum over
  // channels of d_n^T (X^T X) d_n, so each channel's codes can be searched exhaustively on their own. AdaQuant is
  // a local method (straight-through gradients from round to nearest's codes), so it is held to: never worse
  // than round to nearest, never below the optimum (which checks the search and the error), the optimum found
  // in more cases than round to nearest finds it, and a smaller excess over the optimum on average.
  /** Best per-channel error by enumerating every code of each channel, as a mean over rows x channels. */
  function exhaustive(x: Float32Array, w: Float32Array, rtn: Quantized, k: number, n: number, rows: number): number {
    let best = 0;
    const codes = new Int16Array(k * n);
    const levels = rtn.qmax - rtn.qmin + 1;
    for (let ch = 0; ch < n; ch++) {
      let bestChannel = Infinity;
      for (let combo = 0; combo < levels ** k; combo++) {
        for (let kk = 0, c = combo; kk < k; kk++, c = Math.floor(c / levels)) codes[kk * n + ch] = rtn.qmin + (c % levels);
        const dq = dequantize({ ...rtn, codes });
        let e = 0;
        for (let row = 0; row < rows; row++) {
          let d = 0;
          for (let kk = 0; kk < k; kk++) d += x[row * k + kk] * (w[kk * n + ch] - dq[kk * n + ch]);
          e += d * d;
        }
        bestChannel = Math.min(bestChannel, e);
      }
      best += bestChannel;
    }
    return best / (rows * n);
  }

  it('2- and 3-bit, 8 cases each: never above round to nearest, closer to the optimum', () => {
    const k = 4;
    const n = 2;
    const rows = 48;
    const found = { rtn: 0, ada: 0 };
    const logExcess = { rtn: 0, ada: 0 };
    let cases = 0;
    for (const bits of [2, 3]) {
      for (let seed = 1; seed <= 8; seed++) {
        const x = correlatedRows(rows, k, 100 + seed);
        const w = randomValues(k * n, 200 + seed);
        const s = spec({ bits, signed: false, symmetric: false, granularity: { kind: 'channel', axis: 1 } });
        const res = adaquantLayer(request(w, [k, n], s, 0, 1), { kind: 'matmul', x, rows }, { batchSize: rows, evalEvery: 1, learningRates: { scales: 0 } });
        const rtn = quantize(w, [k, n], s);
        assert.deepEqual(Array.from(res.q.scales), Array.from(rtn.scales), 'scales were to stay fixed');
        const best = exhaustive(x, w, rtn, k, n, rows);
        const ada = outputMse(x, k, 0, rows, w, dequantize(res.q), [k, n], 0);
        const base = outputMse(x, k, 0, rows, w, dequantize(rtn), [k, n], 0);
        const where = `${bits}-bit case ${seed}: AdaQuant ${ada}, round to nearest ${base}, optimum ${best}`;
        assert.ok(ada <= base * (1 + 1e-6), where);
        assert.ok(ada >= best * (1 - 1e-6), where);
        assert.ok(Math.abs(res.record.mseAdaquant! - ada) <= 1e-4 * ada, `${where}; reported ${res.record.mseAdaquant}`);
        found.rtn += base <= best * (1 + 1e-6) ? 1 : 0;
        found.ada += ada <= best * (1 + 1e-6) ? 1 : 0;
        logExcess.rtn += Math.log(base / best);
        logExcess.ada += Math.log(ada / best);
        cases++;
      }
    }
    assert.ok(found.rtn < cases, 'round to nearest is optimal in every case: the cases test nothing');
    assert.ok(found.ada > found.rtn, `optimum found in ${found.ada} of ${cases} cases, round to nearest ${found.rtn}`);
    assert.ok(logExcess.ada < logExcess.rtn, `mean log excess over the optimum: AdaQuant ${logExcess.ada / cases}, round to nearest ${logExcess.rtn / cases}`);
  });
});

describe('AdaQuant gradients against finite differences of a plain-JS loss', () => {
  it('weights, scales, bias and input scale, blocked weight with a padded last block', () => {
    // MatMul W [K=5, N=3], blocks of 2 along K (3 blocks, the last padded), 3-bit unsigned asymmetric; a bias;
    // the input quantized per tensor to uint8 with a scale narrow enough that some inputs saturate.
    const k = 5;
    const n = 3;
    const rows = 7;
    const x = correlatedRows(rows, k, 11);
    const w = randomValues(k * n, 12, 0.5);
    const bias = randomValues(n, 13, 0.2);
    const s = spec({ bits: 3, signed: false, symmetric: false, granularity: { kind: 'block', axis: 0, blockSize: 2 } });
    const rtn = quantize(w, [k, n], s);
    let xmax = 0;
    for (const v of x) xmax = Math.max(xmax, Math.abs(v));
    const act = { scale: (1.55 * xmax) / 255, zeroPoint: 128, qmin: 0, qmax: 255 };
    const inputs: LayerInputs = { kind: 'matmul', x, rows, bias, activation: act };
    const { qmin, qmax } = codeRange(3, false);
    const problem = new LayerProblem({ dims: [k, n], reductionAxis: 0, outputs: n }, w, rtn, inputs, qmin, qmax);
    try {
      // A point off round to nearest's where no code sits on a clamp bound: there the straight-through gradient
      // (tfjs's, as PyTorch's clamp) is one-sided and a central difference would halve it. Each weight gets an
      // interior code and a rounding remainder; v follows from them.
      const g = normal(14);
      const random = mulberry32(15);
      const pad = problem.params.v.size - k * n;
      assert.equal(pad, n, 'the padded block adds one row of zeros');
      const blocks = 3;
      const group = (kk: number, nn: number) => Math.floor(kk / 2) * n + nn;
      const lInit = Float32Array.from({ length: problem.params.l.size }, () => 0.1 * g());
      const vInit = new Float32Array(problem.params.v.size);
      for (let e = 0; e < k * n; e++) {
        const gi = group(Math.floor(e / n), e % n);
        const code = qmin + 1 + Math.floor(random() * (qmax - qmin - 1));
        vInit[e] = (code - rtn.zeroPoints[gi] + (random() - 0.5) * 0.8) * Math.exp(lInit[gi]);
      }
      const bInit = Float32Array.from({ length: n }, () => 0.1 * g());
      const lxInit = 0.05;
      problem.params.v.assign(tf.tensor(vInit, problem.params.v.shape));
      problem.params.l.assign(tf.tensor(lInit, problem.params.l.shape));
      problem.params.b!.assign(tf.tensor(bInit));
      problem.params.lx!.assign(tf.scalar(lxInit));

      // The same loss in plain JS, float64, in the problem's parameterisation; the rounding offsets are frozen
      // at the point, which is what the straight-through estimator differentiates.
      const target = new Float64Array(rows * n);
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < n; j++) {
          let y = bias[j];
          for (let kk = 0; kk < k; kk++) y += x[r * k + kk] * w[kk * n + j];
          target[r * n + j] = y;
        }
      }
      const meanSquare = target.reduce((a, y) => a + y * y, 0) / target.length;
      const rms = Math.sqrt(meanSquare);
      const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
      const frozen = (u: number) => Math.round(u) - u;
      const deltaW = Array.from({ length: k * n }, (_, e) => frozen(vInit[e] * Math.exp(-lInit[group(Math.floor(e / n), e % n)])));
      const sx0 = act.scale * Math.exp(lxInit);
      const deltaX = Array.from(x, (v) => frozen(v / sx0));
      const xCodes = Array.from(x, (v) => Math.round(v / sx0) + act.zeroPoint);
      assert.ok(xCodes.every((c) => c !== act.qmin && c !== act.qmax), 'an input code on a clamp bound: pick another seed');
      assert.ok(xCodes.some((c) => c > act.qmax) && xCodes.some((c) => c < act.qmin), 'inputs saturate on both sides');
      const loss = (v: Float64Array, l: Float64Array, b: Float64Array, lx: number): number => {
        const wq = new Float64Array(k * n);
        for (let kk = 0; kk < k; kk++) {
          for (let j = 0; j < n; j++) {
            const e = kk * n + j;
            const gi = group(kk, j);
            const code = clamp(v[e] * Math.exp(-l[gi]) + deltaW[e] + rtn.zeroPoints[gi], qmin, qmax);
            wq[e] = (code - rtn.zeroPoints[gi]) * rtn.scales[gi] * Math.exp(l[gi]);
          }
        }
        const sx = act.scale * Math.exp(lx);
        let sum = 0;
        for (let r = 0; r < rows; r++) {
          for (let j = 0; j < n; j++) {
            let y = bias[j] + rms * b[j];
            for (let kk = 0; kk < k; kk++) {
              const xq = (clamp(x[r * k + kk] / sx + deltaX[r * k + kk] + act.zeroPoint, act.qmin, act.qmax) - act.zeroPoint) * sx;
              y += xq * wq[kk * n + j];
            }
            sum += (y - target[r * n + j]) ** 2;
          }
        }
        return sum / (rows * n) / meanSquare;
      };

      const point = { v: Float64Array.from(vInit.subarray(0, k * n)), l: Float64Array.from(lInit), b: Float64Array.from(bInit), lx: lxInit };
      const jsLoss = loss(point.v, point.l, point.b, point.lx);
      const tfLoss = tf.tidy(() => problem.loss().dataSync()[0]);
      assert.ok(Math.abs(tfLoss - jsLoss) <= 1e-4 * jsLoss, `loss: tfjs ${tfLoss}, plain JS ${jsLoss}`);

      const r = tf.variableGrads(() => problem.loss(), [problem.params.v, problem.params.l, problem.params.b!, problem.params.lx!]);
      const grads: Record<string, Float64Array> = Object.fromEntries(Object.entries(r.grads).map(([name, t]) => [name, Float64Array.from(t.dataSync())]));
      tf.dispose([r.value, ...Object.values(r.grads)]);
      const h = 1e-5;
      const central = (f: (d: number) => number) => (f(h) - f(-h)) / (2 * h);
      const check = (what: string, tfGrad: Float64Array, fd: (i: number) => number, count: number) => {
        let scale = 0;
        const numeric = Array.from({ length: count }, (_, i) => fd(i));
        for (const v of numeric) scale = Math.max(scale, Math.abs(v));
        assert.ok(scale > 0, `${what}: the loss does not depend on it`);
        for (let i = 0; i < count; i++) {
          assert.ok(Math.abs(tfGrad[i] - numeric[i]) <= 2e-3 * scale, `${what}[${i}]: tfjs ${tfGrad[i]}, finite difference ${numeric[i]}`);
        }
      };
      const bump = (a: Float64Array, i: number, d: number) => {
        const c = Float64Array.from(a);
        c[i] += d;
        return c;
      };
      check('weights', grads[problem.params.v.name], (i) => central((d) => loss(bump(point.v, i, d), point.l, point.b, point.lx)), k * n);
      assert.ok(grads[problem.params.v.name].slice(k * n).every((v) => v === 0), 'the padding has no gradient');
      check('scales', grads[problem.params.l.name], (i) => central((d) => loss(point.v, bump(point.l, i, d), point.b, point.lx)), blocks * n);
      check('bias', grads[problem.params.b!.name], (i) => central((d) => loss(point.v, point.l, bump(point.b, i, d), point.lx)), n);
      check('input scale', grads[problem.params.lx!.name], () => central((d) => loss(point.v, point.l, point.b, point.lx + d)), 1);
    } finally {
      problem.dispose();
    }
  });
});

describe('AdaQuant on every weight format', () => {
  const k = 32;
  const n = 16;
  const train = 384;
  const held = 256;
  const x = correlatedRows(train + held, k, 21);
  const options: AdaquantOptions = { iterations: 150, batchSize: 128 };
  const cases: { label: string; spec: Required<QuantSpec>; gemm?: boolean }[] = [
    { label: 'per channel, int8 symmetric (QDQ w8)', spec: spec({ bits: 8, signed: true, symmetric: true, granularity: { kind: 'channel', axis: 1 } }) },
    { label: 'per tensor, int4 asymmetric', spec: spec({ bits: 4, signed: true, symmetric: false, granularity: { kind: 'tensor' } }) },
    { label: 'per channel, uint4 asymmetric', spec: spec({ bits: 4, signed: false, symmetric: false, granularity: { kind: 'channel', axis: 1 } }) },
    { label: 'blocks of 16, MatMulNBits 4-bit asymmetric', spec: spec({ bits: 4, signed: false, symmetric: false, granularity: { kind: 'block', axis: 0, blockSize: 16 }, convention: 'mlas' }) },
    { label: 'blocks of 16, MatMulNBits 3-bit symmetric', spec: spec({ bits: 3, signed: false, symmetric: true, granularity: { kind: 'block', axis: 0, blockSize: 16 }, convention: 'mlas' }) },
    { label: 'blocks of 16, int2 symmetric (blocked QDQ)', spec: spec({ bits: 2, signed: true, symmetric: true, granularity: { kind: 'block', axis: 0, blockSize: 16 } }) },
    { label: 'Gemm transB [N, K], per channel, uint3 asymmetric', spec: spec({ bits: 3, signed: false, symmetric: false, granularity: { kind: 'channel', axis: 0 } }), gemm: true },
    { label: 'Gemm transB [N, K], blocks of 12 (padded), int4 asymmetric', spec: spec({ bits: 4, signed: true, symmetric: false, granularity: { kind: 'block', axis: 1, blockSize: 12 } }), gemm: true },
  ];
  for (const c of cases) {
    it(`${c.label}: the planned layout, codes in range, held-out error at most round to nearest's`, () => {
      const dims = c.gemm ? [n, k] : [k, n];
      const reductionAxis = c.gemm ? 1 : 0;
      const w = randomValues(k * n, 22);
      const res = adaquantLayer(request(w, dims, c.spec, reductionAxis, 1 - reductionAxis), { kind: 'matmul', x: x.subarray(0, train * k), rows: train }, options);
      const rtn = quantize(w, dims, c.spec);
      assert.deepEqual(res.q.dims, rtn.dims);
      assert.deepEqual(res.q.spec, rtn.spec);
      assert.deepEqual(res.q.paramDims, rtn.paramDims);
      assert.deepEqual(Array.from(res.q.zeroPoints), Array.from(rtn.zeroPoints));
      assert.equal(res.q.scales.length, rtn.scales.length);
      assert.ok(res.q.scales.every((s, i) => Number.isFinite(s) && Math.sign(s) === Math.sign(rtn.scales[i])));
      // ORT's quantizers keep symmetric 'onnx' codes off the most negative value; AdaQuant does too.
      const { qmin, qmax } = codeRange(c.spec.bits, c.spec.signed, c.spec.symmetric && c.spec.convention === 'onnx');
      assert.ok(res.q.codes.every((q) => q >= qmin && q <= qmax), `codes outside ${qmin}..${qmax}`);
      assert.equal(res.record.solver, 'adaquant');
      assert.ok(!res.record.keptRtn, 'AdaQuant found nothing better than round to nearest on the training rows');
      const heldAda = outputMse(x, k, train, train + held, w, dequantize(res.q), dims, reductionAxis);
      const heldRtn = outputMse(x, k, train, train + held, w, dequantize(rtn), dims, reductionAxis);
      assert.ok(heldAda <= heldRtn, `held-out MSE ${heldAda} above round to nearest's ${heldRtn}`);
      // The record's figures are the error of what is returned, on the training rows.
      const trainAda = outputMse(x, k, 0, train, w, dequantize(res.q), dims, reductionAxis);
      assert.ok(Math.abs(res.record.mseAdaquant! - trainAda) <= 1e-4 * trainAda, `reported ${res.record.mseAdaquant} vs ${trainAda}`);
    });
  }

  it('tunes the bias and the static input scale, and the tuned layer does better on held-out rows', () => {
    const w = randomValues(k * n, 23);
    const bias = randomValues(n, 24);
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < train * k; i++) {
      lo = Math.min(lo, x[i]);
      hi = Math.max(hi, x[i]);
    }
    const scale = (hi - lo) / 255;
    const act = { scale, zeroPoint: Math.round(-lo / scale), qmin: 0, qmax: 255 };
    const s = spec({ bits: 4, signed: false, symmetric: false, granularity: { kind: 'channel', axis: 1 } });
    const r = request(w, [k, n], s, 0, 1);
    const res = adaquantLayer(r, { kind: 'matmul', x: x.subarray(0, train * k), rows: train, bias, activation: act }, options);
    assert.ok(res.bias && res.bias.length === n && res.bias.some((b, i) => b !== bias[i]), 'a tuned bias');
    assert.ok(res.activationScale !== undefined && res.activationScale > 0 && res.activationScale !== scale, 'a tuned input scale');
    // The whole quantized layer on held-out rows: fake-quantized input (QuantizeLinear's arithmetic) times the
    // dequantized weight plus the bias, against the float layer.
    const layerMse = (wq: Float32Array, b: Float32Array, sx: number) => {
      let sum = 0;
      for (let row = train; row < train + held; row++) {
        for (let j = 0; j < n; j++) {
          let y = b[j] - bias[j];
          for (let kk = 0; kk < k; kk++) {
            const v = x[row * k + kk];
            const q = Math.min(act.qmax, Math.max(act.qmin, Math.round(v / sx) + act.zeroPoint));
            y += (q - act.zeroPoint) * sx * wq[kk * n + j] - v * w[kk * n + j];
          }
          sum += y * y;
        }
      }
      return sum / (held * n);
    };
    const tuned = layerMse(dequantize(res.q), res.bias!, res.activationScale!);
    const base = layerMse(dequantize(quantize(w, [k, n], s)), bias, scale);
    assert.ok(tuned < base, `held-out MSE ${tuned} vs round to nearest's ${base}`);
  });
});

describe('AdaQuant on Conv, scored by ONNX Runtime', () => {
  /** A Conv with its weight as an input, so one session scores any weight. */
  async function convSession(xDims: number[], wDims: number[], attrs: (typeof convCases)[number]['attrs']): Promise<Session> {
    const b = new GraphBuilder('conv');
    b.input('X', DataType.FLOAT, xDims);
    b.input('W', DataType.FLOAT, wDims);
    b.output('Y', DataType.FLOAT);
    b.node('Conv', ['X', 'W'], ['Y'], attrs);
    return Session.create(new OnnxModel(modelFrom(b.graph, { opsets: { '': 13 } }), undefined, 'conv'), { intraOpThreads: 1 });
  }

  const convCases: { label: string; xDims: number[]; wDims: number[]; attrs: { strides?: number[]; pads?: number[]; dilations?: number[]; group: number } }[] = [
    { label: 'group 1, stride 2, padded', xDims: [12, 4, 7, 7], wDims: [6, 4, 3, 3], attrs: { strides: [2, 2], pads: [1, 1, 1, 1], group: 1 } },
    { label: 'depthwise, dilated', xDims: [12, 4, 7, 7], wDims: [4, 1, 3, 3], attrs: { dilations: [2, 2], pads: [2, 1, 2, 1], group: 4 } },
  ];
  /** The Gram form's input for a one-group Conv: its im2col patches' second moments, from the pipeline's accumulator. */
  function patchMoments(x: Float32Array, c: (typeof convCases)[number]): LayerInputs {
    const acc = new ConvHessianAccumulator([{ key: 'conv', node: makeNode('Conv', ['X', 'W'], ['Y'], c.attrs), weightDims: c.wDims }]);
    acc.add('X', x, c.xDims);
    acc.finish();
    const [h] = acc.get('conv')!;
    return { kind: 'gram', h: h.h.map((v) => v / h.rows), mean: h.sum.map((v) => v / h.rows), rows: h.rows };
  }

  const forms = (c: (typeof convCases)[number]) => (c.attrs.group === 1 ? (['rows', 'gram'] as const) : (['rows'] as const));
  for (const c of convCases) for (const form of forms(c)) {
    it(`${c.label}, ${form === 'gram' ? 'Gram form on im2col XᵀX' : 'sampled images'}: ORT's output error with AdaQuant's weight at most round to nearest's`, async () => {
      const count = (d: number[]) => d.reduce((a, b) => a * b, 1);
      // Images whose pixels share a few random factors: with independent pixels X^T X is a multiple of the
      // identity and round to nearest is already the best rounding.
      const x = correlatedRows(c.xDims[0], count(c.xDims.slice(1)), 31);
      const w = randomValues(count(c.wDims), 32, 0.3);
      const s = spec({ bits: 4, signed: true, symmetric: true, granularity: { kind: 'channel', axis: 0 } });
      const r: SolveRequest = { node: 'conv/Conv', weight: 'W', values: w, dims: c.wDims, spec: s, reductionAxis: 1, channelAxis: 0, activation: 'X' };
      const inputs: LayerInputs = form === 'gram' ? patchMoments(x, c) : { kind: 'conv', x, dims: c.xDims, conv: c.attrs };
      const res = adaquantLayer(r, inputs, { iterations: 150, batchSize: 8 });
      assert.deepEqual(res.q.dims, c.wDims, "the codes come back in the Conv weight's dims");
      const session = await convSession(c.xDims, c.wDims, c.attrs);
      try {
        const y = async (weight: Float32Array) =>
          (await session.run({ X: new Tensor('float32', x, c.xDims), W: new Tensor('float32', weight, c.wDims) })).Y.data as Float32Array;
        const float = await y(w);
        const mse = async (weight: Float32Array) => {
          const out = await y(weight);
          let sum = 0;
          for (let i = 0; i < out.length; i++) sum += (out[i] - float[i]) ** 2;
          return sum / out.length;
        };
        const ada = await mse(dequantize(res.q));
        const rtn = await mse(dequantize(quantize(w, c.wDims, s)));
        assert.ok(ada < rtn, `ORT MSE with AdaQuant ${ada}, with round to nearest ${rtn}`);
        // The solver's own figures agree with ONNX Runtime's.
        assert.ok(Math.abs(res.record.mseRtn! - rtn) <= 1e-3 * rtn, `reported RTN MSE ${res.record.mseRtn} vs ORT ${rtn}`);
        assert.ok(Math.abs(res.record.mseAdaquant! - ada) <= 1e-3 * ada, `reported AdaQuant MSE ${res.record.mseAdaquant} vs ORT ${ada}`);
      } finally {
        await session.dispose();
      }
    });
  }
});

describe('AdaQuant determinism and the solver', () => {
  const k = 24;
  const n = 8;
  const rows = 200;
  const x = correlatedRows(rows, k, 41);
  const w = randomValues(k * n, 42);
  const s = spec({ bits: 3, signed: false, symmetric: false, granularity: { kind: 'block', axis: 0, blockSize: 8 }, convention: 'mlas' });
  const bytes = (q: Quantized) => Buffer.concat([Buffer.from(q.codes.buffer), Buffer.from(q.scales.buffer), Buffer.from(q.zeroPoints.buffer)]);

  it('gives the same bytes for the same seed, on mini-batches', () => {
    const run = () => adaquantLayer(request(w, [k, n], s, 0, 1), { kind: 'matmul', x, rows }, { iterations: 60, batchSize: 32, seed: 7 });
    const a = run();
    const b = run();
    assert.ok(bytes(a.q).equals(bytes(b.q)));
    assert.equal(a.record.mseAdaquant, b.record.mseAdaquant);
  });

  it('solves through the WeightSolver seam, rounding to nearest (and saying why) where it has no inputs', async () => {
    const solver = await adaquantSolver((r) => (r.activation === 'x' ? { kind: 'matmul', x, rows } : undefined), { iterations: 40, batchSize: 64 });
    const r = request(w, [k, n], s, 0, 1);
    const tuned = solver.solve(r);
    const plain = solver.solve({ ...r, node: 'other/MatMul', activation: 'y' });
    assert.equal(solver.name, 'adaquant');
    assert.ok(bytes(plain).equals(bytes(quantize(w, [k, n], s))));
    assert.ok(bytes(tuned).equals(bytes(adaquantLayer(r, { kind: 'matmul', x, rows }, { iterations: 40, batchSize: 64 }).q)));
    assert.deepEqual(
      solver.records.map((rec) => [rec.node, rec.solver, rec.backend ?? rec.reason]),
      [
        ['layer/MatMul', 'adaquant', solver.backend],
        ['other/MatMul', 'rtn', 'no captured inputs for y'],
      ],
    );
  });
});

describe('AdaQuant on bad input', () => {
  const k = 4;
  const n = 3;
  const rows = 16;
  const s = spec({ bits: 4, signed: false, symmetric: false, granularity: { kind: 'channel', axis: 1 } });
  const error = (message: RegExp, code: string) => (e: unknown) => e instanceof QuantizationError && message.test(e.message) && e.code === code && !e.message.includes('\n');

  it('names the node and its input when the captured input holds NaN', () => {
    const x = correlatedRows(rows, k, 51);
    x[17] = NaN;
    assert.throws(() => adaquantLayer(request(randomValues(k * n, 52), [k, n], s, 0, 1), { kind: 'matmul', x, rows }), error(/^node layer\/MatMul: AdaQuant: its captured input 'x' holds NaN/, 'bad-data'));
  });

  it('names the node and the weight when the weight holds NaN or infinity', () => {
    const w = randomValues(k * n, 53);
    w[5] = Infinity;
    assert.throws(() => adaquantLayer(request(w, [k, n], s, 0, 1), { kind: 'matmul', x: correlatedRows(rows, k, 54), rows }), error(/^node layer\/MatMul: AdaQuant: its weight 'W' holds NaN or infinity/, 'bad-model'));
  });

  it('names the node and its input when the float output overflows', () => {
    const x = correlatedRows(rows, k, 59).map((v) => v * 1e37);
    assert.throws(() => adaquantLayer(request(randomValues(k * n, 60, 10), [k, n], s, 0, 1), { kind: 'matmul', x, rows }), error(/^node layer\/MatMul: AdaQuant: its output on the captured input 'x' overflows float32$/, 'bad-data'));
  });

  it('names the node when the captured rows do not fit the weight', () => {
    assert.throws(
      () => adaquantLayer(request(randomValues(k * n, 55), [k, n], s, 0, 1), { kind: 'matmul', x: correlatedRows(rows, k + 1, 56), rows }),
      error(/^node layer\/MatMul: AdaQuant: its captured input 'x' holds 80 values, not 16 rows of 4/, 'bad-data'),
    );
  });

  it('refuses options that cannot run', () => {
    assert.throws(() => adaquantLayer(request(randomValues(k * n, 57), [k, n], s, 0, 1), { kind: 'matmul', x: correlatedRows(rows, k, 58), rows }, { batchSize: 0 }), error(/batchSize must be a positive integer/, 'bad-option'));
  });
});

/** Mean x xᵀ and mean x over the rows, in float64: the Gram form's inputs, computed here from the rows. */
function moments(x: Float32Array, rows: number, k: number): { h: Float64Array; mean: Float64Array } {
  const h = new Float64Array(k * k);
  const mean = new Float64Array(k);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < k; i++) {
      mean[i] += x[r * k + i] / rows;
      for (let j = 0; j < k; j++) h[i * k + j] += (x[r * k + i] * x[r * k + j]) / rows;
    }
  }
  return { h, mean };
}

/** Mean over rows and outputs of (x·q + b - (x·w + b0))², in float64, straight from the rows (weights [K, N] or [N, K]). */
function layerOutputMse(x: Float32Array, k: number, rows: number, w: ArrayLike<number>, q: ArrayLike<number>, dims: number[], reductionAxis: number, delta?: ArrayLike<number>): number {
  const n = dims[1 - reductionAxis];
  const at = (kk: number, nn: number) => (reductionAxis === 0 ? kk * n + nn : nn * k + kk);
  let sum = 0;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) {
      let d = delta ? delta[j] : 0;
      for (let kk = 0; kk < k; kk++) d += x[r * k + kk] * (q[at(kk, j)] - w[at(kk, j)]);
      sum += d * d;
    }
  }
  return sum / (rows * n);
}

describe('AdaQuant Gram form (XᵀX) against the row form and the rows', () => {
  const k = 24;
  const n = 10;
  const rows = 300;
  // Inputs with a non-zero mean, so the bias's cross term matters.
  const x = correlatedRows(rows, k, 71).map((v, i) => v + 0.5 + 0.1 * (i % k));
  const { h, mean } = moments(x, rows, k);
  const layouts = [
    { label: 'MatMul [K, N]', dims: [k, n], reductionAxis: 0 },
    { label: 'Gemm transB [N, K]', dims: [n, k], reductionAxis: 1 },
  ];
  for (const layout of layouts) {
    for (const withBias of [false, true]) {
      it(`${layout.label}, ${withBias ? 'with' : 'without'} a bias: the same normaliser, loss, gradients and candidate error`, () => {
        const { dims, reductionAxis } = layout;
        const w = randomValues(k * n, 72, 0.3);
        const bias = withBias ? randomValues(n, 73, 0.5) : undefined;
        const s = spec({ bits: 3, signed: false, symmetric: false, granularity: { kind: 'block', axis: reductionAxis, blockSize: 8 } });
        const rtn = quantize(w, dims, s);
        const { qmin, qmax } = codeRange(3, false);
        const shape = { dims, reductionAxis, outputs: n };
        const row = new LayerProblem(shape, w, rtn, { kind: 'matmul', x, rows, ...(bias ? { bias } : {}) }, qmin, qmax);
        const gram = new GramProblem(shape, w, rtn, { h, mean, rows, ...(bias ? { bias } : {}) }, qmin, qmax);
        try {
          const close = (what: string, a: number, b: number, tol: number) => assert.ok(Math.abs(a - b) <= tol * Math.max(Math.abs(a), Math.abs(b)), `${what}: Gram ${a}, rows ${b}`);
          close('mean squared output', gram.meanSquare, row.meanSquare, 1e-5);
          // A point away from round to nearest: weights, scales and bias all moved, the same in both problems.
          const g = normal(74);
          const v = tf.tidy(() => tf.add(row.params.v, tf.tensor(Float32Array.from({ length: row.params.v.size }, () => 0.4 * g()), row.params.v.shape)));
          const l = tf.tensor(Float32Array.from({ length: row.params.l.size }, () => 0.1 * g()), row.params.l.shape);
          const b = tf.tensor(Float32Array.from({ length: n }, () => 0.2 * g()));
          for (const p of [row, gram]) {
            p.params.v.assign(v);
            p.params.l.assign(l);
            p.params.b?.assign(b);
          }
          tf.dispose([v, l, b]);
          close('loss', tf.tidy(() => gram.loss().dataSync()[0]), tf.tidy(() => row.loss().dataSync()[0]), 1e-4);
          const grads = (p: LayerProblem | GramProblem) => {
            const vars = [p.params.v, p.params.l, ...(p.params.b ? [p.params.b] : [])];
            const r = tf.variableGrads(() => p.loss(), vars);
            const out = vars.map((t) => Float64Array.from(r.grads[t.name].dataSync()));
            tf.dispose([r.value, ...Object.values(r.grads)]);
            return out;
          };
          const [gg, gr] = [grads(gram), grads(row)];
          gg.forEach((a, i) => {
            const scale = Math.max(...gr[i].map(Math.abs));
            assert.ok(scale > 0);
            a.forEach((value, j) => assert.ok(Math.abs(value - gr[i][j]) <= 1e-3 * scale, `gradient ${i}[${j}]: Gram ${value}, rows ${gr[i][j]}`));
          });
          const c = gram.params.candidate();
          const direct = layerOutputMse(x, k, rows, w, dequantize(c.q), dims, reductionAxis, bias ? c.bias!.map((v, i) => v - bias[i]) : undefined);
          close('candidate error (Gram, float64) vs the rows', gram.error(c), direct, 1e-6);
          close('candidate error (row form) vs the rows', row.error(c), direct, 1e-4);
        } finally {
          row.dispose();
          gram.dispose();
        }
      });
    }
  }

  it('adaquantLayer on XᵀX: below round to nearest on the rows, never above it, the bias tuned, the record exact', () => {
    for (const layout of layouts) {
      const { dims, reductionAxis } = layout;
      const w = randomValues(k * n, 75, 0.3);
      const bias = randomValues(n, 76, 0.5);
      const s = spec({ bits: 3, signed: false, symmetric: false, granularity: { kind: 'channel', axis: 1 - reductionAxis } });
      const r = request(w, dims, s, reductionAxis, 1 - reductionAxis);
      const res = adaquantLayer(r, { kind: 'gram', h, mean, rows, bias }, { iterations: 150 });
      const rtn = layerOutputMse(x, k, rows, w, dequantize(quantize(w, dims, s)), dims, reductionAxis);
      const delta = res.bias!.map((v, i) => v - bias[i]);
      const ada = layerOutputMse(x, k, rows, w, dequantize(res.q), dims, reductionAxis, delta);
      assert.equal(res.record.samples, rows);
      assert.ok(!res.record.keptRtn && ada < 0.9 * rtn, `${layout.label}: AdaQuant ${ada}, round to nearest ${rtn}`);
      assert.ok(res.bias!.some((v, i) => v !== bias[i]), 'the bias was tuned');
      assert.ok(Math.abs(res.record.mseRtn! - rtn) <= 1e-6 * rtn && Math.abs(res.record.mseAdaquant! - ada) <= 1e-6 * ada, `record ${res.record.mseRtn} -> ${res.record.mseAdaquant}`);
    }
    // A layer round to nearest already solves (independent inputs, 8 bits): the answer is never worse.
    const iid = Float32Array.from({ length: rows * k }, normal(77));
    const m = moments(iid, rows, k);
    const w = randomValues(k * n, 78);
    const s = spec({ bits: 8, signed: true, symmetric: true, granularity: { kind: 'channel', axis: 1 } });
    const res = adaquantLayer(request(w, [k, n], s, 0, 1), { kind: 'gram', h: m.h, mean: m.mean, rows }, { iterations: 20 });
    assert.ok(layerOutputMse(iid, k, rows, w, dequantize(res.q), [k, n], 0) <= layerOutputMse(iid, k, rows, w, dequantize(quantize(w, [k, n], s)), [k, n], 0));
  });

  it('refuses input-scale tuning and second moments that do not fit, naming the node', () => {
    const w = randomValues(k * n, 79);
    const s = spec({ bits: 4, signed: false, symmetric: false, granularity: { kind: 'channel', axis: 1 } });
    const act = { scale: 0.1, zeroPoint: 128, qmin: 0, qmax: 255 };
    assert.throws(
      () => adaquantLayer(request(w, [k, n], s, 0, 1), { kind: 'gram', h, mean, rows, activation: act }),
      (e: unknown) => e instanceof QuantizationError && /^node layer\/MatMul: AdaQuant: input-scale tuning needs its captured input 'x' as rows; the Gram form/.test(e.message) && !e.message.includes('\n'),
    );
    assert.throws(() => adaquantLayer(request(w, [k, n], s, 0, 1), { kind: 'gram', h: h.subarray(1), mean, rows }), /node layer\/MatMul: AdaQuant: the second moments of its captured input 'x' \(.*\) do not fit a reduction width of 24/);
  });
});

describe('quantize --method adaquant stores the tuned bias (tiny-gpt2, checked in ONNX Runtime)', () => {
  const ROOT = fileURLToPath(new URL('../../', import.meta.url));
  const GPT2 = join(ROOT, 'models/tiny-gpt2/onnx/model.onnx');
  const dir = mkdtempSync(join(tmpdir(), 'adaquant-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('W3 on two biased projections: the written bias differs from the float one, and the output is closer to float than RTN', async () => {
    const calibration = { data: 'prose', options: { samples: 8, sequenceLength: 64 } };
    // Two MatMul + Add(bias) layers keep the cost small; everything else stays float.
    const select = { include: [/h\.0\/attn\/c_attn\/MatMul/, /h\.0\/mlp\/c_fc\/MatMul/] };
    const common = { calibration, select, bits: 3, blockSize: 32 };
    const rtn = await quantizePass(GPT2, 'w4-qdq', { out: join(dir, 'rtn.onnx'), ...common });
    const ada = await quantizePass(GPT2, 'w4-qdq', { out: join(dir, 'ada.onnx'), ...common, method: 'adaquant' });
    const layers = ada.plan.layers!;
    assert.deepEqual(
      layers.map((l) => [l.solver, l.tunedBias]),
      [
        ['adaquant', 'transformer.h.0.attn.c_attn.bias'],
        ['adaquant', 'transformer.h.0.mlp.c_fc.bias'],
      ],
    );
    const float = loadModel(GPT2);
    const written = loadModel(join(dir, 'ada.onnx'));
    const values = (m: OnnxModel, name: string) => {
      const t = m.graph.initializer.find((i) => i.name === name)!;
      return Float32Array.from(tensorValues(t, m.rawBytes(t)).data as ArrayLike<number>);
    };
    for (const name of ['transformer.h.0.attn.c_attn.bias', 'transformer.h.0.mlp.c_fc.bias']) {
      const [a, b] = [values(float, name), values(written, name)];
      assert.equal(a.length, b.length);
      assert.ok(b.some((v, i) => v !== a[i]), `${name} is the float bias`);
    }
    // Verification ran both written models in ONNX Runtime beside the float one, on the held-out batch.
    const kl = (r: typeof rtn) => r.verification.languageModel!.kl.mean;
    assert.ok(kl(ada) <= kl(rtn), `KL to float: AdaQuant ${kl(ada)}, RTN ${kl(rtn)}`);
  });
});
