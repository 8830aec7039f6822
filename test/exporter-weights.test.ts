// Weights as exporters store them (src/onnx/fold-constants.ts): Constant nodes in each attribute form, Identity /
// Transpose / Cast(fp16) / Reshape / Unsqueeze-Squeeze / Concat-Slice chains, a weight shared by two MatMuls,
// weights listed as graph inputs (IR 3) and a Paddle-style CNN. Each is folded and run in ONNX Runtime beside the
// original (outputs bit for bit equal), then quantized from its file with w8a8 (calibrated on generated samples)
// and w8, and the written model run beside the original (cosine > 0.99). Then what folding must leave alone, and
// static shapes (src/onnx/shapes.ts) checked against the tensors ONNX Runtime returns.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Tensor } from 'onnxruntime-node';
import { graphAttr } from '../src/onnx/attributes.js';
import { emptyGraph, GraphBuilder, modelFrom, valueInfo } from '../src/onnx/builder.js';
import { decodeTensor } from '../src/onnx/codec.js';
import { foldConstants, readAt, type FoldResult } from '../src/onnx/fold-constants.js';
import { GraphIndex } from '../src/onnx/graph.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import { saveModel } from '../src/onnx/save.js';
import { inferShapes, rankLookup, rankOf } from '../src/onnx/shapes.js';
import { roundTo, tensorValues } from '../src/onnx/tensor.js';
import { DataType } from '../src/onnx/types.js';
import { quantizePass as quantizeStep, type QuantizeReport } from '../src/passes/quantize.js';
import { runSteps } from '../src/passes/runner.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { captureTensors } from '../src/runtime/capture.js';
import { tensorProtoToOrt } from '../src/runtime/ort-tensor.js';
import { Session, type Feeds, type Outputs } from '../src/runtime/session.js';
import { CHAINS, constantForms, paddleAttention, paddleCnn, sharedWeight, weightChain, weightsAsInputs, writeSamples, type ExporterModel } from './support/exporter-models.js';
import { mulberry32 } from './support/prng.js';
import { conformanceModels } from './support/testdata.js';
import { cosine } from './support/similarity.js';

const dir = mkdtempSync(join(tmpdir(), 'exporter-weights-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function run(model: OnnxModel | string, feeds: Feeds): Promise<Outputs> {
  // Optimisations off: ORT's own constant folding and fusions would hide a difference folding made.
  const s = await Session.create(model, { graphOptimization: 'disabled', intraOpThreads: 1 });
  try {
    return await s.run(feeds);
  } finally {
    await s.dispose();
  }
}

function assertSameOutputs(a: Outputs, b: Outputs, what: string): void {
  assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort(), `${what}: output names`);
  for (const [name, t] of Object.entries(a)) {
    assert.equal(b[name].type, t.type, `${what}: ${name} type`);
    assert.deepEqual(b[name].dims, t.dims, `${what}: ${name} dims`);
    // Bit for bit: byte views, so that -0 / NaN payloads count too.
    const bytes = (x: Tensor) => (x.type === 'string' ? x.data : Buffer.from((x.data as Float32Array).buffer, (x.data as Float32Array).byteOffset, (x.data as Float32Array).byteLength));
    assert.deepEqual(bytes(b[name]), bytes(t), `${what}: ${name} values`);
  }
}


/** Every weight input of the fixture's MatMul / Gemm / Conv nodes is an initializer. */
function assertWeightsAreInitializers(model: OnnxModel, what: string): void {
  const index = new GraphIndex(model.graph);
  for (const n of model.graph.node.filter((x) => ['MatMul', 'Gemm', 'Conv'].includes(x.opType ?? ''))) {
    assert.ok(index.initializer(n.input[1]), `${what}: ${n.opType} reads '${n.input[1]}', not an initializer`);
  }
}

async function foldAndCompare(f: ExporterModel): Promise<FoldResult> {
  const folded = await foldConstants(f.model);
  const feeds = f.feeds();
  assertSameOutputs(await run(f.model, feeds), await run(folded.model, feeds), f.name);
  assertWeightsAreInitializers(folded.model, f.name);
  assert.equal(folded.model.graph.node.filter((n) => n.opType === 'Constant').length, 0, `${f.name}: no Constant node left`);
  return folded;
}

describe('folding exporter weights keeps ONNX Runtime outputs bit for bit', () => {
  it('Constant nodes in every attribute form', async () => {
    const f = constantForms();
    const { model, report } = await foldAndCompare(f);
    const byName = new Map(report.values.map((v) => [v.name, v]));
    assert.deepEqual(
      [...byName.keys()].sort(),
      ['column.index', 'fc1.bias', 'fc1.weight', 'fc2.weight', 'labels', 'scale', 'shape'],
      'every value keeps its name (the Constant nodes are unnamed or gone)',
    );
    assert.deepEqual(byName.get('fc2.weight')!.dims, [16, 4], 'sparse_value became a dense initializer');
    assert.equal(byName.get('fc1.weight')!.bytes, 24 * 16 * 4);
    assert.deepEqual(byName.get('scale')!.dims, [], 'value_float is a scalar');
    assert.equal(byName.get('labels')!.dtype, 'string');
    assert.deepEqual(report.removed, { Constant: 7 });
    assert.ok(model.graph.output.some((o) => o.name === 'labels'), 'a constant graph output keeps its name');
    assert.ok(model.graph.initializer.some((t) => t.name === 'labels'));
  });

  for (const chain of CHAINS) {
    for (const opset of [11, 13]) {
      it(`${chain} chain at opset ${opset}`, async () => {
        const f = weightChain(chain, opset);
        const { model, report } = await foldAndCompare(f);
        const matmul = model.graph.node.find((n) => n.opType === 'MatMul')!;
        const folded = report.values.find((v) => v.name === matmul.input[1])!;
        assert.ok(folded, 'the MatMul weight is a folded value');
        assert.deepEqual(folded.dims, [24, 16]);
        assert.equal(folded.dtype, 'float32');
        assert.equal(folded.ops[0], 'Constant');
        assert.ok(folded.ops.length >= 2, `the chain's ops are reported: ${folded.ops}`);
        assert.deepEqual(model.graph.node.map((n) => n.opType), ['MatMul', 'Relu'], 'the chain is gone');
        if (chain === 'cast-fp16') {
          // Cast fp16 -> fp32 is exact: the weight holds the float16 values, widened.
          const w = tensorValues(model.graph.initializer.find((t) => t.name === matmul.input[1])!);
          const stored = f.model.graph.node.find((n) => n.opType === 'Constant')!.attribute[0].t!;
          assert.deepEqual(w.data, roundTo(DataType.FLOAT16, tensorValues(stored).data as Float32Array));
        }
      });
    }
  }

  it('a weight shared by two MatMuls stays one initializer', async () => {
    const f = sharedWeight();
    const { model, report } = await foldAndCompare(f);
    assert.deepEqual(report.values.map((v) => v.name), ['shared.weight']);
    const readers = model.graph.node.filter((n) => n.input.includes('shared.weight'));
    assert.equal(readers.length, 2);
    assert.equal(model.graph.initializer.filter((t) => t.name === 'shared.weight').length, 1);
  });

  it('a weight shared through an Identity is read directly, not copied', async () => {
    const f = sharedWeight(13, { throughIdentity: true });
    const feeds = f.feeds();
    const { model, report } = await foldConstants(f.model);
    assertSameOutputs(await run(f.model, feeds), await run(model, feeds), f.name);
    assert.deepEqual(model.graph.node.map((n) => n.opType), ['MatMul', 'Relu', 'MatMul']);
    assert.deepEqual(model.graph.node.filter((n) => n.opType === 'MatMul').map((n) => n.input[1]), ['shared.weight', 'shared.weight']);
    assert.equal(model.graph.initializer.length, 1);
    assert.deepEqual(report.values.map((v) => [v.name, v.bytes, v.ops]), [['shared.weight', 0, ['Identity']]]);
  });

  it('IR 3 weights listed as graph inputs become plain initializers', async () => {
    const f = weightsAsInputs();
    const feeds = f.feeds();
    const { model, report } = await foldConstants(f.model);
    assertSameOutputs(await run(f.model, feeds), await run(model, feeds), f.name);
    assert.deepEqual(report.weightInputs, ['fc1.weight', 'fc1.bias', 'fc2.weight']);
    assert.deepEqual(model.graph.input.map((v) => v.name), ['x']);
    assert.equal(model.graph.initializer.length, 3);
    assert.equal(model.proto.irVersion, 4);
    assert.deepEqual(report.irVersion, { from: 3, to: 4 });
    assert.deepEqual(report.values, [], 'nothing to compute');
  });

  for (const opset of [9, 11, 13]) {
    it(`Paddle-style CNN at opset ${opset}: every Constant weight becomes an initializer of the same name`, async () => {
      const f = paddleCnn(opset);
      const { model, report } = await foldAndCompare(f);
      for (const name of ['conv2d_0.w_0', 'conv2d_0.b_0', 'conv2d_1.w_0', 'conv2d_1.b_0', 'fc_0.w_0', 'fc_0.b_0', 'shape_0']) {
        assert.ok(model.graph.initializer.some((t) => t.name === name), name);
      }
      assert.equal(report.bytes, 4 * (8 * 3 * 9 + 8 + 12 * 8 * 9 + 12 + 12 * 5 + 5) + 8 * 2);
    });
  }

  it('a name still declared in value_info: the weight gets a fresh name, and ORT runs the model', async () => {
    const f = weightChain('transpose');
    const g = f.model.graph;
    const [constant, transpose] = g.node.map((n) => n.output[0]);
    g.valueInfo.push(valueInfo(constant, DataType.FLOAT, [16, 24]), valueInfo(transpose, DataType.FLOAT, [24, 16]));
    const { model, report } = await foldAndCompare(f);
    assert.equal(report.values.length, 1);
    assert.equal(report.values[0].from, transpose);
    assert.notEqual(report.values[0].name, transpose);
    assert.equal(model.graph.node.find((n) => n.opType === 'MatMul')!.input[1], report.values[0].name);
  });

  it('every conformance model whose graph folding changes gives the same outputs, bit for bit', async (t) => {
    let changed = 0;
    let compared = 0;
    for (const file of conformanceModels()) {
      const original = loadModel(file);
      const { model } = await foldConstants(original, { session: { intraOpThreads: 1 } });
      if (model === original) continue;
      changed++;
      const feeds = testFeeds(original, join(dirname(file), 'test_data_set_0'));
      if (!feeds) continue;
      let reference: Outputs;
      try {
        reference = await run(original, feeds);
      } catch {
        continue; // the original does not run in this ORT: nothing to compare with
      }
      assertSameOutputs(reference, await run(model, feeds), file);
      compared++;
    }
    t.diagnostic(`${changed} conformance models changed by folding, ${compared} of them compared in ORT`);
    assert.ok(compared > 100, `${compared} compared`);
  });

  it('an unchanged model comes back as the same object', async () => {
    const b = new GraphBuilder('plain');
    b.input('x', DataType.FLOAT, [2, 3]);
    b.output('y', DataType.FLOAT, [2, 2]);
    b.node('MatMul', ['x', b.initializer('w', DataType.FLOAT, [3, 2], [1, 2, 3, 4, 5, 6])], ['y']);
    const m = new OnnxModel(modelFrom(b.graph, { opsets: { '': 13 } }), undefined, 'plain');
    assert.equal((await foldConstants(m)).model, m);
  });
});

describe('what folding leaves in place', () => {
  it('an Expand or ConstantOfShape to a big tensor stays a node; a small Range folds', async () => {
    const b = new GraphBuilder('growth');
    b.input('x', DataType.FLOAT, [4]);
    const big = b.op('ConstantOfShape', [b.initializer('big_shape', DataType.INT64, [2], [600n, 600n])], { value: { dims: [1], dataType: DataType.FLOAT, floatData: [0.5], int32Data: [], stringData: [], int64Data: [], externalData: [], doubleData: [], uint64Data: [], metadataProps: [] } });
    const expanded = b.op('Expand', [b.constant(DataType.FLOAT, [1], [2]), b.constant(DataType.INT64, [2], [300n, 300n])]);
    const range = b.op('Range', [b.constant(DataType.FLOAT, [], [0]), b.constant(DataType.FLOAT, [], [4]), b.constant(DataType.FLOAT, [], [1])]);
    const total = b.op('Add', [b.op('ReduceSum', [big], { keepdims: 0 }), b.op('ReduceSum', [expanded], { keepdims: 0 })]);
    b.output('y', DataType.FLOAT, [4]);
    b.node('Add', [b.op('Mul', ['x', range]), total], ['y']);
    const m = new OnnxModel(modelFrom(b.graph, { opsets: { '': 13 } }), undefined, 'growth');
    const feeds = { x: new Tensor('float32', Float32Array.from([1, 2, 3, 4]), [4]) };
    const { model, report } = await foldConstants(m);
    assertSameOutputs(await run(m, feeds), await run(model, feeds), 'growth');
    assert.deepEqual(report.kept.map((k) => k.op).sort(), ['ConstantOfShape', 'Expand']);
    assert.ok(report.kept.every((k) => /it makes \d+ elements from \d+/.test(k.reason)), JSON.stringify(report.kept));
    const ops = model.graph.node.map((n) => n.opType);
    assert.ok(!ops.includes('Range'), 'the Range is folded');
    assert.ok(ops.includes('Expand') && ops.includes('ConstantOfShape'));
    const folded = report.values.find((v) => v.ops.includes('Range'))!;
    assert.deepEqual(folded.dims, [4]);
    // The big tensors' inputs are folded instead: the Expand reads two initializers.
    const expand = model.graph.node.find((n) => n.opType === 'Expand')!;
    assert.ok(expand.input.every((i) => model.graph.initializer.some((t) => t.name === i)));
  });

  it('a tied weight that another node reads stays behind its Transpose (no second copy in the file)', async () => {
    const b = new GraphBuilder('tied');
    b.input('ids', DataType.INT64, [3]);
    const random = mulberry32(9);
    const table = b.initializer('wte', DataType.FLOAT, [64, 32], Float32Array.from({ length: 64 * 32 }, () => random() - 0.5));
    const h = b.op('Gather', [table, 'ids']);
    b.output('logits', DataType.FLOAT, [3, 64]);
    b.node('MatMul', [h, b.op('Transpose', [table], { perm: [1, 0] }, { name: 'lm_head/Transpose' })], ['logits']);
    const m = new OnnxModel(modelFrom(b.graph, { opsets: { '': 13 } }), undefined, 'tied');
    const r = await foldConstants(m);
    assert.equal(r.model, m);
    assert.equal(r.report.kept.length, 1);
    assert.match(r.report.kept[0].reason, /the model keeps 'wte' \(2048 elements, read by Gather\): folding would store it twice/);
  });

  it('a value a subgraph reads keeps its producer; random ops are never folded', async () => {
    const b = new GraphBuilder('sub');
    b.input('x', DataType.FLOAT, [2]);
    b.input('flag', DataType.BOOL, []);
    const captured = b.op('Identity', [b.constant(DataType.FLOAT, [2], [10, 20])], undefined, { name: 'captured' });
    const branch = (op: string, name: string) => {
      const g = emptyGraph(name);
      const inner = new GraphBuilder(g, { names: b.names });
      inner.output(`${name}_out`, DataType.FLOAT, [2]);
      inner.node(op, ['x', captured], [`${name}_out`]);
      return g;
    };
    const chosen = b.op('If', ['flag'], [graphAttr('then_branch', branch('Add', 'then')), graphAttr('else_branch', branch('Mul', 'else'))]);
    const noise = b.op('RandomNormal', [], { shape: [2], seed: 1.5 });
    b.output('y', DataType.FLOAT, [2]);
    b.node('Add', [chosen, b.op('Mul', [noise, b.constant(DataType.FLOAT, [2], [0, 0])])], ['y']);
    const m = new OnnxModel(modelFrom(b.graph, { opsets: { '': 13 } }), undefined, 'sub');
    const { model, report } = await foldConstants(m);
    const feeds = { x: new Tensor('float32', Float32Array.from([1, 2]), [2]), flag: new Tensor('bool', Uint8Array.from([1]), []) };
    assertSameOutputs(await run(m, feeds), await run(model, feeds), 'sub');
    const ops = model.graph.node.map((n) => n.opType);
    assert.ok(ops.includes('Identity') && ops.includes('RandomNormal'), ops.join(','));
    assert.match(report.kept.find((k) => k.op === 'Identity')!.reason, /a subgraph reads/);
    assert.ok(!report.kept.some((k) => k.op === 'RandomNormal'), 'a random op is not a candidate at all');
  });

  it('select narrows folding to the values read where a quantizer looks for weights', async () => {
    const f = constantForms();
    const { model, report } = await foldConstants(f.model, { select: readAt({ MatMul: [1] }) });
    assert.deepEqual(report.values.map((v) => v.name).sort(), ['fc1.weight', 'fc2.weight']);
    assert.equal(model.graph.node.filter((n) => n.opType === 'Constant').length, 5, 'the bias, scale, shape, index and labels stay');
    assert.deepEqual(report.kept, [], 'values the caller did not select are not reported as kept');
  });
});

describe('exporter weights quantize and verify', () => {
  const fixtures: ExporterModel[] = [
    constantForms(13, { strings: false }),
    ...CHAINS.map((c) => weightChain(c)),
    sharedWeight(),
    sharedWeight(13, { throughIdentity: true }),
    weightsAsInputs(),
    paddleCnn(9),
    paddleCnn(11),
    paddleCnn(13),
    paddleAttention(9),
  ];
  for (const [k, f] of fixtures.entries()) {
    it(f.name, async (t) => {
      const path = join(dir, `model-${k}.onnx`);
      saveModel(f.model, path);
      const samples = writeSamples(join(dir, `samples-${k}`), f, 6);
      const feeds = f.feeds();
      const reference = await run(path, feeds);
      const schemes = [
        ['w8a8', f.weights.matmul + f.weights.gemm + f.weights.conv],
        ['w8', f.weights.matmul],
      ] as const;
      for (const [scheme, expected] of schemes) {
        const out = join(dir, `model-${k}-${scheme}.onnx`);
        const r = await quantizePass(path, scheme, { out, ...(scheme === 'w8a8' ? { calibration: { data: samples } } : {}), session: { intraOpThreads: 1 } });
        assert.equal(r.nodes.quantized, expected, `${scheme}: ${JSON.stringify(r.nodes.skippedList)}`);
        assert.ok(r.notes.some((n) => /folded \d+ constant values? into initializers|made plain initializers/.test(n)), `${scheme}: ${r.notes.join(' | ')}`);
        const got = await run(out, feeds);
        for (const [name, ref] of Object.entries(reference)) {
          const c = cosine(ref.data as Float32Array, got[name].data as Float32Array);
          assert.ok(c > 0.99, `${scheme} ${name}: cosine ${c}`);
          t.diagnostic(`${scheme} ${name}: cosine ${c.toFixed(6)}, ${r.nodes.quantized} nodes`);
        }
      }
    });
  }

  it('an opset-9 Softmax on the last axis of an undeclared rank-4 and rank-3 value stays one node after the raise to 13', async () => {
    const f = paddleAttention(9);
    const path = join(dir, 'paddle-attention.onnx');
    saveModel(f.model, path);
    const out = join(dir, 'paddle-attention-w8a8.onnx');
    const r = await quantizePass(path, 'w8a8', { out, calibration: { data: writeSamples(join(dir, 'samples-attention'), f, 4) }, session: { intraOpThreads: 1 } });
    assert.deepEqual(r.opsetChanges.map((c) => [c.domain, c.from, c.to]), [['', 9, 13]]);
    const written = loadModel(out);
    assert.equal(written.graph.node.filter((n) => n.opType === 'Softmax').length, 2);
    assert.equal(written.graph.node.filter((n) => n.opType === 'Flatten').length, 0, 'ranks from ONNX Runtime: no Flatten/Reshape around the Softmax nodes');
  });

  it('the quantize pass reports what it folded', async () => {
    const path = join(dir, 'paddle-report.onnx');
    saveModel(paddleCnn(13).model, path);
    const run = await runSteps(path, [{ pass: quantizeStep, options: { scheme: 'w8' }, where: 'quantize' }], { out: join(dir, 'paddle-report-w8.onnx') });
    const report = run.passes[0].report as QuantizeReport;
    assert.ok(report.folded, 'folded is present');
    // w8 rewrites MatMul and Gemm only: the Conv weights stay Constant nodes, as the exporter wrote them.
    assert.deepEqual(report.folded.values.map((v) => v.name), ['fc_0.w_0'], 'only the weights a quantized node reads are folded');
    assert.deepEqual(report.folded.removed, { Constant: 1 });
    const constants = (m: OnnxModel) => m.graph.node.filter((n) => n.opType === 'Constant').length;
    assert.equal(constants(loadModel(join(dir, 'paddle-report-w8.onnx'))), constants(loadModel(path)) - 1);
  });

  it('a model without constant weights is quantized as before: no fold note, no folded field', async () => {
    const b = new GraphBuilder('plain');
    b.input('x', DataType.FLOAT, [4, 24]);
    b.output('y', DataType.FLOAT, [4, 16]);
    const random = mulberry32(3);
    b.node('MatMul', ['x', b.initializer('w', DataType.FLOAT, [24, 16], Float32Array.from({ length: 384 }, () => random() - 0.5))], ['y']);
    const path = join(dir, 'plain.onnx');
    saveModel(new OnnxModel(modelFrom(b.graph, { opsets: { '': 13 } }), undefined, 'plain'), path);
    const run = await runSteps(path, [{ pass: quantizeStep, options: { scheme: 'w8' }, where: 'quantize' }], { out: join(dir, 'plain-w8.onnx') });
    const report = run.passes[0].report as QuantizeReport;
    assert.equal(report.folded, undefined);
    assert.ok(!report.notes.some((n) => /folded/.test(n)));
  });
});

/** The feeds of a conformance test-data folder (tensors named, or by position among the inputs to feed). */
function testFeeds(model: OnnxModel, folder: string): Feeds | undefined {
  if (!existsSync(folder)) return undefined;
  const needed = new GraphIndex(model.graph).feeds().map((v) => v.name!);
  const feeds: Feeds = {};
  try {
    readdirSync(folder)
      .filter((f) => /^input_\d+\.pb$/.test(f))
      .sort((a, b) => parseInt(a.slice(6)) - parseInt(b.slice(6)))
      .forEach((f, i) => {
        const t = decodeTensor(readFileSync(join(folder, f)));
        feeds[t.name || needed[i]] = tensorProtoToOrt(t);
      });
  } catch {
    return undefined; // a few suites store inputs ORT cannot take from JavaScript (sequences, optional values)
  }
  return feeds;
}

describe('static shapes from ONNX Runtime', () => {
  it('the dims of every value of the conformance models are those of the tensors ORT returns', async (t) => {
    let compared = 0;
    for (const file of conformanceModels()) {
      const model = loadModel(file);
      const feeds = testFeeds(model, join(dirname(file), 'test_data_set_0'));
      if (!feeds) continue;
      const index = new GraphIndex(model.graph);
      const values = model.graph.node.flatMap((n) => n.output).filter((o) => o && (index.consumers(o).length > 0 || index.graphOutput(o)));
      let captured: Outputs;
      try {
        captured = await captureTensors(model, values, feeds, { intraOpThreads: 1 });
      } catch {
        continue; // ORT cannot run it or return one of its values; inferShapes is checked where it can
      }
      const shapes = await inferShapes(model, feeds, { session: { intraOpThreads: 1 } });
      for (const v of values) assert.deepEqual(shapes.get(v), [...captured[v].dims], `${file}: ${v}`);
      compared += values.length;
    }
    t.diagnostic(`${compared} values compared`);
    assert.ok(compared > 500, `${compared} values compared`);
  });

  it('every value of a CNN has the dims ORT returns for it', async () => {
    const f = paddleCnn(13);
    const folded = (await foldConstants(f.model)).model;
    const shapes = await inferShapes(folded);
    const values = folded.graph.node.flatMap((n) => n.output);
    const captured = await captureTensors(folded, values, f.feeds());
    for (const name of values) assert.deepEqual(shapes.get(name), [...captured[name].dims], name);
    assert.deepEqual(shapes.get('image'), [1, 3, 12, 12]);
    assert.deepEqual(shapes.get('conv2d_1.w_0'), [12, 8, 3, 3]);
    const rank = rankLookup(folded.graph, shapes);
    assert.equal(rank('logits'), 2);
    assert.equal(rankOf(folded.graph, 'image'), 4, 'declared');
  });

  it('symbolic dims: 1 by default, sizes by name, sums of names; caller feeds win', async () => {
    const model = loadModel('models/tiny-llama/onnx/model.onnx');
    const byDefault = await inferShapes(model);
    assert.deepEqual(byDefault.get('logits'), [1, 1, 259]);
    const sized = await inferShapes(model, undefined, { dims: { batch_size: 2, sequence_length: 5, past_sequence_length: 3 } });
    assert.deepEqual(sized.get('attention_mask'), [2, 8], 'past_sequence_length + sequence_length');
    assert.deepEqual(sized.get('logits'), [2, 5, 259]);
    assert.deepEqual(sized.get('present.0.key'), [2, 2, 8, 32]);

    // With feeds, against the tensors ORT returns for the same feeds.
    const T = 7;
    const feeds: Feeds = {
      input_ids: new Tensor('int64', BigInt64Array.from({ length: T }, (_, i) => BigInt(i + 3)), [1, T]),
      attention_mask: new Tensor('int64', new BigInt64Array(T).fill(1n), [1, T]),
      position_ids: new Tensor('int64', BigInt64Array.from({ length: T }, (_, i) => BigInt(i)), [1, T]),
    };
    for (let i = 0; i < 4; i++) for (const kind of ['key', 'value']) feeds[`past_key_values.${i}.${kind}`] = new Tensor('float32', new Float32Array(0), [1, 2, 0, 32]);
    const shapes = await inferShapes(model, feeds);
    const values = model.graph.node.flatMap((n) => n.output).filter((o) => o && new GraphIndex(model.graph).consumers(o).length > 0);
    const picked = values.filter((_, i) => i % 7 === 0);
    const captured = await captureTensors(model, picked, feeds);
    for (const name of picked) assert.deepEqual(shapes.get(name), [...captured[name].dims], name);
    assert.ok(picked.length > 40);
  });

  it('an optional output nothing reads is not asked for (Dropout mask, MaxPool indices)', async () => {
    const b = new GraphBuilder('optional');
    b.input('x', DataType.FLOAT, ['batch', 2, 8, 8]);
    const [dropped] = b.node('Dropout', ['x'], ['dropped', 'mask']);
    const [pooled] = b.node('MaxPool', [dropped], ['pooled', 'indices'], { kernel_shape: [2, 2], strides: [2, 2] });
    b.output('y', DataType.FLOAT, ['batch', 2, 4, 4]);
    b.node('Relu', [pooled], ['y']);
    const m = new OnnxModel(modelFrom(b.graph, { opsets: { '': 13 } }), undefined, 'optional');
    const shapes = await inferShapes(m, undefined, { dims: { batch: 3 } });
    assert.deepEqual(shapes.get('y'), [3, 2, 4, 4]);
    assert.deepEqual(shapes.get('dropped'), [3, 2, 8, 8]);
    assert.equal(shapes.has('mask'), false);
    assert.equal(shapes.has('indices'), false);
    assert.equal(rankOf(m.graph, 'y'), 4, 'a symbolic declared shape still gives the rank');
    assert.equal(rankOf(m.graph, 'pooled'), undefined);
  });

  it('an input without a declared shape needs feeds', async () => {
    const b = new GraphBuilder('unknown');
    b.input('x', DataType.FLOAT);
    b.output('y', DataType.FLOAT);
    b.node('Relu', ['x'], ['y']);
    const m = new OnnxModel(modelFrom(b.graph, { opsets: { '': 13 } }), undefined, 'unknown.onnx');
    await assert.rejects(inferShapes(m), /unknown.onnx: input 'x' has no declared shape; give feeds to infer shapes/);
    const shapes = await inferShapes(m, { x: new Tensor('float32', new Float32Array(6), [2, 3]) });
    assert.deepEqual(shapes.get('y'), [2, 3]);
  });
});
