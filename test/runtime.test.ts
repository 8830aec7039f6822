import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Tensor } from 'onnxruntime-node';
import { encodeModel } from '../src/onnx/codec.js';
import { loadModel, ModelError } from '../src/onnx/model.js';
import { DataType, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto } from '../src/onnx/types.js';
import { Capture, captureTensors, withOutputs } from '../src/runtime/capture.js';
import { concatAxis0, fromOrtTensor, tensorProtoToOrt, toOrtTensor } from '../src/runtime/ort-tensor.js';
import { cleanOrtMessage, RuntimeError, Session } from '../src/runtime/session.js';

// --- small model builders (plain ModelProto objects) ---
function valueInfo(name: string, dims?: (number | string)[], elemType = DataType.FLOAT): ValueInfoProto {
  if (!dims) return { name, metadataProps: [] };
  const dim = dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType, shape: { dim } } }, metadataProps: [] };
}
function node(opType: string, input: string[], output: string[], name: string): NodeProto {
  return { opType, input, output, name, attribute: [], metadataProps: [], deviceConfigurations: [] };
}
function tensor(t: Partial<TensorProto> & { name: string; dims: number[] }): TensorProto {
  return { floatData: [], int32Data: [], stringData: [], int64Data: [], externalData: [], doubleData: [], uint64Data: [], metadataProps: [], ...t };
}
function model(nodes: NodeProto[], inputs: ValueInfoProto[], outputs: ValueInfoProto[], init: TensorProto[] = [], valueInfos: ValueInfoProto[] = []): ModelProto {
  return {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    metadataProps: [],
    trainingInfo: [],
    functions: [],
    configuration: [],
    graph: { name: 'g', node: nodes, initializer: init, sparseInitializer: [], input: inputs, output: outputs, valueInfo: valueInfos, quantizationAnnotation: [], metadataProps: [] },
  };
}
const f32 = (data: number[], dims = [data.length]) => new Tensor('float32', Float32Array.from(data), dims);

const dir = mkdtempSync(join(tmpdir(), 'onnx-runtime-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// y = (x + W)^2 with W = [1, 2, 3, 4]; `a` = x + W is the intermediate.
const W = [1, 2, 3, 4];
const squareNodes = [node('Add', ['x', 'W'], ['a'], 'add0'), node('Mul', ['a', 'a'], ['y'], 'mul0')];
const expectSquare = (x: number[]) => x.map((v, i) => (v + W[i]) ** 2);

describe('Session', () => {
  const inline = model(squareNodes, [valueInfo('x', [4])], [valueInfo('y', [4])], [tensor({ name: 'W', dims: [4], dataType: DataType.FLOAT, floatData: W })]);
  const inlinePath = join(dir, 'inline.onnx');
  writeFileSync(inlinePath, encodeModel(inline));

  it('runs a model from a path and from memory', async () => {
    for (const src of [inlinePath, loadModel(inlinePath)]) {
      const s = await Session.create(src, { intraOpThreads: 1, graphOptimization: 'basic' });
      assert.deepEqual(s.inputNames, ['x']);
      const out = await s.run({ x: f32([0, 1, 0, 1]) });
      assert.deepEqual([...(out.y.data as Float32Array)], expectSquare([0, 1, 0, 1]));
      await s.dispose();
    }
  });

  // The weights sit at offset 16 of w.bin, after 16 bytes of padding, so offset handling is exercised too.
  const extDir = join(dir, 'ext');
  const extPath = join(extDir, 'model.onnx');
  const external = model(squareNodes, [valueInfo('x', [4])], [valueInfo('y', [4])], [
    tensor({
      name: 'W',
      dims: [4],
      dataType: DataType.FLOAT,
      dataLocation: 1,
      externalData: [
        { key: 'location', value: 'w.bin' },
        { key: 'offset', value: '16' },
        { key: 'length', value: '16' },
      ],
    }),
  ]);

  // The working directory is the repository, not extDir: ORT must not find w.bin by itself for the in-memory cases.
  it('runs an external-data model from a path and from memory', async () => {
    mkdirSync(extDir);
    writeFileSync(join(extDir, 'w.bin'), Buffer.concat([Buffer.alloc(16, 0xff), Buffer.from(Float32Array.from(W).buffer)]));
    writeFileSync(extPath, encodeModel(external));
    const fromBytes = loadModel(encodeModel(external), { baseDir: extDir, name: 'bytes.onnx' });
    for (const src of [extPath, loadModel(extPath), fromBytes]) {
      const s = await Session.create(src);
      const out = await s.run({ x: f32([1, 1, 1, 1]) });
      assert.deepEqual([...(out.y.data as Float32Array)], expectSquare([1, 1, 1, 1]));
      await s.dispose();
    }
    // Without a directory, or without the file, the in-memory model is refused before ORT sees it.
    await assert.rejects(Session.create(loadModel(encodeModel(external), { name: 'nodir.onnx' })), (e: Error) =>
      e instanceof ModelError && /^nodir\.onnx: .*no directory/.test(e.message),
    );
    await assert.rejects(Session.create(loadModel(encodeModel(external), { baseDir: dir, name: 'nofile.onnx' })), (e: Error) =>
      e instanceof ModelError && /^nofile\.onnx: external data file .*w\.bin cannot be read \(ENOENT\)/.test(e.message),
    );
  });

  it('reports a model ORT refuses in one line naming the file, node and op', async () => {
    const bad = join(dir, 'unknown-op.onnx');
    writeFileSync(bad, encodeModel(model([node('FrobnicateX', ['x'], ['y'], 'frob0')], [valueInfo('x', [4])], [valueInfo('y', [4])])));
    for (const src of [bad, loadModel(bad)]) {
      const err = await Session.create(src).then(
        () => assert.fail('expected a RuntimeError'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof RuntimeError, String(err));
      assert.ok(!err.message.includes('\n'), err.message);
      assert.ok(err.message.startsWith(`${bad}: `), err.message);
      assert.equal(err.node, 'frob0');
      assert.equal(err.opType, 'FrobnicateX');
      assert.match(err.message, /No Op registered for FrobnicateX/);
    }
  });

  it('names the file for a missing file and unparsable bytes', async () => {
    await assert.rejects(Session.create(join(dir, 'nope.onnx')), (e: Error) => e instanceof RuntimeError && /nope\.onnx: no such file/.test(e.message));
    const junk = join(dir, 'junk.onnx');
    writeFileSync(junk, Buffer.from([1, 2, 3, 4, 5]));
    await assert.rejects(Session.create(junk), (e: Error) => e instanceof RuntimeError && e.message.startsWith(`${junk}: `) && !e.message.includes('\n'));
  });

  it('names the input of a bad feed', async () => {
    const s = await Session.create(inlinePath);
    await assert.rejects(s.run({ x: new Tensor('int32', new Int32Array(4), [4]) }), /input 'x' must be float32, got int32/);
    await assert.rejects(s.run({ x: f32([1, 2, 3]) }), /input 'x' must have shape \[4\], got \[3\]/);
    await assert.rejects(s.run({}), /input 'x' is missing/);
    await assert.rejects(s.run({ x: f32([1, 2, 3, 4]), z: f32([1]) }), /'z' is not an input/);
    await s.dispose();
  });

  it('accepts any shape for an input of unknown rank', async () => {
    const noShape: ValueInfoProto = { name: 'x', type: { tensorType: { elemType: DataType.FLOAT } }, metadataProps: [] };
    const s = await Session.create(loadModel(encodeModel(model([node('Relu', ['x'], ['y'], 'relu0')], [noShape], [valueInfo('y')]))));
    const out = await s.run({ x: f32([-1, 2, -3, 4, 5, -6], [2, 3]) });
    assert.deepEqual(out.y.dims, [2, 3]);
    assert.deepEqual([...(out.y.data as Float32Array)], [0, 2, 0, 4, 5, 0]);
    await s.dispose();
  });

  it('strips ORT source locations and signatures', () => {
    const raw =
      '/onnxruntime_src/onnxruntime/core/graph/model_load_utils.h:46 void onnxruntime::model_load_utils::ValidateOpsetForDomain(const std::unordered_map<std::__cxx11::basic_string<char>, int>&, const onnxruntime::logging::Logger&, bool, const std::string&, int) ONNX Runtime only *guarantees* support for models stamped with official released onnx opset versions.\n';
    assert.equal(cleanOrtMessage(raw), 'ONNX Runtime only *guarantees* support for models stamped with official released onnx opset versions.');
    assert.equal(
      cleanOrtMessage('External data path validation failed. tensorprotoutils.cc:461 ValidateExternalDataPathFromDir External data path does not exist'),
      'External data path validation failed. External data path does not exist',
    );
  });

  it('gives a clear error or a session when CUDA is asked for', async () => {
    try {
      const s = await Session.create(inlinePath, { executionProvider: 'cuda' });
      await s.dispose();
    } catch (e) {
      assert.ok(e instanceof RuntimeError, String(e));
      assert.match(e.message, /CUDA execution provider/);
      assert.ok(!e.message.includes('\n'));
    }
  });

  it('runs samples in batches along axis 0', async () => {
    const dyn = join(dir, 'dyn.onnx');
    // y[n, 4] = (x[n, 4] + W)^2, batch dimension symbolic.
    writeFileSync(dyn, encodeModel(model(squareNodes, [valueInfo('x', ['n', 4])], [valueInfo('y', ['n', 4])], [tensor({ name: 'W', dims: [4], dataType: DataType.FLOAT, floatData: W })])));
    const s = await Session.create(dyn);
    const rows = [[0, 0, 0, 0], [1, 2, 3, 4], [-1, 0, 1, 2], [5, 5, 5, 5], [2, 2, 2, 2]];
    const samples = rows.map((r) => ({ x: f32(r, [1, 4]) }));
    const want = rows.flatMap(expectSquare);
    for (const batch of [1, 2, 5, 8]) {
      const out = await s.runBatched(samples, batch);
      assert.deepEqual(out.y.dims, [5, 4]);
      assert.deepEqual([...(out.y.data as Float32Array)], want, `batch ${batch}`);
    }
    await assert.rejects(s.runBatched(samples, 0), RangeError);
    await s.dispose();
  });
});

describe('capture', () => {
  // x -> Add(W) -> a -> Relu -> r -> Mul(r, x) -> m -> ReduceSum -> y. `a` has value_info, `r` and `m` do not.
  const nodes = [
    node('Add', ['x', 'W'], ['a'], 'add0'),
    node('Relu', ['a'], ['r'], 'relu0'),
    node('Mul', ['r', 'x'], ['m'], 'mul0'),
    node('ReduceSum', ['m'], ['y'], 'sum0'),
  ];
  const Wn = [-3, 1, 0.5, -0.25];
  const proto = model(nodes, [valueInfo('x', [4])], [valueInfo('y', [1])], [tensor({ name: 'W', dims: [4], dataType: DataType.FLOAT, floatData: Wn })], [valueInfo('a', [4])]);
  const path = join(dir, 'capture.onnx');
  writeFileSync(path, encodeModel(proto));
  const x = [1, 2, -3, 4];
  const a = x.map((v, i) => v + Wn[i]);
  const r = a.map((v) => Math.max(v, 0));
  const m = r.map((v, i) => v * x[i]);

  it('captures typed and untyped intermediates and matches a manual computation', async () => {
    const before = JSON.stringify(encodeModel(proto));
    const model = loadModel(path);
    const out = await captureTensors(model, ['a', 'r', 'm', 'y'], { x: f32(x) });
    assert.deepEqual(Object.keys(out).sort(), ['a', 'm', 'r', 'y']);
    assert.deepEqual([...(out.a.data as Float32Array)], a);
    assert.deepEqual([...(out.r.data as Float32Array)], r);
    assert.deepEqual([...(out.m.data as Float32Array)], m);
    assert.deepEqual(out.m.dims, [4]);
    assert.ok(Math.abs((out.y.data as Float32Array)[0] - m.reduce((s, v) => s + v, 0)) < 1e-6);
    // The caller's model is untouched.
    assert.equal(model.graph.output.length, 1);
    assert.equal(JSON.stringify(encodeModel(proto)), before);
  });

  it('captures graph inputs and initializers too', async () => {
    const out = await captureTensors(path, ['x', 'W'], { x: f32(x) });
    assert.deepEqual([...(out.x.data as Float32Array)], x);
    assert.deepEqual([...(out.W.data as Float32Array)], Wn);
  });

  it('takes types from value_info and initializers and leaves the rest to ORT', () => {
    const p = withOutputs(proto, ['a', 'r', 'W', 'y']);
    const added = p.graph!.output.slice(1);
    assert.deepEqual(added.map((o) => o.name), ['a', 'r', 'W']);
    assert.equal(added[0].type?.tensorType?.elemType, DataType.FLOAT);
    assert.equal(added[1].type, undefined);
    assert.deepEqual(added[2].type?.tensorType?.shape?.dim, [{ dimValue: 4 }]);
    assert.equal(proto.graph!.output.length, 1);
    assert.throws(() => withOutputs(proto, ['nope'], 'capture.onnx'), /capture\.onnx: cannot capture 'nope'/);
  });

  it('runs a capture over several samples', async () => {
    const dyn = join(dir, 'capture-dyn.onnx');
    const batched = model(nodes.slice(0, 3), [valueInfo('x', ['n', 4])], [valueInfo('m', ['n', 4])], [tensor({ name: 'W', dims: [4], dataType: DataType.FLOAT, floatData: Wn })]);
    writeFileSync(dyn, encodeModel(batched));
    const cap = await Capture.open(dyn, ['r', 'r']);
    assert.deepEqual(cap.names, ['r']);
    const out = await cap.runBatched([{ x: f32(x, [1, 4]) }, { x: f32(x.map((v) => -v), [1, 4]) }], 2);
    const r2 = x.map((v, i) => Math.max(-v + Wn[i], 0));
    assert.deepEqual([...(out.r.data as Float32Array)], [...r, ...r2]);
    await cap.dispose();
  });
});

describe('ort-tensor', () => {
  it('converts TensorProto fields and raw data to ORT tensors', () => {
    const fromFields = tensorProtoToOrt(tensor({ name: 'i', dims: [2, 2], dataType: DataType.INT64, int64Data: [1n, -2n, 3n, 2n ** 40n] }));
    assert.equal(fromFields.type, 'int64');
    assert.deepEqual([...(fromFields.data as BigInt64Array)], [1n, -2n, 3n, 2n ** 40n]);
    const raw = new Uint8Array(Float32Array.from([1.5, -2]).buffer);
    const fromRaw = tensorProtoToOrt(tensor({ name: 'f', dims: [2], dataType: DataType.FLOAT, rawData: raw.subarray(0) }));
    assert.deepEqual([...(fromRaw.data as Float32Array)], [1.5, -2]);
    const strings = tensorProtoToOrt(tensor({ name: 's', dims: [2], dataType: DataType.STRING, stringData: [new TextEncoder().encode('hé'), new Uint8Array()] }));
    assert.deepEqual(strings.data, ['hé', '']);
    assert.throws(() => tensorProtoToOrt(tensor({ name: 'b', dims: [1], dataType: DataType.BFLOAT16, int32Data: [0] })), /BFLOAT16 cannot cross/);
    assert.deepEqual(fromOrtTensor(fromRaw).dtype, DataType.FLOAT);
  });

  it('passes float16 as half bits and reads it back as float32 values', () => {
    const half = toOrtTensor({ dtype: DataType.FLOAT16, dims: [3], data: Float32Array.from([1, -0.5, 65504]) });
    assert.equal(half.type, 'float16');
    assert.deepEqual([...(half.data as Uint16Array)], [0x3c00, 0xb800, 0x7bff]);
    assert.deepEqual([...(fromOrtTensor(half).data as Float32Array)], [1, -0.5, 65504]);
    const proto = tensorProtoToOrt(tensor({ name: 'h', dims: [2], dataType: DataType.FLOAT16, int32Data: [0x3c00, 0x7e00] }));
    assert.deepEqual([...(proto.data as Uint16Array)], [0x3c00, 0x7e00]);
  });

  it('concatenates along axis 0 and refuses mismatched shapes', () => {
    const c = concatAxis0([f32([1, 2], [1, 2]), f32([3, 4, 5, 6], [2, 2])]);
    assert.deepEqual(c.dims, [3, 2]);
    assert.deepEqual([...(c.data as Float32Array)], [1, 2, 3, 4, 5, 6]);
    assert.throws(() => concatAxis0([f32([1, 2], [1, 2]), f32([1, 2, 3], [1, 3])]), /differ beyond axis 0/);
  });
});
