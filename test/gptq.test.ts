// GPTQ (src/quantization/gptq.ts) against a textbook re-implementation written here (direct inverse of H,
// column-by-column OBS updates, no Cholesky, no lazy batches), against exhaustive search on a tiny weight, on
// Hessians that need more damping, and end to end through `quantize --method gptq` on tiny-llama.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { quantizePass as quantizeStep } from '../src/passes/quantize.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { HessianAccumulator } from '../src/calibration/hessian.js';
import { gptqQuantize, gptqSolver, layerError } from '../src/quantization/gptq.js';
import { dequantize, quantize, quantizeValue, scaleZeroPoint, type QuantSpec } from '../src/quantization/quantizers.js';
import { QuantizationError } from '../src/quantization/schemes.js';
import { seededRandom } from '../src/util/prng.js';

function normal(random: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** XᵀX of `rows` random rows of width k with correlated columns (a few shared factors), as layer inputs are. */
function randomHessian(k: number, rows: number, seed: number): Float64Array {
  const g = normal(seededRandom(seed));
  const factors = 3;
  const mix = Array.from({ length: factors * k }, g);
  const scale = Array.from({ length: k }, () => 0.2 + Math.abs(g()) * 2);
  const h = new Float64Array(k * k);
  const x = new Float64Array(k);
  for (let r = 0; r < rows; r++) {
    const f = Array.from({ length: factors }, g);
    for (let i = 0; i < k; i++) {
      let v = g() * 0.5;
      for (let p = 0; p < factors; p++) v += f[p] * mix[p * k + i];
      x[i] = v * scale[i];
    }
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) h[i * k + j] += x[i] * x[j];
  }
  return h;
}

function randomWeight(count: number, seed: number): Float32Array {
  const g = normal(seededRandom(seed));
  return Float32Array.from({ length: count }, () => g() * 0.1);
}

/** Gauss-Jordan inverse with partial pivoting. */
function invert(a: Float64Array, k: number): Float64Array {
  const m = new Float64Array(a);
  const inv = new Float64Array(k * k);
  for (let i = 0; i < k; i++) inv[i * k + i] = 1;
  for (let c = 0; c < k; c++) {
    let p = c;
    for (let r = c + 1; r < k; r++) if (Math.abs(m[r * k + c]) > Math.abs(m[p * k + c])) p = r;
    for (let j = 0; j < k; j++) {
      [m[c * k + j], m[p * k + j]] = [m[p * k + j], m[c * k + j]];
      [inv[c * k + j], inv[p * k + j]] = [inv[p * k + j], inv[c * k + j]];
    }
    const d = m[c * k + c];
    for (let j = 0; j < k; j++) {
      m[c * k + j] /= d;
      inv[c * k + j] /= d;
    }
    for (let r = 0; r < k; r++) {
      if (r === c) continue;
      const f = m[r * k + c];
      if (f === 0) continue;
      for (let j = 0; j < k; j++) {
        m[r * k + j] -= f * m[c * k + j];
        inv[r * k + j] -= f * inv[c * k + j];
      }
    }
  }
  return inv;
}

interface NaiveCase {
  w: Float32Array;
  dims: number[];
  reductionAxis: number;
  spec: Required<QuantSpec>;
  h: Float64Array;
  actOrder: boolean;
}

/**
 * Optimal Brain Surgeon, one column at a time, in float64: quantize the column, move the remaining columns by
 * err / [H⁻¹]jj x [H⁻¹]j,:, then drop j from H⁻¹ by the textbook rank-one downdate. Scales: per channel from the
 * weight before any update; blocks (without act order) from the block's updated columns when it is reached, with
 * act order from the weight before any update. Returns codes in the weight's stored layout.
 */
function naiveObs(c: NaiveCase): Int16Array {
  const { dims, reductionAxis: r, spec, actOrder } = c;
  const k = dims[r];
  const n = dims[1 - r];
  const at = (row: number, col: number): number => (r === 1 ? row * k + col : col * n + row);
  const w = Array.from({ length: n }, (_, row) => Array.from({ length: k }, (_, col) => c.w[at(row, col)]));
  let mean = 0;
  for (let i = 0; i < k; i++) mean += c.h[i * k + i];
  const damped = new Float64Array(c.h);
  for (let i = 0; i < k; i++) damped[i * k + i] += (0.01 * mean) / k;
  let hinv = invert(damped, k);
  const order = Array.from({ length: k }, (_, i) => i);
  if (actOrder) order.sort((a, b) => c.h[b * k + b] - c.h[a * k + a] || a - b);
  const g = spec.granularity;
  const bs = g.kind === 'block' ? g.blockSize : k;
  const params = new Map<string, { scale: number; zeroPoint: number }>();
  const fit = (row: number, from: number, to: number, values: number[]): void => {
    const part = values.slice(from, to);
    params.set(`${row}:${Math.floor(from / bs)}`, scaleZeroPoint(Math.min(...part), Math.max(...part), spec));
  };
  if (g.kind !== 'block' || actOrder) for (let row = 0; row < n; row++) for (let b = 0; b < k; b += bs) fit(row, b, Math.min(b + bs, k), w[row]);
  const codes = new Int16Array(n * k);
  const remaining = new Set(order);
  for (const j of order) {
    for (let row = 0; row < n; row++) {
      if (g.kind === 'block' && !actOrder && j % bs === 0) fit(row, j, Math.min(j + bs, k), w[row]);
      const p = params.get(`${row}:${Math.floor(j / bs)}`)!;
      const code = quantizeValue(w[row][j], p.scale, p.zeroPoint, spec);
      codes[at(row, j)] = code;
      const e = (w[row][j] - Math.fround((code - p.zeroPoint) * p.scale)) / hinv[j * k + j];
      for (const m of remaining) if (m !== j) w[row][m] -= e * hinv[j * k + m];
    }
    remaining.delete(j);
    const next = new Float64Array(k * k);
    for (const a of remaining) for (const b of remaining) next[a * k + b] = hinv[a * k + b] - (hinv[a * k + j] * hinv[j * k + b]) / hinv[j * k + j];
    hinv = next;
  }
  return codes;
}

const perChannel = (bits: number, axis: number): Required<QuantSpec> => ({ bits, signed: true, symmetric: true, granularity: { kind: 'channel', axis }, convention: 'onnx' });
const blocked = (bits: number, axis: number, blockSize: number): Required<QuantSpec> => ({ bits, signed: false, symmetric: false, granularity: { kind: 'block', axis, blockSize }, convention: 'mlas' });

describe('GPTQ against a textbook OBS loop', () => {
  let seed = 1;
  for (const k of [16, 33, 48]) {
    for (const bits of [3, 4]) {
      for (const kind of ['channel', 'g16'] as const) {
        for (const actOrder of [false, true]) {
          it(`K=${k}, ${bits} bits, ${kind}${actOrder ? ', act order' : ''}: same codes`, () => {
            const s = seed++;
            const n = 5;
            // MatMul layout [K, N] and Gemm transB layout [N, K] in turn.
            const r = s % 2;
            const dims = r === 0 ? [k, n] : [n, k];
            const spec = kind === 'channel' ? perChannel(bits, 1 - r) : blocked(bits, r, 16);
            const w = randomWeight(k * n, 100 + s);
            const h = randomHessian(k, 3 * k, 200 + s);
            // A lazy batch smaller than K, so block boundaries are crossed.
            const got = gptqQuantize(w, dims, r, spec, h, { actOrder, blockColumns: 8 });
            const want = naiveObs({ w, dims, reductionAxis: r, spec, h, actOrder });
            assert.deepEqual([...got.q.codes], [...want]);
            assert.equal(got.percdamp, 0.01);
            // The stored grid: rewriting the dequantized weight with quantize()'s own layout gives the same codes back.
            assert.deepEqual(got.q.paramDims, quantize(w, dims, spec).paramDims);
            const rtn = quantize(w, dims, spec);
            assert.ok(layerError(w, dequantize(got.q), dims, r, h) < layerError(w, dequantize(rtn), dims, r, h), 'GPTQ beats RTN on H');
          });
        }
      }
    }
  }

  it('with H = I (no correlation) GPTQ is round to nearest exactly', () => {
    const k = 32;
    const h = new Float64Array(k * k);
    for (let i = 0; i < k; i++) h[i * k + i] = 1;
    const w = randomWeight(k * 4, 7);
    for (const spec of [perChannel(4, 1), blocked(4, 0, 16), blocked(3, 0, 32)]) {
      const got = gptqQuantize(w, [k, 4], 0, spec, h);
      const rtn = quantize(w, [k, 4], spec);
      assert.deepEqual([...got.q.codes], [...rtn.codes]);
      assert.deepEqual([...got.q.scales], [...rtn.scales]);
      assert.deepEqual([...got.q.zeroPoints], [...rtn.zeroPoints]);
    }
  });
});

describe('GPTQ against exhaustive search', () => {
  it('one row, K=6, 2 bits: optimum <= GPTQ always, and GPTQ below RTN on (w-q)ᵀH(w-q) almost always', () => {
    const k = 6;
    const spec = perChannel(2, 0);
    let strictlyBetter = 0;
    const worse: number[] = [];
    let totalGptq = 0;
    let totalRtn = 0;
    for (let s = 0; s < 12; s++) {
      const w = randomWeight(k, 300 + s);
      const h = randomHessian(k, 20, 400 + s);
      const dims = [1, k];
      const got = gptqQuantize(w, dims, 1, spec, h);
      const rtn = quantize(w, dims, spec);
      const scale = got.q.scales[0];
      const zp = got.q.zeroPoints[0];
      assert.equal(scale, rtn.scales[0]);
      const objective = (codes: ArrayLike<number>): number =>
        layerError(w, Float32Array.from(codes, (c) => Math.fround((c - zp) * scale)), dims, 1, h);
      let best = Infinity;
      const codes = new Int16Array(k);
      const levels = got.q.qmax - got.q.qmin + 1;
      for (let v = 0; v < levels ** k; v++) {
        for (let i = 0, x = v; i < k; i++, x = Math.floor(x / levels)) codes[i] = got.q.qmin + (x % levels);
        best = Math.min(best, objective(codes));
      }
      const g = objective(got.q.codes);
      const r = objective(rtn.codes);
      assert.ok(g >= best - 1e-12, `seed ${s}: GPTQ ${g} below the optimum ${best}`);
      if (g < r - 1e-12) strictlyBetter++;
      if (g > r + 1e-12) worse.push(s);
      totalGptq += g;
      totalRtn += r;
    }
    // GPTQ is greedy (each column's error compensation can push later columns into saturation), so it is not
    // below RTN on every instance: 1 of these 12 seeds (seed 9) is worse, about 1 in 20 in general at 2 bits.
    assert.ok(worse.length <= 2, `GPTQ worse than RTN on seeds ${worse.join(', ')}`);
    assert.ok(strictlyBetter >= 8, `GPTQ better than RTN on only ${strictlyBetter} of 12 seeds`);
    assert.ok(totalGptq < 0.75 * totalRtn, `GPTQ ${totalGptq} vs RTN ${totalRtn} summed over seeds`);
  });
});

describe('HessianAccumulator', () => {
  it('sums XᵀX over batches, rows of the last axis or columns of a transposed input, K² memory', () => {
    const g = normal(seededRandom(21));
    const k = 7;
    const batches = [37, 5, 16].map((rows) => Float32Array.from({ length: rows * k }, g));
    const acc = new HessianAccumulator([{ tensor: 'a', unit: 'rows' }, { tensor: 'b', unit: 'columns' }]);
    for (const b of batches) {
      acc.add('a', b, [1, b.length / k, k]);
      // The same rows as a [K, M] input read transposed.
      const m = b.length / k;
      const t = new Float32Array(b.length);
      for (let r = 0; r < m; r++) for (let i = 0; i < k; i++) t[i * m + r] = b[r * k + i];
      acc.add('b', t, [k, m]);
    }
    acc.finish();
    const want = new Float64Array(k * k);
    for (const b of batches) for (let r = 0; r < b.length / k; r++) for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) want[i * k + j] += b[r * k + i] * b[r * k + j];
    for (const name of ['a', 'b']) {
      const h = acc.get(name, name === 'a' ? 'rows' : 'columns')!;
      assert.equal(h.rows, 58);
      assert.equal(h.h.length, k * k);
      for (let i = 0; i < k * k; i++) assert.ok(Math.abs(h.h[i] - want[i]) <= 1e-9 * (1 + Math.abs(want[i])), `${name}[${i}]: ${h.h[i]} vs ${want[i]}`);
    }
    assert.equal(acc.get('a', 'columns'), undefined);
  });
});

describe('GPTQ on hard Hessians', () => {
  it('rank-deficient H (fewer rows than K) is damped and reported, and dead inputs are zeroed', () => {
    const k = 24;
    const acc = new HessianAccumulator([{ tensor: 'x', unit: 'rows' }]);
    const g = normal(seededRandom(5));
    // 5 rows of width 24; input 3 is never active.
    const x = Float32Array.from({ length: 5 * k }, (_, i) => (i % k === 3 ? 0 : g()));
    acc.add('x', x, [5, k]);
    acc.finish();
    const hess = acc.get('x')!;
    assert.equal(hess.rows, 5);
    const solver = gptqSolver((a) => (a === 'x' ? hess : undefined));
    const w = randomWeight(k * 3, 9);
    const q = solver.solve({ node: 'mm', weight: 'W', values: w, dims: [k, 3], spec: blocked(4, 0, 8), reductionAxis: 0, channelAxis: 1, activation: 'x' });
    const rec = solver.records[0];
    assert.equal(rec.solver, 'gptq');
    assert.equal(rec.tokens, 5);
    assert.equal(rec.k, k);
    assert.equal(rec.deadInputs, 1);
    assert.ok(rec.damping! > 0);
    assert.ok(rec.errorGptq! <= rec.errorRtn!, `${rec.errorGptq} vs ${rec.errorRtn}`);
    const deq = dequantize(q);
    for (let n = 0; n < 3; n++) assert.equal(deq[3 * 3 + n], 0, 'dead input weight is zero');
  });

  it('an H that is not positive definite gets more damping, step by step, and says how much', () => {
    const k = 8;
    const h = randomHessian(k, 40, 11);
    // An eigenvalue well below zero: 1% of the mean diagonal cannot lift it.
    let mean = 0;
    for (let i = 0; i < k; i++) mean += h[i * k + i] / k;
    for (let i = 0; i < k; i++) h[i * k + i] -= 0.3 * mean;
    const w = randomWeight(k * 2, 12);
    const res = gptqQuantize(w, [k, 2], 0, perChannel(4, 1), h);
    assert.ok(res.percdamp > 0.01, `percdamp ${res.percdamp}`);
    assert.ok(res.damping > 0);
  });

  it('a Hessian with NaN, or one no damping makes positive definite, is a one-line error naming the node and its input', () => {
    const k = 4;
    const w = randomWeight(k * 2, 3);
    const request = { node: 'mm', weight: 'W', values: w, dims: [k, 2], spec: perChannel(4, 1), reductionAxis: 0, channelAxis: 1, activation: 'x' };
    const nan = randomHessian(k, 20, 4);
    nan[5] = NaN;
    assert.throws(() => gptqSolver(() => ({ k, h: nan, rows: 20 })).solve(request), (e: Error) => e instanceof QuantizationError && /^node mm: GPTQ: the Hessian of its input 'x' holds NaN/.test(e.message));
    const negative = new Float64Array(k * k);
    for (let i = 0; i < k; i++) negative[i * k + i] = -1;
    assert.throws(
      () => gptqSolver(() => ({ k, h: negative, rows: 20 })).solve(request),
      (e: Error) => e instanceof QuantizationError && /^node mm: GPTQ: the Hessian of its input 'x' cannot be factorised: the Hessian is not positive definite/.test(e.message),
    );
  });

  it('a solver without a Hessian for a node rounds to nearest and says why', () => {
    const solver = gptqSolver(() => undefined);
    const w = randomWeight(16, 1);
    const q = solver.solve({ node: 'n', weight: 'W', values: w, dims: [4, 4], spec: perChannel(4, 1), reductionAxis: 0, channelAxis: 1, activation: 'a' });
    assert.deepEqual([...q.codes], [...quantize(w, [4, 4], perChannel(4, 1)).codes]);
    assert.equal(solver.records[0].solver, 'rtn');
    assert.match(solver.records[0].reason!, /no Hessian/);
  });
});

describe('quantize --method gptq on tiny-llama', () => {
  const TINY = 'models/tiny-llama/onnx/model.onnx';
  const PROSE = 'calibration-sets/prose';
  const dir = mkdtempSync(join(tmpdir(), 'gptq-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const calibration = { data: PROSE, options: { samples: 16, sequenceLength: 64 } };

  it('w4: a verified model, every GPTQ node below RTN on its layer error, same bytes twice', async () => {
    const a = await quantizePass(TINY, 'w4', { out: join(dir, 'a.onnx'), calibration, method: 'gptq' });
    const b = await quantizePass(TINY, 'w4', { out: join(dir, 'b.onnx'), calibration, method: 'gptq' });
    assert.equal(a.plan.solver, 'gptq');
    assert.equal(a.verification.gate, 'on', 'verified under the default quality gate');
    const layers = a.plan.layers!.filter((l) => l.solver === 'gptq');
    const matmuls = a.nodes.list.filter((n) => n.op === 'MatMul');
    assert.equal(layers.length, matmuls.length, 'every MatMul solved by GPTQ');
    for (const l of layers) {
      assert.ok(l.errorGptq! < l.errorRtn!, `${l.node}: GPTQ ${l.errorGptq} vs RTN ${l.errorRtn}`);
      assert.equal(l.tokens, 16 * 64);
      assert.ok(l.percdamp! >= 0.01);
    }
    assert.ok(readFileSync(join(dir, 'a.onnx')).equals(readFileSync(join(dir, 'b.onnx'))), 'same bytes twice');
    // The written codes are GPTQ's, not RTN's: the file differs from the RTN one of the same scheme.
    const rtn = await quantizePass(TINY, 'w4', { out: join(dir, 'rtn.onnx'), calibration });
    assert.equal(rtn.plan.solver, 'rtn');
    assert.ok(!readFileSync(join(dir, 'a.onnx')).equals(readFileSync(join(dir, 'rtn.onnx'))));
    assert.ok(a.verification.languageModel!.kl.mean < rtn.verification.languageModel!.kl.mean, 'closer to float than RTN on the held-out batch');
  });

  it("a recipe's quantize step takes method rtn|gptq", () => {
    assert.equal(quantizeStep.parse({ scheme: 'w4', method: 'gptq', calib: PROSE }, 'quantize').method, 'gptq');
    assert.equal(quantizeStep.parse({ scheme: 'w4' }, 'quantize').method, undefined);
    assert.throws(() => quantizeStep.parse({ scheme: 'w4', method: 'adaround' }, 'quantize'), /method/);
  });

  it('gptq without a calibration set, or on fp16, is a one-line error', async () => {
    await assert.rejects(quantizePass(TINY, 'w4', { out: join(dir, 'x.onnx'), method: 'gptq' }), (e: Error) => /--method gptq needs a calibration set/.test(e.message) && !e.message.includes('\n'));
    await assert.rejects(quantizePass(TINY, 'fp16', { out: join(dir, 'y.onnx'), calibration, method: 'gptq' }), (e: Error) => /--method gptq: scheme fp16/.test(e.message) && !e.message.includes('\n'));
  });
});
