import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import {
  attrFloat,
  attrFloats,
  attrGraph,
  attrInt,
  attrInts,
  attrString,
  attrStrings,
  attrTensor,
  floatAttr,
  graphAttr,
  intsAttr,
  setAttr,
  toAttributes,
} from '../src/onnx/attributes.js';
import { emptyGraph, GraphBuilder, irVersionForOpset, makeNode, modelFrom } from '../src/onnx/builder.js';
import { decodeModel, encodeModel } from '../src/onnx/codec.js';
import { GraphError, topologicalOrder } from '../src/onnx/graph.js';
import { makeTensor, tensorValues } from '../src/onnx/tensor.js';
import { AttributeType, DataType, type ModelProto } from '../src/onnx/types.js';
import {
  buildSampleDecoder,
  committedWeights,
  DEFAULT_SEED,
  hfConfig,
  parameterCount,
  TINY_LLAMA,
} from '../scripts/build-sample-decoder.js';

const SAMPLE_DIR = fileURLToPath(new URL('../../models/tiny-llama/', import.meta.url));

function session(model: ModelProto | Uint8Array): Promise<ort.InferenceSession> {
  const bytes = model instanceof Uint8Array ? model : encodeModel(model);
  return ort.InferenceSession.create(Buffer.from(bytes));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// --- attributes ------------------------------------------------------------------------------------------

test('plain attribute objects map to typed attributes by JS value', () => {
  const t = makeTensor('c', DataType.FLOAT, [1], [3]);
  const g = emptyGraph('body');
  const attrs = toAttributes({
    axis: -1,
    epsilon: 1e-5,
    perm: [0, 2, 1, 3],
    scales: [1, 0.5],
    mode: 'constant',
    names: ['a', 'b'],
    big: 2n ** 62n,
    keep: true,
    value: t,
    body: g,
    alpha: floatAttr('ignored', 1),
  });
  const types = Object.fromEntries(attrs.map((a) => [a.name, AttributeType[a.type!]]));
  assert.deepEqual(types, {
    axis: 'INT',
    epsilon: 'FLOAT',
    perm: 'INTS',
    scales: 'FLOATS',
    mode: 'STRING',
    names: 'STRINGS',
    big: 'INT',
    keep: 'INT',
    value: 'TENSOR',
    body: 'GRAPH',
    alpha: 'FLOAT', // an explicit constructor wins, renamed to its key
  });
  assert.throws(() => toAttributes({ pads: [] }), /empty list/);

  const node = makeNode('X', [], [], attrs);
  assert.equal(attrInt(node, 'axis'), -1);
  assert.equal(attrFloat(node, 'epsilon'), 1e-5);
  assert.deepEqual(attrInts(node, 'perm'), [0, 2, 1, 3]);
  assert.deepEqual(attrFloats(node, 'scales'), [1, 0.5]);
  assert.equal(attrString(node, 'mode'), 'constant');
  assert.deepEqual(attrStrings(node, 'names'), ['a', 'b']);
  assert.equal(attrInt(node, 'keep'), 1);
  assert.equal(attrFloat(node, 'alpha'), 1);
  assert.equal(attrTensor(node, 'value'), t);
  assert.equal(attrGraph(node, 'body'), g);
  assert.equal(attrInt(node, 'missing', 7), 7);
  assert.equal(attrTensor(node, 'missing'), undefined);
  assert.throws(() => attrInt(node, 'missing'), /required attribute 'missing' is missing/);
  assert.throws(() => attrInt(node, 'epsilon'), /'epsilon' is FLOAT, expected INT/);
  setAttr(node, intsAttr('perm', [1, 0]));
  assert.deepEqual(attrInts(node, 'perm'), [1, 0]);
});

test('attributes survive an encode/decode round trip', () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2]);
  b.node('Custom', [x], ['y'], { i: -5, f: 0.25, s: 'héllo', ints: [1n, 2n ** 63n - 1n], alpha: floatAttr('alpha', 2) }, { domain: 'test.domain' });
  const back = decodeModel(encodeModel(modelFrom(b.graph, { opsets: { '': 17, 'test.domain': 1 } })));
  const node = back.graph!.node[0];
  assert.equal(node.domain, 'test.domain');
  assert.equal(attrInt(node, 'i'), -5);
  assert.equal(attrFloat(node, 'f'), 0.25);
  assert.equal(attrString(node, 's'), 'héllo');
  assert.deepEqual(node.attribute.find((a) => a.name === 'ints')!.ints, [1n, 2n ** 63n - 1n]);
  assert.equal(attrFloat(node, 'alpha'), 2);
});

// --- builder ---------------------------------------------------------------------------------------------

test('builder names nodes torch-style, keeps names unique and refuses a second producer', () => {
  const b = new GraphBuilder('g');
  const x = b.input('x', DataType.FLOAT, ['n']);
  const attn = b.scoped('model').scoped('layers.0').scoped('self_attn');
  const a = attn.op('Relu', [x]);
  const c = attn.op('Relu', [a]);
  assert.deepEqual(b.graph.node.map((n) => n.name), ['/model/layers.0/self_attn/Relu', '/model/layers.0/self_attn/Relu_1']);
  assert.deepEqual([a, c], ['/model/layers.0/self_attn/Relu_output_0', '/model/layers.0/self_attn/Relu_1_output_0']);
  assert.deepEqual(b.node('Split', [c], 2, { axis: 0 }), ['Split_output_0', 'Split_output_1']);
  assert.throws(() => b.node('Neg', [x], [a]), GraphError);
  assert.throws(() => b.input('x', DataType.FLOAT), /already produced/);
  // A builder over an existing graph avoids the names already in it.
  const again = new GraphBuilder(b.graph);
  assert.equal(again.op('Relu', [x]), 'Relu_output_0');
  assert.equal(again.scoped('model').scoped('layers.0').scoped('self_attn').op('Relu', [x]), '/model/layers.0/self_attn/Relu_2_output_0');
});

test('modelFrom sets opset imports and the matching IR version', () => {
  const m = modelFrom(emptyGraph(), { opsets: { '': 17, 'com.microsoft': 1 }, producerName: 'test', metadata: { k: 'v' } });
  assert.deepEqual(m.opsetImport, [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }]);
  assert.equal(m.irVersion, 8);
  assert.equal(m.producerName, 'test');
  assert.deepEqual(m.metadataProps, [{ key: 'k', value: 'v' }]);
  assert.equal(irVersionForOpset(21), 10);
  assert.equal(modelFrom(emptyGraph(), { opsets: { '': 13 }, irVersion: 9 }).irVersion, 9);
});

test('a built model runs in onnxruntime and matches a manual computation', async () => {
  const b = new GraphBuilder('affine');
  const x = b.input('x', DataType.FLOAT, ['batch', 3]);
  const wValues = [1, -2, 0.5, 3, -1, 2];
  const biasValues = [0.25, -4];
  b.initializer('w', DataType.FLOAT, [3, 2], wValues);
  b.initializer('bias', DataType.FLOAT, [2], biasValues);
  const affine = b.op('Add', [b.op('MatMul', [x, 'w']), 'bias']);
  // alpha 2 is integral: without floatAttr it would become an INT attribute, which LeakyRelu refuses.
  const leaky = b.op('LeakyRelu', [affine], { alpha: floatAttr('alpha', 2) });
  const transposed = b.op('Transpose', [leaky], { perm: [1, 0] });
  b.node('Mul', [transposed, b.constant(DataType.FLOAT, [], [0.5])], ['y']);
  b.output('y', DataType.FLOAT, [2, 'batch']);
  topologicalOrder(b.graph);
  const s = await session(modelFrom(b.graph));

  const batch = 3;
  const xs = [1, 2, 3, -1, 0, 4, 0.5, -0.5, 2];
  const { y } = await s.run({ x: new ort.Tensor('float32', Float32Array.from(xs), [batch, 3]) });
  assert.deepEqual(y.dims, [2, batch]);
  const expected: number[] = new Array(2 * batch);
  for (let r = 0; r < batch; r++) {
    for (let c = 0; c < 2; c++) {
      let v = biasValues[c];
      for (let k = 0; k < 3; k++) v += xs[r * 3 + k] * wValues[k * 2 + c];
      expected[c * batch + r] = 0.5 * (v < 0 ? 2 * v : v);
    }
  }
  assert.ok(maxAbsDiff(y.data as Float32Array, expected) < 1e-6);
});

test('an If built with subgraph builders reads outer values and runs in onnxruntime', async () => {
  const b = new GraphBuilder('branching');
  const cond = b.input('cond', DataType.BOOL, []);
  const x = b.input('x', DataType.FLOAT, [2]);
  const doubled = b.op('Add', [x, x]);
  const branch = (name: string, op: string): ReturnType<typeof emptyGraph> => {
    const sub = new GraphBuilder(name, { names: b.names });
    const out = sub.op(op, [doubled]); // captured from the enclosing graph
    sub.output(out, DataType.FLOAT, [2]);
    return sub.graph;
  };
  b.node('If', [cond], ['y'], [graphAttr('then_branch', branch('then', 'Neg')), graphAttr('else_branch', branch('else', 'Abs'))]);
  b.output('y', DataType.FLOAT, [2]);
  assert.deepEqual(topologicalOrder({ ...b.graph, node: [...b.graph.node].reverse() }).map((n) => n.opType), ['Add', 'If']);
  const s = await session(modelFrom(b.graph));
  const xv = new ort.Tensor('float32', Float32Array.from([1.5, -2]), [2]);
  const run = async (c: boolean): Promise<number[]> =>
    Array.from((await s.run({ cond: new ort.Tensor('bool', Uint8Array.from([c ? 1 : 0]), []), x: xv })).y.data as Float32Array);
  assert.deepEqual(await run(true), [-3, 4]);
  assert.deepEqual(await run(false), [3, 4]);
});

// --- the sample decoder ----------------------------------------------------------------------------------

const C = TINY_LLAMA;
const HD = C.hiddenSize / C.numAttentionHeads;
type Cache = Record<string, ort.Tensor>;

function emptyCache(batch: number): Cache {
  const cache: Cache = {};
  for (let i = 0; i < C.numHiddenLayers; i++) {
    for (const kind of ['key', 'value']) {
      cache[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [batch, C.numKeyValueHeads, 0, HD]);
    }
  }
  return cache;
}

const i64 = (rows: number[][]): ort.Tensor =>
  new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);

interface StepResult {
  logits: Float32Array;
  dims: readonly number[];
  cache: Cache;
}

/** One forward pass; `positions` default to past + 0..seq-1, the mask to all ones. */
async function step(
  s: ort.InferenceSession,
  ids: number[][],
  cache: Cache,
  mask?: number[][],
  positions?: number[][],
): Promise<StepResult> {
  const past = cache['past_key_values.0.key'].dims[2];
  const seq = ids[0].length;
  const m = mask ?? ids.map(() => Array.from({ length: past + seq }, () => 1));
  const p = positions ?? ids.map(() => Array.from({ length: seq }, (_, j) => past + j));
  const out = await s.run({ input_ids: i64(ids), attention_mask: i64(m), position_ids: i64(p), ...cache });
  const next: Cache = {};
  for (const name of Object.keys(cache)) next[name] = out[name.replace('past_key_values', 'present')];
  return { logits: out.logits.data as Float32Array, dims: out.logits.dims, cache: next };
}

/** Logits of one (row, position) of a [batch, seq, vocab] result. */
function at(r: StepResult, row: number, pos: number): Float32Array {
  const [, seq, vocab] = r.dims;
  return r.logits.subarray((row * seq + pos) * vocab, (row * seq + pos + 1) * vocab);
}

function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

let sampleSession: Promise<ort.InferenceSession> | undefined;
const sample = (): Promise<ort.InferenceSession> =>
  (sampleSession ??= ort.InferenceSession.create(`${SAMPLE_DIR}onnx/model.onnx`));

test('the committed sample decoder is the script graph with its trained weights, byte for byte', () => {
  const committed = readFileSync(`${SAMPLE_DIR}onnx/model.onnx`);
  const first = encodeModel(buildSampleDecoder(C, DEFAULT_SEED));
  const second = encodeModel(buildSampleDecoder(C, DEFAULT_SEED));
  assert.equal(Buffer.compare(Buffer.from(first), Buffer.from(second)), 0, 'the random initialisation is seeded');
  assert.notEqual(Buffer.compare(Buffer.from(encodeModel(buildSampleDecoder(C, DEFAULT_SEED + 1))), Buffer.from(first)), 0);
  const trained = encodeModel(buildSampleDecoder(C, DEFAULT_SEED, committedWeights(SAMPLE_DIR)!.weights));
  assert.equal(Buffer.compare(Buffer.from(trained), committed), 0, 'models/tiny-llama/onnx/model.onnx is stale: rerun the script');
  assert.deepEqual(JSON.parse(readFileSync(`${SAMPLE_DIR}config.json`, 'utf8')), hfConfig(C));
  assert.match(readFileSync(`${SAMPLE_DIR}MODEL_CARD.md`, 'utf8'), /\*\*Trained\*\*/);
});

test('the sample decoder has the documented layout and parameter count', () => {
  const model = decodeModel(readFileSync(`${SAMPLE_DIR}onnx/model.onnx`));
  const g = model.graph!;
  const feeds = ['input_ids', 'attention_mask', 'position_ids'];
  const fetches = ['logits'];
  for (let i = 0; i < C.numHiddenLayers; i++) {
    feeds.push(`past_key_values.${i}.key`, `past_key_values.${i}.value`);
    fetches.push(`present.${i}.key`, `present.${i}.value`);
  }
  assert.deepEqual(g.input.map((v) => v.name), feeds);
  assert.deepEqual(g.output.map((v) => v.name), fetches);
  assert.deepEqual(model.opsetImport, [{ domain: '', version: 17 }]);
  assert.equal(topologicalOrder(g).length, g.node.length);
  const names = new Set(g.node.map((n) => n.name));
  for (const n of ['/model/embed_tokens/Gather', '/model/layers.0/self_attn/q_proj/MatMul', '/model/layers.3/mlp/down_proj/MatMul', '/lm_head/MatMul']) {
    assert.ok(names.has(n), n);
  }
  const q = g.initializer.find((t) => t.name === 'model.layers.0.self_attn.q_proj.weight')!;
  assert.deepEqual(q.dims, [C.hiddenSize, C.hiddenSize]);
  assert.deepEqual(g.initializer.find((t) => t.name === 'model.layers.0.self_attn.k_proj.weight')!.dims, [C.hiddenSize, C.numKeyValueHeads * HD]);
  let params = 0;
  for (const t of g.initializer) if (!t.name!.startsWith('model.rotary_emb.')) params += t.dims.reduce((a, d) => a * d, 1);
  assert.equal(params, parameterCount(C));
  assert.ok(params > 500_000 && params < 2_000_000);
  const initial = buildSampleDecoder(C, DEFAULT_SEED).graph!.initializer.find((t) => t.name === 'model.embed_tokens.weight')!;
  const embed = tensorValues(initial).data as Float32Array;
  const std = Math.sqrt(embed.reduce((a, v) => a + v * v, 0) / embed.length);
  assert.ok(Math.abs(std - 0.02) < 0.001, `initial embedding std ${std}`);
  assert.ok(g.node.every((n) => !n.domain), 'plain ONNX ops only');
});

test('sample decoder: logits and presents have the right shapes with an empty and a filled past', async () => {
  const s = await sample();
  const first = await step(s, [[72, 101, 108]], emptyCache(1));
  assert.deepEqual(first.dims, [1, 3, C.vocabSize]);
  assert.deepEqual(first.cache['past_key_values.0.key'].dims, [1, C.numKeyValueHeads, 3, HD]);
  const second = await step(s, [[108, 111]], first.cache);
  assert.deepEqual(second.dims, [1, 2, C.vocabSize]);
  assert.deepEqual(second.cache[`past_key_values.${C.numHiddenLayers - 1}.value`].dims, [1, C.numKeyValueHeads, 5, HD]);
  assert.ok(second.logits.every(Number.isFinite));
});

test('sample decoder: greedy decoding with the KV cache matches re-running the whole sequence', async (t) => {
  const s = await sample();
  const prompt = [...Buffer.from('Hello')];
  let cached = await step(s, [prompt], emptyCache(1));
  let last = at(cached, 0, prompt.length - 1);
  const tokens = [...prompt];
  let worst = 0;
  for (let i = 0; i < 8; i++) {
    const full = await step(s, [tokens], emptyCache(1));
    const reference = at(full, 0, tokens.length - 1);
    worst = Math.max(worst, maxAbsDiff(last, reference));
    assert.equal(argmax(last), argmax(reference), `token ${i} differs`);
    tokens.push(argmax(last));
    cached = await step(s, [[tokens[tokens.length - 1]]], cached.cache);
    last = at(cached, 0, 0);
  }
  t.diagnostic(`generated ${JSON.stringify(tokens.slice(prompt.length))}; max |cached - uncached| = ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-4, `max diff ${worst}`);
});

test('sample decoder: a left-padded batch gives each row the logits it gets alone', async (t) => {
  const s = await sample();
  const pad = 258;
  const long = [...Buffer.from('tokens')];
  const short = [...Buffer.from('abcd')];
  const padding = long.length - short.length;
  const mask = [long.map(() => 1), [...Array(padding).fill(0), ...short.map(() => 1)]];
  // Hugging Face's position ids for left padding: count real tokens only (pads get 1, ignored anyway).
  const positions = [long.map((_, j) => j), [...Array(padding).fill(1), ...short.map((_, j) => j)]];
  const batch = await step(s, [long, [...Array(padding).fill(pad), ...short]], emptyCache(2), mask, positions);
  const alone = await step(s, [long], emptyCache(1));
  const shortAlone = await step(s, [short], emptyCache(1));
  let worst = 0;
  for (let j = 0; j < long.length; j++) worst = Math.max(worst, maxAbsDiff(at(batch, 0, j), at(alone, 0, j)));
  for (let j = 0; j < short.length; j++) worst = Math.max(worst, maxAbsDiff(at(batch, 1, padding + j), at(shortAlone, 0, j)));

  // One cached step on the padded batch: the padding in the past must stay masked.
  const next = [argmax(at(batch, 0, long.length - 1)), argmax(at(batch, 1, long.length - 1))];
  const stepped = await step(s, next.map((n) => [n]), batch.cache, mask.map((m) => [...m, 1]), [[long.length], [short.length]]);
  const longRef = await step(s, [[...long, next[0]]], emptyCache(1));
  const shortRef = await step(s, [[...short, next[1]]], emptyCache(1));
  worst = Math.max(worst, maxAbsDiff(at(stepped, 0, 0), at(longRef, 0, long.length)));
  worst = Math.max(worst, maxAbsDiff(at(stepped, 1, 0), at(shortRef, 0, short.length)));
  t.diagnostic(`max |batched - alone| = ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-4, `max diff ${worst}`);
});
