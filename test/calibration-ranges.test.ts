// Range-only statistics computed inside ONNX Runtime (collectStatistics observe 'ranges'): the same min, max and
// per-channel |x| maxima as the full observers on tiny-llama and a shipped calibration set, at every opset the
// added reductions are written for, float16 included; NaN/Inf still located; the statistics file and the
// clipping methods treat what was not computed as absent. And the accumulator seam, against brute force.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Tensor } from 'onnxruntime-node';
import {
  collectStatistics,
  NonFiniteError,
  type ActivationAccumulator,
  type AnyActivationStatistics,
  type TensorRecord,
} from '../src/calibration/collect.js';
import { openCalibrationSet, type CalibrationSet } from '../src/calibration/data/index.js';
import { isFullStats, type AnyTensorStats } from '../src/calibration/observers/tensor-stats.js';
import { readStatsFile, writeStatsFile } from '../src/calibration/stats-file.js';
import { OnnxCompressError } from '../src/errors.js';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { encodeModel } from '../src/onnx/codec.js';
import { loadModel, ModelError, OnnxModel } from '../src/onnx/model.js';
import { DataType } from '../src/onnx/types.js';
import { activationRanges } from '../src/quantization/ranges.js';
import { captureTensors, withRangeOutputs } from '../src/runtime/capture.js';
import { Session, type Feeds } from '../src/runtime/session.js';
import { cli, oneLineError } from './support/cli.js';
import { mulberry32 } from './support/prng.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const TINY_LLAMA = join(REPO, 'models/tiny-llama/onnx/model.onnx');
const dir = mkdtempSync(join(tmpdir(), 'onnx-calibration-ranges-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A calibration set over fixed feeds. */
function memorySet(batches: Feeds[]): CalibrationSet {
  return {
    source: 'in-test set',
    kind: 'tensors',
    sampleCount: batches.reduce((n, f) => n + Object.values(f)[0].dims[0], 0),
    tokenCount: 0,
    async *batches() {
      yield* batches;
    },
  };
}

/** Everything a range-only record holds, for comparison with a full record. */
function rangeView(t: TensorRecord<AnyTensorStats>) {
  const { count, min, max, absMax, channelAbsMax } = t.stats;
  return { name: t.name, producer: t.producer, dtype: t.dtype, shape: t.shape, count, min, max, absMax, channelAbsMax };
}

function assertSameRanges(ranges: AnyActivationStatistics, full: AnyActivationStatistics): void {
  // observe 'minmax' computes no per-channel maxima: the rest must still be equal.
  const perTensor = ranges.options.observe === 'minmax';
  const view = (t: TensorRecord<AnyTensorStats>) => {
    const v = rangeView(t);
    if (!perTensor) return v;
    const { channelAbsMax: _, ...rest } = v;
    return rest;
  };
  assert.deepEqual(ranges.tensors.map(view), full.tensors.map(view));
  if (perTensor) for (const t of ranges.tensors) assert.ok(!('channelAbsMax' in t.stats), `${t.name}: no channel maxima with observe minmax`);
  assert.deepEqual(ranges.skipped, full.skipped);
  for (const t of ranges.tensors) {
    assert.ok(!isFullStats(t.stats), `${t.name}: range-only statistics`);
    for (const absent of ['mean', 'std', 'kurtosis', 'outliers', 'absPercentiles', 'entropy', 'histogram']) assert.ok(!(absent in t.stats), `${t.name}: no ${absent}`);
  }
}

/** Float input x [rows, channels] through Neg, Mul and a float16 round trip; every output a candidate. */
function smallModel(opset: number): string {
  const path = join(dir, `small-${opset}.onnx`);
  const b = new GraphBuilder('small');
  b.input('x', DataType.FLOAT, ['rows', 'channels']);
  b.initializer('three', DataType.FLOAT, [], [3]);
  b.node('Neg', ['x'], ['negated'], undefined, { name: 'neg' });
  b.node('Mul', ['negated', 'three'], ['tripled'], undefined, { name: 'mul' });
  b.node('Cast', ['tripled'], ['half'], { to: DataType.FLOAT16 }, { name: 'to_half' });
  b.node('Cast', ['half'], ['back'], { to: DataType.FLOAT }, { name: 'to_float' });
  b.node('ReduceSum', ['back'], ['total'], { keepdims: 0 }, { name: 'total' }); // a scalar
  b.output('back', DataType.FLOAT, ['rows', 'channels']);
  b.output('total', DataType.FLOAT, []);
  writeFileSync(path, encodeModel(modelFrom(b.graph, { opsets: { '': opset } })));
  return path;
}

function floatFeeds(rows: number, channels: number, seed: number, edit?: (data: Float32Array) => void): Feeds {
  const rand = mulberry32(seed);
  const data = Float32Array.from({ length: rows * channels }, () => (rand() - 0.4) * 10 * (rand() < 0.01 ? 30 : 1));
  edit?.(data);
  return { x: new Tensor('float32', data, [rows, channels]) };
}

describe('range-only statistics inside ONNX Runtime', () => {
  it('equal the full statistics on tiny-llama and the shipped prose set, for the quantizer inputs and for every output', async () => {
    const model = loadModel(TINY_LLAMA);
    for (const [targets, samples, sequenceLength] of [['inputs', 8, 64], ['all', 2, 32]] as const) {
      const set = await openCalibrationSet(join(REPO, 'calibration-sets/prose'), model, { samples, sequenceLength, batchSize: 2 });
      const full = await collectStatistics(model, set, { targets, workers: 0 });
      const ranges = await collectStatistics(model, set, { targets, observe: 'ranges' });
      assertSameRanges(await collectStatistics(model, set, { targets, observe: 'minmax' }), full);
      assert.equal(full.options.observe, 'full');
      assert.equal(ranges.options.observe, 'ranges');
      assert.deepEqual(ranges.options.targets, { set: targets });
      assert.equal(ranges.observerWorkers, 0);
      assert.equal(ranges.tokens, full.tokens);
      assert.ok(ranges.tensors.length >= (targets === 'inputs' ? 33 : 200), `${targets}: ${ranges.tensors.length} tensors`);
      assertSameRanges(ranges, full);
    }
  });

  it('equal the full statistics at opsets 7 to 21, for float16 and scalar tensors, across batches whose last axis varies', async () => {
    const batches = [floatFeeds(5, 7, 1), floatFeeds(3, 9, 2), floatFeeds(1, 4, 3), floatFeeds(0, 7, 4)];
    for (const opset of [7, 9, 10, 13, 17, 18, 21]) {
      const model = loadModel(smallModel(opset));
      const full = await collectStatistics(model, memorySet(batches), { targets: 'all', workers: 0 });
      const ranges = await collectStatistics(model, memorySet(batches), { targets: 'all', observe: 'ranges' });
      assertSameRanges(await collectStatistics(model, memorySet(batches), { targets: 'all', observe: 'minmax' }), full);
      assert.deepEqual(
        ranges.tensors.map((t) => [t.name, t.dtype, t.stats.channelAbsMax?.length]),
        [['negated', 'float32', 9], ['tripled', 'float32', 9], ['half', 'float16', 9], ['back', 'float32', 9], ['total', 'float32', 1]],
        `opset ${opset}`,
      );
      assertSameRanges(ranges, full);
    }
  });

  it('the reductions, whether the rank and last axis are known or not, give per-channel extremes at opsets 7 to 21', async () => {
    const b = new GraphBuilder('neg');
    b.input('x', DataType.FLOAT);
    b.node('Neg', ['x'], ['y'], undefined, { name: 'neg' });
    b.output('y', DataType.FLOAT);
    const rand = mulberry32(5);
    const x = Float32Array.from({ length: 2 * 3 * 4 }, () => rand() - 0.5);
    const expectedMin = [0, 1, 2, 3].map((c) => Math.min(...[...x].filter((_, i) => i % 4 === c).map((v) => -v)));
    const expectedMax = [0, 1, 2, 3].map((c) => Math.max(...[...x].filter((_, i) => i % 4 === c).map((v) => -v)));
    for (const opset of [7, 9, 10, 13, 17, 18, 21]) {
      for (const known of [{}, { rank: 3 }, { rank: 3, channels: 4 }]) {
        const { proto, outputs } = withRangeOutputs(modelFrom(structuredClone(b.graph), { opsets: { '': opset } }), [{ name: 'y', ...known }]);
        const session = await Session.create(new OnnxModel(proto, dir, `neg-${opset}`), { graphOptimization: 'disabled' });
        const [o] = outputs;
        const r = await session.run({ x: new Tensor('float32', x, [2, 3, 4]) }, [o.shape, o.channelMin, o.channelMax, o.sum!]);
        await session.dispose();
        const what = `opset ${opset}, ${JSON.stringify(known)}`;
        assert.deepEqual(Array.from(r[o.shape].data as BigInt64Array, Number), [2, 3, 4], what);
        assert.deepEqual([...(r[o.channelMin].data as Float32Array)], expectedMin, what);
        assert.deepEqual([...(r[o.channelMax].data as Float32Array)], expectedMax, what);
        assert.ok(Number.isFinite((r[o.sum!].data as Float32Array)[0]), what);
      }
    }
  });

  it('an always-empty tensor is skipped as in the full statistics', async () => {
    const model = loadModel(smallModel(17));
    const empty = [floatFeeds(0, 3, 1), floatFeeds(2, 0, 2)];
    const full = await collectStatistics(model, memorySet(empty), { targets: { names: ['negated'] }, workers: 0 });
    const ranges = await collectStatistics(model, memorySet(empty), { targets: { names: ['negated'] }, observe: 'ranges' });
    assert.deepEqual(ranges.skipped, [{ name: 'negated', reason: 'always empty' }]);
    assert.deepEqual(ranges.skipped, full.skipped);
  });

  it('NaN and infinities are located as in the full path, also where the min/max reductions pass over a NaN', async () => {
    const path = join(dir, 'sqrt.onnx');
    const b = new GraphBuilder('sqrt');
    b.input('x', DataType.FLOAT, ['rows', 'channels']);
    b.node('Sqrt', ['x'], ['root'], undefined, { name: 'sqrt' });
    b.node('MatMul', ['root', 'root'], ['product'], undefined, { name: 'matmul' });
    b.output('product', DataType.FLOAT, ['rows', 'channels']);
    writeFileSync(path, encodeModel(modelFrom(b.graph)));
    const model = loadModel(path);
    const positive = (rows: number, seed: number, at?: number) =>
      floatFeeds(rows, 64, seed, (d) => {
        for (let i = 0; i < d.length; i++) d[i] = Math.abs(d[i]) + 1;
        if (at !== undefined) d[at] = -1;
      });
    // Batches of 64 samples (rows) of 64 values; one negative value in rows 1..3 of the second batch.
    const rand = mulberry32(7);
    for (let k = 0; k < 8; k++) {
      const at = 64 + Math.floor(rand() * 64 * 3); // somewhere in rows 1..3 of the second batch
      const set = memorySet([positive(64, 1), positive(64, 2, at)]);
      await assert.rejects(collectStatistics(model, set, { observe: k % 2 ? 'minmax' : 'ranges' }), (e: unknown) => {
        assert.ok(e instanceof NonFiniteError, String(e));
        assert.equal(e.tensor, 'root');
        assert.equal(e.value, 'NaN');
        assert.deepEqual(e.samples, [64 + Math.floor(at / 64), 64 + Math.floor(at / 64)]);
        assert.match(e.message, /NaN first appears in tensor 'root', output of node 'sqrt' \(Sqrt\), for calibration sample \d+$/);
        return true;
      });
    }
    const infinite = memorySet([floatFeeds(64, 64, 3, (d) => d.fill(1e38))]); // finite roots, products beyond float32
    for (const observe of ['ranges', 'minmax'] as const) {
      await assert.rejects(collectStatistics(model, infinite, { targets: 'all', observe }), /Infinity first appears in tensor 'product', output of node 'matmul'/);
    }
    const fine = await collectStatistics(model, memorySet([positive(64, 1)]), { observe: 'ranges' });
    assert.deepEqual(fine.tensors.map((t) => t.name), ['root']);
  });

  it('the statistics file keeps what was computed and nothing else; percentile and entropy clipping say what is missing', async () => {
    const model = loadModel(smallModel(17));
    const path = join(dir, 'small-17.onnx');
    const ranges = await collectStatistics(model, memorySet([floatFeeds(6, 5, 9)]), { targets: 'all', observe: 'ranges' });
    const out = join(dir, 'ranges.json');
    writeStatsFile(out, ranges, { modelPath: path });
    const read = readStatsFile(out);
    assert.deepEqual(read.statistics, ranges);
    const json = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(json.options.observe, 'ranges');
    assert.deepEqual(Object.keys(json.tensors[0]).sort(), ['absMax', 'channelAbsMax', 'count', 'dtype', 'max', 'min', 'name', 'producer', 'shape']);

    const minmax = activationRanges(read.statistics, { method: 'minmax' });
    assert.deepEqual(minmax.ranges.get('negated'), [ranges.tensors[0].stats.min, ranges.tensors[0].stats.max]);
    for (const method of ['percentile', 'entropy'] as const) {
      assert.throws(
        () => activationRanges(read.statistics, { method }),
        (e: unknown) =>
          e instanceof OnnxCompressError &&
          new RegExp(`${method} clipping needs the ${method === 'entropy' ? 'entropy threshold' : '\\|x\\| percentiles'} .*of 'negated', but the statistics hold ranges only`).test(e.message),
      );
    }
  });
});

describe('accumulators', () => {
  /** Sum of squares per target, in float64, in value order. */
  function sumOfSquares(targets: string[]): ActivationAccumulator & { sums: Map<string, number>; adds: number; finished: number } {
    return {
      targets,
      sums: new Map(),
      adds: 0,
      finished: 0,
      add(name, values, dims) {
        assert.equal(values.length, dims.reduce((a, b) => a * b, 1));
        let s = 0;
        for (let i = 0; i < values.length; i++) s += values[i] * values[i];
        this.sums.set(name, (this.sums.get(name) ?? 0) + s);
        this.adds++;
      },
      finish() {
        this.finished++;
      },
    };
  }

  it('are fed the full values of their targets, with any observe mode, and equal brute force', async () => {
    const model = loadModel(TINY_LLAMA);
    const set = await openCalibrationSet(join(REPO, 'calibration-sets/prose'), model, { samples: 4, sequenceLength: 32, batchSize: 2 });
    const names = ['/model/layers.0/input_layernorm/Mul_1_output_0', '/model/layers.1/mlp/down_proj/MatMul_output_0'];
    const expected = new Map(names.map((n) => [n, 0]));
    for await (const feeds of set.batches()) {
      const outputs = await captureTensors(model, names, feeds);
      for (const n of names) {
        let s = 0;
        for (const v of outputs[n].data as Float32Array) s += v * v;
        expected.set(n, expected.get(n)! + s);
      }
    }
    for (const observe of ['full', 'ranges', 'none'] as const) {
      const accumulator = sumOfSquares(names);
      const stats = await collectStatistics(model, set, { observe, accumulators: [accumulator], workers: 1 });
      assert.deepEqual(accumulator.sums, expected, observe);
      assert.equal(accumulator.adds, 2 * names.length, 'once per target per batch');
      assert.equal(accumulator.finished, 1);
      assert.equal(stats.tensors.length, observe === 'none' ? 0 : 33);
    }
  });

  it('refuse a tensor the graph lacks, and observe none without an accumulator', async () => {
    const model = loadModel(smallModel(17));
    const set = memorySet([floatFeeds(2, 3, 1)]);
    await assert.rejects(collectStatistics(model, set, { observe: 'none', accumulators: [sumOfSquares(['nope'])] }), (e: unknown) => e instanceof ModelError && /no tensor 'nope'/.test(e.message));
    await assert.rejects(collectStatistics(model, set, { observe: 'none' }), (e: unknown) => e instanceof OnnxCompressError && e.code === 'bad-option');
    await assert.rejects(
      collectStatistics(model, set, { observe: 'sometimes' as 'full' }),
      (e: unknown) => e instanceof OnnxCompressError && e.code === 'bad-option' && /unknown observe mode 'sometimes'/.test(e.message),
    );
  });
});

describe('calibrate --observe', () => {
  it('minmax writes min and max only, which quantize --stats takes for minmax clipping and refuses for percentiles', () => {
    const stats = join(dir, 'minmax.json');
    const r = cli('calibrate', TINY_LLAMA, '--data', 'prose', '--samples', '4', '--seq-len', '64', '--observe', 'minmax', '--out', stats, '--json');
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { observe: string; mostOutliers: unknown[]; largestRanges: { p9999?: number }[] };
    assert.equal(report.observe, 'minmax');
    assert.deepEqual(report.mostOutliers, []);
    assert.ok(report.largestRanges.length > 0 && report.largestRanges.every((l) => l.p9999 === undefined));
    const file = readStatsFile(stats);
    assert.ok(file.statistics.tensors.every((t) => !isFullStats(t.stats) && !('channelAbsMax' in t.stats)));
    const ok = cli('quantize', TINY_LLAMA, '--scheme', 'w8a8', '--stats', stats, '--out', join(dir, 'from-minmax.onnx'), '--json');
    assert.equal(ok.code, 0, ok.stderr);
    const refused = cli('quantize', TINY_LLAMA, '--scheme', 'w8a8', '--stats', stats, '--clip', 'percentile', '--out', join(dir, 'p.onnx'));
    assert.match(oneLineError(refused), /percentile clipping needs the \|x\| percentiles \(histogram\).*ranges only/);
  });

  it('an unwritable --out is refused before any work', () => {
    // A file where a folder should be (root may write anywhere, so permissions cannot make the case).
    const blocker = join(dir, 'a-file');
    writeFileSync(blocker, 'not a folder');
    const out = join(blocker, 'stats.json');
    const r = cli('calibrate', TINY_LLAMA, '--data', 'prose', '--samples', '4', '--out', out);
    assert.match(oneLineError(r), /cannot write .*a-file\/stats.json: no such folder and cannot create it/);
    const json = cli('calibrate', TINY_LLAMA, '--data', 'prose', '--samples', '4', '--out', out, '--json');
    assert.equal((JSON.parse(json.stderr) as { error: { code: string } }).error.code, 'io');
  });
});
