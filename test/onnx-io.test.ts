import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeModel, encodeModel, modelToJson } from '../src/onnx/codec.js';
import { loadModel, ModelError } from '../src/onnx/model.js';
import { saveModel } from '../src/onnx/save.js';
import { conformanceModels } from './support/testdata.js';
import { DataLocation, DataType, type ModelProto, type TensorProto } from '../src/onnx/types.js';
import { makeTensor } from '../src/onnx/tensor.js';

test('every conformance model round-trips to identical bytes', (t) => {
  const files = conformanceModels();
  assert.ok(files.length >= 1000, `expected the ONNX conformance suite, found ${files.length} models`);
  const differing: string[] = [];
  for (const f of files) {
    const bytes = readFileSync(f);
    const again = encodeModel(decodeModel(bytes));
    if (Buffer.compare(Buffer.from(again), bytes) !== 0) {
      // Field order may legitimately differ; then the messages must still agree field by field.
      const a = JSON.stringify(modelToJson(decodeModel(bytes)));
      const b = JSON.stringify(modelToJson(decodeModel(again)));
      if (a !== b) differing.push(f);
    }
  }
  t.diagnostic(`${files.length} models round-tripped, ${differing.length} differ`);
  assert.deepEqual(differing, []);
});

function tensor(name: string, values: number[]): TensorProto {
  return makeTensor(name, DataType.FLOAT, [values.length], values);
}

/** A model exercising the fields onnx-proto (IR 8) does not know, plus int64 extremes. */
function modelWithNewerFields(): ModelProto {
  const meta = [{ key: 'origin', value: 'test' }];
  return {
    irVersion: 11,
    opsetImport: [{ domain: '', version: 21 }],
    producerName: 'onnx-compress-test',
    metadataProps: meta,
    trainingInfo: [],
    functions: [
      {
        name: 'F',
        domain: 'local',
        overload: 'v2',
        input: ['x'],
        output: ['y'],
        attribute: [],
        attributeProto: [{ name: 'alpha', type: 1, f: 0.5, floats: [], ints: [], strings: [], tensors: [], graphs: [], sparseTensors: [], typeProtos: [] }],
        node: [],
        opsetImport: [{ domain: '', version: 21 }],
        valueInfo: [{ name: 'x', metadataProps: meta }],
        metadataProps: meta,
      },
    ],
    configuration: [{ name: 'mesh', numDevices: 2, device: ['gpu:0', 'gpu:1'] }],
    graph: {
      name: 'g',
      node: [
        {
          opType: 'Slice',
          name: 'slice',
          overload: 'o',
          input: ['x', 'starts', 'ends'],
          output: ['y'],
          attribute: [
            { name: 'big', type: 7, ints: [9223372036854775807n, -9223372036854775808n], floats: [], strings: [], tensors: [], graphs: [], sparseTensors: [], typeProtos: [] },
          ],
          metadataProps: meta,
          deviceConfigurations: [
            {
              configurationId: 'mesh',
              pipelineStage: 1,
              shardingSpec: [
                {
                  tensorName: 'x',
                  device: [0, 1],
                  indexToDeviceGroupMap: [{ key: 0, value: [0, 1] }],
                  shardedDim: [{ axis: 0, simpleSharding: [{ dimParam: 'batch', numShards: 2 }] }],
                },
              ],
            },
          ],
        },
      ],
      initializer: [{ ...tensor('w', [1, 2]), metadataProps: meta }],
      sparseInitializer: [],
      input: [{ name: 'x', metadataProps: meta }],
      output: [{ name: 'y', metadataProps: [] }],
      valueInfo: [],
      quantizationAnnotation: [],
      metadataProps: meta,
    },
  };
}

test('fields newer than IR 8 survive decode and encode', () => {
  const original = modelWithNewerFields();
  const bytes = encodeModel(original);
  const back = decodeModel(bytes);
  assert.deepEqual(back.graph!.node[0].metadataProps, [{ key: 'origin', value: 'test' }]);
  assert.equal(back.graph!.node[0].overload, 'o');
  assert.equal(back.graph!.node[0].deviceConfigurations[0].shardingSpec[0].shardedDim[0].simpleSharding[0].dimParam, 'batch');
  assert.deepEqual(back.graph!.metadataProps, original.graph!.metadataProps);
  assert.deepEqual(back.graph!.initializer[0].metadataProps, original.graph!.metadataProps);
  assert.deepEqual(back.graph!.input[0].metadataProps, original.graph!.metadataProps);
  assert.equal(back.functions[0].overload, 'v2');
  assert.equal(back.functions[0].attributeProto[0].f, 0.5);
  assert.deepEqual(back.functions[0].valueInfo[0].metadataProps, original.graph!.metadataProps);
  assert.deepEqual(back.configuration, original.configuration);
  assert.deepEqual(back.graph!.node[0].attribute[0].ints, [9223372036854775807n, -9223372036854775808n]);
  assert.deepEqual(Buffer.from(encodeModel(back)), Buffer.from(bytes));
});

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'onnx-compress-io-'));
}

function weightModel(): ModelProto {
  const m = modelWithNewerFields();
  m.graph!.initializer = [tensor('big', Array.from({ length: 1000 }, (_, i) => i / 7)), tensor('small', [1, 2, 3])];
  return m;
}

test('external data: save, reopen lazily, move back inline', () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir, 'in.onnx'), encodeModel(weightModel()));
    const model = loadModel(join(dir, 'in.onnx'));
    const report = saveModel(model, join(dir, 'ext.onnx'), { externalData: true, threshold: 1024 });
    assert.equal(report.externalData?.tensors, 1);
    assert.equal(statSync(join(dir, 'ext.onnx_data')).size, 4000);

    const ext = loadModel(join(dir, 'ext.onnx'));
    const big = ext.graph.initializer[0];
    assert.equal(big.dataLocation, DataLocation.EXTERNAL);
    assert.equal(big.rawData, undefined, 'opening must not read external weights');
    assert.deepEqual(ext.externalFiles(), ['ext.onnx_data']);
    assert.deepEqual(Buffer.from(ext.rawBytes(big)!), Buffer.from(model.graph.initializer[0].rawData!));
    assert.equal(ext.graph.initializer[1].rawData?.length, 12, 'tensors under the threshold stay inline');

    // Keeping the layout is the default; going inline again restores the original bytes.
    saveModel(ext, join(dir, 'sub', '..', 'kept.onnx'));
    assert.ok(existsSync(join(dir, 'kept.onnx_data')));
    saveModel(ext, join(dir, 'inline.onnx'), { externalData: false });
    assert.deepEqual(readFileSync(join(dir, 'inline.onnx')), readFileSync(join(dir, 'in.onnx')));
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temporary files left');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('external data spread over several files with offsets', () => {
  const dir = tempDir();
  try {
    const m = weightModel();
    const a = m.graph!.initializer[0];
    const b = m.graph!.initializer[1];
    writeFileSync(join(dir, 'a.bin'), Buffer.concat([Buffer.alloc(100), Buffer.from(a.rawData!)]));
    writeFileSync(join(dir, 'b.bin'), Buffer.from(b.rawData!));
    const ref = (location: string, offset?: number, length?: number) => [
      { key: 'location', value: location },
      ...(offset !== undefined ? [{ key: 'offset', value: String(offset) }] : []),
      ...(length !== undefined ? [{ key: 'length', value: String(length) }] : []),
    ];
    m.graph!.initializer = [
      { ...a, rawData: undefined, dataLocation: DataLocation.EXTERNAL, externalData: ref('a.bin', 100, 4000) },
      { ...b, rawData: undefined, dataLocation: DataLocation.EXTERNAL, externalData: ref('b.bin') },
    ];
    writeFileSync(join(dir, 'multi.onnx'), encodeModel(m));
    const model = loadModel(join(dir, 'multi.onnx'));
    assert.deepEqual(model.externalFiles().sort(), ['a.bin', 'b.bin']);
    assert.deepEqual(Buffer.from(model.rawBytes(model.graph.initializer[0])!), Buffer.from(a.rawData!));
    assert.deepEqual(Buffer.from(model.rawBytes(model.graph.initializer[1])!), Buffer.from(b.rawData!));
    saveModel(model, join(dir, 'one.onnx'), { externalData: true, threshold: 0 });
    const one = loadModel(join(dir, 'one.onnx'));
    assert.deepEqual(one.externalFiles(), ['one.onnx_data']);
    assert.deepEqual(Buffer.from(one.rawBytes(one.graph.initializer[1])!), Buffer.from(b.rawData!));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad external references and overwrites are clear errors', () => {
  const dir = tempDir();
  try {
    const m = weightModel();
    const a = m.graph!.initializer[0];
    const external = (location: string, length = 4000): TensorProto => ({
      ...a,
      rawData: undefined,
      dataLocation: DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: location },
        { key: 'length', value: String(length) },
      ],
    });
    m.graph!.initializer = [external('missing.bin')];
    writeFileSync(join(dir, 'missing.onnx'), encodeModel(m));
    const missing = loadModel(join(dir, 'missing.onnx'));
    assert.throws(() => missing.rawBytes(missing.graph.initializer[0]), (e: Error) => e instanceof ModelError && /missing\.bin.*'big'/.test(e.message));

    writeFileSync(join(dir, 'short.bin'), Buffer.alloc(10));
    m.graph!.initializer = [external('short.bin')];
    writeFileSync(join(dir, 'short.onnx'), encodeModel(m));
    const short = loadModel(join(dir, 'short.onnx'));
    assert.throws(() => short.rawBytes(short.graph.initializer[0]), /needs bytes 0\.\.4000 of .*short\.bin, which has 10/);

    m.graph!.initializer = [external('../escape.bin')];
    writeFileSync(join(dir, 'escape.onnx'), encodeModel(m));
    const escape = loadModel(join(dir, 'escape.onnx'));
    assert.throws(() => escape.rawBytes(escape.graph.initializer[0]), /outside the model directory/);

    assert.throws(() => saveModel(short, join(dir, 'short.onnx')), /refusing to overwrite an input/);
    assert.throws(() => saveModel(short, join(dir, 'x.onnx'), { location: 'short.bin', externalData: true }), /refusing to overwrite/);
    assert.throws(() => loadModel(join(dir, 'nope.onnx')), /nope\.onnx: no such file/);
    writeFileSync(join(dir, 'empty.onnx'), '');
    assert.throws(() => loadModel(join(dir, 'empty.onnx')), /empty\.onnx: file is empty/);
    writeFileSync(join(dir, 'trunc.onnx'), readFileSync(join(dir, 'short.onnx')).subarray(0, 37));
    assert.throws(() => loadModel(join(dir, 'trunc.onnx')), (e: Error) => e instanceof ModelError && /trunc\.onnx/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
