// Decoder structure discovery (src/structure/discover.ts) from graphs alone: the sample decoders against their
// config.json, builder-made variants (GQA ratios, multi-head attention, fused QKV with biases, separate q/k/v
// with biases, QDQ and MatMulNBits weights), and refusals that name the node where matching failed. Every size
// constant it reports is read back from the graph and must hold the value it claims.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { GraphEditor } from '../src/onnx/editor.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import { buildGpt2, TINY_GPT2 } from '../src/models/gpt2.js';
import { buildLlama } from '../src/models/llama.js';
import { quantizeModel } from '../src/quantization/writers/index.js';
import { constantNumbers } from '../src/structure/constants.js';
import type { DecoderStructure } from '../src/structure/decoder-structure.js';
import { discoverDecoderStructure, nodesByLabel } from '../src/structure/discover.js';
import { StructureError } from '../src/structure/errors.js';
import { queryHeadsOf } from '../src/structure/groups.js';
import { GraphIndex } from '../src/onnx/graph.js';
import { smallLlama as small, withSimplifiedNorms, withDecomposedLayerNorm, withQkvBiases, withSlicedQkv, withTiledRepeat } from './support/decoder-variants.js';
import { TESTDATA_ROOT } from './support/testdata.js';

const config = (name: string): Record<string, number> => JSON.parse(readFileSync(`models/${name}/config.json`, 'utf8'));
const inMemory = (proto: OnnxModel['proto'], name: string): OnnxModel => new OnnxModel(proto, undefined, name);

/** Every size constant holds, in the graph, the value the structure says, and counts what its meaning says. */
function checkSizes(model: OnnxModel, s: DecoderStructure): void {
  const index = new GraphIndex(model.graph);
  const nodes = nodesByLabel(model.graph);
  for (const layer of s.layers) {
    const a = layer.attention;
    const want = { heads: a.heads, 'kv-heads': a.kvHeads, 'group-size': a.heads / a.kvHeads, 'q-width': a.heads * a.headDim, 'kv-width': a.kvHeads * a.headDim, 'qk-width': (a.heads + a.kvHeads) * a.headDim, 'qkv-width': (a.heads + 2 * a.kvHeads) * a.headDim, 'mlp-width': layer.mlp.width };
    for (const c of [...a.sizes, ...layer.mlp.sizes]) {
      const node = nodes.get(c.node);
      assert.ok(node, `layer ${layer.index}: size constant names node ${c.node}, which is not in the graph`);
      let stored: number | undefined;
      if (c.holder.startsWith('attr:')) {
        const attr = node.attribute.find((x) => x.name === c.holder.slice(5));
        stored = attr?.ints.length ? Number(attr.ints[c.position]) : Number(attr?.i);
      } else {
        assert.ok(node.input.includes(c.holder), `layer ${layer.index}: ${c.node} does not read '${c.holder}'`);
        stored = constantNumbers(model, index, c.holder)?.[c.position];
      }
      assert.equal(stored, c.value, `layer ${layer.index}: ${c.holder}[${c.position}] of ${c.node}`);
      assert.equal(c.value, want[c.meaning], `layer ${layer.index}: ${c.meaning} constant of ${c.node}`);
    }
  }
}

describe('discovery on the sample decoders', () => {
  it('tiny-llama: layers, heads, kv heads, widths equal config.json; rotary, SwiGLU, RMSNorm, KV-cache names', () => {
    const model = loadModel('models/tiny-llama/onnx/model.onnx');
    const c = config('tiny-llama');
    const s = discoverDecoderStructure(model);
    assert.equal(s.layers.length, c.num_hidden_layers);
    assert.equal(s.hidden, c.hidden_size);
    assert.equal(s.vocab, c.vocab_size);
    assert.equal(s.finalNorm.kind, 'rms');
    for (const l of s.layers) {
      const a = l.attention;
      assert.deepEqual([a.kind, a.heads, a.kvHeads, a.headDim, a.positions], ['separate', c.num_attention_heads, c.num_key_value_heads, c.head_dim, 'rotary']);
      assert.deepEqual([l.mlp.kind, l.mlp.width], ['swiglu', c.intermediate_size]);
      assert.deepEqual([l.attentionNorm.kind, l.mlpNorm.kind], ['rms', 'rms']);
      assert.ok(Math.abs(l.attentionNorm.epsilon - c.rms_norm_eps) < 1e-9);
      assert.deepEqual([a.pastKey, a.pastValue, a.presentKey, a.presentValue], ['key', 'value', 'key', 'value'].map((k, i) => `${i < 2 ? 'past_key_values' : 'present'}.${l.index}.${k}`));
      const meanings = new Set(a.sizes.map((x) => x.meaning));
      for (const m of ['heads', 'kv-heads', 'group-size', 'q-width'] as const) assert.ok(meanings.has(m), `layer ${l.index}: no ${m} constant found`);
    }
    checkSizes(model, s);
    assert.equal(discoverDecoderStructure(model), s, 'memoised per graph');
  });

  it('tiny-gpt2: fused QKV through Split, biases, LayerNorm, GELU, tied lm_head', () => {
    const model = loadModel('models/tiny-gpt2/onnx/model.onnx');
    const c = config('tiny-gpt2');
    const s = discoverDecoderStructure(model);
    assert.equal(s.layers.length, c.n_layer);
    assert.equal(s.hidden, c.n_embd);
    assert.equal(s.lmHead.weight, s.embedding.table, 'the lm_head reads the embedding table');
    assert.equal(s.lmHead.outAxis, 0);
    for (const l of s.layers) {
      const a = l.attention;
      assert.deepEqual([a.kind, a.heads, a.kvHeads, a.headDim, a.positions], ['fused-qkv', c.n_head, c.n_head, c.n_embd / c.n_head, 'none']);
      assert.ok(a.qkv?.bias && a.o.bias && l.mlp.up.bias && l.mlp.down.bias, 'every projection has its bias');
      assert.equal(a.qkv.outFeatures, 3 * c.n_embd);
      assert.deepEqual([l.mlp.kind, l.mlp.width, l.attentionNorm.kind], ['gelu', c.n_inner, 'layer']);
      assert.deepEqual(a.sizes.filter((x) => x.node.includes('Split')).map((x) => x.meaning), ['q-width', 'kv-width', 'kv-width']);
    }
    checkSizes(model, s);
  });
});

describe('discovery on builder-made variants', () => {
  for (const [heads, kv] of [
    [6, 2],
    [6, 1],
    [4, 4],
  ]) {
    it(`LLaMA with ${heads} query heads over ${kv} key/value heads`, () => {
      const model = inMemory(buildLlama(small({ numAttentionHeads: heads, numKeyValueHeads: kv }), 7), `llama-${heads}-${kv}`);
      const s = discoverDecoderStructure(model);
      assert.equal(s.layers.length, 2);
      for (const l of s.layers) assert.deepEqual([l.attention.heads, l.attention.kvHeads, l.attention.headDim, l.mlp.width], [heads, kv, 48 / heads, 40]);
      checkSizes(model, s);
    });
  }

  it('GQA repeated by Tile: strided groups, the Tile repeats found', () => {
    const model = withTiledRepeat(inMemory(buildLlama(small({ numAttentionHeads: 6, numKeyValueHeads: 2 }), 7), 'llama-tile'));
    const s = discoverDecoderStructure(model);
    for (const l of s.layers) {
      assert.equal(l.attention.groupLayout, 'strided');
      assert.deepEqual(queryHeadsOf(l.attention, 1), [1, 3, 5]);
      assert.ok(l.attention.sizes.some((c) => c.meaning === 'group-size' && c.node.includes('Tile')));
    }
    checkSizes(model, s);
    const plain = discoverDecoderStructure(inMemory(buildLlama(small({ numAttentionHeads: 6, numKeyValueHeads: 2 }), 7), 'llama-expand'));
    assert.equal(plain.layers[0].attention.groupLayout, 'contiguous');
    assert.deepEqual(queryHeadsOf(plain.layers[0].attention, 1), [3, 4, 5]);
  });

  it('GPT-2 with other sizes', () => {
    const model = inMemory(buildGpt2({ ...TINY_GPT2, nEmbd: 48, nHead: 3, nInner: 96, nLayer: 3, nPositions: 32 }, 3), 'gpt2-small');
    const s = discoverDecoderStructure(model);
    assert.equal(s.layers.length, 3);
    for (const l of s.layers) assert.deepEqual([l.attention.heads, l.attention.headDim, l.mlp.width], [3, 16, 96]);
    checkSizes(model, s);
  });

  it('fused QKV cut by three Slices whose bounds all layers share', () => {
    const model = withSlicedQkv(inMemory(buildGpt2({ ...TINY_GPT2, nEmbd: 48, nHead: 3, nInner: 96, nLayer: 2, nPositions: 32 }, 3), 'gpt2-sliced'));
    const s = discoverDecoderStructure(model);
    for (const l of s.layers) {
      assert.deepEqual([l.attention.kind, l.attention.heads, l.attention.kvHeads], ['fused-qkv', 3, 3]);
      const bounds = l.attention.sizes.filter((c) => c.node.includes('slice')).map((c) => `${c.meaning}=${c.value}`);
      assert.deepEqual(bounds, ['q-width=48', 'q-width=48', 'qk-width=96', 'qk-width=96']);
    }
    checkSizes(model, s);
  });

  it('LayerNorm decomposed as older opsets export it', () => {
    const model = withDecomposedLayerNorm(inMemory(buildGpt2({ ...TINY_GPT2, nEmbd: 48, nHead: 3, nInner: 96, nLayer: 2, nPositions: 32 }, 3), 'gpt2-decomposed'));
    const s = discoverDecoderStructure(model);
    for (const norm of [...s.layers.flatMap((l) => [l.attentionNorm, l.mlpNorm]), s.finalNorm]) {
      assert.deepEqual([norm.kind, norm.nodes.length, !!norm.bias], ['layer', 9, true]);
      assert.ok(Math.abs(norm.epsilon - TINY_GPT2.layerNormEpsilon) < 1e-9);
    }
  });

  it("ONNX Runtime's SimplifiedLayerNormalization", () => {
    const base = inMemory(buildLlama(small({ numAttentionHeads: 4, numKeyValueHeads: 2 }), 5), 'llama-sln');
    const plain = discoverDecoderStructure(base);
    const model = withSimplifiedNorms(base, [...plain.layers.flatMap((l) => [l.attentionNorm, l.mlpNorm]), plain.finalNorm]);
    const s = discoverDecoderStructure(model);
    for (const norm of [...s.layers.flatMap((l) => [l.attentionNorm, l.mlpNorm]), s.finalNorm]) assert.deepEqual([norm.kind, norm.nodes.length], ['rms', 1]);
    assert.match(s.layers[1].mlpNorm.nodes[0], /SimplifiedLayerNormalization/);
  });

  it('separate q/k/v projections with biases', () => {
    const base = inMemory(buildLlama(small({ numAttentionHeads: 4, numKeyValueHeads: 2 }), 5), 'llama-bias');
    const model = withQkvBiases(base);
    const s = discoverDecoderStructure(model);
    for (const l of s.layers) {
      const a = l.attention;
      for (const [p, n] of [
        [a.q, 48],
        [a.k, 24],
        [a.v, 24],
      ] as const) {
        assert.equal(p?.bias, `${p?.weight}.bias`);
        assert.ok(p?.biasNode, 'the bias Add node is named');
        assert.equal(model.graph.initializer.find((t) => t.name === p?.bias)?.dims[0], n);
      }
      assert.equal(a.o.bias, undefined);
    }
  });

  it('QDQ (w4-qdq) and MatMulNBits (w4) weights: found, with the quantized initializer and how it is read', () => {
    const base = inMemory(buildLlama(small({ numAttentionHeads: 4, numKeyValueHeads: 2, hiddenSize: 64, intermediateSize: 64 }), 9), 'llama-q');
    const plain = discoverDecoderStructure(base);
    for (const scheme of ['w4-qdq', 'w4']) {
      const model = quantizeModel(base, scheme).model;
      const s = discoverDecoderStructure(model);
      assert.equal(s.layers.length, plain.layers.length);
      for (const [i, l] of s.layers.entries()) {
        assert.deepEqual([l.attention.heads, l.attention.kvHeads, l.mlp.width], [plain.layers[i].attention.heads, plain.layers[i].attention.kvHeads, plain.layers[i].mlp.width]);
        const q = l.attention.q!;
        if (scheme === 'w4') assert.equal(q.op, 'MatMulNBits');
        else assert.match(q.weightVia ?? '', /DequantizeLinear/);
        assert.notEqual(q.weight, plain.layers[i].attention.q!.weight, `${scheme}: the weight is the quantized initializer`);
      }
      checkSizes(model, s);
    }
  });
});

describe('refusals name the node or value', () => {
  it('a conformance model that is not a decoder', () => {
    const model = loadModel(`${TESTDATA_ROOT}/node/test_matmul_2d/model.onnx`);
    assert.throws(() => discoverDecoderStructure(model), (e: Error) => e instanceof StructureError && /output 'c', produced by .*\(MatMul\)/.test(e.message) && !e.message.includes('\n'));
  });

  it('an MLP whose gate has no Sigmoid', () => {
    const base = inMemory(buildLlama(small({ numAttentionHeads: 4, numKeyValueHeads: 2 }), 5), 'llama-relu');
    const editor = new GraphEditor(base);
    const sigmoid = base.graph.node.find((n) => n.opType === 'Sigmoid' && n.name?.includes('layers.1'))!;
    editor.replace(sigmoid, [{ ...sigmoid, opType: 'Relu' }]);
    const model = editor.finish().model;
    assert.throws(() => discoverDecoderStructure(model), (e: Error) => e instanceof StructureError && /layer 1: .*gate_proj\/MatMul' \(MatMul\).*Sigmoid/.test(e.message));
  });

  it('attention with two Softmax nodes', () => {
    const base = inMemory(buildLlama(small({ numAttentionHeads: 4, numKeyValueHeads: 2 }), 5), 'llama-2softmax');
    const editor = new GraphEditor(base);
    const softmax = base.graph.node.find((n) => n.opType === 'Softmax' && n.name?.includes('layers.0'))!;
    const mid = editor.value('twice');
    editor.replace(softmax, [{ ...softmax, output: [mid] }, editor.node('Softmax', [mid], softmax.output, { axis: -1 })]);
    assert.throws(() => discoverDecoderStructure(editor.finish().model), (e: Error) => e instanceof StructureError && /layer 0: expected one Softmax .* found 2/.test(e.message));
  });
});
