// The quantization pass (src/quantization/pipeline.ts) and its parts: activation ranges from statistics for each
// clipping method, transformers.js output names, the pass on tiny-llama (static w8a8 calibrated on a small prose
// set, w4 without data, statistics reloaded from a file, external data kept), and verification that refuses a
// broken model without leaving a file behind. Figures are checked for shape and sanity, not exact values: the
// sample model's weights are retrained from time to time.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { collectStatistics } from '../src/calibration/collect.js';
import { openCalibrationSet } from '../src/calibration/data/index.js';
import { Chunk } from '../src/calibration/observers/chunk.js';
import { absPercentile } from '../src/calibration/observers/histogram.js';
import { observe } from '../src/calibration/observers/observer.js';
import { tensorStatsObserver } from '../src/calibration/observers/tensor-stats.js';
import { writeStatsFile } from '../src/calibration/stats-file.js';
import { loadModel } from '../src/onnx/model.js';
import { saveModel } from '../src/onnx/save.js';
import { huggingFaceFolder, outputFileName, resolveOutput } from '../src/quantization/output-names.js';
import { quantizePass, type QuantizationRunReport } from '../src/quantization/pipeline.js';
import { activationRanges, rangeFromStats } from '../src/quantization/ranges.js';
import { QuantizationError, resolveScheme } from '../src/quantization/schemes.js';
import { VerificationError } from '../src/quantization/verify.js';
import { Session } from '../src/runtime/session.js';
import { mulberry32 } from './support/prng.js';

const TINY = 'models/tiny-llama/onnx/model.onnx';
const PROSE = 'calibration-sets/prose';
const dir = mkdtempSync(join(tmpdir(), 'quant-pipeline-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Statistics of known values: a heavy-tailed signed tensor and a non-negative one. */
function statsOf(values: Float32Array) {
  return observe(tensorStatsObserver(), [new Chunk(values.subarray(0, values.length / 2)), new Chunk(values.subarray(values.length / 2))]);
}

function sampleValues(n: number, positive: boolean): Float32Array {
  const random = mulberry32(7);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = random();
    // A normal body with a few large outliers, as activations have.
    const x = Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * random()) * (i % 997 === 0 ? 40 : 1);
    out[i] = positive ? Math.abs(x) : x;
  }
  return out;
}

function assertSensibleReport(r: QuantizationRunReport): void {
  assert.equal(r.format, 'onnx-compress.quantization-report');
  assert.ok(r.nodes.quantized > 0);
  assert.ok(r.nodes.list.every((n) => Number.isFinite(n.sqnrDb) && n.sqnrDb > 10), 'every weight keeps > 10 dB SQNR');
  assert.ok(r.weights.bytesAfter < r.weights.bytesBefore);
  assert.ok(r.files.bytesAfter < r.files.bytesBefore && r.files.ratio < 1);
  assert.ok(existsSync(r.output.path));
  assert.match(r.engine.version, /^\d+\.\d+/);
  assert.equal(r.engine.executionProvider, 'cpu');
  const v = r.verification;
  assert.equal(v.passed, true);
  assert.ok(v.outputs.length > 0 && v.outputs.some((o) => o.output === 'logits'));
  for (const o of v.outputs) {
    assert.ok(o.elements > 0);
    assert.ok(Number.isFinite(o.maxAbsDiff) && o.maxAbsDiff >= 0);
    assert.ok(o.cosine > 0.8 && o.cosine <= 1, `${o.output} cosine ${o.cosine}`);
  }
  const lm = v.languageModel!;
  assert.ok(lm, 'a decoder gets language-model figures');
  assert.ok(lm.tokens > 0);
  assert.ok(lm.top1Agreement >= 0 && lm.top1Agreement <= 1);
  assert.ok(lm.kl.mean >= 0 && lm.kl.mean <= lm.kl.p95 + 1e-12 && lm.kl.p95 <= lm.kl.max && Number.isFinite(lm.kl.max));
  assert.ok(lm.perplexity.original > 1 && lm.perplexity.quantized > 1);
  assert.ok(r.timing.totalSeconds >= r.timing.verifySeconds);
}

describe('activation ranges from statistics', () => {
  const signed = statsOf(sampleValues(40_000, false));
  const positive = statsOf(sampleValues(40_000, true));

  it('minmax is the observed range', () => {
    assert.deepEqual(rangeFromStats(signed, { method: 'minmax' }), [signed.min, signed.max]);
  });

  it('percentile bounds both sides by |x| at the percentile, within the observed range', () => {
    for (const p of [99.9, 99.99, 99.999]) {
      const bound = signed.absPercentiles.find((e) => e.percentile === p)!.value;
      assert.deepEqual(rangeFromStats(signed, { method: 'percentile', percentile: p }), [Math.max(signed.min, -bound), Math.min(signed.max, bound)]);
      const [lo, hi] = rangeFromStats(positive, { method: 'percentile', percentile: p });
      assert.equal(lo, positive.min, 'a non-negative tensor keeps its minimum');
      assert.ok(hi <= positive.max && hi > 0);
    }
    const narrow = rangeFromStats(signed, { method: 'percentile', percentile: 99.9 });
    const wide = rangeFromStats(signed, { method: 'percentile', percentile: 99.999 });
    assert.ok(narrow[1] - narrow[0] < signed.max - signed.min, '99.9 clips the outliers');
    assert.ok(narrow[1] <= wide[1] && narrow[0] >= wide[0]);
    // Percentiles the statistics did not record are read from the histogram.
    const q = absPercentile(signed.histogram, 99.5, signed.absMax);
    assert.deepEqual(rangeFromStats(signed, { method: 'percentile', percentile: 99.5 }), [Math.max(signed.min, -q), Math.min(signed.max, q)]);
    assert.deepEqual(rangeFromStats(signed, { method: 'percentile' }), rangeFromStats(signed, { method: 'percentile', percentile: 99.99 }), 'default 99.99');
  });

  it('entropy is the KL-optimal window the statistics hold', () => {
    assert.deepEqual(rangeFromStats(signed, { method: 'entropy' }), [signed.entropy.low, signed.entropy.high]);
    const [lo, hi] = rangeFromStats(signed, { method: 'entropy' });
    assert.ok(lo >= signed.min && hi <= signed.max && lo < 0 && hi > 0);
  });

  it('builds the name -> range map, reports clipping and skips what it cannot range', () => {
    const records = [
      { name: 'a', dtype: 'float32' as const, shape: [1], stats: signed },
      { name: 'b', dtype: 'float32' as const, shape: [1], stats: positive },
    ];
    const set = activationRanges(records, { method: 'percentile', percentile: 99.9 }, ['a', 'b', 'missing']);
    assert.equal(set.percentile, 99.9);
    assert.deepEqual([...set.ranges.keys()], ['a', 'b']);
    assert.deepEqual(set.ranges.get('a'), rangeFromStats(signed, { method: 'percentile', percentile: 99.9 }));
    assert.ok(set.entries[0].clipped > 0 && set.entries[0].clipped < 1);
    assert.deepEqual(set.skipped, [{ tensor: 'missing', reason: 'not in the calibration statistics' }]);
    assert.ok(activationRanges(records, { method: 'minmax' }).entries.every((e) => e.clipped === 0));
  });

  it('refuses bad clipping options', () => {
    assert.throws(() => rangeFromStats(signed, { method: 'mse' as 'minmax' }), /unknown clipping method 'mse' \(known: minmax, percentile, entropy\)/);
    assert.throws(() => rangeFromStats(signed, { method: 'percentile', percentile: 0 }), /\(0, 100\]/);
    assert.throws(() => rangeFromStats(signed, { method: 'entropy', percentile: 99 }), /applies to the 'percentile'/);
  });
});

describe('output names', () => {
  const hf = join(dir, 'hf-names');
  mkdirSync(join(hf, 'onnx'), { recursive: true });
  writeFileSync(join(hf, 'config.json'), '{}');
  const model = join(hf, 'onnx', 'model.onnx');

  it('gives transformers.js names inside a Hugging Face folder', () => {
    assert.deepEqual(huggingFaceFolder(model), { root: hf, onnxDir: join(hf, 'onnx'), config: join(hf, 'config.json') });
    assert.equal(huggingFaceFolder(join(dir, 'loose.onnx')), null);
    assert.equal(huggingFaceFolder(TINY)?.root, resolve('models/tiny-llama'), 'the sample models are Hugging Face folders');
    const name = (scheme: string, options = {}) => outputFileName(model, resolveScheme(scheme, options)).name;
    assert.equal(name('w8'), 'model_quantized.onnx');
    assert.equal(name('w4'), 'model_q4.onnx');
    assert.equal(name('w8a8'), 'model_uint8.onnx');
    assert.equal(name('w8a8', { activationType: 'int8' }), 'model_int8.onnx');
    assert.equal(name('w4', { blockSize: 64 }), 'model_w4.onnx');
    assert.equal(name('w4', { symmetric: false }), 'model_w4.onnx');
    assert.equal(name('w4a8'), 'model_w4a8.onnx');
    assert.equal(name('w4-qdq'), 'model_w4-qdq.onnx');
    assert.equal(outputFileName(join(hf, 'onnx', 'decoder_model_merged.onnx'), resolveScheme('w4')).name, 'decoder_model_merged_q4.onnx');
    assert.deepEqual(outputFileName(model, resolveScheme('w4a8')), { name: 'model_w4a8.onnx', naming: 'onnx-compress' }, 'no transformers.js dtype: a name of ours');
  });

  it('resolves the output: a folder (onnx/ inside a root) for any input, a file, or a clear refusal', () => {
    const w4 = resolveScheme('w4');
    const folder = (root: string) => ({ root, onnxDir: join(root, 'onnx') });
    assert.deepEqual(resolveOutput(model, join(hf, 'onnx'), w4), { path: join(hf, 'onnx', 'model_q4.onnx'), naming: 'transformers.js', dtype: 'q4', folder: folder(hf) });
    assert.deepEqual(resolveOutput(model, hf, w4), { path: join(hf, 'onnx', 'model_q4.onnx'), naming: 'transformers.js', dtype: 'q4', folder: folder(hf) });
    const fresh = join(dir, 'new-folder');
    assert.deepEqual(resolveOutput(model, fresh + '/', w4), { path: join(fresh, 'onnx', 'model_q4.onnx'), naming: 'transformers.js', dtype: 'q4', folder: folder(fresh) });
    assert.deepEqual(resolveOutput(model, join(dir, 'x.onnx'), w4), { path: join(dir, 'x.onnx'), naming: 'path', folder: null });
    // A plain input file gets transformers.js's default stem in a folder.
    assert.equal(resolveOutput(TINY, dir, w4).path, join(dir, 'onnx', 'model_q4.onnx'));
    assert.equal(resolveOutput(TINY, dir, undefined).path, join(dir, 'onnx', 'model_compressed.onnx'));
    assert.throws(() => resolveOutput(TINY, join(dir, 'x.bin'), w4), /should end in .onnx/);
  });
});

describe('quantizePass on tiny-llama', () => {
  it('w8a8: calibrates on prose, writes, verifies and reports', async () => {
    const out = join(dir, 'w8a8.onnx');
    const r = await quantizePass(TINY, 'w8a8', {
      out,
      calibration: { data: PROSE, options: { samples: 4, sequenceLength: 64 } },
      clip: { method: 'percentile', percentile: 99.99 },
    });
    assertSensibleReport(r);
    assert.equal(r.calibration?.from, 'data');
    assert.equal(r.calibration?.samples, 4);
    assert.equal(r.calibration?.tokens, 4 * 64);
    assert.equal(r.activations?.method, 'percentile');
    assert.equal(r.activations?.percentile, 99.99);
    const used = new Set(r.nodes.list.map((n) => n.activation).filter(Boolean));
    assert.ok(used.size > 0);
    assert.deepEqual(new Set(r.activations!.ranges.map((e) => e.tensor)), used, 'a range for every quantized activation, and only those');
    for (const e of r.activations!.ranges) assert.ok(e.range[0] >= e.observed[0] && e.range[1] <= e.observed[1]);
    assert.equal(r.verification.inputs.source, 'held-out', 'the set folder has an evaluation split: verification runs there');
    assert.match(r.verification.inputs.description, /prose\/evaluation\.jsonl$/);
    assert.ok(r.opsetChanges.length === 0 || r.opsetChanges.every((c) => c.to >= (c.from ?? 0)));
    assert.ok(r.verification.outputs.every((o) => o.cosine > 0.99), 'static int8 stays close');
    // The output really is what was verified: it loads and runs as a plain file.
    const s = await Session.create(out);
    assert.ok(s.outputNames.includes('logits'));
    await s.dispose();
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.onnx-compress-')), [], 'no staging folder left');
  });

  it('w4 without data verifies on generated tokens', async () => {
    const r = await quantizePass(TINY, 'w4', { out: join(dir, 'w4.onnx') });
    assertSensibleReport(r);
    assert.equal(r.calibration, null);
    assert.equal(r.activations, null);
    assert.equal(r.verification.inputs.source, 'generated');
    assert.ok(r.nodes.list.every((n) => (n.as === 'MatMulNBits' || n.as === 'GatherBlockQuantized') && n.blockSize === 32));
    assert.deepEqual(r.opsetChanges, [{ domain: 'com.microsoft', to: 1 }]);
    assert.ok(r.weights.ratio < 0.2);
  });

  it('w8a8 from a statistics file, entropy clipping; a file of another model is refused', async () => {
    const model = loadModel(TINY);
    const set = await openCalibrationSet(PROSE, model, { samples: 2, sequenceLength: 64 });
    const stats = join(dir, 'stats.json');
    writeStatsFile(stats, await collectStatistics(model, set, { targets: { inputsOf: ['MatMul'] } }), { modelPath: TINY, calibration: { samples: 2, sequenceLength: 64 } });
    const r = await quantizePass(TINY, 'w8a8', { out: join(dir, 'w8a8-entropy.onnx'), stats, clip: { method: 'entropy' } });
    assertSensibleReport(r);
    assert.equal(r.calibration?.from, 'stats');
    assert.equal(r.verification.inputs.source, 'calibration', "the statistics' own set gives the verification batch");
    assert.ok(r.activations!.ranges.length > 0);

    const other = join(dir, 'other.onnx');
    copyFileSync('/usr/share/libonnx-testdata/data/pytorch-converted/test_Conv2d/model.onnx', other);
    await assert.rejects(quantizePass(other, 'w8a8', { out: join(dir, 'conv.onnx'), stats }), /stats.json: collected on models\/tiny-llama\/onnx\/model.onnx .*not on/);
  });

  it('keeps external data when the input has it', async () => {
    const src = join(dir, 'external');
    mkdirSync(src);
    saveModel(loadModel(TINY), join(src, 'model.onnx'), { externalData: true });
    copyFileSync('models/tiny-llama/config.json', join(src, 'config.json'));
    const out = join(dir, 'external-w4.onnx');
    const r = await quantizePass(join(src, 'model.onnx'), 'w4', { out });
    assert.ok(r.model.externalData);
    assert.equal(r.output.externalData?.path, `${out}_data`);
    assert.ok(existsSync(`${out}_data`));
    assert.equal(r.files.bytesAfter, r.output.bytes);
    const s = await Session.create(out);
    await s.dispose();
  });

  it('refuses bad input before doing any work', async () => {
    const out = join(dir, 'never.onnx');
    await assert.rejects(quantizePass(TINY, 'w8a8', { out }), /needs calibration: give --calib SET .* or --stats FILE/);
    await assert.rejects(quantizePass(TINY, 'w3', { out }), (e) => e instanceof QuantizationError && /unknown quantization scheme 'w3' \(known: w8a8, w8, w4, w4a8, w4-qdq, fp16\)/.test(e.message));
    await assert.rejects(quantizePass(TINY, 'w4', { out: TINY }), /is the input model .*refusing to overwrite the input/);
    await assert.rejects(quantizePass(TINY, 'w4', { out, clip: { method: 'entropy' } }), /--clip: scheme w4 quantizes weights only/);
    await assert.rejects(quantizePass(join(dir, 'w4.onnx'), 'w8', { out }), /already quantized/);
    assert.ok(!existsSync(out));
  });

  it('a model that fails verification is not left at the output', async () => {
    const out = join(dir, 'broken.onnx');
    // A writer that produced an op ONNX Runtime does not know.
    await assert.rejects(
      quantizePass(TINY, 'w4', {
        out,
        transform: (m) => {
          m.proto.graph!.node = m.graph.node.map((n) => (n.opType === 'MatMulNBits' ? { ...n, domain: 'com.example', opType: 'NoSuchOp' } : n));
          return m;
        },
      }),
      (e) => e instanceof VerificationError && /broken.onnx: ONNX Runtime cannot load it/.test(e.message),
    );
    assert.ok(!existsSync(out));
    // A model that runs but moved further than the caller allows.
    await assert.rejects(
      quantizePass(TINY, 'w4-qdq', { out, bits: 2, verify: { minCosine: 0.999 } }),
      (e) => e instanceof VerificationError && /failed verification .* cosine similarity .* below the minimum 0.999/.test(e.message) && e.figures !== undefined,
    );
    assert.ok(!existsSync(out));
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.onnx-compress-') || f.startsWith('broken')), [], 'no staging files left');
  });
});
