// Pruning surgery (src/pruning/surgery.ts), checked in ONNX Runtime against the unpruned graph: keeping every unit
// reproduces the original outputs exactly; removing units equals zeroing their weights in the original (an
// attention group: its query heads' q columns and o rows, its k and v columns; a neuron: its gate/up columns and
// down row), with different sizes per layer, biases, fused QKV and constants shared across layers; FLAP
// compensation equals the zeroed model plus that bias; KV-cache decoding equals full re-runs on the pruned model;
// and the written model is smaller and says its per-layer sizes.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Tensor } from 'onnxruntime-node';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { OnnxCompressError } from '../src/errors.js';
import { encodeModel } from '../src/onnx/codec.js';
import { GraphEditor } from '../src/onnx/editor.js';
import { embeddedKey, stripCompanions } from '../src/onnx/model-folder.js';
import { stageCompanions, withCompanionsFor } from '../src/passes/output-companions.js';
import type { OutputTarget } from '../src/quantization/output-names.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import { tensorValues } from '../src/onnx/tensor.js';
import { DataType } from '../src/onnx/types.js';
import { PRUNING_METADATA_KEY, pruneDecoder } from '../src/pruning/surgery.js';
import type { LayerKeep, PruneSelection } from '../src/pruning/selection.js';
import { quantizeModel } from '../src/quantization/writers/index.js';
import { Session, type Feeds } from '../src/runtime/session.js';
import type { DecoderStructure, Projection } from '../src/structure/decoder-structure.js';
import { discoverDecoderStructure, nodesByLabel } from '../src/structure/discover.js';
import { llamaModel, smallLlama, withDecomposedLayerNorm, withQkvBiases, withSlicedQkv, withTiledRepeat } from './support/decoder-variants.js';
import { mulberry32 } from './support/prng.js';

const LLAMA = 'models/tiny-llama/onnx/model.onnx';
const GPT2 = 'models/tiny-gpt2/onnx/model.onnx';
const TOLERANCE = 1e-4;

const dir = mkdtempSync(join(tmpdir(), 'pruning-surgery-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Feeds for a first step over `rows` (equal lengths): empty caches shaped as the model declares them. */
function feeds(model: OnnxModel, rows: number[][]): Feeds {
  const batch = rows.length;
  const len = rows[0].length;
  const ints = (f: (r: number, i: number) => number): Tensor => new Tensor('int64', BigInt64Array.from({ length: batch * len }, (_, k) => BigInt(f(Math.floor(k / len), k % len))), [batch, len]);
  const out: Feeds = { input_ids: ints((r, i) => rows[r][i]), attention_mask: ints(() => 1), position_ids: ints((_, i) => i) };
  for (const v of model.graph.input) {
    if (!v.name?.startsWith('past_key_values')) continue;
    const dims = v.type!.tensorType!.shape!.dim.map((d, i) => (i === 0 ? batch : i === 2 ? 0 : d.dimValue!));
    out[v.name] = new Tensor('float32', new Float32Array(0), dims);
  }
  return out;
}

async function outputs(model: OnnxModel, rows: number[][]): Promise<Record<string, Float32Array>> {
  const session = await Session.create(model, { intraOpThreads: 1 });
  try {
    const out = await session.run(feeds(model, rows));
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.data as Float32Array]));
  } finally {
    await session.dispose();
  }
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function tokens(seed: number, batch: number, len: number): number[][] {
  const rand = mulberry32(seed);
  return Array.from({ length: batch }, () => Array.from({ length: len }, () => Math.floor(rand() * 256)));
}

/** A seeded selection keeping `groupsKept[l]` groups and about `neuronShare` of the neurons of each layer. */
function selectionFor(s: DecoderStructure, groupsKept: number[], neuronShare: number[], seed: number): PruneSelection {
  const rand = mulberry32(seed);
  const pick = (n: number, k: number): number[] => {
    const all = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [all[i], all[j]] = [all[j], all[i]];
    }
    return all.slice(0, Math.max(1, k)).sort((a, b) => a - b);
  };
  return s.layers.map((l, i) => ({ groups: pick(l.attention.kvHeads, groupsKept[i % groupsKept.length]), neurons: pick(l.mlp.width, Math.round(l.mlp.width * neuronShare[i % neuronShare.length])) }));
}

/**
 * The unpruned model with the removed units' weights zeroed (and any compensation added as a bias): what the
 * pruned model must compute. Query head h reads key/value head floor(h / (heads / kvHeads)) where repeat_kv lays
 * them out ('contiguous'), h mod kvHeads where Tile does ('strided'); zeroing o's rows of a group's heads removes
 * the group's contribution whatever softmax does.
 */
function zeroed(model: OnnxModel, s: DecoderStructure, selection: PruneSelection, layout: 'contiguous' | 'strided'): OnnxModel {
  const editor = new GraphEditor(model);
  const values = new Map<string, Float32Array>();
  const weight = (name: string): Float32Array => {
    if (!values.has(name)) {
      const t = model.graph.initializer.find((x) => x.name === name)!;
      values.set(name, Float32Array.from(tensorValues(t, model.rawBytes(t)).data as Float32Array));
    }
    return values.get(name)!;
  };
  const zero = (p: Projection, indices: number[], side: 'out' | 'in', offset = 0): void => {
    const t = model.graph.initializer.find((x) => x.name === p.weight)!;
    const w = weight(p.weight);
    const [rows, cols] = t.dims;
    const axis = side === 'out' ? p.outAxis : 1 - p.outAxis;
    for (const k of indices) {
      if (axis === 0) w.fill(0, (k + offset) * cols, (k + offset + 1) * cols);
      else for (let r = 0; r < rows; r++) w[r * cols + k + offset] = 0;
    }
    if (side === 'out' && p.bias) for (const k of indices) weight(p.bias)[k + offset] = 0;
  };
  const addBias = (p: Projection, v: Float32Array): void => {
    if (p.bias) {
      const b = weight(p.bias);
      for (let i = 0; i < b.length; i++) b[i] += v[i];
      return;
    }
    const node = nodesByLabel(model.graph).get(p.node)!;
    const name = editor.tensor('expected_compensation', DataType.FLOAT, [v.length], v);
    const raw = editor.value('raw');
    editor.replace(node, [{ ...node, output: [raw] }, editor.node('Add', [raw, name], node.output)]);
  };
  s.layers.forEach((l, i) => {
    const keep = selection[i];
    const a = l.attention;
    const rep = a.heads / a.kvHeads;
    const gone = Array.from({ length: a.kvHeads }, (_, g) => g).filter((g) => !keep.groups.includes(g));
    const headsOf = (g: number): number[] => Array.from({ length: rep }, (_, r) => (layout === 'contiguous' ? g * rep + r : g + r * a.kvHeads));
    const qCols = gone.flatMap((g) => headsOf(g).flatMap((h) => Array.from({ length: a.headDim }, (_, j) => h * a.headDim + j)));
    const kvCols = gone.flatMap((g) => Array.from({ length: a.headDim }, (_, j) => g * a.headDim + j));
    if (a.qkv) {
      zero(a.qkv, qCols, 'out');
      zero(a.qkv, kvCols, 'out', a.heads * a.headDim);
      zero(a.qkv, kvCols, 'out', (a.heads + a.kvHeads) * a.headDim);
    } else {
      zero(a.q!, qCols, 'out');
      zero(a.k!, kvCols, 'out');
      zero(a.v!, kvCols, 'out');
    }
    zero(a.o, qCols, 'in');
    const neurons = Array.from({ length: l.mlp.width }, (_, j) => j).filter((j) => !keep.neurons.includes(j));
    if (l.mlp.gate) zero(l.mlp.gate, neurons, 'out');
    zero(l.mlp.up, neurons, 'out');
    zero(l.mlp.down, neurons, 'in');
    if (keep.compensation?.attention) addBias(a.o, keep.compensation.attention);
    if (keep.compensation?.mlp) addBias(l.mlp.down, keep.compensation.mlp);
  });
  for (const [name, v] of values) {
    const t = model.graph.initializer.find((x) => x.name === name)!;
    editor.replaceInitializer(name, DataType.FLOAT, t.dims, v);
  }
  return editor.finish().model;
}

async function checkEqualsZeroing(model: OnnxModel, selection: PruneSelection, what: string, layout: 'contiguous' | 'strided' = 'contiguous'): Promise<OnnxModel> {
  const s = discoverDecoderStructure(model);
  const pruned = pruneDecoder(model, s, selection);
  const rows = tokens(11, 2, 9);
  const want = (await outputs(zeroed(model, s, selection, layout), rows)).logits;
  const got = (await outputs(pruned, rows)).logits;
  const d = maxDiff(want, got);
  assert.ok(d < TOLERANCE, `${what}: pruned logits differ from the zeroed model's by ${d}`);
  // The check can fail: had other units been removed, the outputs would differ.
  assert.ok(maxDiff((await outputs(model, rows)).logits, got) > 100 * TOLERANCE, `${what}: pruning changed nothing`);
  return pruned;
}

const all = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe('pruning surgery', () => {
  it('keeping every unit reproduces the original outputs exactly (tiny-llama, tiny-gpt2)', async () => {
    for (const path of [LLAMA, GPT2]) {
      const model = loadModel(path);
      const s = discoverDecoderStructure(model);
      const pruned = pruneDecoder(model, s, s.layers.map((l): LayerKeep => ({ groups: all(l.attention.kvHeads), neurons: all(l.mlp.width) })));
      const rows = tokens(3, 2, 7);
      const [want, got] = [await outputs(model, rows), await outputs(pruned, rows)];
      assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort());
      for (const k of Object.keys(want)) assert.equal(maxDiff(want[k], got[k]), 0, `${path}: output ${k} changed`);
    }
  });

  it('removing units equals zeroing them, with different sizes per layer (tiny-llama, tiny-gpt2)', async () => {
    const llama = loadModel(LLAMA);
    const ls = discoverDecoderStructure(llama);
    await checkEqualsZeroing(llama, selectionFor(ls, [1, 2, 1, 1], [0.5, 0.25, 1, 0.7], 1), 'tiny-llama');
    const gpt2 = loadModel(GPT2);
    const gs = discoverDecoderStructure(gpt2);
    await checkEqualsZeroing(gpt2, selectionFor(gs, [3, 1, 4, 2], [0.6, 0.3, 0.9, 1], 2), 'tiny-gpt2');
  });

  it('GQA with q/k/v biases, and a size constant that several layers share', async () => {
    const biased = withQkvBiases(llamaModel(smallLlama({ numAttentionHeads: 6, numKeyValueHeads: 3, numHiddenLayers: 3 }), 4, 'gqa-bias'));
    const s = discoverDecoderStructure(biased);
    await checkEqualsZeroing(biased, selectionFor(s, [1, 2, 3], [0.5, 0.8, 0.3], 5), 'GQA with biases');
    const shared = withSharedShapeConstants(biased);
    const ss = discoverDecoderStructure(shared);
    const holders = ss.layers.map((l) => l.attention.sizes.find((c) => c.meaning === 'heads')!.holder);
    assert.equal(new Set(holders).size, 1, 'the variant shares its head-count constant across layers');
    await checkEqualsZeroing(shared, selectionFor(ss, [1, 2, 3], [0.5, 0.8, 0.3], 5), 'shared constants');
  });

  it('GQA repeated by Tile (interleaved groups)', async () => {
    const model = withTiledRepeat(llamaModel(smallLlama({ numAttentionHeads: 6, numKeyValueHeads: 3, numHiddenLayers: 2 }), 13, 'tiled'));
    const s = discoverDecoderStructure(model);
    await checkEqualsZeroing(model, selectionFor(s, [1, 2], [0.5, 0.8], 14), 'Tile repeat', 'strided');
  });

  it('fused QKV cut by Slices with shared bounds, LayerNorm decomposed', async () => {
    const model = withDecomposedLayerNorm(withSlicedQkv(loadModel(GPT2)));
    const s = discoverDecoderStructure(model);
    await checkEqualsZeroing(model, selectionFor(s, [1, 3, 2, 4], [0.5, 0.9], 12), 'sliced QKV');
  });

  it('compensation: the pruned model equals the zeroed one plus that bias (no bias: an Add is made; bias: folded)', async () => {
    const rand = mulberry32(9);
    for (const path of [LLAMA, GPT2]) {
      const model = loadModel(path);
      const s = discoverDecoderStructure(model);
      const vec = (): Float32Array => Float32Array.from({ length: s.hidden }, () => (rand() - 0.5) * 0.2);
      const selection = selectionFor(s, [1], [0.5], 3).map((k, i) => (i === 1 ? { ...k, compensation: { attention: vec(), mlp: vec() } } : k));
      await checkEqualsZeroing(model, selection, `${path} with compensation`);
    }
  });

  it('KV-cache decoding equals full re-runs on the pruned model', async () => {
    for (const path of [LLAMA, GPT2]) {
      const model = loadModel(path);
      const s = discoverDecoderStructure(model);
      const pruned = pruneDecoder(model, s, selectionFor(s, [1, 2], [0.5, 0.75], 4));
      const steps: Float32Array[][] = [];
      for (const useCache of [true, false]) {
        const d = await DecoderSession.open(pruned, { useCache, intraOpThreads: 1 });
        try {
          let step = await d.forward([[256, 72, 101, 108, 108], [256, 87, 104, 97, 108]]);
          const seen = [step.logits.data.slice()];
          for (const next of [111, 32, 119]) {
            step = await d.forward([[next], [next + 1]], step.state);
            seen.push(step.logits.data.slice());
          }
          steps.push(seen);
        } finally {
          await d.dispose();
        }
      }
      steps[0].forEach((cached, i) => assert.ok(maxDiff(cached, steps[1][i]) < TOLERANCE, `${path}: step ${i} differs between cached and full decoding`));
    }
  });

  it('the pruned file is smaller, rediscovers to the kept sizes, and records them in metadata and config.json', () => {
    const model = loadModel(LLAMA);
    const s = discoverDecoderStructure(model);
    const selection = selectionFor(s, [1, 2, 1, 2], [0.5, 0.25], 6);
    const pruned = pruneDecoder(model, s, selection);
    const [before, after] = [encodeModel(model.proto).length, encodeModel(pruned.proto).length];
    assert.ok(after < 0.8 * before, `${after} bytes written, ${before} before`);
    const again = discoverDecoderStructure(pruned);
    again.layers.forEach((l, i) => {
      assert.equal(l.attention.kvHeads, selection[i].groups.length);
      assert.equal(l.attention.heads, selection[i].groups.length * (s.layers[i].attention.heads / s.layers[i].attention.kvHeads));
      assert.equal(l.mlp.width, selection[i].neurons.length);
    });
    const meta = new Map(pruned.proto.metadataProps.map((e) => [e.key, e.value]));
    const recorded = JSON.parse(meta.get(PRUNING_METADATA_KEY)!);
    assert.deepEqual(recorded.layers.map((l: { kvHeads: number }) => l.kvHeads), selection.map((k) => k.groups.length));
    const config = JSON.parse(meta.get(embeddedKey('config.json'))!);
    assert.deepEqual(config.num_key_value_heads_per_layer, selection.map((k) => k.groups.length));
    assert.deepEqual(config.intermediate_size_per_layer, selection.map((k) => k.neurons.length));
    assert.equal(config.head_dim, s.layers[0].attention.headDim);
    for (const i of [0, 1]) {
      const past = pruned.graph.input.find((v) => v.name === `past_key_values.${i}.value`)!;
      assert.equal(past.type?.tensorType?.shape?.dim[1].dimValue, selection[i].groups.length);
    }
    // Uniform pruning keeps the plain keys exact.
    const uniform = pruneDecoder(model, s, selectionFor(s, [1], [0.5], 7));
    const uc = JSON.parse(new Map(uniform.proto.metadataProps.map((e) => [e.key, e.value])).get(embeddedKey('config.json'))!);
    assert.deepEqual([uc.num_attention_heads, uc.num_key_value_heads, uc.intermediate_size], [2, 1, 192]);
  });

  it("a written pruned model carries its own config.json, not the input's (file and folder outputs)", () => {
    const model = loadModel(LLAMA);
    const s = discoverDecoderStructure(model);
    const selection = selectionFor(s, [1, 2], [0.5], 8);
    const pruned = pruneDecoder(model, s, selection);
    const file = withCompanionsFor({ path: join(dir, 'pruned.onnx'), naming: 'onnx-compress', folder: null } as OutputTarget, pruned, model);
    const meta = new Map(file.proto.metadataProps.map((e) => [e.key, e.value]));
    assert.deepEqual(JSON.parse(meta.get(embeddedKey('config.json'))!).num_key_value_heads_per_layer, selection.map((k) => k.groups.length));
    assert.ok(meta.get(embeddedKey('tokenizer.json')), "the input's other files travel too");
    assert.ok(meta.get(PRUNING_METADATA_KEY), 'the per-layer sizes stay in the metadata');
    const root = join(dir, 'folder');
    mkdirSync(root, { recursive: true });
    const staged = stageCompanions({ path: join(root, 'onnx', 'model.onnx'), naming: 'onnx-compress', folder: { root, onnxDir: join(root, 'onnx') } } as OutputTarget, model, dir, pruned);
    const config = staged.find((c) => c.name === 'config.json')!;
    assert.deepEqual(JSON.parse(readFileSync(config.staged, 'utf8')).intermediate_size_per_layer, selection.map((k) => k.neurons.length));
    const kept = stripCompanions(pruned).proto.metadataProps.map((e) => e.key);
    assert.ok(kept.includes(PRUNING_METADATA_KEY), 'a folder output keeps the per-layer sizes in the model');
  });

  it('refuses a selection without attention, a wrong layer count, and quantized weights, in one line', () => {
    const model = llamaModel(smallLlama({ numAttentionHeads: 4, numKeyValueHeads: 2, hiddenSize: 64, intermediateSize: 64 }), 3, 'refusals');
    const s = discoverDecoderStructure(model);
    const full = s.layers.map((l) => ({ groups: all(l.attention.kvHeads), neurons: all(l.mlp.width) }));
    const oneLine = (code: string, pattern: RegExp) => (e: Error) => e instanceof OnnxCompressError && e.code === code && pattern.test(e.message) && !e.message.includes('\n');
    assert.throws(() => pruneDecoder(model, s, [{ ...full[0], groups: [] }, full[1]]), oneLine('bad-option', /no attention groups in layer 0/));
    assert.throws(() => pruneDecoder(model, s, full.slice(1)), oneLine('bad-option', /1 layers, the model 2/));
    assert.throws(() => pruneDecoder(model, s, [full[0], { ...full[1], neurons: [3, 2] }]), oneLine('bad-option', /layer 1 keeps MLP neurons 2/));
    const q4 = quantizeModel(model, 'w4').model;
    assert.throws(() => pruneDecoder(q4, discoverDecoderStructure(q4), selectionFor(s, [1], [0.5], 1)), oneLine('bad-model', /MatMulNBits\) has quantized weights/));
  });
});

/** The model with every Reshape shape held by a Constant node replaced by one initializer per distinct value. */
function withSharedShapeConstants(model: OnnxModel): OnnxModel {
  const editor = new GraphEditor(model);
  const byValue = new Map<string, string>();
  const producers = new Map(model.graph.node.flatMap((n) => n.output.map((o) => [o, n] as const)));
  for (const n of model.graph.node) {
    const c = n.opType === 'Reshape' ? producers.get(n.input[1]) : undefined;
    if (c?.opType !== 'Constant') continue;
    const t = c.attribute.find((a) => a.name === 'value')!.t!;
    const values = Array.from(tensorValues(t).data as BigInt64Array);
    const key = values.join(',');
    if (!byValue.has(key)) byValue.set(key, editor.tensor('shared_shape', DataType.INT64, t.dims, values));
    editor.replace(n, [{ ...n, input: [n.input[0], byValue.get(key)!] }]);
  }
  editor.removeDeadCode();
  return editor.finish().model;
}
