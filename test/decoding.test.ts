// The decoders (src/decoding/): KV-cache decoding against full-sequence runs, sampling, perplexity against a
// brute-force computation, sliding-window accounting, model comparison, speed, and the eval/generate commands.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { openCalibrationSet } from '../src/calibration/data/index.js';
import { compareDecoders, klDivergence, percentile } from '../src/decoding/compare.js';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { kvSlots } from '../src/decoding/kv-cache.js';
import type { DecoderSummary } from '../src/onnx/decoder-info.js';
import { generate } from '../src/decoding/generate.js';
import { measureSpeed } from '../src/decoding/speed.js';
import { outputAgreement } from '../src/decoding/output-agreement.js';
import { perplexity } from '../src/decoding/perplexity.js';
import { sample, tokenChooser } from '../src/decoding/sampling.js';
import { forEachScoredToken, scoringWindows } from '../src/decoding/scoring-windows.js';
import { textCodecFor } from '../src/decoding/text-codec.js';
import { readScoringSet, resolveTextSet, type ScoringSet } from '../src/decoding/text-set.js';
import { TextStream } from '../src/decoding/text-stream.js';
import { makeNode } from '../src/onnx/builder.js';
import { loadModel, type OnnxModel } from '../src/onnx/model.js';
import { makeTensor, tensorValues } from '../src/onnx/tensor.js';
import { DataType } from '../src/onnx/types.js';
import { Session } from '../src/runtime/session.js';
import { cli, oneLineError } from './support/cli.js';
import { TESTDATA_ROOT } from './support/testdata.js';

const MODEL = 'models/tiny-llama/onnx/model.onnx';
const BOS = 256;
const LAYERS = 4;
const KV_HEADS = 2;
const HEAD_DIM = 32;
// Multi-byte characters (em dashes, an accent) so that bytes and characters differ.
const TEXT = 'Call me Ishmael. Some years ago\u2014never mind how long precisely\u2014having little or no money in my purse, na\u00efvely.';

const dir = mkdtempSync(join(tmpdir(), 'onnx-compress-decoding-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function jsonl(name: string, texts: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, texts.map((text) => `${JSON.stringify({ text })}\n`).join(''));
  return path;
}

let shared: Promise<DecoderSession> | undefined;
const tinyLlama = (): Promise<DecoderSession> => (shared ??= DecoderSession.open(MODEL));

async function scoringSet(decoder: DecoderSession, texts: string[], maxTokens?: number): Promise<ScoringSet> {
  const codec = textCodecFor(loadModel(MODEL), decoder.vocab);
  return readScoringSet(jsonl(`set-${texts.length}-${maxTokens}.jsonl`, texts), codec, { bos: decoder.special.bos, maxTokens });
}

// --- an independent reference: plain onnxruntime, the whole sequence, no cache -------------------------------

let rawSession: Promise<ort.InferenceSession> | undefined;
const raw = (): Promise<ort.InferenceSession> => (rawSession ??= ort.InferenceSession.create(MODEL));

/** Logits [length, vocab] of one sequence run whole from an empty past. */
async function fullSequenceLogits(ids: number[]): Promise<{ data: Float32Array; vocab: number }> {
  const s = await raw();
  const n = ids.length;
  const i64 = (v: number[]) => new ort.Tensor('int64', BigInt64Array.from(v, BigInt), [1, n]);
  const feeds: Record<string, ort.Tensor> = {
    input_ids: i64(ids),
    attention_mask: i64(ids.map(() => 1)),
    position_ids: i64(ids.map((_, j) => j)),
  };
  for (let i = 0; i < LAYERS; i++) {
    for (const kind of ['key', 'value']) feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [1, KV_HEADS, 0, HEAD_DIM]);
  }
  const { logits } = await s.run(feeds);
  return { data: logits.data as Float32Array, vocab: logits.dims[2] };
}

function rowOf(l: { data: Float32Array; vocab: number }, position: number): Float32Array {
  return l.data.subarray(position * l.vocab, (position + 1) * l.vocab);
}

/** -log softmax(row)[target], in float64, written out independently of src/decoding/logits.ts. */
function nllOf(row: Float32Array, target: number): number {
  const max = Math.max(...row);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return max + Math.log(sum) - row[target];
}

function argmaxOf(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Greedy decoding by re-running the whole sequence every step. */
async function greedyWithoutCache(prompt: number[], steps: number): Promise<number[]> {
  const tokens = [...prompt];
  for (let i = 0; i < steps; i++) {
    const logits = await fullSequenceLogits(tokens);
    tokens.push(argmaxOf(rowOf(logits, tokens.length - 1)));
  }
  return tokens.slice(prompt.length);
}

const bytesOf = (s: string): number[] => [BOS, ...Buffer.from(s)];

// --- decoding with the KV cache --------------------------------------------------------------------------------

test('greedy generation with the KV cache equals generation without it', async (t) => {
  const decoder = await tinyLlama();
  const prompt = bytesOf('Hello');
  const cached = await generate(decoder, [prompt], { maxNewTokens: 12, stopTokens: [] });
  assert.deepEqual(cached.tokens[0], await greedyWithoutCache(prompt, 12));
  assert.deepEqual(cached.stopReasons, ['max-new-tokens']);

  // The session's own no-cache mode (the whole sequence per step, empty past) agrees too, logits included.
  const uncached = await DecoderSession.open(MODEL, { useCache: false });
  try {
    let a = await decoder.forward([prompt]);
    let b = await uncached.forward([prompt]);
    let worst = 0;
    for (let i = 0; i < 12; i++) {
      const la = a.logits.last(0);
      const lb = b.logits.last(0);
      for (let v = 0; v < la.length; v++) worst = Math.max(worst, Math.abs(la[v] - lb[v]));
      assert.equal(argmaxOf(la), argmaxOf(lb));
      const next = [[argmaxOf(la)]];
      a = await decoder.forward(next, a.state);
      b = await uncached.forward(next, b.state);
    }
    assert.equal(a.state.cache!.length, prompt.length + 12);
    assert.equal(b.state.cache, null);
    t.diagnostic(`max |cached - uncached| logit = ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-4, `max diff ${worst}`);
  } finally {
    await uncached.dispose();
  }
});

test('a left-padded batch generates for each row what the row generates alone', async (t) => {
  const decoder = await tinyLlama();
  const prompts = [bytesOf('A much longer prompt'), bytesOf('Hi'), bytesOf('Mid length')];
  const batch = await generate(decoder, prompts, { maxNewTokens: 8, stopTokens: [] });
  for (const [row, prompt] of prompts.entries()) {
    const alone = await generate(decoder, [prompt], { maxNewTokens: 8, stopTokens: [] });
    assert.deepEqual(batch.tokens[row], alone.tokens[0], `row ${row}`);
  }
  // Logits too, over cached steps that feed each row different tokens: padding must stay masked in the past.
  let batched = await decoder.forward(prompts);
  let alone = [];
  for (const p of prompts) alone.push(await decoder.forward([p]));
  let worst = 0;
  for (let step = 0; step < 4; step++) {
    for (const row of prompts.keys()) {
      const a = batched.logits.last(row);
      const b = alone[row].logits.last(0);
      for (let v = 0; v < a.length; v++) worst = Math.max(worst, Math.abs(a[v] - b[v]));
    }
    const next = prompts.map((_, row) => 65 + row + step);
    batched = await decoder.forward(next.map((n) => [n]), batched.state);
    for (const row of prompts.keys()) alone[row] = await decoder.forward([[next[row]]], alone[row].state);
  }
  t.diagnostic(`max |batched - alone| logit = ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-4, `max diff ${worst}`);
});

test('generation stops at an end token, at max new tokens and at the model positions, and streams each token', async () => {
  const decoder = await tinyLlama();
  const prompt = bytesOf('Stop');
  const free = await generate(decoder, [prompt], { maxNewTokens: 5, stopTokens: [] });
  const streamed: number[] = [];
  const stopToken = free.tokens[0][2];
  const stopped = await generate(decoder, [prompt], { maxNewTokens: 5, stopTokens: [stopToken], onToken: (token) => streamed.push(token) });
  assert.deepEqual(stopped.tokens[0], free.tokens[0].slice(0, free.tokens[0].indexOf(stopToken) + 1));
  assert.deepEqual(stopped.stopReasons, ['eos']);
  assert.deepEqual(streamed, stopped.tokens[0]);
  assert.deepEqual((await generate(decoder, [prompt], { maxNewTokens: 0 })).tokens, [[]]);

  const nearlyFull = Array.from({ length: 1020 }, (_, i) => i % 256);
  const capped = await generate(decoder, [nearlyFull], { maxNewTokens: 50, stopTokens: [] });
  assert.equal(capped.tokens[0].length, 1024 - 1020 + 1, 'the last token is predicted from all 1024 positions');
  assert.deepEqual(capped.stopReasons, ['max-positions']);
  await assert.rejects(decoder.forward([[BOS, 300]]), /token id 300 is outside the vocabulary/);
});

test('seeded sampling repeats; a different seed gives different text', async () => {
  const decoder = await tinyLlama();
  const prompt = bytesOf('Once');
  const run = (seed: number, extra = {}) => generate(decoder, [prompt], { maxNewTokens: 24, temperature: 1, seed, stopTokens: [], ...extra });
  const first = await run(42);
  assert.deepEqual((await run(42)).tokens, first.tokens);
  assert.notDeepEqual((await run(43)).tokens, first.tokens);
  // top-k 1 and a tiny top-p leave only the most likely token: greedy whatever the seed.
  const greedy = await generate(decoder, [prompt], { maxNewTokens: 24, stopTokens: [] });
  assert.deepEqual((await run(7, { topK: 1 })).tokens, greedy.tokens);
  assert.deepEqual((await run(8, { topP: 1e-9 })).tokens, greedy.tokens);
  const nucleus = await run(9, { temperature: 0.7, topK: 20, topP: 0.9 });
  assert.deepEqual((await run(9, { temperature: 0.7, topK: 20, topP: 0.9 })).tokens, nucleus.tokens);
});

test('sampling keeps exactly the top-k and top-p candidates', () => {
  const weights = [1, 4, 2, 1, 1]; // probabilities weights / 9
  const logits = Float32Array.from(weights, Math.log);
  // top-k 2: tokens 1 and 2, drawn 4:2.
  assert.deepEqual([0, 0.6, 0.67, 0.99].map((u) => sample(logits, 1, 2, 1, u)), [1, 1, 2, 2]);
  // top-p 0.6: 4/9 + 2/9 reaches it, so tokens 1 and 2 again; top-p 0.7 needs a third (the lowest index of a tie).
  assert.deepEqual([0, 0.67, 0.99].map((u) => sample(logits, 1, 0, 0.6, u)), [1, 2, 2]);
  assert.equal(sample(logits, 1, 0, 0.7, 0.99), 0);
  // Temperature sharpens: at 0.5 the weights are squared.
  assert.equal(sample(logits, 0.5, 0, 1, 16 / 23 - 1e-9), 1);
  // Without trimming every token comes out, in proportion.
  const counts = new Array(5).fill(0);
  const choose = tokenChooser({ temperature: 1, seed: 1 });
  for (let i = 0; i < 20000; i++) counts[choose(logits)]++;
  weights.forEach((w, i) => assert.ok(Math.abs(counts[i] / 20000 - w / 9) < 0.015, `token ${i}: ${counts[i]}`));
  assert.throws(() => tokenChooser({ topP: 0 }), /top-p must be in/);
  assert.throws(() => tokenChooser({ temperature: -1 }), /temperature must be/);
});

test('the text stream prints a character only once all its bytes have come', () => {
  const stream = new TextStream({ decode: (ids) => Buffer.from(ids.filter((i) => i < 256)).toString('utf8') });
  const out = [...Buffer.from('a\u00e9\u2615')].map((b) => stream.push(b));
  assert.deepEqual(out, ['a', '', '\u00e9', '', '', '\u2615']);
  assert.equal(stream.push(0xe2), '');
  assert.equal(stream.flush(), '\uFFFD', 'a truly broken end shows as a replacement character');
});

// --- perplexity and comparison ---------------------------------------------------------------------------------

test('perplexity equals exp(mean NLL) of a brute-force full-sequence run, and bits per byte its sum over bytes', async (t) => {
  const decoder = await tinyLlama();
  const set = await scoringSet(decoder, [TEXT]);
  const ids = bytesOf(TEXT);
  assert.deepEqual(set.documents[0].ids, ids);
  assert.equal(set.tokens, ids.length - 1);
  assert.equal(set.bytes, Buffer.byteLength(TEXT));
  assert.notEqual(set.bytes, TEXT.length, 'the text has multi-byte characters');

  const logits = await fullSequenceLogits(ids);
  let nll = 0;
  for (let j = 1; j < ids.length; j++) nll += nllOf(rowOf(logits, j - 1), ids[j]);
  const report = await perplexity(decoder, set, { window: 1024, stride: 512 });
  t.diagnostic(`perplexity ${report.perplexity.toFixed(3)}, bits per byte ${report.bitsPerByte.toFixed(4)} over ${report.tokens} tokens`);
  assert.equal(report.tokens, ids.length - 1);
  assert.equal(report.windows, 1);
  assert.ok(Math.abs(report.nll - nll) < 1e-9 * nll, `${report.nll} vs ${nll}`);
  assert.ok(Math.abs(report.perplexity - Math.exp(nll / (ids.length - 1))) < 1e-9 * report.perplexity);
  assert.ok(Math.abs(report.bitsPerByte - nll / (Math.LN2 * Buffer.byteLength(TEXT))) < 1e-12);
  // A trained byte-level model: well below uniform over the 259 ids, well above certainty.
  assert.ok(report.perplexity > 2 && report.perplexity < 60, `${report.perplexity}`);
});

test('sliding windows score every token exactly once, with window - stride tokens of context', () => {
  for (let length = 0; length <= 40; length++) {
    for (let window = 2; window <= 12; window++) {
      for (let stride = 1; stride < window; stride++) {
        const windows = scoringWindows(length, { window, stride });
        const scored: number[] = [];
        for (const [k, w] of windows.entries()) {
          assert.ok(w.end - w.start <= window && w.scoreFrom > w.start && w.scoreFrom < w.end);
          if (k > 0) assert.equal(w.scoreFrom - w.start, window - stride);
          for (let j = w.scoreFrom; j < w.end; j++) scored.push(j);
        }
        assert.deepEqual(scored, Array.from({ length: Math.max(0, length - 1) }, (_, j) => j + 1), `length ${length} window ${window} stride ${stride}`);
      }
    }
  }
  assert.throws(() => scoringWindows(10, { window: 8, stride: 8 }), /stride must be a whole number from 1 to window - 1/);
  assert.throws(() => scoringWindows(10, { window: 1, stride: 1 }), /window must be/);
});

test('windowed scoring over documents visits each token once and matches the full run where contexts agree', async () => {
  const decoder = await tinyLlama();
  const texts = [TEXT, 'A second, shorter document.'];
  const set = await scoringSet(decoder, texts);
  const visited: string[] = [];
  const firstWindowNll: number[] = [];
  const { windows } = await forEachScoredToken([decoder], set.documents, { window: 16, stride: 5 }, (tok) => {
    visited.push(`${tok.document}:${tok.position}`);
    if (tok.document === 0 && tok.position < 16) firstWindowNll.push(nllOf(tok.logits[0], tok.target));
  });
  const expected = set.documents.flatMap((d, i) => d.ids.slice(1).map((_, j) => `${i}:${j + 1}`));
  assert.deepEqual(visited, expected);
  assert.equal(windows, scoringWindows(set.documents[0].ids.length, { window: 16, stride: 5 }).length + scoringWindows(set.documents[1].ids.length, { window: 16, stride: 5 }).length);
  // The first window sees the same context as the full run, so its NLLs are the full run's.
  const full = await fullSequenceLogits(set.documents[0].ids);
  firstWindowNll.forEach((v, j) => assert.ok(Math.abs(v - nllOf(rowOf(full, j), set.documents[0].ids[j + 1])) < 1e-4));

  const small = await perplexity(decoder, set, { window: 16, stride: 5 });
  assert.equal(small.tokens, set.tokens);
  assert.equal(small.bytes, Buffer.byteLength(texts[0]) + Buffer.byteLength(texts[1]));
});

test('a token budget cuts the set and counts the bytes of what is scored', async () => {
  const decoder = await tinyLlama();
  const set = await scoringSet(decoder, [TEXT, TEXT], 120);
  assert.equal(set.tokens, 120);
  assert.equal(set.documents.length, 2);
  assert.equal(set.documents[1].ids.length, 120 - (bytesOf(TEXT).length - 1) + 1);
  assert.equal(set.bytes, 120, 'byte-level: one byte per scored token');
  const shipped = await readScoringSet(resolveTextSet('nonsense-bytes'), textCodecFor(loadModel(MODEL), 259), { bos: BOS, maxTokens: 1000 });
  assert.equal(shipped.tokens, 1000);
  assert.equal(shipped.bytes, 1000);
  assert.throws(() => resolveTextSet('no-such-set'), /no-such-set: no such file, folder or shipped set/);
});

test('a model with a tokenizer.json encodes and decodes through it, and counts the bytes of the text', async () => {
  const hf = join(dir, 'hf');
  mkdirSync(hf);
  copyFileSync(MODEL, join(hf, 'model.onnx'));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join('test/fixtures/calibration/tokenizer', f), join(hf, f));
  // A user's config: without the sample models' "tokenizer": "bytes", so the tokenizer.json is what reads text.
  const { tokenizer: _bytes, ...config } = JSON.parse(readFileSync('models/tiny-llama/config.json', 'utf8'));
  writeFileSync(join(hf, 'config.json'), JSON.stringify({ ...config, bos_token_id: 0, eos_token_id: 1, pad_token_id: 1 }));
  const model = loadModel(join(hf, 'model.onnx'));
  const codec = textCodecFor(model, 259);
  assert.match(codec.description, /tokenizer\.json$/);
  // The fixture's BPE: <s> = 0, hello = 13, world = 17, ! = 18; its post-processor puts <s> first.
  assert.deepEqual(codec.encode('hello world!'), [0, 13, 17, 18]);
  assert.equal(codec.decode([0, 13, 17, 18]), 'hello world!');
  const decoder = await DecoderSession.open(join(hf, 'model.onnx'));
  try {
    assert.deepEqual(decoder.special, { bos: 0, eos: [1], pad: 1 });
    const set = await readScoringSet(jsonl('hf.jsonl', ['hello world!', 'world hello']), codec, { bos: 0 });
    assert.deepEqual(set.documents.map((d) => d.ids), [[0, 13, 17, 18], [0, 17, 13]]);
    assert.deepEqual([set.tokens, set.bytes], [5, 'hello world!'.length + 'world hello'.length]);
    assert.equal((await perplexity(decoder, set, { window: 8, stride: 4 })).tokens, 5);
  } finally {
    await decoder.dispose();
  }
});

/** tiny-llama with one weight multiplied by `factor`, as an in-memory model. */
function scaledCopy(name: string, factor: number): OnnxModel {
  const model = loadModel(MODEL);
  const init = model.graph.initializer;
  const at = init.findIndex((t) => t.name === name);
  const values = tensorValues(init[at]).data as Float32Array;
  init[at] = makeTensor(name, DataType.FLOAT, init[at].dims, values.map((v) => v * factor));
  return model;
}

test('KL of a model against itself is 0 with full top-1 agreement; a perturbed copy has KL > 0', async (t) => {
  const decoder = await tinyLlama();
  const set = await scoringSet(decoder, [TEXT, 'Short one.']);
  const plan = { window: 32, stride: 16 };
  const same = await compareDecoders(decoder, decoder, set, plan);
  assert.equal(same.tokens, set.tokens);
  assert.deepEqual(same.kl, { mean: 0, p95: 0, max: 0 });
  assert.equal(same.top1Agreement, 1);
  assert.equal(same.reference.perplexity, same.candidate.perplexity);
  assert.equal(same.candidate.perplexity, (await perplexity(decoder, set, plan)).perplexity);

  // Scaling lm_head by 1.01 scales every logit: the distributions sharpen (KL > 0) but the argmax cannot move.
  const sharper = await DecoderSession.open(scaledCopy('lm_head.weight', 1.01));
  const mlp = await DecoderSession.open(scaledCopy('model.layers.1.mlp.down_proj.weight', 1.01));
  try {
    const c = await compareDecoders(decoder, sharper, set, plan);
    t.diagnostic(`lm_head x1.01: KL mean ${c.kl.mean.toExponential(3)}, p95 ${c.kl.p95.toExponential(3)}`);
    assert.ok(c.kl.mean > 0 && c.kl.p95 > 0 && c.kl.max >= c.kl.p95);
    assert.equal(c.top1Agreement, 1);
    assert.notEqual(c.candidate.perplexity, c.reference.perplexity);
    const m = await compareDecoders(decoder, mlp, set, plan);
    t.diagnostic(`down_proj x1.01: KL mean ${m.kl.mean.toExponential(3)}, top-1 ${m.top1Agreement}`);
    assert.ok(m.kl.mean > 0);
  } finally {
    await sharper.dispose();
    await mlp.dispose();
  }
});

test('KL divergence and percentiles by hand', () => {
  const p = Float64Array.from([Math.log(0.5), Math.log(0.5)]);
  const q = Float64Array.from([Math.log(0.25), Math.log(0.75)]);
  assert.ok(Math.abs(klDivergence(p, q) - (0.5 * Math.log(2) + 0.5 * Math.log(2 / 3))) < 1e-15);
  assert.equal(klDivergence(Float64Array.from([0, -Infinity]), Float64Array.from([Math.log(0.5), Math.log(0.5)])), Math.log(2));
  const values = Float64Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(values, 0.95), 95);
  assert.equal(percentile(values, 1), 100);
});

// --- other signatures ---------------------------------------------------------------------------------------------

/**
 * tiny-llama re-wired to another exporter's signature: int32 input_ids, `past.{i}.key` float16 cache inputs,
 * float16 presents and logits. Casts at the edges keep the float32 graph inside unchanged.
 */
function float16Variant(): OnnxModel {
  const model = loadModel(MODEL);
  const g = model.graph;
  const rename = (from: string, to: string) => {
    for (const n of g.node) n.input = n.input.map((x) => (x === from ? to : x));
  };
  const head = [];
  const tail = [];
  const ids = g.input.find((v) => v.name === 'input_ids')!;
  rename('input_ids', 'input_ids_int64');
  ids.type!.tensorType!.elemType = DataType.INT32;
  head.push(makeNode('Cast', ['input_ids'], ['input_ids_int64'], { to: DataType.INT64 }));
  for (const v of g.input.filter((x) => x.name!.startsWith('past_key_values.'))) {
    const inner = v.name!;
    v.name = inner.replace('past_key_values.', 'past.');
    v.type!.tensorType!.elemType = DataType.FLOAT16;
    head.push(makeNode('Cast', [v.name], [inner], { to: DataType.FLOAT }));
  }
  for (const v of g.output) {
    const inner = `${v.name}_float32`;
    for (const n of g.node) n.output = n.output.map((x) => (x === v.name ? inner : x));
    rename(v.name!, inner); // attention reads the concatenated cache, which is the present
    v.type!.tensorType!.elemType = DataType.FLOAT16;
    tail.push(makeNode('Cast', [inner], [v.name!], { to: DataType.FLOAT16 }));
  }
  g.node = [...head, ...g.node, ...tail];
  return model;
}

test('int32 ids, float16 caches and logits, and past.{i} names decode like the original', async (t) => {
  const decoder = await tinyLlama();
  const variant = await DecoderSession.open(float16Variant());
  try {
    assert.equal(variant.signature.inputIds.type, 'int32');
    assert.deepEqual(variant.signature.cache.slice(0, 2).map((s) => [s.past, s.present, s.type]), [
      ['past.0.key', 'present.0.key', 'float16'],
      ['past.0.value', 'present.0.value', 'float16'],
    ]);
    const prompt = bytesOf('Hello there');
    let a = await decoder.forward([prompt]);
    let b = await variant.forward([prompt]);
    let worst = 0;
    for (let i = 0; i < 6; i++) {
      const la = a.logits.last(0);
      const lb = b.logits.last(0);
      for (let v = 0; v < la.length; v++) worst = Math.max(worst, Math.abs(la[v] - lb[v]));
      const next = [[argmaxOf(la)]];
      a = await decoder.forward(next, a.state);
      b = await variant.forward(next, b.state);
    }
    assert.equal(b.state.cache!.tensors['past.3.value'].type, 'float16');
    t.diagnostic(`max |float32 - float16 variant| logit = ${worst.toExponential(2)}`);
    assert.ok(worst < 5e-3, `max diff ${worst}`);
    const set = await scoringSet(decoder, [TEXT]);
    const c = await compareDecoders(decoder, variant, set, { window: 64, stride: 32 });
    assert.ok(c.kl.mean < 1e-4, `KL ${c.kl.mean}`);
  } finally {
    await variant.dispose();
  }
});

test('cache inputs pair with their present outputs whatever the exporter named them, in either layout', () => {
  const dims = { kvHeads: 2, headDim: 8 } as DecoderSummary;
  const pairs: [string, string, number, string][] = [
    ['past_key_values.0.key', 'present.0.key', 0, 'key'],
    ['past_key_values.0.value', 'present.0.value', 0, 'value'],
    ['past.1.key', 'present.1.key', 1, 'key'],
    ['past_key_2', 'present_key_2', 2, 'key'],
    ['past_value_2', 'present_value_2', 2, 'value'],
    ['past_key_values.3.value', 'present_key_values.3.value', 3, 'value'],
  ];
  const shape = ['batch_size', 'num_heads', 'past_sequence_length', 'head_size'];
  const slots = kvSlots('m.onnx', pairs.map(([name]) => ({ name, type: 'float32', shape })), pairs.map(([, name]) => ({ name })), dims);
  assert.deepEqual(slots.map((s) => [s.past, s.present, s.layer, s.kind]), pairs);
  assert.deepEqual(slots[0].emptyShape, [0, 2, 0, 8]);
  // [batch, past, heads, head size]: the growing axis is the one named after the past.
  const bsnh = kvSlots('m.onnx', [{ name: 'past.0.key', type: 'float16', shape: ['batch', 'past_len', 2, 'head'] }], [{ name: 'present.0.key' }], dims);
  assert.deepEqual([bsnh[0].emptyShape, bsnh[0].sequenceAxis, bsnh[0].type], [[0, 0, 2, 8], 1, 'float16']);
  assert.throws(() => kvSlots('m.onnx', [{ name: 'past.0.key', type: 'int8', shape }], [{ name: 'present.0.key' }], dims), /m\.onnx: cache input 'past\.0\.key' is int8/);
  assert.throws(() => kvSlots('m.onnx', [{ name: 'past.0.key', type: 'float32', shape }], [], dims), /has no matching present output/);
});

test('a model that is not a decoder, or lacks a present output, is refused by name', async () => {
  const conv = `${TESTDATA_ROOT}/pytorch-converted/test_ConvTranspose2d/model.onnx`;
  if (existsSync(conv)) await assert.rejects(DecoderSession.open(conv), /test_ConvTranspose2d\/model\.onnx: not a decoder language model/);
  const model = loadModel(MODEL);
  model.graph.output = model.graph.output.filter((o) => o.name !== 'present.2.value');
  await assert.rejects(DecoderSession.open(model), /cache input 'past_key_values\.2\.value' has no matching present output/);
});

// --- speed, agreement and the commands -------------------------------------------------------------------------

test('speed is measured for prefill and decode', async () => {
  const decoder = await tinyLlama();
  const speed = await measureSpeed(decoder, { prefillTokens: 64, decodeTokens: 8, repeats: 1 });
  assert.equal(speed.prefill.tokens, 64);
  assert.equal(speed.decode.tokens, 8);
  assert.ok(speed.prefill.tokensPerSecond > 0 && speed.decode.tokensPerSecond > 0);
});

const CONV_DIR = `${TESTDATA_ROOT}/pytorch-converted/test_ConvTranspose2d`;

test('output agreement of a non-language model: 0 and 1 against itself, a gap against a perturbed copy', { skip: !existsSync(CONV_DIR) }, async () => {
  const model = loadModel(`${CONV_DIR}/model.onnx`);
  const samples = await openCalibrationSet(CONV_DIR, model);
  const reference = await Session.create(`${CONV_DIR}/model.onnx`);
  const same = await outputAgreement(reference, reference, samples.batches());
  assert.equal(same.samples, 1);
  assert.deepEqual(same.outputs.map((o) => [o.maxAbsDiff, o.cosine]), [[0, 1]]);
  const weight = model.graph.initializer[0];
  const values = tensorValues(weight).data as Float32Array;
  model.graph.initializer[0] = makeTensor(weight.name!, DataType.FLOAT, weight.dims, values.map((v, i) => (i === 0 ? v + 0.5 : v)));
  const perturbed = await Session.create(model);
  const gap = await outputAgreement(reference, perturbed, samples.batches());
  assert.ok(gap.outputs[0].maxAbsDiff > 0 && gap.outputs[0].cosine < 1 && gap.outputs[0].cosine > 0.9);
  await reference.dispose();
  await perturbed.dispose();
});

test('eval --json on tiny-llama: perplexity, comparison with itself, speed and sizes', () => {
  const r = cli('eval', MODEL, '--data', 'prose', '--max-tokens', '3000', '--window', '256', '--stride', '128', '--reference', MODEL, '--speed', '--json');
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.kind, 'language-model');
  assert.match(report.data, /calibration-sets\/prose\/evaluation\.jsonl$/);
  assert.equal(report.scoring.tokens, 3000);
  assert.equal(report.scoring.bytes, 3000);
  assert.deepEqual([report.scoring.window, report.scoring.stride, report.scoring.tokenizer], [256, 128, 'bytes']);
  assert.equal(report.candidate.perplexity.tokens, 3000);
  assert.ok(report.candidate.perplexity.perplexity > 2 && report.candidate.perplexity.perplexity < 60);
  assert.deepEqual(report.comparison, { kl: { mean: 0, p95: 0, max: 0 }, top1Agreement: 1 });
  assert.equal(report.candidate.size.fileBytes, statSync(MODEL).size);
  assert.ok(report.candidate.speed.decode.tokensPerSecond > 0 && report.reference.speed.prefill.tokensPerSecond > 0);

  const text = cli('eval', MODEL, '--data', 'prose', '--max-tokens', '500');
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /500 tokens scored, 500 bytes/);
  assert.match(text.stdout, /^perplexity\s+\d+\.\d{3}$/m);
  assert.match(text.stdout, /^bits per byte\s+\d+\.\d{4}$/m);
});

test('eval compares a non-language model with its reference on a tensor folder', { skip: !existsSync(CONV_DIR) }, () => {
  const r = cli('eval', `${CONV_DIR}/model.onnx`, '--reference', `${CONV_DIR}/model.onnx`, '--data', CONV_DIR, '--json');
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.kind, 'tensors');
  assert.equal(report.agreement.samples, 1);
  assert.equal(report.agreement.outputs[0].cosine, 1);
  assert.match(oneLineError(cli('eval', `${CONV_DIR}/model.onnx`, '--data', CONV_DIR)), /model\.onnx: not a decoder language model; evaluating it needs --reference/);
});

test('generate --json is greedy by default and repeats with a seed; text mode streams the continuation', () => {
  const greedy = JSON.parse(cli('generate', MODEL, '--prompt', 'Call me', '--max-new-tokens', '10', '--json').stdout);
  assert.deepEqual(greedy.promptTokens, bytesOf('Call me'));
  assert.equal(greedy.tokens.length, 10);
  assert.equal(greedy.stopReason, 'max-new-tokens');
  assert.deepEqual(greedy.sampling, { temperature: 0, topK: 0, topP: 1, seed: null });
  assert.equal(greedy.text, Buffer.from(greedy.tokens.filter((t: number) => t < 256)).toString('utf8'));

  const args = ['generate', MODEL, '--prompt', 'Call me', '--max-new-tokens', '16', '--temperature', '0.9', '--top-k', '50', '--seed', '11', '--json'];
  const first = JSON.parse(cli(...args).stdout);
  assert.deepEqual(JSON.parse(cli(...args).stdout).tokens, first.tokens);
  assert.equal(first.sampling.seed, 11);
  assert.equal(typeof JSON.parse(cli('generate', MODEL, '--prompt', 'x', '--top-p', '0.9', '--max-new-tokens', '2', '--json').stdout).sampling.seed, 'number');

  const text = cli('generate', MODEL, '--prompt', 'Call me', '--max-new-tokens', '10');
  assert.equal(text.code, 0, text.stderr);
  assert.equal(text.stdout, `${greedy.text}\n`);
});

test('eval and generate fail with one line naming the file or flag', () => {
  assert.match(oneLineError(cli('eval', 'missing.onnx', '--data', 'prose')), /missing\.onnx: no such file/);
  assert.match(oneLineError(cli('eval', MODEL, '--data', 'nowhere')), /nowhere: no such file, folder or shipped set/);
  const bad = jsonl('bad.jsonl', ['ok']);
  writeFileSync(bad, '{"text": "fine"}\n{"oops": 1}\n');
  assert.match(oneLineError(cli('eval', MODEL, '--data', bad)), /bad\.jsonl:2: record has neither "text" nor "input_ids"/);
  assert.match(oneLineError(cli('eval', MODEL, '--data', 'prose', '--window', '8', '--stride', '8')), /stride must be a whole number from 1 to window - 1/);
  assert.match(oneLineError(cli('generate', MODEL, '--prompt', 'x', '--max-new-tokens', 'many')), /--max-new-tokens must be a whole number >= 1, got 'many'/);
  if (existsSync(CONV_DIR)) assert.match(oneLineError(cli('generate', `${CONV_DIR}/model.onnx`, '--prompt', 'x')), /model\.onnx: not a decoder language model/);
  for (const cmd of ['eval', 'generate']) {
    const help = cli(cmd, '--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, new RegExp(`Examples:\\n  onnx-compress ${cmd} `));
  }
});
