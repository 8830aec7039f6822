// The error contract: every error class the library exports derives from OnnxCompressError and carries the
// stable code of its kind; the CLI's --json mode reports a failure as one JSON line with that code; and
// importing or using the library installs no process-wide signal or exit handlers (the CLI does).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CalibrationDataError } from '../src/calibration/data/errors.js';
import { errorCode, jsonErrorLine } from '../src/cli/main.js';
import { type ErrorCode, OnnxCompressError, OptionError, OutputError } from '../src/errors.js';
import { OnnxFormatError } from '../src/onnx/codec.js';
import { DTypeError } from '../src/onnx/dtypes.js';
import { GraphError } from '../src/onnx/graph.js';
import { ModelError } from '../src/onnx/model.js';
import { TensorError } from '../src/onnx/tensor.js';
import { ReportInputError } from '../src/report/from-json.js';
import { UnsupportedTypeError } from '../src/runtime/ort-tensor.js';
import { RuntimeError } from '../src/runtime/session.js';
import { TfExecutionError } from '../src/runtime/tf/interpreter.js';
import { OpError } from '../src/runtime/tf/ops/util.js';
import { UnsupportedModelError } from '../src/runtime/tf/support.js';
import { cli } from './support/cli.js';

const CODES: readonly ErrorCode[] = ['bad-model', 'bad-data', 'bad-option', 'runtime', 'quality-gate', 'io'];
const SRC = fileURLToPath(new URL('../src/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'errors-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('error classes', () => {
  const cases: [string, Error, ErrorCode][] = [
    ['OptionError', new OptionError('m'), 'bad-option'],
    ['OutputError', new OutputError('m'), 'io'],
    ['ModelError', new ModelError('m'), 'bad-model'],
    ['TensorError', new TensorError('m'), 'bad-model'],
    ['GraphError', new GraphError('m'), 'bad-model'],
    ['DTypeError', new DTypeError('m'), 'bad-model'],
    ['UnsupportedModelError', new UnsupportedModelError('m.onnx', [{ op: 'Foo', reason: 'no kernel', where: 'n', count: 1 }]), 'bad-model'],
    ['TfExecutionError', new TfExecutionError('m'), 'bad-model'],
    ['OnnxFormatError', new OnnxFormatError('m'), 'bad-model'],
    ['UnsupportedTypeError', new UnsupportedTypeError(16, 'input x'), 'bad-model'],
    ['OpError', new OpError('m'), 'bad-model'],
    ['CalibrationDataError', new CalibrationDataError('m'), 'bad-data'],
    ['ReportInputError', new ReportInputError('m'), 'bad-data'],
    ['RuntimeError', new RuntimeError('m.onnx', 'detail', 'node', 'Add'), 'runtime'],
  ];
  for (const [name, e, code] of cases) {
    it(`${name} is an OnnxCompressError with code '${code}'`, () => {
      assert.ok(e instanceof OnnxCompressError, name);
      assert.ok(e instanceof Error);
      assert.equal(e.code, code);
      assert.equal(e.name, name);
      assert.equal(errorCode(e), code);
    });
  }

  it('keeps the constructor fields callers read', () => {
    const r = new RuntimeError('m.onnx', 'bad thing', 'n1', 'Add');
    assert.equal(r.message, "m.onnx: node 'n1' (Add): bad thing");
    assert.deepEqual([r.model, r.detail, r.node, r.opType], ['m.onnx', 'bad thing', 'n1', 'Add']);
    assert.equal(new UnsupportedTypeError(16, 'input x').dataType, 16);
    assert.equal(new ModelError('m', 'runtime').code, 'runtime');
    assert.equal(new TfExecutionError('m', 'runtime').code, 'runtime');
  });

  it('every error class exported under src/ derives from OnnxCompressError', async () => {
    const files: string[] = [];
    const walk = (d: string): void => {
      for (const entry of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, entry.name);
        if (entry.isDirectory()) walk(p);
        // Worker-thread entry points (observer-worker.js, sensitivity-worker.js) throw when imported from the main thread.
        else if (entry.name.endsWith('.js') && !entry.name.endsWith('-worker.js')) files.push(p);
      }
    };
    walk(SRC);
    const found: string[] = [];
    for (const file of files) {
      const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
      for (const [name, value] of Object.entries(mod)) {
        if (typeof value !== 'function' || !(value.prototype instanceof Error) || value === OnnxCompressError) continue;
        const where = `${relative(SRC, file)}: ${name}`;
        found.push(where);
        assert.ok(value.prototype instanceof OnnxCompressError, `${where} does not derive from OnnxCompressError`);
      }
    }
    // The list above is a floor: the classes of the table must all have been found by the walk.
    for (const [name] of cases) assert.ok(found.some((f) => f.endsWith(`: ${name}`)), `${name} not found among ${found.join(', ')}`);
  });

  it('a plain error is reported as internal', () => {
    assert.equal(errorCode(new Error('x')), 'internal');
    assert.equal(errorCode(new RangeError('x')), 'internal');
    assert.deepEqual(JSON.parse(jsonErrorLine(new Error('two\n  lines'))), { error: { code: 'internal', message: 'two lines' } });
  });
});

describe('CLI --json error line', () => {
  function jsonError(...args: string[]): { code: string; message: string } {
    const r = cli(...args, '--json');
    assert.notEqual(r.code, 0, r.stdout);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    const parsed = JSON.parse(lines[0]) as { error: { code: string; message: string } };
    assert.deepEqual(Object.keys(parsed), ['error']);
    assert.ok([...CODES, 'internal'].includes(parsed.error.code), parsed.error.code);
    return parsed.error;
  }

  it('bad model: a missing file', () => {
    const missing = join(dir, 'missing.onnx');
    assert.deepEqual(jsonError('inspect', missing), { code: 'bad-model', message: `${missing}: no such file` });
  });

  it('bad model: a file that is not ONNX', () => {
    const junk = join(dir, 'junk.onnx');
    writeFileSync(junk, 'this is not a protobuf message at all\n');
    const e = jsonError('inspect', junk);
    assert.equal(e.code, 'bad-model');
    assert.ok(e.message.startsWith(`${junk}: `), e.message);
  });

  it('bad option: contradicting flags, a bad number, an unknown flag', () => {
    const out = join(dir, 'out.onnx');
    assert.deepEqual(jsonError('convert', 'models/tiny-llama/onnx/model.onnx', out, '--external-data', '--inline'), {
      code: 'bad-option',
      message: 'choose one of --external-data and --inline',
    });
    assert.deepEqual(jsonError('convert', 'models/tiny-llama/onnx/model.onnx', out, '--threshold', 'lots'), {
      code: 'bad-option',
      message: "--threshold must be a whole number, got 'lots'",
    });
    assert.deepEqual(jsonError('inspect', 'models/tiny-llama/onnx/model.onnx', '--bogus'), { code: 'bad-option', message: "unknown option '--bogus'" });
    assert.ok(!existsSync(out));
  });

  it('without --json the error stays one plain line', () => {
    const r = cli('inspect', join(dir, 'missing.onnx'));
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `onnx-compress: ${join(dir, 'missing.onnx')}: no such file\n`);
  });
});

describe('process-wide handlers', () => {
  it('importing and using the library adds no signal or exit listener; the CLI module installs them on request', () => {
    const dist = fileURLToPath(new URL('../', import.meta.url));
    const tmp = join(dir, 'pending');
    const script = `
      const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'exit', 'beforeExit'];
      const count = () => events.map((e) => process.listenerCount(e));
      const before = count();
      await import(${JSON.stringify(pathToFileURL(join(dist, 'src/quantization/pipeline.js')).href)});
      const atomic = await import(${JSON.stringify(pathToFileURL(join(dist, 'src/util/atomic.js')).href)});
      const fs = await import('node:fs');
      fs.mkdirSync(${JSON.stringify(tmp)});
      const done = atomic.temporaryUntilDone(${JSON.stringify(tmp)});
      const files = new atomic.AtomicFiles();
      files.open(${JSON.stringify(join(dir, 'atomic.bin'))});
      const used = count();
      const pending = atomic.pendingTemporaries().length;
      files.abort();
      atomic.removePendingTemporaries();
      const removed = !fs.existsSync(${JSON.stringify(tmp)});
      done();
      const cli = await import(${JSON.stringify(pathToFileURL(join(dist, 'src/cli/main.js')).href)});
      const importedCli = count();
      cli.installProcessCleanup();
      cli.installProcessCleanup();
      const installed = count();
      process.stdout.write(JSON.stringify({ before, used, pending, removed, importedCli, installed }));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, number[] | number | boolean>;
    assert.deepEqual(got.used, got.before, 'library import and use left listeners unchanged');
    assert.deepEqual(got.importedCli, got.before, 'importing the CLI module installs nothing either');
    assert.equal(got.pending, 2, 'the staging folder and the open atomic file were registered');
    assert.equal(got.removed, true, 'removePendingTemporaries removed the staging folder');
    const [int, term, hup, exit] = got.installed as number[];
    const [int0, term0, hup0, exit0] = got.before as number[];
    assert.deepEqual([int - int0, term - term0, hup - hup0, exit - exit0], [1, 1, 1, 1], 'installProcessCleanup adds one handler each, once');
  });
});
