// Activation statistics: observers against brute force, the entropy threshold against an independent
// re-implementation, target selection, the streaming collector (NaN/Inf location, flat memory), the statistics
// file and the calibrate command.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Tensor } from 'onnxruntime-node';
import { collectStatistics, NonFiniteError, type ActivationStatistics } from '../src/calibration/collect.js';
import type { CalibrationSet } from '../src/calibration/data/index.js';
import {
  Chunk,
  histogramObserver,
  magnitudeObserver,
  minMaxObserver,
  momentsObserver,
  observe,
  tensorStatsObserver,
  type Observer,
} from '../src/calibration/observers/index.js';
import { openObserverSink } from '../src/calibration/observer-pool.js';
import { resolveStatsOptions } from '../src/calibration/observers/tensor-stats.js';
import { checkModelMatches, readStatsFile, StatsFileError, writeStatsFile } from '../src/calibration/stats-file.js';
import { selectTargets } from '../src/calibration/targets.js';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { encodeModel } from '../src/onnx/codec.js';
import { OnnxCompressError } from '../src/errors.js';
import { loadModel, ModelError } from '../src/onnx/model.js';
import { DataType } from '../src/onnx/types.js';
import { captureTensors } from '../src/runtime/capture.js';
import type { Feeds } from '../src/runtime/session.js';
import { oracleEntropyThreshold, oracleHistogram } from './entropy-oracle.js';
import { cli, oneLineError } from './support/cli.js';
import { mulberry32 } from './support/prng.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const TINY_LLAMA = join(REPO, 'models/tiny-llama/onnx/model.onnx');
const dir = mkdtempSync(join(tmpdir(), 'onnx-calibration-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// --- data ---

type Draw = (rand: () => number) => number;
const gaussian: Draw = (rand) => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
const laplace: Draw = (rand) => {
  const u = rand() - 0.5;
  return -Math.sign(u) * Math.log(1 - 2 * Math.abs(u));
};
/** Gaussian with 0.2% of values 30 times wider: the outliers LLM activations have. */
const withOutliers: Draw = (rand) => (rand() < 0.002 ? 30 : 1) * gaussian(rand);
/** Skewed and one-sided, like a GELU/SiLU output. */
const relu: Draw = (rand) => Math.max(-0.2, 2 * gaussian(rand) + 0.5);

function sample(draw: Draw, n: number, seed: number, scale = 1): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => scale * draw(rand));
}

/** Irregular chunks of whole rows of `channels` values, as batches of varying size would give. */
function chunksOf(data: Float32Array, channels: number, seed: number): Chunk[] {
  const rand = mulberry32(seed);
  const rows = data.length / channels;
  const out: Chunk[] = [];
  for (let row = 0; row < rows; ) {
    const take = Math.min(rows - row, 1 + Math.floor(rand() * 40));
    out.push(new Chunk(data.subarray(row * channels, (row + take) * channels), channels));
    row += take;
  }
  return out;
}

function bruteForce(data: Float32Array) {
  const n = data.length;
  let min = Infinity;
  let max = -Infinity;
  let total = 0;
  for (const v of data) {
    min = Math.min(min, v);
    max = Math.max(max, v);
    total += v;
  }
  const mean = total / n;
  let m2 = 0;
  let m4 = 0;
  for (const v of data) {
    const d = v - mean;
    m2 += d * d;
    m4 += d ** 4;
  }
  return { min, max, mean, std: Math.sqrt(m2 / n), kurtosis: (n * m4) / (m2 * m2) };
}

function assertClose(actual: number, expected: number, relative: number, what: string): void {
  const tolerance = relative * Math.max(1, Math.abs(expected));
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs ${expected} (tolerance ${tolerance})`);
}

function run<S, R>(observer: Observer<S, R>, chunks: readonly Chunk[]): S {
  const state = observer.init();
  for (const c of chunks) observer.update(state, c);
  return state;
}

const DISTRIBUTIONS: [string, Draw][] = [
  ['gaussian', gaussian],
  ['laplace', laplace],
  ['gaussian with outliers', withOutliers],
  ['skewed', relu],
];

describe('observers', () => {
  it('min, max, mean, std and kurtosis equal brute force', () => {
    for (const [name, draw] of DISTRIBUTIONS) {
      // An offset mean stresses the moment combination: deviations are small next to the values.
      const data = sample(draw, 60_000, 11).map((v) => v + 1000);
      const chunks = chunksOf(data, 100, 12);
      const expected = bruteForce(data);
      const range = observe(minMaxObserver, chunks);
      const moments = observe(momentsObserver, chunks);
      assert.equal(range.min, expected.min, `${name} min`);
      assert.equal(range.max, expected.max, `${name} max`);
      assert.equal(moments.count, data.length);
      assertClose(moments.mean, expected.mean, 1e-12, `${name} mean`);
      assertClose(moments.std, expected.std, 1e-9, `${name} std`);
      assertClose(moments.kurtosis, expected.kurtosis, 1e-8, `${name} kurtosis`);
    }
  });

  it('per-channel |x| maxima and the |x| >= 6 count equal brute force', () => {
    const channels = 48;
    const data = sample(withOutliers, channels * 500, 21);
    const result = observe(magnitudeObserver(6), chunksOf(data, channels, 22));
    const peaks = new Float32Array(channels);
    let atLeast = 0;
    data.forEach((v, i) => {
      peaks[i % channels] = Math.max(peaks[i % channels], Math.abs(v));
      if (Math.abs(v) >= 6) atLeast++;
    });
    assert.deepEqual(result.channelAbsMax, peaks);
    assert.equal(result.atLeastThreshold, atLeast);
    assert.ok(atLeast > 0, 'the data has outliers to count');
  });

  it('|x| percentiles are never below the exact value and at most one bin width above it', () => {
    for (const [name, draw] of DISTRIBUTIONS) {
      const data = sample(draw, 100_000, 31);
      const stats = observe(tensorStatsObserver(), chunksOf(data, 10, 32));
      const sorted = Float64Array.from(data, Math.abs).sort();
      const w = stats.percentileResolution;
      assert.equal(w, (2 * stats.histogram.range) / stats.histogram.bins);
      assert.ok(w < (4 * stats.absMax) / stats.histogram.bins, 'the stated resolution bound holds');
      for (const { percentile, value } of stats.absPercentiles) {
        const exact = sorted[Math.max(1, Math.ceil((percentile * data.length) / 100)) - 1];
        assert.ok(value >= exact && value <= exact + w, `${name} p${percentile}: ${value} vs exact ${exact}, bin ${w}`);
      }
    }
  });

  it('the sigma-outlier bounds bracket the exact count', () => {
    const data = sample(withOutliers, 200_000, 41);
    const stats = observe(tensorStatsObserver(), chunksOf(data, 50, 42));
    const { mean, std } = bruteForce(data);
    const exact = data.filter((v) => Math.abs(v - mean) > 6 * std).length;
    const { lower, upper } = stats.outliers.beyondSigmas;
    assert.ok(exact > 0);
    assert.ok(lower <= exact && exact <= upper, `${lower} <= ${exact} <= ${upper}`);
    assert.ok(upper - lower <= exact, 'the uncertainty is a small part of the count');
  });

  it('a histogram does not depend on chunking, grows by exact re-binning and matches direct binning', () => {
    // Values growing over the stream make the range double many times.
    const data = Float32Array.from(sample(gaussian, 30_000, 51), (v, i) => v * (1 + i / 300));
    const h = histogramObserver(2048);
    const states = [7, 1000, 30_000].map((size) => {
      const s = h.init();
      for (let i = 0; i < data.length; i += size) h.update(s, new Chunk(data.subarray(i, i + size)));
      return s;
    });
    for (const s of states.slice(1)) assert.deepEqual(s, states[0]);
    const direct = oracleHistogram(data, 2048, states[0].range);
    assert.deepEqual([...states[0].counts], direct.counts);
    const absMax = Math.max(...data.map(Math.abs));
    assert.ok(states[0].range >= absMax && states[0].range < 2 * absMax);
  });

  it('the per-tensor observer (one pass per chunk) agrees with the single-purpose observers', () => {
    for (const [name, draw] of DISTRIBUTIONS) {
      // Growing values make the histogram re-bin chunks binned at a range that turned out too narrow; the
      // offset stresses the shifted power sums the one pass keeps.
      const channels = 24;
      const data = Float32Array.from(sample(draw, channels * 3000, 71), (v, i) => 3 + v * (1 + i / 20_000));
      const chunks = chunksOf(data, channels, 72);
      const state = run(tensorStatsObserver(), chunks);
      const alone = {
        minMax: run(minMaxObserver, chunks),
        moments: run(momentsObserver, chunks),
        magnitude: run(magnitudeObserver(6), chunks),
        histogram: run(histogramObserver(2048), chunks),
      };
      assert.deepEqual(state.minMax, alone.minMax, `${name} range`);
      assert.deepEqual(state.histogram, alone.histogram, `${name} histogram`);
      assert.deepEqual(state.magnitude, alone.magnitude, `${name} magnitude`);
      assert.equal(state.moments.count, alone.moments.count);
      for (const key of ['mean', 'm2', 'm3', 'm4'] as const) assertClose(state.moments[key], alone.moments[key], 1e-10, `${name} ${key}`);
    }
  });

  it('a value far beyond the histogram range (an attention-mask fill) leaves nothing behind for another tensor', () => {
    const observer = tensorStatsObserver();
    // Tensor b's values reach its top bin (x = range = 4), where a wrapped bin index would be clamped.
    const [b1, b2] = [sample(gaussian, 400, 91), sample(gaussian, 400, 92)];
    b1[3] = b2[7] = 4;
    const b = observer.init();
    observer.update(b, new Chunk(b1));
    const masked = sample(gaussian, 400, 93);
    masked[50] = -1e9; // binned at the old range first, then again: the first binning must leave no trace
    run(observer, [new Chunk(sample(gaussian, 400, 94)), new Chunk(masked)]);
    observer.update(b, new Chunk(b2));
    assert.deepEqual(b.histogram, run(histogramObserver(2048), [new Chunk(b1), new Chunk(b2)]));
  });

  it('large chunks (read in slices of rows) agree with the single-purpose observers too', () => {
    // 3 channels: slices end mid-way through nothing; 70,001 channels: rows longer than a slice.
    for (const [channels, rows] of [[3, 70_000], [70_001, 3]]) {
      const data = sample(withOutliers, channels * rows, 101, 2);
      const chunks = [new Chunk(data, channels), new Chunk(data.subarray(0, channels), channels)];
      const state = run(tensorStatsObserver(), chunks);
      assert.deepEqual(state.histogram, run(histogramObserver(2048), chunks), `${channels} channels: histogram`);
      assert.deepEqual(state.magnitude, run(magnitudeObserver(6), chunks), `${channels} channels: peaks and outliers`);
      assert.deepEqual(state.minMax, run(minMaxObserver, chunks), `${channels} channels: range`);
      const moments = run(momentsObserver, chunks);
      for (const key of ['mean', 'm2', 'm3', 'm4'] as const) assertClose(state.moments[key], moments[key], 1e-10, `${channels} channels: ${key}`);
    }
  });

  it('a chunk holding NaN or an infinity leaves the per-tensor state as it was, and its scan says so', () => {
    const observer = tensorStatsObserver();
    const state = run(observer, chunksOf(sample(gaussian, 400, 81), 4, 82));
    const before = structuredClone(state);
    for (const bad of [NaN, Infinity, -Infinity]) {
      const data = sample(gaussian, 400, 83, 100); // wider than the state's range, as a real outlier batch could be
      data[137] = bad;
      const chunk = new Chunk(data, 4);
      observer.update(state, chunk);
      assert.equal(chunk.scan.finite, false, `${bad}`);
      assert.deepEqual(state, before, `${bad} left no trace`);
    }
    const clean = new Chunk(sample(gaussian, 400, 84), 4);
    observer.update(state, clean);
    assert.equal(clean.scan.finite, true);
    assert.equal(state.moments.count, before.moments.count + 400);
  });

  it('merging the states of two halves gives the state of the whole', () => {
    const channels = 32;
    const small = sample(gaussian, channels * 1000, 61);
    const large = sample(withOutliers, channels * 700, 62, 50); // a wider range: the merge has to grow a histogram
    const observer = tensorStatsObserver();
    const a = run(observer, chunksOf(small, channels, 63));
    const b = run(observer, chunksOf(large, channels, 64));
    const whole = run(observer, [...chunksOf(small, channels, 63), ...chunksOf(large, channels, 64)]);
    const [aBefore, bBefore] = [structuredClone(a), structuredClone(b)];
    for (const merged of [observer.merge(a, b), observer.merge(b, a)]) {
      assert.deepEqual(merged.histogram, whole.histogram);
      assert.deepEqual(merged.minMax, whole.minMax);
      assert.deepEqual(merged.magnitude, whole.magnitude);
      assert.equal(merged.moments.count, whole.moments.count);
      for (const key of ['mean', 'm2', 'm3', 'm4'] as const) assertClose(merged.moments[key], whole.moments[key], 1e-11, key);
      const [m, w] = [observer.finalize(merged), observer.finalize(whole)];
      assert.deepEqual(m.entropy, w.entropy);
      assert.deepEqual(m.absPercentiles, w.absPercentiles);
      assert.deepEqual(m.channelAbsMax, w.channelAbsMax);
      assertClose(m.kurtosis, w.kurtosis, 1e-9, 'kurtosis');
    }
    assert.deepEqual([a, b], [aBefore, bBefore], 'merging leaves its inputs alone');
  });
});

describe('entropy (KL-optimal) threshold', () => {
  const cases: [string, Draw, number, number][] = [
    ['gaussian', gaussian, 100_000, 2048],
    ['laplace', laplace, 50_000, 512],
    ['gaussian with outliers', withOutliers, 100_000, 2048],
    ['skewed', relu, 50_000, 512],
    ['small gaussian sample', gaussian, 2_000, 512],
  ];
  for (const [name, draw, n, bins] of cases) {
    it(`equals the independent re-implementation within one bin: ${name}, ${bins} bins`, () => {
      const data = sample(draw, n, 71);
      const stats = observe(tensorStatsObserver({ histogramBins: bins }), chunksOf(data, 25, 72));
      const { counts, edges } = oracleHistogram(data, bins, stats.histogram.range);
      assert.deepEqual([...stats.histogram.counts], counts, 'the streamed histogram is the direct one');
      const oracle = oracleEntropyThreshold(counts, edges, 128, stats.min, stats.max);
      const w = stats.percentileResolution;
      assert.ok(Math.abs(stats.entropy.low - oracle.low) <= w, `low ${stats.entropy.low} vs ${oracle.low}`);
      assert.ok(Math.abs(stats.entropy.high - oracle.high) <= w, `high ${stats.entropy.high} vs ${oracle.high}`);
      // A clipping range, inside the data's range and cutting tails rather than the bulk.
      assert.ok(stats.entropy.low >= stats.min && stats.entropy.high <= stats.max);
      assert.ok(stats.entropy.high > stats.absPercentiles[0].value / 2);
    });
  }
});

// --- models and sets ---

/** x [batch, 2] -> Sub 10 -> Log -> Mul 2: NaN where x < 10, -Infinity where x == 10. */
function logModel(path: string): void {
  const b = new GraphBuilder('log');
  b.input('x', DataType.FLOAT, ['batch', 2]);
  b.initializer('ten', DataType.FLOAT, [], [10]);
  b.initializer('two', DataType.FLOAT, [], [2]);
  // Names chosen so that alphabetical order differs from topological order.
  b.node('Sub', ['x', 'ten'], ['shifted'], undefined, { name: 'sub' });
  b.node('Log', ['shifted'], ['z_log'], undefined, { name: 'log' });
  b.node('Mul', ['z_log', 'two'], ['a_doubled'], undefined, { name: 'double' });
  b.output('a_doubled', DataType.FLOAT, ['batch', 2]);
  writeFileSync(path, encodeModel(modelFrom(b.graph)));
}

/** A calibration set over fixed feeds, as the data loader would give them. */
function memorySet(batches: Feeds[], kind: CalibrationSet['kind'] = 'tensors'): CalibrationSet {
  const sampleCount = batches.reduce((n, f) => n + Object.values(f)[0].dims[0], 0);
  return {
    source: 'in-test set',
    kind,
    sampleCount,
    tokenCount: kind === 'tensors' ? 0 : batches.reduce((n, f) => n + f.input_ids.size, 0),
    async *batches() {
      yield* batches;
    },
  };
}

const rowsOf = (rows: number[][]): Feeds => ({ x: new Tensor('float32', Float32Array.from(rows.flat()), [rows.length, 2]) });

/** tiny-llama feeds: `batch` rows of `sequence` byte tokens, no cache. */
function llamaFeeds(batch: number, sequence: number, seed: number): Feeds {
  const rand = mulberry32(seed);
  const n = batch * sequence;
  const feeds: Feeds = {
    input_ids: new Tensor('int64', BigInt64Array.from({ length: n }, () => BigInt(Math.floor(rand() * 256))), [batch, sequence]),
    attention_mask: new Tensor('int64', new BigInt64Array(n).fill(1n), [batch, sequence]),
    position_ids: new Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(i % sequence)), [batch, sequence]),
  };
  for (let layer = 0; layer < 4; layer++) {
    for (const kv of ['key', 'value']) feeds[`past_key_values.${layer}.${kv}`] = new Tensor('float32', new Float32Array(0), [batch, 2, 0, 32]);
  }
  return feeds;
}

describe('targets', () => {
  const model = loadModel(TINY_LLAMA);
  const graph = model.graph;
  const initializers = new Set(graph.initializer.map((t) => t.name));

  it("default: the activation inputs of MatMul; 'all': those and every node output but weights; in topological order", () => {
    const matmulInputs = new Set(graph.node.filter((n) => n.opType === 'MatMul').flatMap((n) => n.input).filter((n) => !initializers.has(n)));
    const inputs = selectTargets(model);
    assert.deepEqual(new Set(inputs.map((t) => t.name)), matmulInputs);
    assert.equal(inputs.length, matmulInputs.size, 'no tensor twice');
    assert.deepEqual(selectTargets(model, 'inputs'), inputs);
    const targets = selectTargets(model, 'all');
    assert.deepEqual(selectTargets(model, { set: 'all' }), targets);
    const names = new Set(targets.map((t) => t.name));
    assert.equal(names.size, targets.length, 'no tensor twice');
    for (const node of graph.node) {
      if (node.opType === 'MatMul') for (const input of node.input) if (!initializers.has(input)) assert.ok(names.has(input), input);
      for (const output of node.output) assert.equal(names.has(output), node.opType !== 'Constant', output);
    }
    for (const name of names) assert.ok(!initializers.has(name), `${name} is a weight`);
    for (const list of [inputs, targets]) list.forEach((t, i) => assert.ok(i === 0 || list[i - 1].rank <= t.rank, 'topological order'));
    assert.throws(() => selectTargets(model, 'every' as 'all'), (e: Error) => e instanceof OnnxCompressError && e.code === 'bad-option' && /unknown set 'every'/.test(e.message));
  });

  it('by regex, op type, quantized-op inputs and name', () => {
    const matching = selectTargets(model, { set: 'all', include: /q_proj/ });
    assert.ok(matching.length > 0 && matching.every((t) => /q_proj/.test(t.name)));
    const exclude = selectTargets(model, { set: 'all', exclude: /layers/ });
    assert.ok(exclude.every((t) => !t.name.includes('layers')));
    const matmuls = graph.node.filter((n) => n.opType === 'MatMul');
    const expected = new Set(matmuls.flatMap((n) => [...n.input, ...n.output]).filter((n) => !initializers.has(n)));
    assert.deepEqual(new Set(selectTargets(model, { ops: ['MatMul'] }).map((t) => t.name)), expected);
    const inputs = new Set(matmuls.flatMap((n) => n.input).filter((n) => !initializers.has(n)));
    assert.deepEqual(new Set(selectTargets(model, { inputsOf: ['MatMul'] }).map((t) => t.name)), inputs);
    const one = selectTargets(model, { names: ['/model/norm/Mul_1_output_0'] });
    assert.deepEqual(one.map((t) => [t.name, t.producer?.opType]), [['/model/norm/Mul_1_output_0', 'Mul']]);
    assert.throws(() => selectTargets(model, { names: ['nope'] }), (e: Error) => e instanceof ModelError && /no tensor 'nope'/.test(e.message));
  });
});

describe('collection', () => {
  it('streams tiny-llama batches and agrees with the captured tensors', async () => {
    const model = loadModel(TINY_LLAMA);
    const batches = [llamaFeeds(2, 16, 1), llamaFeeds(2, 16, 2)];
    const progress: number[] = [];
    const stats = await collectStatistics(model, memorySet(batches, 'tokens'), { targets: 'all', onProgress: (p) => progress.push(p.samples) });
    assert.deepEqual(progress, [2, 4]);
    assert.equal(stats.samples, 4);
    assert.equal(stats.tokens, 64);
    assert.ok(stats.tensors.length > 200);
    assert.ok(stats.skipped.some((s) => s.name === '/model/Shape_output_0' && /int64/.test(s.reason)), 'non-float outputs are skipped');

    const name = '/model/layers.1/mlp/down_proj/MatMul_output_0';
    const values = await Promise.all(batches.map(async (f) => (await captureTensors(model, [name], f))[name].data as Float32Array));
    const all = Float32Array.from([...values[0], ...values[1]]);
    const expected = bruteForce(all);
    const record = stats.tensors.find((t) => t.name === name)!;
    assert.deepEqual(record.shape, [2, 16, 128]);
    assert.equal(record.producer?.opType, 'MatMul');
    assert.equal(record.stats.count, all.length);
    assert.equal(record.stats.min, expected.min);
    assert.equal(record.stats.max, expected.max);
    assertClose(record.stats.mean, expected.mean, 1e-9, 'mean');
    assertClose(record.stats.std, expected.std, 1e-9, 'std');
    assert.equal(record.stats.channelAbsMax.length, 128);
    assert.equal(Math.max(...record.stats.channelAbsMax), record.stats.absMax);

    // Statistics computed on the calling thread and spread over worker threads are the same, bit for bit.
    const [inline, spread] = await Promise.all([0, 3].map((workers) => collectStatistics(model, memorySet(batches, 'tokens'), { targets: 'all', workers })));
    assert.deepEqual([inline.observerWorkers, spread.observerWorkers], [0, 3]);
    assert.deepEqual(spread.tensors, inline.tensors);
    assert.deepEqual(spread.tensors, stats.tensors);
  });

  it('names the first tensor in topological order and the sample when the model makes NaN or -Infinity', async () => {
    const path = join(dir, 'log.onnx');
    logModel(path);
    const model = loadModel(path);
    const good = rowsOf([[20, 30], [40, 50]]);
    // Sample 3 (the second row of the second batch) reaches Log(-5).
    const set = memorySet([good, rowsOf([[30, 30], [5, 30]])]);
    const onlyMul = { set: 'all', include: /^a_doubled$/ } as const;
    for (const [targets, workers] of [['all', 0], ['all', 2], [onlyMul, 0], [onlyMul, 2]] as const) {
      // With only the Mul output observed, the collector re-runs the batch to find where the NaN starts.
      await assert.rejects(collectStatistics(model, set, { workers, targets }), (e: unknown) => {
        assert.ok(e instanceof NonFiniteError, String(e));
        assert.equal(e.tensor, 'z_log');
        assert.equal(e.value, 'NaN');
        assert.deepEqual(e.samples, [3, 3]);
        assert.equal(e.producer?.opType, 'Log');
        assert.match(e.message, /NaN first appears in tensor 'z_log', output of node 'log' \(Log\), for calibration sample 3$/);
        return true;
      });
    }
    await assert.rejects(collectStatistics(model, memorySet([rowsOf([[10, 30]])]), { targets: 'all' }), /-Infinity first appears in tensor 'z_log'.* sample 0$/);
    const fine = await collectStatistics(model, memorySet([good]), { targets: 'all' });
    assert.deepEqual(fine.tensors.map((t) => t.name), ['shifted', 'z_log', 'a_doubled']);
  });

  it('a failing statistics worker fails the run with its message; closing with a batch in flight leaves nothing unhandled', async () => {
    const sink = await openObserverSink(resolveStatsOptions(), 2);
    try {
      // 10 values cannot be rows of 3 channels: the worker's observer throws.
      const bad = () => [{ tensor: 0, data: new Float32Array(10), channels: 3 }];
      await assert.rejects(
        (async () => {
          for (let batch = 0; batch < 3; batch++) await sink.submit(batch, bad());
          await sink.drain();
        })(),
        /a statistics worker failed: a chunk of 10 values cannot have 3 channels/,
      );
    } finally {
      await sink.close();
    }
    // Closed with a batch still being observed (as when a run stops at an error): nothing is left unhandled,
    // neither while closing nor in the moments after, when a terminated worker's events would arrive.
    const unhandled: unknown[] = [];
    const record = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', record);
    process.on('uncaughtException', record);
    try {
      const busy = await openObserverSink(resolveStatsOptions(), 1);
      await busy.submit(0, [{ tensor: 0, data: new Float32Array(1 << 20), channels: 4 }]);
      await busy.close();
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      process.off('unhandledRejection', record);
      process.off('uncaughtException', record);
    }
    assert.deepEqual(unhandled, [], 'nothing unhandled after closing with a batch in flight');
  });

  it('peak memory does not grow with the number of samples (10x the samples, peak within 10%)', (t) => {
    // Each run is its own process, so its peak resident size is its own; the set makes feeds as it goes. What is
    // not under test is held still, so that resident size follows live memory rather than collector and allocator
    // timing (without this the peak varies by 15% from run to run): the set runs the garbage collector before each
    // batch, and glibc's mmap threshold is fixed so freed activation buffers go back to the system at once. A
    // collector that kept anything per batch would still grow with the samples.
    const code = `
      import { Tensor } from 'onnxruntime-node';
      import { collectStatistics } from ${JSON.stringify(new URL('../src/calibration/collect.js', import.meta.url).href)};
      import { loadModel } from ${JSON.stringify(new URL('../src/onnx/model.js', import.meta.url).href)};
      const [batches, rows, sequence] = process.argv.slice(1).map(Number);
      const feeds = (k) => {
        const n = rows * sequence;
        const f = {
          input_ids: new Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt((i * 7 + k * 13) % 256)), [rows, sequence]),
          attention_mask: new Tensor('int64', new BigInt64Array(n).fill(1n), [rows, sequence]),
          position_ids: new Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(i % sequence)), [rows, sequence]),
        };
        for (let l = 0; l < 4; l++) for (const kv of ['key', 'value']) f['past_key_values.' + l + '.' + kv] = new Tensor('float32', new Float32Array(0), [rows, 2, 0, 32]);
        return f;
      };
      const set = { source: 'generated', kind: 'tokens', sampleCount: batches * rows, tokenCount: batches * rows * sequence,
        async *batches() { for (let k = 0; k < batches; k++) { globalThis.gc(); yield feeds(k); } } };
      const stats = await collectStatistics(loadModel(${JSON.stringify(TINY_LLAMA)}), set, { targets: 'all' });
      process.stdout.write(JSON.stringify({ samples: stats.samples, peak: process.resourceUsage().maxRSS * 1024 }));
    `;
    const peakOf = (batches: number) => {
      const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', code, String(batches), '2', '64'], {
        cwd: REPO,
        env: { ...process.env, MALLOC_MMAP_THRESHOLD_: '65536' },
        encoding: 'utf8',
        timeout: 300_000,
      });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as { samples: number; peak: number };
    };
    const few = peakOf(4);
    const many = peakOf(40);
    assert.equal(many.samples, 10 * few.samples);
    const mib = (b: number) => (b / 2 ** 20).toFixed(1);
    t.diagnostic(`peak resident memory: ${mib(few.peak)} MiB for ${few.samples} samples, ${mib(many.peak)} MiB for ${many.samples}`);
    assert.ok(many.peak <= few.peak * 1.1, `peak ${mib(many.peak)} MiB for ${many.samples} samples vs ${mib(few.peak)} MiB for ${few.samples}`);
  });
});

describe('statistics file', () => {
  it('round-trips exactly, and refuses a damaged binary or another model', async () => {
    const modelPath = join(dir, 'log-stats.onnx');
    logModel(modelPath);
    const rand = mulberry32(81);
    const batches = Array.from({ length: 3 }, () => rowsOf(Array.from({ length: 50 }, () => [11 + 100 * rand(), 10.5 + rand()])));
    const statistics: ActivationStatistics = await collectStatistics(loadModel(modelPath), memorySet(batches), { targets: 'all' });
    const out = join(dir, 'stats.json');
    const written = writeStatsFile(out, statistics, { modelPath, calibration: { batchSize: 50, seed: 3 } });
    assert.equal(written.binary, join(dir, 'stats.bin'));
    assert.ok(!existsSync(`${out}.tmp-${process.pid}`), 'no temporary file left');

    const read = readStatsFile(out);
    assert.deepEqual(read.statistics, statistics);
    assert.deepEqual(read.calibration, { batchSize: 50, seed: 3 });
    assert.equal(read.model.bytes, readFileSync(modelPath).length);
    checkModelMatches(read, modelPath);
    assert.throws(() => checkModelMatches(read, TINY_LLAMA), StatsFileError);

    const json = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(json.format, 'onnx-compress.activation-statistics');
    assert.equal(json.version, 1);
    assert.match(json.model.sha256, /^[0-9a-f]{64}$/);
    const first = json.tensors[0];
    assert.equal(first.histogram.bins, 2048);
    assert.equal(typeof first.std, 'number');

    const binary = readFileSync(written.binary);
    binary[first.histogram.countsOffset] ^= 1;
    writeFileSync(written.binary, binary);
    assert.throws(() => readStatsFile(out), (e: Error) => e instanceof StatsFileError && /does not match/.test(e.message));
    assert.throws(() => readStatsFile(join(dir, 'missing.json')), /no such file/);
  });
});

describe('calibrate command', () => {
  it('calibrates tiny-llama on a shipped set: report, statistics file, progress on stderr only', () => {
    const out = join(dir, 'cli-stats.json');
    const args = ['calibrate', TINY_LLAMA, '--data', join(REPO, 'calibration-sets/prose'), '--out', out, '--samples', '4', '--seq-len', '32', '--batch', '2'];
    const json = cli(...args, '--json');
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.stderr, '', 'no progress with --json');
    const report = JSON.parse(json.stdout);
    assert.equal(report.samples, 4);
    assert.equal(report.tokens, 128);
    assert.equal(report.batches, 2);
    assert.equal(report.tensors, 33, 'by default, the activation inputs of the MatMuls');
    assert.equal(report.largestRanges.length, 10);
    assert.equal(report.observerWorkers, Math.max(0, Math.min(4, cpus().length - 1)), 'the default worker count');
    const file = readStatsFile(out);
    checkModelMatches(file, TINY_LLAMA);
    assert.deepEqual(file.calibration, { samples: 4, sequenceLength: 32, batchSize: 2 });
    assert.equal(file.statistics.tensors.length, report.tensors);

    const text = cli(...args, '--targets', 'all', '--include', 'MatMul', '--workers', '0');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /statistics on the main thread/);
    assert.match(text.stdout, /^calibrated .*model\.onnx on .*prose.* \(text\)$/m);
    assert.match(text.stdout, /largest ranges:/);
    assert.match(text.stdout, /most outliers/);
    assert.match(text.stderr, /^calibrating: 4\/4 samples/m, 'a plain progress line when stderr is not a terminal');
    const matching = readStatsFile(out).statistics.tensors;
    assert.ok(matching.length > 33 && matching.every((t) => /MatMul/.test(t.name)), 'MatMul outputs too');

    assert.match(oneLineError(cli(...args, '--batch', '0')), /--batch must be a whole number >= 1/);
    assert.match(oneLineError(cli(...args, '--include', '(')), /--include is not a regular expression/);
    assert.match(oneLineError(cli(...args, '--targets', 'MatMul')), /--targets takes 'inputs' or 'all', got 'MatMul'/);
    assert.match(oneLineError(cli(...args, '--workers', '-1')), /--workers must be a whole number, got '-1'/);
  });
});
