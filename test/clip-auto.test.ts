// Auto clipping: the chooser on synthetic activations whose answer is known (an outlier that only a weight row
// near zero reads, where clipping it costs nothing and minmax wastes the code range: a percentile wins; values
// uniform on minmax's own code grid: minmax wins, exactly), its errors cross-checked against the model the QDQ
// writer actually writes, run in ONNX Runtime; the reservoir sampler's bounds and determinism; and
// `quantize --clip auto` end to end on a builder model and on models/tiny-llama (verifies, same bytes twice, the
// report names each tensor's method), with statistics from a file too.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Tensor } from 'onnxruntime-node';
import { ActivationSampler, SAMPLE_BATCHES, type ActivationSample } from '../src/calibration/activation-samples.js';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { encodeTensor } from '../src/onnx/codec.js';
import { OnnxModel } from '../src/onnx/model.js';
import { saveModel } from '../src/onnx/save.js';
import { makeTensor } from '../src/onnx/tensor.js';
import { DataType } from '../src/onnx/types.js';
import { candidateErrors, chooseCandidate, type Consumer } from '../src/quantization/clip-auto.js';
import { planFromScheme } from '../src/quantization/plan.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { dequantize, quantize } from '../src/quantization/quantizers.js';
import { resolveScheme } from '../src/quantization/schemes.js';
import { rewriteModel } from '../src/quantization/writers/index.js';
import { Session } from '../src/runtime/session.js';
import { cli, oneLineError } from './support/cli.js';
import { mulberry32 } from './support/prng.js';

const dir = mkdtempSync(join(tmpdir(), 'clip-auto-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const K = 64;
const N = 16;
const ROWS = 1024;

function gaussian(random: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** The percentile of |x| as ORT's symmetric Percentile calibrator takes it, kept within the observed range. */
function percentileRange(x: Float32Array, p: number): [number, number] {
  const abs = Float32Array.from(x, Math.abs).sort();
  const bound = abs[Math.min(abs.length - 1, Math.floor((p / 100) * abs.length))];
  let min = Infinity;
  let max = -Infinity;
  for (const v of x) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  return [Math.max(min, -bound), Math.min(max, bound)];
}

function minMax(x: Float32Array): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (const v of x) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  return [min, max];
}

/** One MatMul reading x [rows, K] with weight w [K, N], as a Consumer with the weight quantized as w8a8 writes it. */
function matmulConsumer(w: Float32Array): { consumer: Consumer; model: OnnxModel } {
  const g = new GraphBuilder('matmul');
  g.input('x', DataType.FLOAT, ['rows', K]);
  g.initializer('w', DataType.FLOAT, [K, N], w);
  g.node('MatMul', ['x', 'w'], ['y'], undefined, { name: 'matmul' });
  g.output('y', DataType.FLOAT, ['rows', N]);
  const model = new OnnxModel(modelFrom(g.graph, { opsets: { '': 17 } }), undefined, 'matmul');
  const plan = planFromScheme(model, resolveScheme('w8a8'));
  const p = plan.nodes[0];
  assert.equal(p.plan.format, 'qdq');
  const spec = { bits: 8, signed: true, symmetric: true, granularity: { kind: 'channel' as const, axis: 1 }, convention: 'onnx' as const };
  return {
    model,
    consumer: { node: model.graph.node[0], weight: { dims: [K, N], values: w }, dequantized: dequantize(quantize(w, [K, N], spec)), signed: false, opset: 17 },
  };
}

function rowsSample(x: Float32Array): Pick<ActivationSample, 'unit' | 'units'> {
  const units = [];
  for (let r = 0; r < x.length / K; r++) units.push({ dims: [K], values: x.slice(r * K, (r + 1) * K) });
  return { unit: 'rows', units };
}

/**
 * The relative squared output error of the model the QDQ writer writes with this activation range, run in
 * ONNX Runtime at its default optimisation: the oracle for candidateErrors.
 */
async function writtenError(model: OnnxModel, x: Float32Array, range: [number, number]): Promise<number> {
  const plan = planFromScheme(model, resolveScheme('w8a8'));
  const written = rewriteModel(model, plan, { activationRanges: new Map([['x', range]]) }).model;
  const feeds = { x: new Tensor('float32', x, [x.length / K, K]) };
  const reference = await Session.create(model);
  const candidate = await Session.create(written);
  try {
    const y = (await reference.run(feeds)).y.data as Float32Array;
    const yq = (await candidate.run(feeds)).y.data as Float32Array;
    let diff = 0;
    let energy = 0;
    for (let i = 0; i < y.length; i++) {
      diff += (yq[i] - y[i]) ** 2;
      energy += y[i] ** 2;
    }
    return diff / energy;
  } finally {
    await reference.dispose();
    await candidate.dispose();
  }
}

describe('the auto clipping chooser', () => {
  it('picks a percentile for an outlier that only a near-zero weight row reads, and its errors match the written model in ONNX Runtime', async () => {
    const random = mulberry32(7);
    const normal = gaussian(random);
    const x = Float32Array.from({ length: ROWS * K }, normal);
    // 32 rows (0.05% of the values, inside the top 0.1%) carry +-40 in channel 0.
    for (let r = 0; r < 32; r++) x[Math.floor(random() * ROWS) * K] = random() < 0.5 ? -40 : 40;
    const w = Float32Array.from({ length: K * N }, normal);
    for (let n = 0; n < N; n++) w[n] *= 1e-3; // row 0: what channel 0 feeds the output
    const { consumer, model } = matmulConsumer(w);
    const ranges = [minMax(x), percentileRange(x, 99.9), percentileRange(x, 99.99)];
    assert.ok(ranges[1][1] < 10 && ranges[0][1] === 40, `the 99.9 percentile clips the outliers: ${JSON.stringify(ranges)}`);
    const errors = await candidateErrors(consumer, rowsSample(x), ranges);
    assert.equal(chooseCandidate(errors), 1, `errors ${errors.map((e) => e.toExponential(3)).join(', ')}`);
    assert.ok(errors[0] > 10 * errors[1], `minmax wastes the code range: ${errors[0]} vs ${errors[1]}`);
    for (let i = 0; i < ranges.length; i++) {
      const oracle = await writtenError(model, x, ranges[i]);
      assert.ok(Math.abs(errors[i] - oracle) <= 1e-3 * oracle, `range ${i}: chooser ${errors[i]}, written model ${oracle}`);
    }
  });

  it('picks minmax for values uniform on its own code grid (no error at all from the activation)', async () => {
    const random = mulberry32(11);
    const normal = gaussian(random);
    // k / 64 for k in -128..127: minmax's scale is exactly 1/64 and its zero point 128, so every value is a code.
    const x = Float32Array.from({ length: ROWS * K }, () => (Math.floor(random() * 256) - 128) / 64);
    x[0] = -2;
    x[1] = 127 / 64;
    const w = Float32Array.from({ length: K * N }, normal);
    const { consumer, model } = matmulConsumer(w);
    const ranges = [minMax(x), percentileRange(x, 99), percentileRange(x, 90)];
    const errors = await candidateErrors(consumer, rowsSample(x), ranges);
    assert.equal(chooseCandidate(errors), 0, `errors ${errors.join(', ')}`);
    assert.ok(errors[0] < errors[1] && errors[1] < errors[2], `clipping more costs more: ${errors.join(', ')}`);
    // What remains with minmax is the weight's own quantization error: the same as a float activation.
    const weightOnly = await writtenError(model, x, [-2, 127 / 64]);
    assert.ok(Math.abs(errors[0] - weightOnly) <= 1e-3 * weightOnly, `${errors[0]} vs ${weightOnly}`);
  });

  it('prefers the earlier candidate on a tie and never a NaN', () => {
    assert.equal(chooseCandidate([1, 1, 2]), 0);
    assert.equal(chooseCandidate([NaN, 3, 2]), 2);
    assert.throws(() => chooseCandidate([NaN]), /no candidate range has a finite error/);
  });
});

describe('the activation sampler', () => {
  it('keeps at most its budget of rows, the same rows for the same seed, and items whole', () => {
    const run = (seed: number): ActivationSample[] => {
      const s = new ActivationSampler(
        [
          { tensor: 'a', unit: 'rows' },
          { tensor: 'b', unit: 'items' },
          { tensor: 'c', unit: 'columns' },
        ],
        { maxValues: 64, minUnits: 2, seed, batches: 10 },
      );
      for (let batch = 0; batch < 10; batch++) {
        const values = Float32Array.from({ length: 3 * 4 * 8 }, (_, i) => batch * 1000 + i);
        s.add('a', values, [3, 4, 8]);
        s.add('b', values, [3, 4, 8]);
        s.add('c', values.subarray(0, 32), [4, 8]);
      }
      return s.samples();
    };
    const [a, b, c] = run(0);
    assert.equal(a.seen, 120);
    assert.equal(a.units.length, 8); // 64 values / rows of 8
    assert.ok(a.units.every((u) => u.values.length === 8 && u.values[0] % 8 === 0), 'rows start on a row boundary');
    assert.equal(b.units.length, 2); // items of 32 values: the minimum of 2 units
    assert.deepEqual(b.units[0].dims, [4, 8]);
    assert.equal(c.units[0].values.length, 4);
    assert.deepEqual([...c.units.find((u) => u.values[0] % 1000 === 0)!.values].map((v) => v % 1000), [0, 8, 16, 24]);
    assert.deepEqual(run(0), run(0));
    assert.notDeepEqual(run(0)[0].units, run(1)[0].units);
  });

  it('samples only the first batches of the set (SAMPLE_BATCHES by default), however many follow', () => {
    const s = new ActivationSampler([{ tensor: 'a', unit: 'rows' }], { maxValues: 1 << 20 });
    for (let batch = 0; batch < SAMPLE_BATCHES + 3; batch++) s.add('a', new Float32Array(16).fill(batch), [2, 8]);
    const [a] = s.samples();
    assert.equal(a.seen, 2 * SAMPLE_BATCHES);
    assert.ok(a.units.every((u) => u.values[0] < SAMPLE_BATCHES), 'no row of a later batch');
  });
});

/** x [rows, 32] -> MatMul -> Relu -> MatMul -> y, with a tensor calibration set of `samples` inputs. */
function builderModelWithData(): { model: string; data: string } {
  const random = mulberry32(3);
  const normal = gaussian(random);
  const g = new GraphBuilder('mlp');
  g.input('x', DataType.FLOAT, [4, 32]);
  const h = g.op('MatMul', ['x', g.initializer('w1', DataType.FLOAT, [32, 24], Float32Array.from({ length: 32 * 24 }, normal))]);
  const r = g.op('Relu', [h]);
  g.node('MatMul', [r, g.initializer('w2', DataType.FLOAT, [24, 8], Float32Array.from({ length: 24 * 8 }, normal))], ['y']);
  g.output('y', DataType.FLOAT, [4, 8]);
  const model = join(dir, 'mlp.onnx');
  saveModel(new OnnxModel(modelFrom(g.graph, { opsets: { '': 17 } }), undefined, 'mlp'), model);
  const data = join(dir, 'mlp-data');
  for (let s = 0; s < 6; s++) {
    const folder = join(data, `test_data_set_${s}`);
    mkdirSync(folder, { recursive: true });
    // Heavy tails: a product of normals, as transformer activations have.
    const x = Float32Array.from({ length: 4 * 32 }, () => normal() * normal() * normal());
    writeFileSync(join(folder, 'input_0.pb'), encodeTensor(makeTensor('x', DataType.FLOAT, [4, 32], x)));
  }
  return { model, data };
}

const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('quantize --clip auto', () => {
  it('writes a builder model that verifies, with each tensor\'s choice reported, the same bytes twice', async () => {
    const { model, data } = builderModelWithData();
    const run = (out: string) => quantizePass(model, 'w8a8', { out, calibration: { data }, clip: { method: 'auto' } });
    const first = await run(join(dir, 'mlp-auto-1.onnx'));
    const second = await run(join(dir, 'mlp-auto-2.onnx'));
    assert.equal(sha(join(dir, 'mlp-auto-1.onnx')), sha(join(dir, 'mlp-auto-2.onnx')));
    const a = first.activations!;
    assert.equal(a.method, 'auto');
    assert.deepEqual(a.choices!.map((c) => c.tensor), ['x', a.ranges[1].tensor]);
    for (const c of a.choices!) {
      assert.equal(c.candidates.length, 5);
      const best = Math.min(...c.candidates.map((x) => x.error));
      assert.equal(c.candidates.find((x) => x.label === c.chosen)!.error, best);
      assert.deepEqual(a.ranges.find((e) => e.tensor === c.tensor)!.range, c.candidates.find((x) => x.label === c.chosen)!.range);
    }
    assert.ok(first.verification.worst.cosine > 0.99, `worst cosine ${first.verification.worst.cosine}`);
    assert.deepEqual(second.activations, first.activations);
  });

  it('quantizes models/tiny-llama from a few samples: verifies, same bytes twice, and from a statistics file too', () => {
    const args = ['--scheme', 'w8a8', '--calib', 'prose', '--samples', '4', '--seq-len', '32', '--clip', 'auto', '--json'];
    const outs = [join(dir, 'tiny-auto-1.onnx'), join(dir, 'tiny-auto-2.onnx')];
    const reports = outs.map((out) => {
      const r = cli('quantize', 'models/tiny-llama/onnx/model.onnx', ...args, '--out', out);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout);
    });
    assert.equal(sha(outs[0]), sha(outs[1]));
    const a = reports[0].activations;
    assert.equal(a.method, 'auto');
    assert.equal(a.choices.length, a.ranges.length);
    assert.ok(reports[0].verification.languageModel.top1Agreement > 0.8);

    // Statistics from `calibrate`: the samples come from the set the file names, in a run of their own.
    const stats = join(dir, 'tiny-stats.json');
    const c = cli('calibrate', 'models/tiny-llama/onnx/model.onnx', '--data', 'prose', '--samples', '4', '--seq-len', '32', '--out', stats);
    assert.equal(c.code, 0, c.stderr);
    const fromFile = cli('quantize', 'models/tiny-llama/onnx/model.onnx', '--scheme', 'w8a8', '--stats', stats, '--clip', 'auto', '--out', join(dir, 'tiny-auto-stats.onnx'), '--json');
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(JSON.parse(fromFile.stdout).activations.choices.length, a.choices.length);

    // Range-only statistics hold no percentiles or entropy to choose from: one line naming the tensor.
    const ranges = join(dir, 'tiny-ranges.json');
    assert.equal(cli('calibrate', 'models/tiny-llama/onnx/model.onnx', '--data', 'prose', '--samples', '2', '--seq-len', '32', '--observe', 'minmax', '--out', ranges).code, 0);
    const refused = oneLineError(cli('quantize', 'models/tiny-llama/onnx/model.onnx', '--scheme', 'w8a8', '--stats', ranges, '--clip', 'auto', '--out', join(dir, 'x.onnx')));
    assert.match(refused, /auto clipping of '.+' .*ranges only/);
  });

  it('refuses --percentile with --clip auto, naming the flag', () => {
    const line = oneLineError(cli('quantize', 'models/tiny-llama/onnx/model.onnx', '--scheme', 'w8a8', '--calib', 'prose', '--clip', 'auto', '--percentile', '99.9', '--out', join(dir, 'y.onnx')));
    assert.match(line, /--percentile applies to --clip percentile, not --clip auto/);
  });
});
