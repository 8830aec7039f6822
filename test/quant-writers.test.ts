// The three writers end to end: each rewrites tiny-llama (and small conformance CNN/linear models), the result
// loads and runs in ONNX Runtime, its outputs stay close to the float model's, node types and sizes are as
// expected, the interface and the input model are untouched; bad input gets a clear error.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Tensor } from 'onnxruntime-node';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { decodeTensor, encodeModel } from '../src/onnx/codec.js';
import { GraphIndex } from '../src/onnx/graph.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import { saveModel } from '../src/onnx/save.js';
import { tensorValues } from '../src/onnx/tensor.js';
import { DataType, type ModelProto } from '../src/onnx/types.js';
import { resolveScheme, WEIGHT_SCHEME_NAMES } from '../src/quantization/schemes.js';
import { isSelected, selectTargets } from '../src/quantization/select.js';
import { quantizeModel, type WriterResult } from '../src/quantization/writers/index.js';
import { fromOrtTensor, toOrtTensor } from '../src/runtime/ort-tensor.js';
import { Session, type Feeds, type GraphOptimization } from '../src/runtime/session.js';
import { mulberry32 } from './support/prng.js';
import { TESTDATA_ROOT } from './support/testdata.js';
import { minMaxRanges } from './support/ranges.js';
import { cosine } from './support/similarity.js';

const TINY = 'models/tiny-llama/onnx/model.onnx';
const CONV = join(TESTDATA_ROOT, 'pytorch-converted', 'test_Conv2d');
const LINEAR = join(TESTDATA_ROOT, 'pytorch-converted', 'test_Linear');
const dir = mkdtempSync(join(tmpdir(), 'quant-writers-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function digest(proto: ModelProto): string {
  return createHash('sha256').update(encodeModel(proto)).digest('hex');
}

function opCounts(model: OnnxModel): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of model.graph.node) counts[n.opType ?? ''] = (counts[n.opType ?? ''] ?? 0) + 1;
  return counts;
}

/** What a caller sees of a model: the values it feeds and fetches, with their types. */
function signature(model: OnnxModel): string {
  const index = new GraphIndex(model.graph);
  return JSON.stringify({ feeds: index.feeds(), outputs: model.graph.output });
}

function compare(a: ArrayLike<number>, b: ArrayLike<number>): { cosine: number; maxAbsDiff: number; maxAbs: number } {
  let maxAbsDiff = 0;
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a[i] - b[i]));
    maxAbs = Math.max(maxAbs, Math.abs(a[i]));
  }
  return { cosine: cosine(a, b), maxAbsDiff, maxAbs };
}

async function run(model: string | OnnxModel, feeds: Feeds, graphOptimization: GraphOptimization = 'all') {
  const s = await Session.create(model, { graphOptimization, intraOpThreads: 1 });
  try {
    return await s.run(feeds);
  } finally {
    await s.dispose();
  }
}

// A 12-token prompt with an empty cache.
function tinyFeeds(): Feeds {
  const T = 12;
  const ids = Array.from({ length: T }, (_, i) => BigInt((i * 37 + 5) % 256));
  const feeds: Feeds = {
    input_ids: new Tensor('int64', BigInt64Array.from(ids), [1, T]),
    attention_mask: new Tensor('int64', new BigInt64Array(T).fill(1n), [1, T]),
    position_ids: new Tensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(i))), [1, T]),
  };
  for (let i = 0; i < 4; i++) {
    for (const kind of ['key', 'value']) feeds[`past_key_values.${i}.${kind}`] = new Tensor('float32', new Float32Array(0), [1, 2, 0, 32]);
  }
  return feeds;
}


describe('writers on tiny-llama', () => {
  const model = loadModel(TINY);
  const before0 = digest(model.proto);
  const feeds = tinyFeeds();
  let baseline: Float32Array;
  let ranges: Map<string, [number, number]>;
  const results = new Map<string, WriterResult>();

  before(async () => {
    baseline = (await run(TINY, feeds)).logits.data as Float32Array;
    ranges = await minMaxRanges(model, feeds);
    for (const scheme of WEIGHT_SCHEME_NAMES) results.set(scheme, quantizeModel(model, scheme, { activationRanges: ranges }));
  });

  // [scheme, least cosine, most max-abs logit difference as a share of the largest |logit|, op that replaces the
  // projections, its count]
  const expectations: [string, number, number, string, number][] = [
    ['w8a8', 0.999, 0.03, 'QuantizeLinear', 17],
    ['w8', 0.999, 0.03, 'MatMulInteger', 29],
    ['w4', 0.95, 0.15, 'MatMulNBits', 29],
    ['w4a8', 0.95, 0.15, 'MatMulNBits', 29],
    ['w4-qdq', 0.95, 0.15, 'DequantizeLinear', 29],
  ];
  for (const [scheme, minCosine, maxDiff, op, count] of expectations) {
    it(`${scheme}: runs in ORT, logits close to float, ${count} ${op}`, async (t) => {
      const r = results.get(scheme)!;
      const counts = opCounts(r.model);
      assert.equal(counts[op], count);
      const embeddings = scheme === 'w4' || scheme === 'w4a8' ? 1 : 0; // weight-only 4-bit also packs embed_tokens
      assert.equal(r.report.nodes.length, 29 + embeddings, '4 layers x 7 projections + lm_head (+ the embedding)');
      assert.equal(r.report.skipped.length, 8, 'the attention MatMuls have no constant weight');
      assert.ok(r.report.skipped.every((s) => /not a constant initializer/.test(s.reason)));
      for (const level of ['disabled', 'all'] as const) {
        const logits = (await run(r.model, feeds, level)).logits.data as Float32Array;
        const c = compare(baseline, logits);
        assert.ok(c.cosine > minCosine, `cosine ${c.cosine} (${level})`);
        assert.ok(c.maxAbsDiff < maxDiff * c.maxAbs, `max abs diff ${c.maxAbsDiff} of max |logit| ${c.maxAbs} (${level})`);
        const path = join(dir, `${scheme}.onnx`);
        saveModel(r.model, path);
        t.diagnostic(
          `${level}: cosine ${c.cosine.toFixed(6)}, max |diff| ${c.maxAbsDiff.toExponential(3)} (max |logit| ${c.maxAbs.toFixed(3)}), ` +
            `file ${statSync(path).size} bytes, weights ${r.report.totals.bytesBefore} -> ${r.report.totals.bytesAfter}, ` +
            `min SQNR ${Math.min(...r.report.nodes.map((n) => n.sqnrDb)).toFixed(1)} dB`,
        );
      }
      assert.equal(signature(r.model), signature(model), 'graph inputs and outputs are unchanged');
      assert.equal(counts.MatMul ?? 0, op === 'DequantizeLinear' || op === 'QuantizeLinear' ? 37 : 8);
    });
  }

  it('leaves the input model untouched', () => {
    assert.equal(digest(model.proto), before0);
  });

  it('w4 shrinks the weights below 0.35x and the file accordingly', () => {
    const r = results.get('w4')!;
    assert.ok(r.report.totals.bytesAfter < 0.35 * r.report.totals.bytesBefore / 2, 'about 4.5 bits per weight');
    const path = join(dir, 'w4-size.onnx');
    saveModel(r.model, path);
    assert.ok(statSync(path).size < 0.35 * statSync(TINY).size);
    assert.deepEqual(r.model.proto.opsetImport.find((o) => o.domain === 'com.microsoft'), { domain: 'com.microsoft', version: 1 });
    const node = r.model.graph.node.find((n) => n.opType === 'MatMulNBits')!;
    const attr = (name: string) => Number(node.attribute.find((a) => a.name === name)?.i);
    assert.deepEqual([attr('K'), attr('N'), attr('bits'), attr('block_size'), attr('accuracy_level')], [128, 128, 4, 32, 0]);
    assert.equal(node.input.length, 3, 'symmetric: no zero points');
    assert.equal(Number(results.get('w4a8')!.model.graph.node.find((n) => n.opType === 'MatMulNBits')!.attribute.find((a) => a.name === 'accuracy_level')?.i), 4);
  });

  it('w4-qdq raises the opset to 21 and rewrites ReduceMean for it', () => {
    const r = results.get('w4-qdq')!;
    assert.deepEqual(r.report.opsetChanges, [{ domain: '', from: 17, to: 21 }]);
    assert.equal(r.model.proto.irVersion, 10);
    const mean = r.model.graph.node.find((n) => n.opType === 'ReduceMean')!;
    assert.equal(mean.input.length, 2, 'axes became an input at opset 18');
    assert.ok(!mean.attribute.some((a) => a.name === 'axes'));
    const dq = r.model.graph.initializer.find((t) => t.name === 'model.layers.0.self_attn.q_proj.weight_quantized')!;
    assert.equal(dq.dataType, DataType.INT4);
  });

  it('the selection narrows what is rewritten: exclude lm_head leaves the 28 projections', () => {
    const r = quantizeModel(model, 'w4', { select: { exclude: [/lm_head/] } });
    assert.equal(opCounts(r.model).MatMulNBits, 28);
    const only = quantizeModel(model, 'w4', { select: { include: [/mlp/], exclude: ['model.layers.3.mlp.down_proj.weight'] } });
    assert.equal(opCounts(only.model).MatMulNBits, 11);
    assert.equal(only.report.skipped.length, 0, 'unselected nodes are not reported as skipped');
  });

  it('asymmetric and other widths run: w4 with zero points, 2- and 8-bit MatMulNBits, uint8 w8, per-channel w8, 3-bit w4-qdq', async (t) => {
    const variants: [string, Parameters<typeof quantizeModel>[2], number][] = [
      ['w4', { symmetric: false }, 0.95],
      ['w4', { bits: 8, blockSize: 128 }, 0.999],
      ['w4', { bits: 2, blockSize: 16 }, 0.3],
      ['w8', { symmetric: false }, 0.999],
      ['w8', { perChannel: true }, 0.999],
      ['w4-qdq', { symmetric: false, blockSize: 64 }, 0.95],
      ['w4-qdq', { bits: 3 }, 0.8],
      ['w8a8', { activationType: 'int8', perChannel: false, activationRanges: ranges }, 0.999],
    ];
    for (const [scheme, options, minCosine] of variants) {
      const r = quantizeModel(model, scheme, options);
      const logits = (await run(r.model, feeds)).logits.data as Float32Array;
      const c = compare(baseline, logits);
      assert.ok(c.cosine > minCosine, `${scheme} ${JSON.stringify(options)}: cosine ${c.cosine}`);
      const { activationRanges: _ignored, ...shown } = options ?? {};
      t.diagnostic(`${scheme} ${JSON.stringify(shown)}: cosine ${c.cosine.toFixed(5)}, max |diff| ${c.maxAbsDiff.toExponential(2)}`);
    }
  });

  it('quantizes a model whose weights live in external data', async () => {
    mkdirSync(join(dir, 'ext'));
    const ext = join(dir, 'ext', 'model.onnx');
    saveModel(model, ext, { externalData: true });
    const r = quantizeModel(loadModel(ext), 'w4');
    const logits = (await run(r.model, feeds)).logits.data as Float32Array;
    assert.deepEqual(logits, (await run(results.get('w4')!.model, feeds)).logits.data);
  });
});

describe('writers on conformance models', () => {
  const input = (dirName: string): Tensor => toOrtTensor(tensorValues(decodeTensor(readFileSync(join(dirName, 'test_data_set_0', 'input_0.pb')))));
  const expected = (dirName: string): Float32Array =>
    tensorValues(decodeTensor(readFileSync(join(dirName, 'test_data_set_0', 'output_0.pb')))).data as Float32Array;

  it('w8a8 on a Conv2d (opset 6): per-channel int8 weights, uint8 activations, opset raised to 13', async (t) => {
    const model = loadModel(join(CONV, 'model.onnx'));
    const x = input(CONV);
    const feedName = new GraphIndex(model.graph).feeds()[0].name!;
    const ranges = await minMaxRanges(model, { [feedName]: x });
    const r = quantizeModel(model, 'w8a8', { activationRanges: ranges });
    assert.deepEqual(opCounts(r.model), { QuantizeLinear: 1, DequantizeLinear: 2, Conv: 1 });
    const dq = r.model.graph.node.find((n) => n.opType === 'DequantizeLinear' && n.input[0].endsWith('_quantized') && n.attribute.length)!;
    assert.equal(Number(dq.attribute.find((a) => a.name === 'axis')?.i), 0);
    assert.deepEqual(r.report.opsetChanges, [{ domain: '', from: 6, to: 13 }]);
    assert.equal(r.report.nodes[0].activation, feedName);
    assert.equal(signature(r.model), signature(model));
    const out = fromOrtTensor(Object.values(await run(r.model, { [feedName]: x }))[0]).data as Float32Array;
    const c = compare(expected(CONV), out);
    assert.ok(c.cosine > 0.999, `cosine ${c.cosine}`);
    t.diagnostic(`Conv2d w8a8: cosine ${c.cosine.toFixed(6)}, max |diff| ${c.maxAbsDiff.toExponential(2)} of max ${c.maxAbs.toFixed(2)}, notes: ${r.report.notes.join('; ')}`);
  });

  it('Gemm (transB=1, bias): MatMulNBits with bias, QDQ along the right axes, dynamic skips it', async () => {
    const model = loadModel(join(LINEAR, 'model.onnx'));
    const x = input(LINEAR);
    const feedName = new GraphIndex(model.graph).feeds()[0].name!;
    const gemm = model.graph.node.find((n) => n.opType === 'Gemm')!;
    assert.equal(Number(gemm.attribute.find((a) => a.name === 'transB')?.i), 1);
    const ref = expected(LINEAR);

    const nbits = quantizeModel(model, 'w4', { blockSize: 16 }); // K = 10: one padded block
    const node = nbits.model.graph.node.find((n) => n.opType === 'MatMulNBits')!;
    assert.equal(node.input.length, 6, 'A, B, scales, zero points (none), g_idx (none), bias');
    assert.equal(node.input[5], gemm.input[2]);
    assert.match(nbits.report.notes.join(' '), /padded/);
    const outN = (await run(nbits.model, { [feedName]: x }))[model.graph.output[0].name!].data as Float32Array;
    assert.ok(compare(ref, outN).cosine > 0.98);

    // ORT has no Gemm(6) kernel, so the float model cannot run: the activation is the graph input, whose range is known.
    const data = x.data as Float32Array;
    const qdq = quantizeModel(model, 'w8a8', { activationRanges: { [feedName]: [Math.min(...data), Math.max(...data)] } });
    const dq = qdq.model.graph.node.find((n) => n.opType === 'DequantizeLinear' && n.attribute.length)!;
    assert.equal(Number(dq.attribute.find((a) => a.name === 'axis')?.i), 0, 'B is [N, K]: channels on axis 0');
    const outQ = (await run(qdq.model, { [feedName]: x }))[model.graph.output[0].name!].data as Float32Array;
    assert.ok(compare(ref, outQ).cosine > 0.999);

    const dyn = quantizeModel(model, 'w8');
    assert.equal(dyn.report.nodes.length, 0);
    assert.match(dyn.report.skipped[0].reason, /MatMul only/);
  });
});

describe('graph edits', () => {
  // y = Softmax(ReduceMean(x W1, axes=[1], keepdims) + x W2) at opset 11, W1 and W2 sharing one initializer
  function small(softmaxAxis: number): OnnxModel {
    const b = new GraphBuilder('g');
    b.input('x', DataType.FLOAT, [2, 64]);
    const w = b.initializer('W', DataType.FLOAT, [64, 64], Float32Array.from({ length: 4096 }, (_, i) => Math.sin(i) / 8));
    const m1 = b.op('MatMul', ['x', w]);
    const m2 = b.op('MatMul', ['x', w]);
    const mean = b.op('ReduceMean', [m1], { axes: [1], keepdims: 1 });
    const s = b.op('Add', [mean, m2]);
    const sq = b.op('Unsqueeze', [s], { axes: [0] });
    b.output('y', DataType.FLOAT, [1, 2, 64]);
    b.node('Softmax', [sq], ['y'], { axis: softmaxAxis });
    return new OnnxModel(modelFrom(b.graph, { opsets: { '': 11 } }), undefined, 'small');
  }
  const x = new Tensor('float32', Float32Array.from({ length: 128 }, (_, i) => Math.cos(i)), [2, 64]);

  it('raises opset 11 to 21, moving axes attributes to inputs, and quantizes a shared weight once', async () => {
    const model = small(-1);
    const r = quantizeModel(model, 'w4-qdq');
    assert.deepEqual(opCounts(r.model), { DequantizeLinear: 1, MatMul: 2, ReduceMean: 1, Add: 1, Unsqueeze: 1, Softmax: 1 });
    assert.deepEqual(r.report.nodes.map((n) => !!n.sharedWeight), [false, true]);
    assert.ok(!r.model.graph.initializer.some((t) => t.name === 'W'), 'the float weight is gone');
    const [a, b] = [await run(model, { x }), await run(r.model, { x })];
    assert.ok(compare(a.y.data as Float32Array, b.y.data as Float32Array).cosine > 0.999);
    const w8 = quantizeModel(model, 'w8');
    assert.deepEqual(w8.report.opsetChanges, []);
    assert.equal(opCounts(w8.model).DynamicQuantizeLinear, 1, 'one DynamicQuantizeLinear for both MatMuls reading x');
  });

  it('keeps (and reports) a float weight that an unquantized node still reads', async () => {
    const b = new GraphBuilder('tied');
    b.input('x', DataType.FLOAT, [1, 32]);
    const w = b.initializer('W', DataType.FLOAT, [32, 32], Float32Array.from({ length: 1024 }, (_, i) => Math.cos(i) / 4));
    b.output('y', DataType.FLOAT, [1, 32]);
    b.node('MatMul', ['x', w], ['y']);
    b.output('w_sum', DataType.FLOAT, [1, 32]);
    b.node('ReduceSum', [w], ['w_sum'], { axes: [0], keepdims: 1 });
    const model = new OnnxModel(modelFrom(b.graph, { opsets: { '': 11 } }), undefined, 'tied');
    const r = quantizeModel(model, 'w4');
    assert.ok(r.model.graph.initializer.some((t) => t.name === 'W'));
    assert.match(r.report.notes.join('\n'), /kept beside their quantized copies: W/);
    const out = await run(r.model, { x: new Tensor('float32', new Float32Array(32).fill(1), [1, 32]) });
    assert.equal(out.w_sum.dims[1], 32);
  });

  it('gives an even Split its num_outputs when raising past opset 18', async () => {
    const b = new GraphBuilder('split');
    b.input('x', DataType.FLOAT, [1, 32]);
    const r32 = mulberry32(32);
    const w = b.initializer('W', DataType.FLOAT, [32, 32], Float32Array.from({ length: 1024 }, () => r32() - 0.5));
    const y = b.op('MatMul', ['x', w]);
    b.output('a', DataType.FLOAT, [1, 16]);
    b.output('b', DataType.FLOAT, [1, 16]);
    b.node('Split', [y], ['a', 'b'], { axis: 1 });
    const model = new OnnxModel(modelFrom(b.graph, { opsets: { '': 11 } }), undefined, 'split');
    const r = quantizeModel(model, 'w4-qdq');
    const split = r.model.graph.node.find((n) => n.opType === 'Split')!;
    assert.equal(Number(split.attribute.find((a) => a.name === 'num_outputs')?.i), 2);
    const feeds = { x: new Tensor('float32', Float32Array.from({ length: 32 }, (_, i) => i / 32), [1, 32]) };
    const [f, q] = [await run(model, feeds), await run(r.model, feeds)];
    const c = compare(f.b.data as Float32Array, q.b.data as Float32Array);
    assert.ok(c.cosine > 0.99, `cosine ${c.cosine}`);
  });

  it('raises the opset over a Softmax on a middle axis, keeping its pre-13 meaning with Flatten/Reshape', async () => {
    const model = small(1);
    const r = quantizeModel(model, 'w4-qdq');
    assert.equal(opCounts(r.model).Flatten, 1);
    const [a, b] = [await run(model, { x }), await run(r.model, { x })];
    assert.ok(compare(a.y.data as Float32Array, b.y.data as Float32Array).cosine > 0.999);
  });
});

describe('errors', () => {
  const model = loadModel(TINY);

  it('names the known schemes for an unknown one', () => {
    assert.throws(() => resolveScheme('int3'), /unknown quantization scheme 'int3' \(known: w8a8, w8, w4, w4a8, w4-qdq, fp16\)/);
  });

  it('refuses bad bits, block sizes and options', () => {
    assert.throws(() => resolveScheme('w4', { bits: 9 }), /bits must be an integer from 2 to 8, got 9/);
    assert.throws(() => resolveScheme('w8a8', { bits: 1 }), /bits must be an integer from 2 to 8/);
    assert.throws(() => resolveScheme('w4', { bits: 3 }), /3-bit MatMulNBits does not run in ONNX Runtime 1.30 .*use w4-qdq or w8a8/);
    assert.throws(() => resolveScheme('w4', { blockSize: 48 }), /power of two from 16 to 256.*got 48/);
    assert.throws(() => resolveScheme('w4-qdq', { blockSize: 512 }), /power of two/);
    assert.throws(() => resolveScheme('w8', { blockSize: 32 }), /takes no block size/);
    assert.throws(() => resolveScheme('w8', { accuracyLevel: 4 }), /accuracy_level applies to MatMulNBits/);
    assert.throws(() => resolveScheme('w4', { activationType: 'int8' }), /weights only/);
    assert.equal(resolveScheme('w4-qdq', { bits: 3 }).weights.bits, 3);
  });

  it('refuses a K the block size does not divide when padding is refused, naming the node', () => {
    const linear = loadModel(join(LINEAR, 'model.onnx'));
    assert.throws(() => quantizeModel(linear, 'w4', { blockSize: 16, padding: 'refuse' }), /node '.*': K = 10 is not a multiple of block size 16, and padding was refused/);
    assert.throws(() => quantizeModel(linear, 'w4-qdq', { blockSize: 16, padding: 'refuse' }), /not a multiple of block size 16/);
  });

  it('refuses an already-quantized model', () => {
    const once = quantizeModel(model, 'w4').model;
    for (const scheme of WEIGHT_SCHEME_NAMES) {
      assert.throws(() => quantizeModel(once, scheme, { activationRanges: {} }), /already quantized \(node .*(MatMulNBits|GatherBlockQuantized)\)/);
    }
  });

  it('w8a8 needs activation ranges', () => {
    assert.throws(() => quantizeModel(model, 'w8a8'), /pass their ranges .* from calibration/);
  });

  it('selection by name, op type and pattern', () => {
    const node = model.graph.node.find((n) => n.name === '/model/layers.0/self_attn/q_proj/MatMul')!;
    assert.ok(isSelected(node, {}));
    assert.ok(isSelected(node, { include: ['/model/layers.0/self_attn/q_proj/MatMul'] }));
    assert.ok(isSelected(node, { include: ['model.layers.0.self_attn.q_proj.weight'] }, node.input[1]));
    assert.ok(!isSelected(node, { include: [/k_proj/] }, node.input[1]));
    assert.ok(!isSelected(node, { include: [/proj/], exclude: [/layers\.0\//] }, node.input[1]));
    assert.ok(!isSelected(node, { opTypes: ['Gemm'] }));
    assert.ok(isSelected(node, { include: [/q_proj/g] }) && isSelected(node, { include: [/q_proj/g] }), 'global regexes hold no state');
    const sel = selectTargets(model, { opTypes: ['MatMul'] }, 'matmulnbits', ['MatMul', 'Gemm']);
    assert.equal(sel.targets.length, 29);
  });
});
