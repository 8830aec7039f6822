// `optimize` (src/optimize/): decoders rewritten onto ONNX Runtime's fused kernels must decode exactly as the
// originals do — greedy tokens with and without the KV cache, perplexity, logits at every position, batches —
// checked against the original model in ONNX Runtime (the oracle), on both sample decoders, float and w4a8
// (MatMulNBits); anything else is refused with one clear line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { evaluateModel } from '../src/decoding/evaluate.js';
import { generate } from '../src/decoding/generate.js';
import { OnnxCompressError } from '../src/errors.js';
import { loadModel, type OnnxModel } from '../src/onnx/model.js';
import { compareLogits, logitsTolerance } from '../src/optimize/check.js';
import { floatAttr } from '../src/onnx/attributes.js';
import { OnnxModel as Model } from '../src/onnx/model.js';
import { optimizedMarker } from '../src/optimize/marker.js';
import { optimizeDecoder } from '../src/optimize/optimize.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { cli, oneLineError } from './support/cli.js';
import { TESTDATA_ROOT } from './support/testdata.js';

const dir = mkdtempSync(join(tmpdir(), 'onnx-compress-optimize-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const SESSION = { intraOpThreads: 1 };
const BOS = 256;
const bytes = (text: string) => [BOS, ...Buffer.from(text, 'utf8')];
const PROMPT = bytes('Call me Ishmael. Some years ago');
const SAMPLES = { 'tiny-llama': 'models/tiny-llama/onnx/model.onnx', 'tiny-gpt2': 'models/tiny-gpt2/onnx/model.onnx' } as const;

async function greedy(model: OnnxModel, prompts: number[][], useCache: boolean): Promise<number[][]> {
  const d = await DecoderSession.open(model, { ...SESSION, useCache });
  try {
    return (await generate(d, prompts, { maxNewTokens: 24, stopTokens: [] })).tokens;
  } finally {
    await d.dispose();
  }
}

/** Largest |difference| of the two models' logits at every position of `ids`, relative to the largest |logit|. */
async function logitsGap(a: OnnxModel, b: OnnxModel, ids: number[]): Promise<number> {
  const [da, db] = [await DecoderSession.open(a, SESSION), await DecoderSession.open(b, SESSION)];
  try {
    const [x, y] = [(await da.logitsOf([ids])).data, (await db.logitsOf([ids])).data];
    assert.equal(x.length, y.length);
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < x.length; i++) {
      diff = Math.max(diff, Math.abs(x[i] - y[i]));
      scale = Math.max(scale, Math.abs(x[i]));
    }
    return diff / scale;
  } finally {
    await da.dispose();
    await db.dispose();
  }
}

async function perplexityOf(model: OnnxModel): Promise<number> {
  const r = await evaluateModel(model, { data: 'prose', maxTokens: 1500, window: 128, stride: 64, threads: 1 });
  return r.candidate!.perplexity!.perplexity;
}

const variants: { name: string; load: () => Promise<OnnxModel> }[] = [];
for (const [name, path] of Object.entries(SAMPLES)) {
  variants.push({ name, load: async () => loadModel(path) });
  variants.push({
    name: `${name} w4a8`,
    load: async () => {
      const out = join(dir, `${name}-w4a8.onnx`);
      await quantizePass(path, 'w4a8', { out, session: SESSION });
      return loadModel(out);
    },
  });
}

for (const v of variants) {
  test(`optimize ${v.name}: fused attention and norms, same tokens, logits and perplexity as the original`, async () => {
    const original = await v.load();
    const { model, report } = await optimizeDecoder(original, { session: SESSION });
    const layers = report.layers;
    assert.equal(report.fusions.GroupQueryAttention, layers, 'every layer attention fused');
    assert.ok((report.fusions.SkipSimplifiedLayerNormalization ?? report.fusions.SkipLayerNormalization ?? 0) >= 2 * layers, 'residual adds fused into the norms');
    assert.equal((report.fusions.QuickGelu ?? 0) + (report.fusions.FastGelu ?? 0), layers, 'every MLP activation fused');
    assert.deepEqual(report.kept, []);
    assert.ok(report.nodes.after < report.nodes.before / 2, `${report.nodes.before} -> ${report.nodes.after} nodes`);
    assert.deepEqual(optimizedMarker(model)?.paddedBatches, false);
    // The interface is the original's, name for name.
    const names = (m: OnnxModel, side: 'input' | 'output') => m.graph[side].map((x) => x.name).sort();
    assert.deepEqual(names(model, 'input'), names(original, 'input'));
    assert.deepEqual(names(model, 'output'), names(original, 'output'));

    const tolerance = logitsTolerance(original);
    const gap = await logitsGap(original, model, bytes('It is a truth universally acknowledged, that a single man in possession'));
    assert.ok(gap <= tolerance, `logits differ by ${gap} of the largest logit (tolerance ${tolerance})`);

    for (const useCache of [true, false]) {
      assert.deepEqual(await greedy(model, [PROMPT], useCache), await greedy(original, [PROMPT], useCache), `greedy tokens, cache ${useCache}`);
    }
    const [p0, p1] = [await perplexityOf(original), await perplexityOf(model)];
    // Float graphs agree to float rounding; w4a8 rounds activations to int8, where a float-level change flips a few roundings.
    const pplTolerance = tolerance === 1e-4 ? 1e-4 : 1e-3;
    assert.ok(Math.abs(p1 - p0) / p0 <= pplTolerance, `perplexity ${p0} -> ${p1}`);
  });
}

test('optimize: a batch of equal-length prompts decodes as each prompt alone; a padded batch is refused, naming the model', async () => {
  const original = loadModel(SAMPLES['tiny-llama']);
  const { model } = await optimizeDecoder(original, { session: SESSION });
  const second = bytes('The whale, the sea, the ship and the long night').slice(0, PROMPT.length);
  assert.equal(second.length, PROMPT.length);
  const batch = await greedy(model, [PROMPT, second], true);
  assert.deepEqual(batch, [...(await greedy(original, [PROMPT], true)), ...(await greedy(original, [second], true))]);
  await assert.rejects(greedy(model, [PROMPT, PROMPT.slice(0, 5)], true), (e: Error) => e instanceof OnnxCompressError && e.code === 'bad-option' && /padding/.test(e.message) && e.message.includes(model.source));
});

test('optimize: separate q/k/v projections are packed into one product, or left apart on request, with the same logits', async () => {
  const original = loadModel(SAMPLES['tiny-llama']);
  const packed = await optimizeDecoder(original, { session: SESSION });
  const apart = await optimizeDecoder(original, { session: SESSION, packQkv: false });
  assert.equal(packed.report.fusions.PackedQKV, packed.report.layers);
  assert.equal(apart.report.fusions.PackedQKV, undefined);
  assert.equal(apart.report.nodes.after - packed.report.nodes.after, 2 * packed.report.layers, 'three products per layer become one');
  assert.ok((await logitsGap(original, apart.model, PROMPT)) <= 1e-4);
});

test('optimize: a model that is not a decoder, or one already optimized, is refused with one line', async () => {
  const relu = `${TESTDATA_ROOT}/node/test_relu/model.onnx`;
  await assert.rejects(optimizeDecoder(loadModel(relu)), (e: Error) => e instanceof OnnxCompressError && e.code === 'bad-model' && !e.message.includes('\n'));
  const { model } = await optimizeDecoder(loadModel(SAMPLES['tiny-gpt2']), { session: SESSION });
  await assert.rejects(optimizeDecoder(model), /already optimized/);
  const line = oneLineError(cli('optimize', relu, '--out', join(dir, 'relu.onnx')));
  assert.match(line, /test_relu/);
});

test('optimize command: writes a verified model that records it is optimized, and reports the fusions', () => {
  const out = join(dir, 'cli', 'tiny-llama-optimized.onnx');
  const r = cli('optimize', SAMPLES['tiny-llama'], '--out', out, '--json', '--threads', '1');
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.optimize.fusions.GroupQueryAttention, 4);
  assert.ok(report.optimize.nodes.after < report.optimize.nodes.before);
  assert.ok(report.run.verification.worst.cosine > 0.9999);
  const written = loadModel(out);
  assert.ok(optimizedMarker(written));
  assert.ok(written.graph.node.some((n) => n.opType === 'GroupQueryAttention' && n.domain === 'com.microsoft'));
});

test("optimize's logits check refuses a fused graph that computes something else (attention scaled wrongly)", async () => {
  const original = loadModel(SAMPLES['tiny-llama']);
  const { model } = await optimizeDecoder(original, { session: SESSION });
  const graph = model.graph;
  const broken = new Model(
    { ...model.proto, graph: { ...graph, node: graph.node.map((n) => (n.opType === 'GroupQueryAttention' ? { ...n, attribute: [...n.attribute, floatAttr('scale', 0.05)] } : n)) } },
    model.baseDir,
    'broken',
  );
  const good = await compareLogits(original, model, SESSION);
  const bad = await compareLogits(original, broken, SESSION);
  assert.ok(good.passed && good.relative < 1e-5, `fused: ${good.relative}`);
  assert.ok(!bad.passed && bad.relative > 100 * bad.tolerance, `broken: ${bad.relative}`);
});
