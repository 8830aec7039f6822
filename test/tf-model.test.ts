// Whole models through the TensorFlow.js executor (wasm), checked against ONNX Runtime: the tiny LLaMA-style
// decoder (prefill, cached decoding, a left-padded batch), the PyTorch-exported conformance models, and single
// nodes of the registry entries that no float32 node test covers (contrib ops, newer opsets). Also: gradients of
// the decoder against finite differences, no leaked tensors, and the load-time error for unsupported ops.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import type { Tensor } from 'onnxruntime-node';
import { type AttrInput } from '../src/onnx/attributes.js';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { decodeTensor } from '../src/onnx/codec.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import { type DecodedTensor, tensorValues } from '../src/onnx/tensor.js';
import { DataType } from '../src/onnx/types.js';
import { fromOrtTensor, toOrtTensor } from '../src/runtime/ort-tensor.js';
import { RuntimeError, Session } from '../src/runtime/session.js';
import { selectBackend } from '../src/runtime/tf/backend.js';
import { type Feeds, type Outputs, TfModel } from '../src/runtime/tf/interpreter.js';
import { crossEntropy, IGNORE_INDEX } from '../src/runtime/tf/objectives.js';
import { UnsupportedModelError } from '../src/runtime/tf/support.js';
import { mulberry32 } from './support/prng.js';

const TINY_LLAMA = 'models/tiny-llama/onnx/model.onnx';
const TESTDATA = '/usr/share/libonnx-testdata/data';
const MAX_ABS_DIFF = 1e-3;
const LAYERS = 4;
const KV_HEADS = 2;
const HEAD_DIM = 32;

async function ortRun(model: string | OnnxModel, feeds: Feeds): Promise<Outputs> {
  const session = await Session.create(model, { intraOpThreads: 1 });
  try {
    const ortFeeds: Record<string, Tensor> = {};
    for (const [name, v] of Object.entries(feeds)) ortFeeds[name] = toOrtTensor({ ...v, dtype: v.dtype ?? dtypeOfData(v.data) });
    const out = await session.run(ortFeeds);
    return Object.fromEntries(Object.entries(out).map(([n, t]) => [n, fromOrtTensor(t, n)]));
  } finally {
    await session.dispose();
  }
}

/** The element type a feed's container implies (the tests feed float32, int32 and int64 only). */
function dtypeOfData(data: DecodedTensor['data']): DataType {
  return data instanceof BigInt64Array ? DataType.INT64 : data instanceof Int32Array ? DataType.INT32 : DataType.FLOAT;
}

function maxAbsDiff(a: DecodedTensor, b: DecodedTensor): number {
  assert.deepEqual(a.dims, b.dims, `shape of ${a.name ?? b.name}`);
  let worst = 0;
  for (let i = 0; i < b.data.length; i++) {
    const [x, y] = [Number(a.data[i]), Number(b.data[i])];
    // NaN where ORT has NaN (sqrt of a negative) agrees; NaN against a number is as far off as it gets.
    const d = Number.isNaN(x) || Number.isNaN(y) ? (Number.isNaN(x) && Number.isNaN(y) ? 0 : Infinity) : Math.abs(x - y);
    worst = Math.max(worst, d);
  }
  return worst;
}

function assertClose(got: Outputs, want: Outputs, what: string): number {
  let worst = 0;
  for (const [name, w] of Object.entries(want)) {
    assert.ok(got[name], `${what}: output ${name} missing`);
    const d = maxAbsDiff(got[name], w);
    assert.ok(d < MAX_ABS_DIFF, `${what}: ${name} differs from ONNX Runtime by ${d}`);
    worst = Math.max(worst, d);
  }
  return worst;
}

const int64 = (dims: number[], values: number[]) => ({ dims, data: BigInt64Array.from(values.map(BigInt)) });

function decoderFeeds(ids: number[][], mask: number[][], positions: number[][], past: Record<string, DecodedTensor> = {}): Feeds {
  const batch = ids.length;
  const feeds: Feeds = {
    input_ids: int64([batch, ids[0].length], ids.flat()),
    attention_mask: int64([batch, mask[0].length], mask.flat()),
    position_ids: int64([batch, positions[0].length], positions.flat()),
  };
  for (let l = 0; l < LAYERS; l++) {
    for (const kind of ['key', 'value']) {
      feeds[`past_key_values.${l}.${kind}`] = past[`present.${l}.${kind}`] ?? { dims: [batch, KV_HEADS, 0, HEAD_DIM], data: new Float32Array(0) };
    }
  }
  return feeds;
}

/** The input_<i>.pb or output_<i>.pb tensors of a test data set, in index order. */
function tensorFiles(dir: string, prefix: string): DecodedTensor[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.pb'))
    .sort((a, b) => Number(a.slice(prefix.length, -3)) - Number(b.slice(prefix.length, -3)))
    .map((f) => tensorValues(decodeTensor(readFileSync(join(dir, f)))));
}

function tensorCount(): number {
  return tf.memory().numTensors;
}

describe('tf executor on whole models (wasm) against ONNX Runtime', () => {
  before(async () => {
    assert.equal(await selectBackend('wasm'), 'wasm');
  });

  describe('tiny-llama decoder', { skip: !existsSync(TINY_LLAMA) && `${TINY_LLAMA} not built` }, () => {
    let model: TfModel;
    before(() => {
      model = TfModel.compile(loadModel(TINY_LLAMA));
    });

    it('prefill and one cached decoding step match ONNX Runtime', async (t) => {
      const prompt = [256, 72, 101, 108, 108, 111, 44];
      const prefill = decoderFeeds([prompt], [prompt.map(() => 1)], [prompt.map((_, i) => i)]);
      const tensorsBefore = tensorCount();
      const got = model.run(prefill);
      assert.equal(tensorCount(), tensorsBefore, 'a run leaves no tensors behind');
      const want = await ortRun(TINY_LLAMA, prefill);
      const prefillDiff = assertClose(got, want, 'prefill');
      const step = decoderFeeds([[32]], [[...prompt.map(() => 1), 1]], [[prompt.length]], want);
      const stepDiff = assertClose(model.run(step), await ortRun(TINY_LLAMA, step), 'decoding step');
      t.diagnostic(`tiny-llama max |logits - ORT|: prefill ${prefillDiff.toExponential(2)}, cached step ${stepDiff.toExponential(2)}`);
    });

    it('a left-padded batch matches ONNX Runtime', async () => {
      const feeds = decoderFeeds(
        [
          [258, 258, 256, 65, 66],
          [256, 67, 68, 69, 70],
        ],
        [
          [0, 0, 1, 1, 1],
          [1, 1, 1, 1, 1],
        ],
        [
          [1, 1, 0, 1, 2],
          [0, 1, 2, 3, 4],
        ],
      );
      assertClose(model.run(feeds), await ortRun(TINY_LLAMA, feeds), 'padded batch');
    });

    it('fetches intermediate values by name', () => {
      const feeds = decoderFeeds([[256, 65]], [[1, 1]], [[0, 1]]);
      const out = model.run(feeds, ['/model/embed_tokens/Gather_output_0', 'logits']);
      assert.deepEqual(Object.keys(out).sort(), ['/model/embed_tokens/Gather_output_0', 'logits']);
      assert.deepEqual(out['/model/embed_tokens/Gather_output_0'].dims, [1, 2, 128]);
    });

    it('gradients of a next-token loss match finite differences, for weights and for the KV cache', () => {
      const prompt = [256, 84, 104, 101];
      const targets = [84, 104, 101, 32];
      const first = model.run(decoderFeeds([prompt.slice(0, 2)], [[1, 1]], [[0, 1]]));
      const feeds = decoderFeeds([prompt.slice(2)], [[1, 1, 1, 1]], [[2, 3]], first);
      const targetIds = targets.slice(2);
      // Cross-entropy of the next tokens: -mean(log_softmax(logits)[target]).
      const loss = (logits: DecodedTensor): number => {
        const vocab = logits.dims[2];
        const data = logits.data as Float32Array;
        let total = 0;
        targetIds.forEach((t, i) => {
          const row = data.subarray(i * vocab, (i + 1) * vocab);
          const max = Math.max(...row);
          const logSum = Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
          total += logSum - row[t];
        });
        return total / targetIds.length;
      };
      const weights = ['model.embed_tokens.weight', 'model.layers.1.self_attn.q_proj.weight', 'model.norm.weight', 'lm_head.weight'];
      for (const w of weights) assert.ok(model.weightNames.includes(w), `weight ${w}`);
      const tensorsBefore = tensorCount();
      const grads = model.gradients({
        feeds,
        weights,
        inputs: ['past_key_values.0.key'],
        fetches: ['logits'],
        objective: crossEntropy(int64([1, targetIds.length], targetIds)),
      });
      assert.equal(tensorCount(), tensorsBefore, 'gradients leave no tensors behind');
      assert.ok(Math.abs(grads.objective - loss(model.run(feeds, ['logits']).logits)) < 1e-4, 'objective value');
      const random = mulberry32(7);
      const h = 5e-3;
      const check = (what: string, analytic: DecodedTensor, index: number, perturb: (delta: number) => void) => {
        perturb(h);
        const up = loss(model.run(feeds, ['logits']).logits);
        perturb(-2 * h);
        const down = loss(model.run(feeds, ['logits']).logits);
        perturb(h);
        const numeric = (up - down) / (2 * h);
        const a = Number(analytic.data[index]);
        assert.ok(Math.abs(a - numeric) <= 2e-3 + 5e-2 * Math.abs(numeric), `${what}[${index}]: analytic ${a} vs finite difference ${numeric}`);
      };
      for (const w of weights) {
        const g = grads.weights[w];
        const value = model.readWeight(w);
        assert.deepEqual(g.dims, value.dims);
        // The largest-gradient element (so the check is not of a near-zero value), plus a random one.
        const data = g.data as Float32Array;
        const largest = data.reduce((best, v, i) => (Math.abs(v) > Math.abs(data[best]) ? i : best), 0);
        for (const index of [largest, Math.floor(random() * data.length)]) {
          const base = (value.data as Float32Array).slice();
          check(w, g, index, (delta) => {
            base[index] += delta;
            model.assignWeight(w, { dims: value.dims, data: base });
          });
        }
      }
      // Embedding rows of tokens not in the input get no gradient (the Gather gradient is a scatter-add).
      const embedding = grads.weights['model.embed_tokens.weight'];
      const hidden = embedding.dims[1];
      const rowNorm = (row: number) => (embedding.data as Float32Array).subarray(row * hidden, (row + 1) * hidden).reduce((s, v) => s + Math.abs(v), 0);
      assert.equal(rowNorm(0), 0);
      assert.ok(rowNorm(prompt[2]) > 0);
      const kv = grads.inputs['past_key_values.0.key'];
      const kvFeed = feeds['past_key_values.0.key'];
      const kvData = (kvFeed.data as Float32Array).slice();
      const kvIndex = Math.floor(random() * kvData.length);
      check('past_key_values.0.key', kv, kvIndex, (delta) => {
        kvData[kvIndex] += delta;
        feeds['past_key_values.0.key'] = { ...kvFeed, data: kvData.slice() };
      });
    });

    it('skips IGNORE_INDEX positions in the cross-entropy objective', () => {
      const feeds = decoderFeeds([[256, 72, 105]], [[1, 1, 1]], [[0, 1, 2]]);
      const all = model.gradients({ feeds, weights: ['model.norm.weight'], objective: crossEntropy(int64([1, 3], [72, 105, 33])) });
      const last = model.gradients({ feeds, weights: ['model.norm.weight'], objective: crossEntropy(int64([1, 3], [IGNORE_INDEX, IGNORE_INDEX, 33])) });
      const logits = model.run(feeds, ['logits']).logits;
      const vocab = logits.dims[2];
      const row = (logits.data as Float32Array).subarray(2 * vocab, 3 * vocab);
      const max = Math.max(...row);
      const expected = Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) + max - row[33];
      assert.ok(Math.abs(last.objective - expected) < 1e-4, `objective ${last.objective} vs ${expected}`);
      assert.notEqual(all.objective, last.objective);
    });

    it('gives zero gradients for weights the objective does not depend on', () => {
      const feeds = decoderFeeds([[256, 72]], [[1, 1]], [[0, 1]]);
      const embedded = '/model/embed_tokens/Gather_output_0';
      const grads = model.gradients({ feeds, weights: ['lm_head.weight', 'model.embed_tokens.weight'], fetches: [embedded], objective: (o, ops) => ops.sum(o[embedded]) });
      assert.ok((grads.weights['lm_head.weight'].data as Float32Array).every((v) => v === 0));
      assert.equal((grads.weights['model.embed_tokens.weight'].data as Float32Array).reduce((s, v) => s + v, 0), 2 * 128);
    });

    it('a cached decoding step costs less than a prefill of the context it extends', (t) => {
      // What the KV cache is for: one new token against 128 cached positions must run faster than recomputing
      // those 128 positions (about 4x here on wasm). A cache that is ignored, or an executor that recomputes
      // every position, fails this. Medians of interleaved runs, so a busy machine slows both sides alike.
      const length = 128;
      const prompt = Array.from({ length }, (_, i) => (i * 13) % 256);
      const feeds = decoderFeeds([prompt], [prompt.map(() => 1)], [prompt.map((_, i) => i)]);
      const cache = model.run(feeds);
      const step = decoderFeeds([[65]], [[...prompt.map(() => 1), 1]], [[length]], cache);
      model.run(step);
      const prefill: number[] = [];
      const cached: number[] = [];
      for (let i = 0; i < 7; i++) {
        let started = performance.now();
        model.run(feeds);
        prefill.push(performance.now() - started);
        started = performance.now();
        model.run(step);
        cached.push(performance.now() - started);
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
      const [prefillMs, stepMs] = [median(prefill), median(cached)];
      t.diagnostic(
        `tiny-llama on wasm: prefill of ${length} tokens ${prefillMs.toFixed(1)} ms (${((length * 1000) / prefillMs).toFixed(0)} tokens/s), ` +
          `one cached step ${stepMs.toFixed(1)} ms (${(1000 / stepMs).toFixed(0)} tokens/s)`,
      );
      assert.ok(stepMs < prefillMs, `a cached step (${stepMs.toFixed(1)} ms) is not faster than a ${length}-token prefill (${prefillMs.toFixed(1)} ms)`);
    });
  });

  it('matches ONNX Runtime on the PyTorch-exported conformance models it supports', { skip: !existsSync(TESTDATA) && `${TESTDATA} not installed` }, async (t) => {
    const checked: string[] = [];
    const refused: string[] = [];
    const againstReference: string[] = [];
    const skipped: string[] = [];
    for (const suite of ['pytorch-converted', 'pytorch-operator']) {
      for (const name of readdirSync(join(TESTDATA, suite)).sort()) {
        const dir = join(TESTDATA, suite, name);
        if (!existsSync(join(dir, 'model.onnx'))) continue;
        const onnx = loadModel(join(dir, 'model.onnx'));
        if ([...onnx.graph.input, ...onnx.graph.output].some((v) => v.type?.tensorType?.elemType === DataType.DOUBLE)) {
          skipped.push(name); // float64 data, which tfjs narrows to float32 (and some of these files hold uninitialised values)
          continue;
        }
        let compiled: TfModel;
        try {
          compiled = TfModel.compile(onnx);
        } catch (e) {
          if (!(e instanceof UnsupportedModelError)) throw e;
          refused.push(`${name} (${e.problems.map((p) => p.op || p.where).join(', ')})`);
          continue;
        }
        try {
          const set = join(dir, 'test_data_set_0');
          const inputs = tensorFiles(set, 'input_');
          const feeds = Object.fromEntries(inputs.map((t, i) => [compiled.inputNames[i], t]));
          let want: Outputs;
          try {
            want = await ortRun(onnx, feeds);
            checked.push(name);
          } catch (e) {
            if (!(e instanceof RuntimeError)) throw e;
            // ORT has no kernel for some opset-1 ops of these old exports: compare with PyTorch's recorded outputs.
            want = Object.fromEntries(tensorFiles(set, 'output_').map((t, i) => [compiled.outputNames[i], t]));
            againstReference.push(name);
          }
          assertClose(compiled.run(feeds), want, `${suite}/${name}`);
        } finally {
          compiled.dispose();
        }
      }
    }
    t.diagnostic(
      `PyTorch-exported models matching ONNX Runtime: ${checked.length} (${checked.join(' ')}); refused by the tf executor: ${refused.length} (${refused.join('; ')}); ` +
        `refused by ONNX Runtime, so matched against the recorded PyTorch outputs instead: ${againstReference.length} (${againstReference.join(' ')}); ` +
        `skipped for float64 data: ${skipped.length} (${skipped.join(' ')})`,
    );
    assert.ok(checked.length >= 80 && againstReference.length >= 25, `only ${checked.length} + ${againstReference.length} PyTorch-exported models ran`);
  });

  describe('single nodes without float32 conformance data, against ONNX Runtime', () => {
    interface NodeCheck {
      op: string;
      inputs: { shape: number[]; values?: number[]; dtype?: DataType; init?: boolean }[];
      attrs?: AttrInput;
      opset?: number;
      domain?: string;
    }
    const data = (shape: number[]) => ({ shape });
    const axes = (values: number[]) => ({ shape: [values.length], values, dtype: DataType.INT64, init: true });
    const CHECKS: NodeCheck[] = [
      { op: 'CumSum', inputs: [data([3, 4]), { shape: [], values: [1], dtype: DataType.INT32, init: true }], attrs: { exclusive: 1 } },
      { op: 'CumSum', inputs: [data([3, 4]), { shape: [], values: [0], dtype: DataType.INT64, init: true }], attrs: { reverse: 1 } },
      { op: 'ReduceLogSumExp', inputs: [data([2, 3, 4])], attrs: { axes: [1] }, opset: 13 },
      ...['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceSumSquare', 'ReduceLogSumExp'].map((op) => ({
        op,
        inputs: [data([2, 3, 4]), axes([0, -1])],
        attrs: { keepdims: 0 },
        opset: 18,
      })),
      { op: 'ReduceLogSum', inputs: [{ shape: [2, 3, 4], values: Array.from({ length: 24 }, (_, i) => 0.5 + i / 10) }, axes([2])], opset: 18 },
      { op: 'ReduceSum', inputs: [data([2, 3, 4])], attrs: { axes: [0, 2], keepdims: 0 }, opset: 11 },
      { op: 'ReduceMean', inputs: [data([2, 3]), { shape: [0], values: [], dtype: DataType.INT64, init: true }], attrs: { noop_with_empty_axes: 1 }, opset: 18 },
      { op: 'Softmax', inputs: [data([2, 3, 4])], attrs: { axis: 1 }, opset: 11 },
      { op: 'LogSoftmax', inputs: [data([2, 3, 4])], opset: 11 },
      { op: 'Hardmax', inputs: [data([2, 3, 4])], attrs: { axis: 2 }, opset: 11 },
      { op: 'Clip', inputs: [data([2, 3])], attrs: { min: -0.3, max: 0.4 }, opset: 6 },
      { op: 'CastLike', inputs: [data([2, 3]), { shape: [1], values: [0], dtype: DataType.INT32, init: true }], opset: 15 },
      { op: 'Gelu', inputs: [data([2, 3])], opset: 20 },
      { op: 'Gelu', inputs: [data([2, 3])], attrs: { approximate: 'tanh' }, opset: 20 },
      { op: 'Mish', inputs: [data([2, 3])], opset: 18 },
      { op: 'SimplifiedLayerNormalization', inputs: [data([2, 3, 8]), { shape: [8], init: true }], attrs: { epsilon: 1e-6 } },
      { op: 'SkipLayerNormalization', domain: 'com.microsoft', inputs: [data([2, 3, 8]), data([2, 3, 8]), { shape: [8], init: true }, { shape: [8], init: true }, { shape: [8], init: true }] },
      { op: 'SkipSimplifiedLayerNormalization', domain: 'com.microsoft', inputs: [data([2, 3, 8]), data([2, 3, 8]), { shape: [8], init: true }] },
      { op: 'Gelu', domain: 'com.microsoft', inputs: [data([2, 3])] },
      { op: 'BiasGelu', domain: 'com.microsoft', inputs: [data([2, 3]), { shape: [3], init: true }] },
      { op: 'FastGelu', domain: 'com.microsoft', inputs: [data([2, 3]), { shape: [3], init: true }] },
      { op: 'QuickGelu', domain: 'com.microsoft', inputs: [data([2, 3])], attrs: { alpha: 1.5 } },
    ];

    CHECKS.forEach((c, n) => {
      it(`${c.domain ? `${c.domain}:` : ''}${c.op} (opset ${c.opset ?? 17})`, async () => {
        const random = mulberry32(100 + n);
        const b = new GraphBuilder('node');
        const feeds: Feeds = {};
        const names = c.inputs.map((spec, i) => {
          const dtype = spec.dtype ?? DataType.FLOAT;
          const count = spec.shape.reduce((p, d) => p * d, 1);
          const values = spec.values ?? Array.from({ length: count }, () => random() * 4 - 2);
          if (spec.init) return b.initializer(`c${i}`, dtype, spec.shape, dtype === DataType.INT64 ? values.map(BigInt) : values);
          feeds[`x${i}`] = { dims: spec.shape, data: Float32Array.from(values) };
          return b.input(`x${i}`, dtype, spec.shape);
        });
        const y = b.op(c.op, names, c.attrs, c.domain ? { domain: c.domain } : {});
        b.output(y, c.op === 'CastLike' ? (c.inputs[1].dtype ?? DataType.FLOAT) : DataType.FLOAT);
        const onnx = new OnnxModel(modelFrom(b.graph, { opsets: { '': c.opset ?? 17, 'com.microsoft': 1 } }), undefined, c.op);
        const compiled = TfModel.compile(onnx);
        try {
          const want = await ortRun(onnx, feeds);
          const got = compiled.run(feeds);
          assertClose(got, want, c.op);
        } finally {
          compiled.dispose();
        }
      });
    });
  });

  it('refuses a model with unsupported ops at load time, naming every op type and a node of each', () => {
    const b = new GraphBuilder('g');
    b.input('x', DataType.FLOAT, [2, 3]);
    const a = b.op('Relu', ['x']);
    const u1 = b.op('NonZero', [a], {}, { name: 'find_nonzero' });
    const u2 = b.op('MyCustomOp', [a], {}, { name: 'custom', domain: 'org.example' });
    const u3 = b.op('MaxPool', ['x'], { kernel_shape: [2] }, { name: 'pool' });
    b.node('MaxPool', ['x'], ['pooled', 'indices'], { kernel_shape: [2] }, { name: 'pool_with_indices' });
    for (const o of [u1, u2, u3, 'pooled', 'indices']) b.output(o, DataType.FLOAT);
    const onnx = new OnnxModel(modelFrom(b.graph), undefined, 'bad.onnx');
    assert.throws(
      () => TfModel.compile(onnx),
      (e: unknown) => {
        assert.ok(e instanceof UnsupportedModelError);
        assert.ok(!e.message.includes('\n'), 'one line');
        for (const part of ['bad.onnx', 'NonZero', "'find_nonzero'", 'org.example:MyCustomOp', "'custom'", 'Indices output', "'pool_with_indices'"]) {
          assert.ok(e.message.includes(part), `message names ${part}: ${e.message}`);
        }
        assert.equal(e.problems.length, 3);
        return true;
      },
    );
  });

  it('refuses bad feeds with a message naming the input', () => {
    const b = new GraphBuilder('g');
    b.input('ids', DataType.INT64, ['batch', 3]);
    b.output(b.op('Identity', ['ids']), DataType.INT64);
    const compiled = TfModel.compile(new OnnxModel(modelFrom(b.graph), undefined, 'feeds.onnx'));
    try {
      assert.throws(() => compiled.run({}), /feeds\.onnx: input 'ids' is missing/);
      assert.throws(() => compiled.run({ ids: { dtype: DataType.FLOAT, dims: [1, 3], data: new Float32Array(3) } }), /input 'ids' must be int64, got float32/);
      assert.throws(() => compiled.run({ ids: int64([1, 2], [1, 2]) }), /input 'ids' must have shape \[batch, 3\], got \[1, 2\]/);
      assert.throws(() => compiled.run({ ids: { dims: [1, 3], data: BigInt64Array.from([1n, 2n, 1n << 40n]) } }), /outside the int32 range/);
      const out = compiled.run({ ids: int64([1, 3], [5, -6, 7]) });
      assert.deepEqual(out[Object.keys(out)[0]].data, BigInt64Array.from([5n, -6n, 7n]));
    } finally {
      compiled.dispose();
    }
  });
});
