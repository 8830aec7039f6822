// `onnx-compress run`: test-data layout in and out, both engines, --compare, and one-line errors.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { decodeTensor, encodeModel } from '../src/onnx/codec.js';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { tensorValues } from '../src/onnx/tensor.js';
import { DataType } from '../src/onnx/types.js';
import { cli, oneLineError } from './support/cli.js';

const CASE = '/usr/share/libonnx-testdata/data/node/test_conv_with_strides_padding';
const dir = mkdtempSync(join(tmpdir(), 'tf-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function closeTo(a: ArrayLike<number>, b: ArrayLike<number>, tolerance: number): boolean {
  return a.length === b.length && Array.from(a).every((v, i) => Math.abs(v - b[i]) <= tolerance);
}

describe('onnx-compress run', { skip: !existsSync(CASE) && `${CASE} not installed` }, () => {
  it('runs the tf engine on test-data inputs, writes output_0.pb and compares with ONNX Runtime', () => {
    const out = join(dir, 'tf');
    const r = cli('run', join(CASE, 'model.onnx'), '--inputs', join(CASE, 'test_data_set_0'), '--out', out, '--engine', 'tf', '--backend', 'wasm', '--compare', '--json');
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.engine, 'tf');
    assert.equal(report.backend, 'wasm');
    assert.equal(report.comparison.length, 1);
    assert.ok(report.comparison[0].maxAbsDiff < 1e-4, `tf vs ort ${report.comparison[0].maxAbsDiff}`);
    const got = tensorValues(decodeTensor(readFileSync(join(out, 'output_0.pb'))));
    const want = tensorValues(decodeTensor(readFileSync(join(CASE, 'test_data_set_0', 'output_0.pb'))));
    assert.deepEqual(got.dims, want.dims);
    assert.ok(closeTo(got.data as Float32Array, want.data as Float32Array, 1e-4));
  });

  it('runs ONNX Runtime and says which backend the tf side of --compare used', () => {
    const r = cli('run', join(CASE, 'model.onnx'), '--inputs', join(CASE, 'test_data_set_0'), '--out', join(dir, 'ort'), '--engine', 'ort', '--backend', 'cpu', '--compare');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ran with ONNX Runtime/);
    assert.match(r.stdout, /tf \(backend cpu\) vs ONNX Runtime/);
    assert.ok(existsSync(join(dir, 'ort', 'output_0.pb')));
  });

  it('fails with one line naming the problem', () => {
    const model = join(CASE, 'model.onnx');
    assert.match(oneLineError(cli('run', model, '--inputs', join(dir, 'missing'), '--out', join(dir, 'x'))), /missing: no such directory/);
    assert.match(oneLineError(cli('run', model, '--inputs', join(CASE, 'test_data_set_0'), '--out', join(dir, 'x'), '--engine', 'jax')), /--engine must be one of ort, tf/);
    assert.match(oneLineError(cli('run', model, '--inputs', join(CASE, 'test_data_set_0'), '--out', join(dir, 'x'), '--backend', 'tensorflow')), /tfjs-node/);

    const b = new GraphBuilder('g');
    b.input('x', DataType.FLOAT, [3]);
    b.output(b.op('NonZero', ['x'], {}, { name: 'nz' }), DataType.INT64);
    const unsupported = join(dir, 'nonzero.onnx');
    writeFileSync(unsupported, encodeModel(modelFrom(b.graph)));
    const line = oneLineError(cli('run', unsupported, '--inputs', join(CASE, 'test_data_set_0'), '--out', join(dir, 'x')));
    assert.match(line, /nonzero\.onnx: the tf engine cannot run this model: NonZero \(unsupported op; node 'nz'/);
  });
});
