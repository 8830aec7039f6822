// Training with the TensorFlow.js interpreter (src/training) and the trained sample models: AdamW, clipping and
// the schedule against hand computations; a few steps on a tiny decoder lower its loss and are reproducible;
// trained weights go back into the same graph; tiny-gpt2 runs the same in ONNX Runtime and the interpreter and
// decodes the same with and without its KV cache; the committed sample models are builder graph + their weights.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { decodeModel, encodeModel } from '../src/onnx/codec.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import { tensorValues } from '../src/onnx/tensor.js';
import type { ModelProto } from '../src/onnx/types.js';
import { committedWeights } from '../src/models/committed.js';
import { buildGpt2, GPT2_DEFAULT_SEED, gpt2Config, gpt2ParameterCount, type Gpt2Config, TINY_GPT2 } from '../src/models/gpt2.js';
import { buildLlama, DEFAULT_SEED, type DecoderConfig, TINY_LLAMA } from '../src/models/llama.js';
import { selectBackend, TfModel } from '../src/runtime/tf/index.js';
import {
  AdamW,
  batchFeeds,
  byteTokens,
  cacheLayout,
  clipGlobalNorm,
  cosineLearningRate,
  type TokenBatch,
  Trainer,
  WindowSampler,
  withWeights,
} from '../src/training/index.js';

const GPT2_DIR = 'models/tiny-gpt2';

/**
 * A model without its initializers and doc string (which says whether the weights are trained), encoded: equal
 * for two models with the same graph, whatever their weights. Compared with assert.ok so a failure stays short.
 */
const nodesOf = (m: ModelProto): string =>
  Buffer.from(encodeModel({ ...m, docString: '', graph: { ...m.graph!, initializer: [] } })).toString('base64');
const sameGraph = (a: ModelProto, b: ModelProto, label: string): void => assert.ok(nodesOf(a) === nodesOf(b), label);

const LLAMA_DIR = 'models/tiny-llama';

describe('AdamW, clipping and the schedule', () => {
  it('AdamW matches a hand computation over two steps, with decay on matrices only', () => {
    const w = { dims: [1, 2], data: Float32Array.from([1, -2]) };
    const bias = { dims: [2], data: Float32Array.from([0.5, 0.25]) };
    const opt = new AdamW(new Map([['w', w], ['b', bias]]), { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 });
    assert.equal(opt.decays('w'), true);
    assert.equal(opt.decays('b'), false);
    const g1 = [0.5, -1];
    const g2 = [0.25, 2];
    const lr1 = 0.1;
    const lr2 = 0.05;
    // Hand computation, element by element (torch.optim.AdamW).
    const expect = (p0: number, decay: boolean, ga: number, gb: number): number => {
      let p = p0 * (decay ? 1 - lr1 * 0.1 : 1);
      let m = 0.1 * ga;
      let v = 0.001 * ga * ga;
      p -= (lr1 * (m / 0.1)) / (Math.sqrt(v / 0.001) + 1e-8);
      p = Math.fround(p) * (decay ? 1 - lr2 * 0.1 : 1);
      m = 0.9 * m + 0.1 * gb;
      v = 0.999 * v + 0.001 * gb * gb;
      p -= (lr2 * (m / (1 - 0.9 ** 2))) / (Math.sqrt(v / (1 - 0.999 ** 2)) + 1e-8);
      return Math.fround(p);
    };
    const want = [expect(1, true, g1[0], g2[0]), expect(-2, true, g1[1], g2[1])];
    const wantBias = [expect(0.5, false, g1[0], g2[0]), expect(0.25, false, g1[1], g2[1])];
    opt.step(new Map([['w', Float32Array.from(g1)], ['b', Float32Array.from(g1)]]), lr1);
    // The first step of Adam moves each element by lr * sign(g) (plus the decay).
    assert.ok(Math.abs(w.data[0] - (1 * 0.99 - 0.1)) < 1e-6);
    opt.step(new Map([['w', Float32Array.from(g2)], ['b', Float32Array.from(g2)]]), lr2);
    assert.equal(opt.steps, 2);
    for (let i = 0; i < 2; i++) {
      assert.ok(Math.abs(w.data[i] - want[i]) < 1e-6, `w[${i}] ${w.data[i]} vs ${want[i]}`);
      assert.ok(Math.abs(bias.data[i] - wantBias[i]) < 1e-6, `b[${i}] ${bias.data[i]} vs ${wantBias[i]}`);
    }
  });

  it('global-norm clipping scales all gradients together and only when over the limit', () => {
    const a = Float32Array.from([3]);
    const b = Float32Array.from([4]);
    assert.equal(clipGlobalNorm([a, b], 1), 5);
    assert.ok(Math.abs(a[0] - 0.6) < 1e-5 && Math.abs(b[0] - 0.8) < 1e-5);
    const c = Float32Array.from([0.3, 0.4]);
    clipGlobalNorm([c], 1);
    assert.deepEqual([...c], [...Float32Array.from([0.3, 0.4])]);
  });

  it('warmup rises linearly to the peak, then the cosine falls to the floor at the last step', () => {
    const s = { peak: 1e-3, warmup: 10, total: 111, floor: 1e-4 };
    assert.ok(Math.abs(cosineLearningRate(s, 0) - 1e-4) < 1e-12);
    assert.ok(Math.abs(cosineLearningRate(s, 9) - 1e-3) < 1e-12);
    assert.ok(Math.abs(cosineLearningRate(s, 10) - 1e-3) < 1e-12);
    assert.ok(Math.abs(cosineLearningRate(s, 60) - 5.5e-4) < 1e-6, 'half way down at the middle of the decay');
    assert.ok(Math.abs(cosineLearningRate(s, 110) - 1e-4) < 1e-12);
    for (let t = 11; t < 111; t++) assert.ok(cosineLearningRate(s, t) <= cosineLearningRate(s, t - 1));
  });
});

// A decoder small enough to train in seconds: the tiny-llama graph at toy sizes.
const TOY: DecoderConfig = { ...TINY_LLAMA, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 1, maxPositionEmbeddings: 64 };
const TOY_GPT2: Gpt2Config = { ...TINY_GPT2, nEmbd: 32, nInner: 64, nLayer: 1, nHead: 2, nPositions: 64 };
const TEXT = 'the cat sat on the mat. the cat sat on the mat. the dog sat on the log. '.repeat(4);

function toyTrainer(proto: ModelProto, seed: number): { trainer: Trainer; sampler: WindowSampler; tf: TfModel } {
  const onnx = new OnnxModel(proto, undefined, 'toy');
  const tf = TfModel.compile(onnx);
  const trainer = new Trainer(tf, onnx, { schedule: { peak: 1e-2, warmup: 2, total: 12 }, optimizer: { weightDecay: 0.1 }, clipNorm: 1 });
  const sampler = new WindowSampler([{ name: 'toy', documents: [byteTokens(TEXT)] }], 32, seed, undefined);
  return { trainer, sampler, tf };
}

describe('training a toy decoder with the interpreter (wasm)', () => {
  before(async () => {
    assert.equal(await selectBackend('wasm'), 'wasm');
  });

  it('a few steps lower the loss on the data, for both architectures', () => {
    for (const proto of [buildLlama(TOY, 7), buildGpt2(TOY_GPT2, 7)]) {
      const { trainer, sampler, tf } = toyTrainer(proto, 1);
      const held: TokenBatch = sampler.next(4);
      const before = trainer.evaluate([held]).bitsPerToken;
      for (let s = 0; s < 12; s++) trainer.train(sampler.next(4));
      const after = trainer.evaluate([held]).bitsPerToken;
      assert.ok(after < before - 1, `${proto.graph!.initializer[0].name}: ${before.toFixed(3)} -> ${after.toFixed(3)} bits`);
      // The interpreter's variables hold the optimizer's values after every step.
      for (const [n, p] of trainer.params) assert.deepEqual(tf.readWeight(n).data, p.data, n);
      tf.dispose();
    }
  });

  it('is reproducible: the same seed and steps give the same weights bit for bit', () => {
    const run = (seed: number): Map<string, Float32Array> => {
      const { trainer, sampler, tf } = toyTrainer(buildLlama(TOY, 3), seed);
      for (let s = 0; s < 4; s++) trainer.train(sampler.next(2));
      const w = new Map([...trainer.weights()].map(([n, v]) => [n, Float32Array.from(v)]));
      tf.dispose();
      return w;
    };
    const [a, b, c] = [run(5), run(5), run(6)];
    for (const [n, v] of a) assert.deepEqual(v, b.get(n), n);
    assert.ok([...a].some(([n, v]) => v.some((x, i) => x !== c.get(n)![i])), 'another data seed gives other weights');
  });

  it('trained weights go back into the same graph: only initializer values change, and ORT runs it', async () => {
    const proto = buildGpt2(TOY_GPT2, 9);
    const { trainer, sampler, tf } = toyTrainer(proto, 2);
    for (let s = 0; s < 2; s++) trainer.train(sampler.next(2));
    const trained = decodeModel(encodeModel(withWeights(proto, trainer.weights())));
    sameGraph(trained, proto, 'same graph after training');
    assert.deepEqual(trained.graph!.initializer.map((t) => [t.name, t.dims]), proto.graph!.initializer.map((t) => [t.name, t.dims]));
    // The builder given the weights makes the same file, but for the doc string that says they are trained.
    const built = buildGpt2(TOY_GPT2, 9, { weights: trainer.weights() });
    assert.match(built.docString ?? '', /trained/);
    assert.equal(Buffer.compare(Buffer.from(encodeModel({ ...built, docString: proto.docString })), Buffer.from(encodeModel(trained))), 0);
    const session = await ort.InferenceSession.create(encodeModel(trained));
    const b = sampler.next(1);
    const feeds = batchFeeds(cacheLayout(new OnnxModel(trained, undefined, 'toy')), b);
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [n, v] of Object.entries(feeds)) ortFeeds[n] = new ort.Tensor(v.data instanceof BigInt64Array ? 'int64' : 'float32', v.data as Float32Array, v.dims);
    const got = (await session.run(ortFeeds)).logits.data as Float32Array;
    const want = tf.run(feeds, ['logits']).logits.data as Float32Array;
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    assert.ok(worst < 1e-3, `max |ORT - interpreter| ${worst}`);
    await session.release();
    tf.dispose();
  });
});

// --- the shipped tiny-gpt2 --------------------------------------------------------------------------------

const HAVE_GPT2 = existsSync(`${GPT2_DIR}/onnx/model.onnx`);
const C = TINY_GPT2;
const HD = C.nEmbd / C.nHead;

function decoderFeeds(ids: number[], past: Record<string, ort.Tensor> | undefined, pastLength: number): Record<string, ort.Tensor> {
  const total = pastLength + ids.length;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map((_, j) => BigInt(pastLength + j))), [1, ids.length]),
  };
  for (let i = 0; i < C.nLayer; i++) {
    for (const kind of ['key', 'value']) {
      feeds[`past_key_values.${i}.${kind}`] = past?.[`present.${i}.${kind}`] ?? new ort.Tensor('float32', new Float32Array(0), [1, C.nHead, 0, HD]);
    }
  }
  return feeds;
}

function argmaxLast(logits: ort.Tensor): number {
  const [, seq, vocab] = logits.dims;
  const data = logits.data as Float32Array;
  let best = 0;
  for (let k = 1; k < vocab; k++) if (data[(seq - 1) * vocab + k] > data[(seq - 1) * vocab + best]) best = k;
  return best;
}

describe('tiny-gpt2 (shipped)', { skip: !HAVE_GPT2 && `${GPT2_DIR} not built` }, () => {
  let session: ort.InferenceSession;
  before(async () => {
    session = await ort.InferenceSession.create(`${GPT2_DIR}/onnx/model.onnx`, { intraOpNumThreads: 1 });
    assert.equal(await selectBackend('wasm'), 'wasm');
  });

  it('has the GPT-2 layout: fused QKV + Split, LayerNorm, tied lm_head, HF names, ~0.9 M parameters', () => {
    const model = decodeModel(readFileSync(`${GPT2_DIR}/onnx/model.onnx`));
    const g = model.graph!;
    const init = new Map(g.initializer.map((t) => [t.name!, t]));
    assert.deepEqual(init.get('transformer.h.0.attn.c_attn.weight')!.dims, [C.nEmbd, 3 * C.nEmbd]);
    assert.deepEqual(init.get('transformer.wpe.weight')!.dims, [C.nPositions, C.nEmbd]);
    assert.ok(!init.has('lm_head.weight'), 'no separate lm_head weight');
    const lmT = g.node.find((n) => n.name === '/lm_head/Transpose')!;
    assert.deepEqual(lmT.input, ['transformer.wte.weight'], 'the lm_head reads the token embedding');
    assert.equal(g.node.filter((n) => n.opType === 'Split').length, C.nLayer);
    assert.equal(g.node.filter((n) => n.opType === 'LayerNormalization').length, 2 * C.nLayer + 1);
    const params = g.initializer.reduce((a, t) => a + t.dims.reduce((x, d) => x * Number(d), 1), 0);
    assert.equal(params, gpt2ParameterCount(C));
    assert.deepEqual(JSON.parse(readFileSync(`${GPT2_DIR}/config.json`, 'utf8')), gpt2Config(C));
    assert.equal(g.input.map((v) => v.name).slice(0, 4).join(), 'input_ids,attention_mask,position_ids,past_key_values.0.key');
  });

  it('the committed model is the builder graph with its trained weights, byte for byte', () => {
    const trained = committedWeights(GPT2_DIR);
    assert.ok(trained, 'models/tiny-gpt2/training.json');
    const committed = readFileSync(`${GPT2_DIR}/onnx/model.onnx`);
    assert.equal(Buffer.compare(Buffer.from(encodeModel(buildGpt2(C, trained.training.seed, { weights: trained.weights }))), committed), 0);
    assert.equal(trained.training.seed, GPT2_DEFAULT_SEED);
    const random = buildGpt2(C, GPT2_DEFAULT_SEED);
    sameGraph(decodeModel(committed), random, 'same graph as the random build');
    assert.match(readFileSync(`${GPT2_DIR}/MODEL_CARD.md`, 'utf8'), /\*\*Trained\*\*/);
  });

  it('ONNX Runtime and the interpreter agree on the logits (prefill and a cached step)', async () => {
    const tf = TfModel.compile(loadModel(`${GPT2_DIR}/onnx/model.onnx`));
    const prompt = [256, ...Buffer.from('Call me Ishmael. Some years ago')];
    const prefill = decoderFeeds(prompt, undefined, 0);
    const out = await session.run(prefill);
    const toInputs = (f: Record<string, ort.Tensor>) =>
      Object.fromEntries(Object.entries(f).map(([n, t]) => [n, { dims: [...t.dims], data: t.data as Float32Array | BigInt64Array }]));
    const compare = (want: ort.Tensor, got: Float32Array, label: string): void => {
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - (want.data as Float32Array)[i]));
      assert.ok(worst < 1e-3, `${label}: max |ORT - interpreter| ${worst}`);
    };
    compare(out.logits, tf.run(toInputs(prefill), ['logits']).logits.data as Float32Array, 'prefill');
    const step = decoderFeeds([32], out, prompt.length);
    compare((await session.run(step)).logits, tf.run(toInputs(step), ['logits']).logits.data as Float32Array, 'cached step');
    tf.dispose();
  });

  it('greedy decoding with the KV cache equals greedy decoding without it', async (t) => {
    const prompt = [256, ...Buffer.from('The whale')];
    const steps = 24;
    const withoutCache = [...prompt];
    for (let s = 0; s < steps; s++) withoutCache.push(argmaxLast((await session.run(decoderFeeds(withoutCache, undefined, 0))).logits));
    const withCache = [...prompt];
    let out = await session.run(decoderFeeds(prompt, undefined, 0));
    for (let s = 0; s < steps; s++) {
      const next = argmaxLast(out.logits);
      withCache.push(next);
      out = await session.run(decoderFeeds([next], out, withCache.length - 1));
    }
    assert.deepEqual(withCache, withoutCache);
    t.diagnostic(`tiny-gpt2 greedy: ${JSON.stringify(Buffer.from(withCache.slice(1).filter((t) => t < 256)).toString('latin1'))}`);
  });
});

describe('tiny-llama (shipped, trained)', { skip: !existsSync(`${LLAMA_DIR}/training.json`) && `${LLAMA_DIR} has no training.json` }, () => {
  it('the committed model is the builder graph with its trained weights, byte for byte', () => {
    const trained = committedWeights(LLAMA_DIR)!;
    const committed = readFileSync(`${LLAMA_DIR}/onnx/model.onnx`);
    assert.equal(trained.training.seed, DEFAULT_SEED);
    assert.equal(Buffer.compare(Buffer.from(encodeModel(buildLlama(TINY_LLAMA, DEFAULT_SEED, { weights: trained.weights }))), committed), 0);
    sameGraph(decodeModel(committed), buildLlama(TINY_LLAMA, DEFAULT_SEED), 'same graph as the random build');
    // Only trainable weights changed: the rotary tables are the builder's.
    const random = new Map(buildLlama(TINY_LLAMA, DEFAULT_SEED).graph!.initializer.map((t) => [t.name!, t]));
    const model = loadModel(`${LLAMA_DIR}/onnx/model.onnx`);
    for (const t of model.graph.initializer.filter((x) => x.name!.includes('rotary_emb'))) {
      assert.deepEqual(tensorValues(t, model.rawBytes(t)).data, tensorValues(random.get(t.name!)!).data, t.name);
    }
  });
});
