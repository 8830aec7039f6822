// Embedding Gathers under w4/w4a8: GatherBlockQuantized rows are bit-exact with our own dequantization (ORT
// 1.30's CPU kernel), tied tables stay correct, tiny-llama's embed_tokens is rewritten and the file shrinks.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Tensor } from 'onnxruntime-node';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import { saveModel } from '../src/onnx/save.js';
import { tensorValues } from '../src/onnx/tensor.js';
import { DataType } from '../src/onnx/types.js';
import { quantize } from '../src/quantization/quantizers.js';
import { resolveScheme } from '../src/quantization/schemes.js';
import { dequantizeRows, packGatherBlockQuantized } from '../src/quantization/writers/gather.js';
import { quantizeModel } from '../src/quantization/writers/index.js';
import { Session, type Feeds } from '../src/runtime/session.js';
import { mulberry32 } from './support/prng.js';
import { cosine } from './support/similarity.js';

const TINY = 'models/tiny-llama/onnx/model.onnx';
const dir = mkdtempSync(join(tmpdir(), 'quant-gather-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function run(model: OnnxModel | string, feeds: Feeds) {
  const s = await Session.create(model, { graphOptimization: 'all', intraOpThreads: 1 });
  try {
    return await s.run(feeds);
  } finally {
    await s.dispose();
  }
}


/** ids [1, T] -> Gather(E) -> MatMul(W) (so the Gather counts as an embedding: its width is W's K). */
function embeddingModel(vocab: number, hidden: number, seed: number, tie?: 'transpose' | 'gemm'): OnnxModel {
  const rand = mulberry32(seed);
  const b = new GraphBuilder('emb');
  b.input('ids', DataType.INT64, [1, 'T']);
  const e = b.initializer('E', DataType.FLOAT, [vocab, hidden], Float32Array.from({ length: vocab * hidden }, () => (rand() - 0.5) * (1 + 3 * rand())));
  b.output('h', DataType.FLOAT, [1, 'T', hidden]);
  b.node('Gather', [e, 'ids'], ['h'], { axis: 0 });
  if (!tie) {
    const w = b.initializer('W', DataType.FLOAT, [hidden, 16], Float32Array.from({ length: hidden * 16 }, () => rand() - 0.5));
    b.output('y', DataType.FLOAT, [1, 'T', 16]);
    b.node('MatMul', ['h', w], ['y']);
  } else if (tie === 'transpose') {
    const et = b.op('Transpose', [e], { perm: [1, 0] });
    b.output('y', DataType.FLOAT, [1, 'T', vocab]);
    b.node('MatMul', ['h', et], ['y']);
  } else {
    const h2 = b.op('Reshape', ['h', b.initializer('shape', DataType.INT64, [2], BigInt64Array.from([-1n, BigInt(hidden)]))]);
    b.output('y', DataType.FLOAT, ['T', vocab]);
    b.node('Gemm', [h2, e], ['y'], { transB: 1 });
  }
  return new OnnxModel(modelFrom(b.graph, { opsets: { '': 17 } }), undefined, 'emb');
}

function ids(vocab: number, count: number, seed: number): BigInt64Array {
  const rand = mulberry32(seed);
  return BigInt64Array.from({ length: count }, () => BigInt(Math.floor(rand() * vocab)));
}

describe('GatherBlockQuantized', () => {
  // [hidden, options]: 80 with block 32 leaves a short last block (16); 48 with 5 blocks of 16 packs odd zero points.
  const cases: [number, Parameters<typeof resolveScheme>[1]][] = [
    [64, {}],
    [80, {}],
    [80, { symmetric: false }],
    [48, { blockSize: 16, symmetric: false }],
    [96, { bits: 8, blockSize: 32 }],
    [64, { bits: 2, blockSize: 16, symmetric: false }],
  ];
  for (const [hidden, options] of cases) {
    it(`rows are bit-exact with ORT: hidden ${hidden}, ${JSON.stringify(options)}`, async () => {
      const vocab = 50;
      const model = embeddingModel(vocab, hidden, hidden);
      const params = resolveScheme('w4', options);
      const r = quantizeModel(model, params);
      const node = r.model.graph.node.find((n) => n.opType === 'GatherBlockQuantized')!;
      assert.ok(node, 'the Gather is rewritten');
      assert.equal(node.domain, 'com.microsoft');
      assert.equal(node.input.length, params.weights.symmetric ? 3 : 4);
      assert.ok(!r.model.graph.initializer.some((t) => t.name === 'E'), 'the float table is dropped');
      const entry = r.report.nodes.find((n) => n.op === 'Gather')!;
      assert.equal(entry.as, 'GatherBlockQuantized');
      assert.equal(entry.bits, params.weights.bits);
      assert.equal(entry.blockSize, params.weights.blockSize);
      assert.equal(entry.bytesBefore, vocab * hidden * 4);
      assert.ok(entry.bytesAfter < entry.bytesBefore / 2 && entry.sqnrDb > 5, JSON.stringify(entry));

      const idx = ids(vocab, 40, 7);
      idx[0] = BigInt(vocab - 1);
      idx[1] = 0n;
      const out = await run(r.model, { ids: new Tensor('int64', idx, [1, idx.length]) });
      // Our reference from the same quantization the writer did.
      const e = model.graph.initializer.find((t) => t.name === 'E')!;
      const values = tensorValues(e, model.rawBytes(e)).data as Float32Array;
      const q = quantize(values, [vocab, hidden], {
        bits: params.weights.bits,
        signed: false,
        symmetric: params.weights.symmetric,
        granularity: { kind: 'block', axis: 1, blockSize: params.weights.blockSize! },
        convention: 'mlas',
      });
      const expected = dequantizeRows(packGatherBlockQuantized(q), idx);
      const got = out.h.data as Float32Array;
      assert.deepEqual(out.h.dims, [1, idx.length, hidden]);
      assert.deepEqual(Buffer.from(got.buffer, got.byteOffset, got.byteLength), Buffer.from(expected.buffer), 'bit-exact');
      const float = (await run(model, { ids: new Tensor('int64', idx, [1, idx.length]) })).h.data as Float32Array;
      assert.ok(cosine(float, got) > (params.weights.bits === 2 ? 0.8 : 0.98));
    });
  }

  it('a table tied to lm_head through Transpose: rows quantized, float kept for the Transpose and reported', async () => {
    const model = embeddingModel(64, 64, 3, 'transpose');
    const r = quantizeModel(model, 'w4');
    // The MatMul reads Transpose(E), not an initializer: it stays float, and so does E for it.
    assert.equal(r.model.graph.node.filter((n) => n.opType === 'GatherBlockQuantized').length, 1, JSON.stringify(r.report));
    assert.ok(r.model.graph.initializer.some((t) => t.name === 'E'));
    assert.match(r.report.notes.join('\n'), /kept beside their quantized copies: E/);
    const feeds = { ids: new Tensor('int64', ids(64, 9, 1), [1, 9]) };
    const [f, q] = [await run(model, feeds), await run(r.model, feeds)];
    assert.equal(r.model.graph.node.find((n) => n.opType === 'Transpose')!.input[0], 'E', 'lm_head still reads the float table');
    assert.ok(cosine(f.y.data as Float32Array, q.y.data as Float32Array) > 0.98);
    assert.ok(cosine(f.h.data as Float32Array, q.h.data as Float32Array) > 0.98);
  });

  it('a table tied to a Gemm (transB): both sides quantized, the float table dropped', async () => {
    const model = embeddingModel(64, 64, 4, 'gemm');
    const r = quantizeModel(model, 'w4');
    const ops = r.model.graph.node.map((n) => n.opType);
    assert.ok(ops.includes('GatherBlockQuantized') && ops.includes('MatMulNBits'), ops.join(','));
    assert.ok(!r.model.graph.initializer.some((t) => t.name === 'E'));
    assert.doesNotMatch(r.report.notes.join('\n'), /kept beside/);
    const feeds = { ids: new Tensor('int64', ids(64, 9, 2), [1, 9]) };
    const [f, q] = [await run(model, feeds), await run(r.model, feeds)];
    assert.ok(cosine(f.y.data as Float32Array, q.y.data as Float32Array) > 0.97);
  });

  it('is off with quantizeEmbeddings: false, and refused for non-MatMulNBits schemes', () => {
    const model = embeddingModel(50, 64, 5);
    const r = quantizeModel(model, 'w4', { quantizeEmbeddings: false });
    assert.ok(!r.model.graph.node.some((n) => n.opType === 'GatherBlockQuantized'));
    assert.equal(resolveScheme('w4a8').quantizeEmbeddings, true);
    assert.equal(resolveScheme('w8').quantizeEmbeddings, false);
    assert.throws(() => resolveScheme('w8', { quantizeEmbeddings: true }), /MatMulNBits schemes only/);
  });

  it('skips (and reports) rows that are not a whole number of bytes', () => {
    const r = quantizeModel(embeddingModel(20, 33, 6), 'w4', { blockSize: 16 });
    assert.ok(!r.model.graph.node.some((n) => n.opType === 'GatherBlockQuantized'));
    assert.match(r.report.skipped.find((s) => s.op === 'Gather')!.reason, /not a whole number of bytes/);
  });
});

describe('tiny-llama w4 with embeddings', () => {
  it('rewrites model.embed_tokens only, logits stay close, the file shrinks', async (t) => {
    const model = loadModel(TINY);
    const r = quantizeModel(model, 'w4');
    const without = quantizeModel(model, 'w4', { quantizeEmbeddings: false });
    const gbq = r.model.graph.node.filter((n) => n.opType === 'GatherBlockQuantized');
    assert.equal(gbq.length, 1);
    assert.equal(gbq[0].input[1], 'input_ids');
    assert.ok(r.report.nodes.some((n) => n.weight === 'model.embed_tokens.weight' && n.as === 'GatherBlockQuantized'));
    assert.ok(!r.model.graph.initializer.some((t) => t.name === 'model.embed_tokens.weight'));
    const T = 12;
    const idsT = Array.from({ length: T }, (_, i) => BigInt((i * 37 + 5) % 256));
    const feeds: Feeds = {
      input_ids: new Tensor('int64', BigInt64Array.from(idsT), [1, T]),
      attention_mask: new Tensor('int64', new BigInt64Array(T).fill(1n), [1, T]),
      position_ids: new Tensor('int64', BigInt64Array.from(idsT.map((_, i) => BigInt(i))), [1, T]),
    };
    for (let i = 0; i < 4; i++) {
      for (const kind of ['key', 'value']) feeds[`past_key_values.${i}.${kind}`] = new Tensor('float32', new Float32Array(0), [1, 2, 0, 32]);
    }
    const [f, q] = [await run(TINY, feeds), await run(r.model, feeds)];
    const c = cosine(f.logits.data as Float32Array, q.logits.data as Float32Array);
    assert.ok(c > 0.95, `cosine ${c}`);
    saveModel(r.model, join(dir, 'with.onnx'));
    saveModel(without.model, join(dir, 'without.onnx'));
    const [a, b] = [statSync(join(dir, 'with.onnx')).size, statSync(join(dir, 'without.onnx')).size];
    assert.ok(a < b, `${a} < ${b}`);
    t.diagnostic(`tiny-llama w4: cosine ${c.toFixed(5)}, file ${a} bytes with embeddings quantized vs ${b} without (fp32 ${statSync(TINY).size})`);
  });
});
