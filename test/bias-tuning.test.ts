// Bias and norm tuning after quantization (src/quantization/bias-tuning.ts): on a builder layer whose quantized
// output is shifted by its input's mean, tuning removes most of the shift; on tiny-llama w4 g32 the held-out KL
// falls; the figures are checked against ONNX Runtime on the written models, computed here; same inputs and seed
// give the same bytes; the flag's misuse is a one-line error.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { Tensor } from 'onnxruntime-node';
import { openCalibrationSet, type CalibrationSet } from '../src/calibration/data/index.js';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { encodeModel } from '../src/onnx/codec.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import { tensorValues } from '../src/onnx/tensor.js';
import { DataType } from '../src/onnx/types.js';
import { quantizePass as quantizeStep } from '../src/passes/quantize.js';
import { fakeQuantModel, meanKl, tunableParameters, tuneBiases } from '../src/quantization/bias-tuning.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { planFromScheme } from '../src/quantization/plan.js';
import { resolveScheme } from '../src/quantization/schemes.js';
import { roundToNearest } from '../src/quantization/solvers.js';
import { rewriteModel } from '../src/quantization/writers/index.js';
import { Session, type Feeds } from '../src/runtime/session.js';
import { cli, oneLineError } from './support/cli.js';
import { mulberry32 } from './support/prng.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TINY = join(ROOT, 'models/tiny-llama/onnx/model.onnx');
const dir = mkdtempSync(join(tmpdir(), 'bias-tuning-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const K = 32;
const N = 8;
const SHIFT = 2;

/**
 * x -> LayerNorm(gain 1, bias SHIFT) -> MatMul W [K, N] -> Add b -> y. The MatMul's input has mean SHIFT on every
 * channel, so the error of W's 4-bit codes moves every output channel's mean by SHIFT x (column sum of the error):
 * a shift the bias can take back.
 */
function shiftedLayer(): OnnxModel {
  const b = new GraphBuilder('shifted');
  const random = mulberry32(3);
  const x = b.input('x', DataType.FLOAT, ['rows', K]);
  const gain = b.initializer('ln.gain', DataType.FLOAT, [K], new Float32Array(K).fill(1));
  const beta = b.initializer('ln.bias', DataType.FLOAT, [K], new Float32Array(K).fill(SHIFT));
  const normed = b.op('LayerNormalization', [x, gain, beta], { axis: -1, epsilon: 1e-5 }, { name: 'ln' });
  const w = b.initializer('W', DataType.FLOAT, [K, N], Float32Array.from({ length: K * N }, () => random() - 0.5));
  const bias = b.initializer('b', DataType.FLOAT, [N], Float32Array.from({ length: N }, () => random() - 0.5));
  const h = b.op('MatMul', [normed, w], undefined, { name: 'proj' });
  b.output('y', DataType.FLOAT, ['rows', N]);
  b.node('Add', [h, bias], ['y'], undefined, { name: 'proj_bias' });
  return new OnnxModel(modelFrom(b.graph, { opsets: { '': 17 } }), undefined, 'shifted');
}

const ROWS = 8;
const BATCHES = 16;

/** `BATCHES` batches of `ROWS` rows of standard-ish noise, the same on every pass. */
function noiseSet(): CalibrationSet {
  const random = mulberry32(5);
  const data = Array.from({ length: BATCHES }, () => Float32Array.from({ length: ROWS * K }, () => (random() + random() + random() - 1.5) * 2));
  return {
    source: 'memory',
    kind: 'tensors',
    sampleCount: BATCHES * ROWS,
    tokenCount: 0,
    async *batches() {
      for (const d of data) yield { x: new Tensor('float32', d, [ROWS, K]) };
    },
  };
}

async function collect(set: CalibrationSet): Promise<Feeds[]> {
  const out: Feeds[] = [];
  for await (const b of set.batches()) out.push(b);
  return out;
}

/** One output of a model in ONNX Runtime, per batch. */
async function ortRun(model: OnnxModel | string, batches: readonly Feeds[], output: string): Promise<{ data: Float32Array; dims: readonly number[] }[]> {
  const s = await Session.create(model);
  try {
    const out = [];
    for (const feeds of batches) {
      const t = (await s.run(feeds, [output]))[output];
      out.push({ data: t.data as Float32Array, dims: t.dims });
    }
    return out;
  } finally {
    await s.dispose();
  }
}

/** Every 4th batch: the split the tuning holds out by default. */
const heldOut = <T>(items: readonly T[]): T[] => items.filter((_, i) => i % 4 === 3);

describe('bias tuning on a layer with a known output shift', () => {
  const float = shiftedLayer();
  const plan = planFromScheme(float, resolveScheme('w4', {}));
  const written = rewriteModel(float, plan, { solver: roundToNearest }).model;

  it('finds the layer bias and the norm gain and bias', () => {
    assert.deepEqual(
      tunableParameters(float, plan).map((p) => [p.name, p.kind, p.size]),
      [
        ['b', 'bias', N],
        ['ln.gain', 'norm-gain', K],
        ['ln.bias', 'norm-bias', K],
      ],
    );
  });

  it('takes back most of the shift; its MSE figures are what ONNX Runtime gives on the written models; same bytes twice', async () => {
    const set = noiseSet();
    const tuned = await tuneBiases({ float, written, plan, solver: roundToNearest, set });
    const r = tuned.report!;
    assert.equal(r.objective, 'mse');
    assert.deepEqual(r.split, { tuneBatches: 12, selectionBatches: 4, holdOutEvery: 4 });
    assert.equal(r.kept, 'tuned');
    assert.ok(['wasm', 'cpu', 'tensorflow'].includes(r.backend));

    const selection = heldOut(await collect(set));
    const reference = await ortRun(float, selection, 'y');
    const untuned = await ortRun(written, selection, 'y');
    const result = await ortRun(tuned.model, selection, 'y');
    // Per output channel, the mean difference from float over the held-out rows, and the mean squared error.
    const shift = (got: typeof reference): number[] =>
      Array.from({ length: N }, (_, c) => got.reduce((a, g, i) => a + Array.from({ length: ROWS }, (_, row) => g.data[row * N + c] - reference[i].data[row * N + c]).reduce((s, v) => s + v, 0), 0) / (ROWS * got.length));
    const mse = (got: typeof reference): number => got.reduce((a, g, i) => a + g.data.reduce((s, v, j) => s + (v - reference[i].data[j]) ** 2, 0) / g.data.length, 0) / got.length;
    const norm = (v: number[]): number => Math.hypot(...v);
    const before = shift(untuned);
    const now = shift(result);
    assert.ok(norm(before) > 0.05, `the fixture's quantized layer is shifted: |shift| ${norm(before)}`);
    assert.ok(norm(now) < 0.2 * norm(before), `most of the shift is taken back: |shift| ${norm(before)} -> ${norm(now)}`);
    assert.ok(mse(result) < 0.5 * mse(untuned), `MSE ${mse(untuned)} -> ${mse(result)}`);
    assert.ok(Math.abs(r.selection.before - mse(untuned)) <= 1e-6 * mse(untuned), `report ${r.selection.before} vs ORT ${mse(untuned)}`);
    assert.ok(Math.abs(r.selection.after - mse(result)) <= 1e-6 * mse(result), `report ${r.selection.after} vs ORT ${mse(result)}`);
    // The interpreter's fake-quantized copy computes what the written MatMulNBits model computes.
    assert.ok(Math.abs(r.selectionInterpreter[0] - r.selection.before) <= 1e-4 * r.selection.before, `interpreter ${r.selectionInterpreter[0]} vs ORT ${r.selection.before}`);
    // The weights are untouched: only initializers named as tunable differ.
    const values = (m: OnnxModel, name: string) => Array.from(tensorValues(m.graph.initializer.find((t) => t.name === name)!).data as ArrayLike<number>);
    const changed = tuned.model.graph.initializer.filter((t) => values(tuned.model, t.name!).join() !== values(written, t.name!).join());
    assert.ok(changed.length > 0 && changed.every((t) => ['b', 'ln.gain', 'ln.bias'].includes(t.name!)), `changed: ${changed.map((t) => t.name).join(', ')}`);

    const again = await tuneBiases({ float, written, plan, solver: roundToNearest, set: noiseSet() });
    assert.ok(Buffer.from(encodeModel(again.model.proto)).equals(Buffer.from(encodeModel(tuned.model.proto))), 'same inputs and seed: same bytes');
    assert.deepEqual({ ...again.report!, seconds: 0 }, { ...r, seconds: 0 });
  });

  it('keeps the untuned values when tuning cannot lower the held-out loss', async () => {
    // The float model against itself: nothing to take back, the loss is zero before and stays so.
    const tuned = await tuneBiases({ float, written: float, plan: { ...plan, nodes: [] }, solver: roundToNearest, set: noiseSet() });
    assert.equal(tuned.report!.kept, 'untuned');
    assert.equal(tuned.model, float);
    assert.match(tuned.notes.join('\n'), /untuned values are kept/);
  });

  it('refuses a set with a single batch, naming the set', async () => {
    const one: CalibrationSet = { ...noiseSet(), source: 'one-batch', async *batches() { yield { x: new Tensor('float32', new Float32Array(ROWS * K), [ROWS, K]) }; } };
    await assert.rejects(tuneBiases({ float, written, plan, solver: roundToNearest, set: one }), (e: Error) => /^one-batch: --bias-tuning holds every 4th calibration batch out/.test(e.message) && !e.message.includes('\n'));
  });
});

describe('the fake-quantized copy', () => {
  it("computes in ONNX Runtime what the written model computes, tiny-gpt2's head tied to the quantized embedding table included", async () => {
    const gpt2 = await loadModel(join(ROOT, 'models/tiny-gpt2/onnx/model.onnx'));
    const plan = planFromScheme(gpt2, resolveScheme('w4', {}));
    // Unfolded, the head reads the table through a Transpose and stays float, beside the table's 4-bit Gather.
    assert.ok(plan.nodes.some((p) => p.plan.format === 'gather-block' && p.target.weight.name === 'transformer.wte.weight'));
    const batches = (await collect(await openCalibrationSet('prose', gpt2, { samples: 2, sequenceLength: 32 }))).slice(0, 2);
    const [reference, written, fake] = await Promise.all(
      [gpt2, rewriteModel(gpt2, plan, { solver: roundToNearest }).model, fakeQuantModel(gpt2, plan, roundToNearest)].map((m) => ortRun(m, batches, 'logits')),
    );
    for (const [i, w] of written.entries()) {
      const vocab = w.dims[w.dims.length - 1];
      const quantized = meanKl(reference[i].data, w.data, vocab);
      assert.ok(meanKl(w.data, fake[i].data, vocab) < 1e-6 * quantized, `written vs fake: ${meanKl(w.data, fake[i].data, vocab)}, float vs written ${quantized}`);
    }
  });
});

describe('quantize --bias-tuning', () => {
  const calibration = { data: 'prose', options: { samples: 12, sequenceLength: 32 } };

  it('tiny-llama w4 g32: the norm gains are tuned, the held-out KL falls, and ONNX Runtime on the written file agrees', async () => {
    const out = join(dir, 'tuned.onnx');
    const r = await quantizePass(TINY, 'w4', { out, calibration, biasTuning: true });
    const b = r.biasTuning!;
    assert.equal(b.objective, 'kl');
    assert.deepEqual(b.parameters, { bias: 0, normGain: 9, normBias: 0, values: 9 * 128 });
    assert.equal(b.split.tuneBatches + b.split.selectionBatches, 12);
    assert.equal(b.kept, 'tuned');
    assert.ok(b.selection.after < b.selection.before, `held-out KL ${b.selection.before} -> ${b.selection.after}`);
    assert.equal(b.iterations, b.epochs * b.split.tuneBatches);

    // KL(float || written) on the held-out calibration batches, from ONNX Runtime's logits, computed here.
    const model = await loadModel(TINY);
    const selection = heldOut(await collect(await openCalibrationSet('prose', model, calibration.options)));
    const reference = await ortRun(TINY, selection, 'logits');
    const written = await ortRun(out, selection, 'logits');
    let sum = 0;
    let rows = 0;
    for (const [i, w] of written.entries()) {
      const vocab = w.dims[w.dims.length - 1];
      for (let at = 0; at < w.data.length; at += vocab) {
        const lse = (v: Float32Array) => {
          const m = Math.max(...v);
          return m + Math.log(v.reduce((a, x) => a + Math.exp(x - m), 0));
        };
        const p = reference[i].data.subarray(at, at + vocab);
        const q = w.data.subarray(at, at + vocab);
        const lp = lse(p);
        const lq = lse(q);
        sum += p.reduce((a, x, j) => a + Math.exp(x - lp) * (x - lp - (q[j] - lq)), 0);
        rows++;
      }
    }
    const kl = sum / rows;
    assert.ok(Math.abs(kl - b.selection.after) <= 1e-3 * kl, `ORT here ${kl} vs report ${b.selection.after}`);
  });

  it('--bias-tuning without --calib is a one-line error; the recipe option parses; fp16 refuses it', () => {
    const line = oneLineError(cli('quantize', TINY, '--scheme', 'w4', '--bias-tuning', '--out', join(dir, 'never.onnx')));
    assert.match(line, /--bias-tuning needs --calib SET/);
    assert.equal(quantizeStep.parse({ scheme: 'w4', calib: 'prose', biasTuning: true }, 'quantize').biasTuning, true);
    assert.throws(() => quantizeStep.parse({ scheme: 'fp16', biasTuning: true }, 'quantize'), /bias-tuning: scheme fp16/);
  });
});
