import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, oneLineError } from './support/cli.js';
import { TESTDATA_ROOT } from './support/testdata.js';
import { loadModel } from '../src/onnx/model.js';
import { encodeModel } from '../src/onnx/codec.js';

const CONV = `${TESTDATA_ROOT}/pytorch-converted/test_ConvTranspose2d/model.onnx`;

test('--help lists every command with an example', () => {
  const r = cli('--help');
  assert.equal(r.code, 0);
  const commands = [...r.stdout.matchAll(/^  ([a-z-]+) (?:\[options\]|<)/gm)].map((m) => m[1]);
  for (const expected of ['inspect', 'convert', 'run', 'calibrate', 'quantize', 'compare-calib', 'eval', 'generate', 'report']) {
    assert.ok(commands.includes(expected), `${expected} is listed`);
  }
  for (const cmd of commands) {
    assert.match(r.stdout, new RegExp(`^  onnx-compress ${cmd} `, 'm'), `top-level help shows an example of ${cmd}`);
    const sub = cli(cmd, '--help');
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /Example/, `${cmd} --help has examples`);
  }
});

test('inspect prints the signature, operators and parameters, as text and JSON', () => {
  const text = cli('inspect', CONV);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /IR 3, opsets ai\.onnx 6, from pytorch 0\.3/);
  assert.match(text.stdout, /ConvTranspose\s+1/);
  const json = JSON.parse(cli('inspect', CONV, '--json').stdout);
  assert.deepEqual(json.inputs, [{ name: '0', dtype: 'float32', shape: [1, 3, 7, 6] }]);
  assert.equal(json.parameters.count, 3 * 4 * 3 * 3 + 4);
  assert.equal(json.parameters.bytes, (3 * 4 * 3 * 3 + 4) * 4);
  assert.equal(json.decoder, null);
});

test('convert moves weights to external data and back, and inspect sees the files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onnx-compress-cli-'));
  try {
    const ext = join(dir, 'ext.onnx');
    const r = cli('convert', CONV, ext, '--external-data', '--threshold', '100', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).externalData.tensors, 1);
    const info = JSON.parse(cli('inspect', ext, '--json').stdout);
    assert.deepEqual(info.externalData, [{ file: 'ext.onnx_data', tensors: 1, bytes: 432 }]);
    assert.equal(info.largest[0].external, true);

    const back = join(dir, 'back.onnx');
    assert.equal(cli('convert', ext, back, '--inline').code, 0);
    assert.deepEqual(readFileSync(back), readFileSync(CONV), 'inline again gives the original bytes');
    assert.match(oneLineError(cli('convert', ext, ext)), /refusing to overwrite an input/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input gives one line naming the file, and a stack only with --verbose', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onnx-compress-cli-'));
  try {
    const bytes = readFileSync(CONV);
    writeFileSync(join(dir, 'truncated.onnx'), bytes.subarray(0, bytes.length - 200));
    assert.match(oneLineError(cli('inspect', join(dir, 'truncated.onnx'))), /truncated\.onnx: not a valid ONNX model/);
    writeFileSync(join(dir, 'text.onnx'), 'this is not a model at all\n');
    assert.match(oneLineError(cli('inspect', join(dir, 'text.onnx'))), /text\.onnx: /);
    assert.match(oneLineError(cli('inspect', join(dir, 'missing.onnx'))), /missing\.onnx: no such file/);
    mkdirSync(join(dir, 'folder.onnx'));
    assert.match(oneLineError(cli('inspect', join(dir, 'folder.onnx'))), /folder\.onnx: is a directory/);

    // An external-data model whose data file went missing.
    assert.equal(cli('convert', CONV, join(dir, 'ext.onnx'), '--external-data', '--threshold', '0').code, 0);
    rmSync(join(dir, 'ext.onnx_data'));
    assert.equal(existsSync(join(dir, 'ext.onnx')), true);
    assert.match(oneLineError(cli('convert', join(dir, 'ext.onnx'), join(dir, 'out.onnx'), '--inline')), /ext\.onnx_data for tensor '1' cannot be opened/);
    assert.equal(existsSync(join(dir, 'out.onnx')), false, 'a failed convert leaves no output');

    const verbose = cli('inspect', join(dir, 'truncated.onnx'), '--verbose');
    assert.notEqual(verbose.code, 0);
    assert.match(verbose.stderr, /^\s+at /m);
    assert.match(oneLineError(cli('convert', CONV, join(dir, 'x.onnx'), '--threshold', 'lots')), /--threshold must be a whole number/);

    // A well-formed file that ONNX Runtime refuses: an operator no runtime knows.
    const model = loadModel(CONV);
    model.graph.node[0].opType = 'NoSuchOp';
    writeFileSync(join(dir, 'refused.onnx'), encodeModel(model.proto));
    assert.equal(cli('inspect', join(dir, 'refused.onnx')).code, 0, 'inspect alone does not run the model');
    assert.match(oneLineError(cli('inspect', join(dir, 'refused.onnx'), '--check')), /refused\.onnx: .*NoSuchOp/);
    assert.match(cli('inspect', CONV, '--check').stdout, /ONNX Runtime: loads the model/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('inspect reads decoder dimensions from the graph alone and from config.json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onnx-compress-cli-'));
  try {
    const expected = { layers: 4, attentionHeads: 4, kvHeads: 2, headDim: 32, hidden: 128, intermediate: 384, vocab: 259 };
    writeFileSync(join(dir, 'model.onnx'), readFileSync('models/tiny-llama/onnx/model.onnx'));
    const fromGraph = JSON.parse(cli('inspect', join(dir, 'model.onnx'), '--json').stdout).decoder;
    assert.equal(fromGraph.source, 'graph');
    for (const [key, value] of Object.entries(expected)) assert.equal(fromGraph[key], value, key);
    assert.equal(fromGraph.kvCacheInputs.length, 8);

    const text = cli('inspect', 'models/tiny-llama/onnx/model.onnx');
    assert.match(text.stdout, /layers 4, attention heads 4, key\/value heads 2, head size 32/);
    assert.match(text.stdout, /hidden 128, intermediate 384, vocabulary 259, max positions 1024/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
