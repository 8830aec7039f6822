// Writing safely, in every command that writes: the output location is checked before any work (one line,
// "cannot write OUT: ..."), missing folders are created the same way everywhere, no error shows a temporary name
// or a raw system message, and an output is locked for the run — a second run to it fails at once naming the
// first, a stale lock is taken over, and an interrupted run leaves no lock, staging folder or folder of its own.
// Tests run as root, which chmod does not stop: unwritable places here are a path below a regular file (ENOTDIR)
// and /sys, which refuses new files even to root.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { lockFileFor } from '../src/util/output-lock.js';
import { BIN, cli, cliInProcess, oneLineError, type CliResult } from './support/cli.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TINY = join(ROOT, 'models/tiny-llama/onnx/model.onnx');
const INTERRUPTED_RUN = fileURLToPath(new URL('./support/interrupted-run.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'cli-writing-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Every error line the tests saw, checked at the end for temporary names and raw system messages. */
const seen: string[] = [];

/** A failing run, in this process (no child start to pay); its one error line, also kept in `seen`. */
async function failure(...args: string[]): Promise<string> {
  const r = await cliInProcess(...args);
  seen.push(r.stderr);
  return oneLineError(r).replace(/^onnx-compress: /, '');
}

/** A run that writes: in a child, so that its report on stdout stays apart from the test runner's own output. */
function success(...args: string[]): CliResult {
  const r = cli(...args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r;
}

/** A recipe that quantizes to w4 (no calibration): the cheapest run that writes a model. */
function recipe(passes: unknown[]): string {
  const path = join(dir, `recipe-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify({ format: 'onnx-compress.recipe', version: 1, passes }));
  return path;
}
const W4 = recipe([{ pass: 'quantize', scheme: 'w4' }]);
const CALIBRATES_MISSING_SET = recipe([{ pass: 'calibrate', data: 'nosuchset' }, { pass: 'quantize', scheme: 'w8a8' }]);

/** A folder that refuses new files even to root, and the reason the CLI gives for it; undefined where none is. */
function unwritableFolder(): { folder: string; reason: string } | undefined {
  for (const folder of ['/sys', '/proc/sys']) {
    try {
      closeSync(openSync(join(folder, `.probe-${process.pid}`), 'wx'));
      unlinkSync(join(folder, `.probe-${process.pid}`));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') return { folder, reason: 'permission denied' };
      if (code === 'EROFS') return { folder, reason: 'read-only file system' };
    }
  }
  return undefined;
}

/** Every command that writes, writing `out` (a file path) where the input it would read first is missing or bad. */
function writersTo(out: (name: string) => string, ok: string): [string, string[]][] {
  const missingModel = join(dir, 'missing.onnx');
  return [
    ['calibrate', ['calibrate', missingModel, '--data', 'nosuchset', '--out', out('stats.json')]],
    ['convert', ['convert', missingModel, out('converted.onnx')]],
    ['report', ['report', join(dir, 'missing.json'), '--out', out('report.html')]],
    ['compare-calib --html', ['compare-calib', missingModel, '--sets', 'nosuchset', '--html', out('calib.html')]],
    // the runner reads the model first (to name a folder output), but no calibration set before the output check
    ['quantize', ['quantize', TINY, '--scheme', 'w8a8', '--calib', 'nosuchset', '--out', out('q.onnx')]],
    ['quantize --save-plan', ['quantize', TINY, '--scheme', 'w8a8', '--calib', 'nosuchset', '--out', join(ok, 'q.onnx'), '--save-plan', out('plan.json')]],
    ['compress', ['compress', TINY, '--recipe', CALIBRATES_MISSING_SET, '--out', out('c.onnx')]],
    ['compress --html', ['compress', TINY, '--recipe', CALIBRATES_MISSING_SET, '--out', join(ok, 'c.onnx'), '--html', out('c.html')]],
  ];
}

describe('an output that cannot be written fails in one line, before any work', () => {
  const ok = join(dir, 'untouched');
  before(() => mkdirSync(ok));

  it('below a regular file: no such folder and cannot create it', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    for (const [what, args] of writersTo((name) => join(file, 'sub', name), ok)) {
      const path = args[args.length - 1];
      assert.equal(await failure(...args), `cannot write ${path}: no such folder and cannot create it`, what);
    }
    assert.deepEqual(readdirSync(ok), [], 'nothing was written beside');
  });

  const ro = unwritableFolder();
  it('in a folder that refuses new files (/sys, even to root): the reason in words', { skip: !ro && 'no folder here refuses root' }, async () => {
    for (const [what, args] of writersTo((name) => join(ro!.folder, name), ok)) {
      const path = args[args.length - 1];
      assert.equal(await failure(...args), `cannot write ${path}: ${ro!.reason}`, what);
    }
    for (const [what, args] of writersTo((name) => join(ro!.folder, 'new-folder', name), ok)) {
      const path = args[args.length - 1];
      assert.equal(await failure(...args), `cannot write ${path}: no such folder and cannot create it`, what);
    }
    assert.deepEqual(readdirSync(ok), []);
  });

  it('an output that is a folder, and a rename onto a folder, name the path the user gave', async () => {
    const folder = join(dir, 'is-a-folder.onnx');
    mkdirSync(folder);
    assert.equal(await failure('convert', TINY, folder), `cannot write ${folder}: it is a folder`);
    // The external data file's place is taken by a folder: found only at the rename, after the temporary was written.
    const out = join(dir, 'data-clash.onnx');
    mkdirSync(`${out}_data`);
    assert.equal(await failure('convert', TINY, out, '--external-data'), `cannot write ${out}_data: it is a folder`);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('data-clash')), ['data-clash.onnx_data'], 'no temporary left, no model without its data');
  });
});

describe('missing folders', () => {
  it('are created the same way by every command that writes', async () => {
    const base = join(dir, 'created');
    // One new folder (two levels deep) per output, named after it.
    const at = (file: string) => join(base, file, 'deeper', file);
    success('convert', TINY, at('convert.onnx'));
    success('quantize', TINY, '--scheme', 'w4', '--out', at('quantize.onnx'), '--save-plan', at('plan.json'));
    success('compress', TINY, '--recipe', W4, '--out', at('compress.onnx'), '--html', at('compress.html'));
    const stats = success('calibrate', TINY, '--data', 'prose', '--samples', '2', '--seq-len', '16', '--observe', 'minmax', '--out', at('calibrate.json'), '--json');
    success('compare-calib', TINY, '--sets', 'prose', '--samples', '2', '--seq-len', '16', '--eval-tokens', '64', '--window', '32', '--html', at('compare.html'), '--json');
    const reportJson = join(dir, 'calibrate-report.json');
    writeFileSync(reportJson, stats.stdout);
    success('report', reportJson, '--out', at('report.html'));
    for (const file of ['convert.onnx', 'quantize.onnx', 'plan.json', 'compress.onnx', 'compress.html', 'calibrate.json', 'compare.html', 'report.html']) {
      assert.ok(existsSync(at(file)), at(file));
      assert.deepEqual(readdirSync(join(base, file, 'deeper')).filter((f) => f.startsWith('.')), [], `${file}: no lock, staging folder or temporary left`);
    }
    assert.ok(existsSync(join(base, 'calibrate.json', 'deeper', 'calibrate.bin')), 'the statistics binary beside its JSON');
  });

  it('a failed run removes the folders it created', async () => {
    const out = join(dir, 'failed-run', 'a', 'b', 'q.onnx');
    const message = await failure('compress', TINY, '--recipe', CALIBRATES_MISSING_SET, '--out', out);
    assert.match(message, /nosuchset/);
    assert.ok(!existsSync(join(dir, 'failed-run')), 'the folders made for the output are gone with the run');
  });
});

/** Waits until `path` exists (the child has got that far) or the child ends; false when it ended first. */
async function waitFor(path: string, child: ChildProcess, seconds = 120): Promise<boolean> {
  for (let waited = 0; waited < seconds * 1000; waited += 25) {
    if (existsSync(path)) return true;
    if (child.exitCode !== null || child.signalCode !== null) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

describe('one run per output', () => {
  it('a second run to the same --out fails at once, naming the first run and its pid', async () => {
    const out = join(dir, 'busy', 'q.onnx');
    // A first run long enough to be caught working: calibration of many samples before it writes.
    const first = spawn(process.execPath, [BIN, 'quantize', TINY, '--scheme', 'w8a8', '--calib', 'prose', '--samples', '2000', '--seq-len', '128', '--out', out, '--json'], { stdio: 'ignore' });
    try {
      assert.ok(await waitFor(lockFileFor(out), first), 'the first run took the lock');
      const started = performance.now();
      const message = await failure('quantize', TINY, '--scheme', 'w4', '--out', out);
      const seconds = (performance.now() - started) / 1000;
      assert.match(message, new RegExp(`^cannot write ${out}: another run is writing it, pid ${first.pid} \\(onnx-compress quantize .*--out ${out}.*\\), started `));
      assert.equal(first.exitCode, null, `the first run is still working (the second failed after ${seconds.toFixed(2)} s)`);
      assert.ok(!existsSync(out));
    } finally {
      first.kill('SIGTERM');
      await exited(first);
    }
    assert.ok(!existsSync(lockFileFor(out)), 'SIGTERM released the lock');
    assert.ok(!existsSync(join(dir, 'busy')), 'and removed the folder the run created');
  });

  it('a lock left by a process that is gone is taken over; one held by a live process is not', async () => {
    const out = join(dir, 'stale', 'model.onnx');
    mkdirSync(join(dir, 'stale'));
    const gone = spawnSync(process.execPath, ['-e', '']).pid;
    const lock = lockFileFor(out);
    writeFileSync(lock, JSON.stringify({ pid: gone, host: hostname(), command: 'onnx-compress convert (killed)', started: new Date(0).toISOString() }));
    success('convert', TINY, out);
    assert.ok(existsSync(out));
    assert.ok(!existsSync(lock), 'the taken-over lock is released at the end');

    const alive = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const held = { pid: alive.pid, host: hostname(), command: 'sleep 60', started: new Date().toISOString() };
      writeFileSync(lock, JSON.stringify(held));
      assert.match(await failure('convert', TINY, out), new RegExp(`another run is writing it, pid ${alive.pid} \\(sleep 60\\).*if that process is gone, remove ${lock}`));
      assert.deepEqual(JSON.parse(readFileSync(lock, 'utf8')), held, 'the live lock is left as it was');
    } finally {
      alive.kill();
      await exited(alive);
    }
    // A lock nobody could read (a run that died while writing it): waited for briefly, then taken over.
    writeFileSync(lock, '');
    assert.match(await failure('convert', TINY, out), /another run is writing it, a run that is still starting/);
    utimesSync(lock, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    success('convert', TINY, out);
    assert.ok(!existsSync(lock));
  });
});

/** Runs `work` while a live process (sleep) holds the lock of `path`; returns that process's pid to `work`. */
async function whileLocked(path: string, work: (pid: number) => Promise<void>): Promise<void> {
  const alive = spawn('sleep', ['60'], { stdio: 'ignore' });
  const lock = lockFileFor(path);
  try {
    writeFileSync(lock, JSON.stringify({ pid: alive.pid, host: hostname(), command: 'sleep 60', started: new Date().toISOString() }));
    await work(alive.pid!);
  } finally {
    alive.kill();
    await exited(alive);
    rmSync(lock, { force: true });
  }
}

describe('outputs of run and of a recipe step are locked too', () => {
  it('run: its --out folder is locked (by output_0.pb), and released when it ends', async () => {
    const RELU = '/usr/share/libonnx-testdata/data/node/test_relu';
    const out = join(dir, 'run-out');
    mkdirSync(out);
    const args = ['run', join(RELU, 'model.onnx'), '--inputs', join(RELU, 'test_data_set_0'), '--out', out, '--engine', 'ort'];
    await whileLocked(join(out, 'output_0.pb'), async (pid) => {
      assert.match(await failure(...args), new RegExp(`^cannot write ${join(out, 'output_0.pb')}: another run is writing it, pid ${pid} \\(sleep 60\\)`));
      assert.deepEqual(readdirSync(out).filter((f) => !f.startsWith('.')), [], 'nothing written while another run holds it');
    });
    success(...args);
    assert.deepEqual(readdirSync(out), ['output_0.pb'], 'the output, and no lock or temporary left');
  });

  it("compress: a calibrate step's save file is locked for the run, and released when it ends", async () => {
    const stats = join(dir, 'recipe-save', 'stats.json');
    mkdirSync(join(dir, 'recipe-save'));
    const saving = recipe([{ pass: 'calibrate', data: 'prose', samples: 2, seqLen: 16, observe: 'minmax', save: stats }, { pass: 'quantize', scheme: 'w8a8' }]);
    const out = join(dir, 'recipe-save', 'q.onnx');
    await whileLocked(stats, async (pid) => {
      assert.match(await failure('compress', TINY, '--recipe', saving, '--out', out), new RegExp(`cannot write ${stats}: another run is writing it, pid ${pid} \\(sleep 60\\)`));
      assert.ok(!existsSync(out) && !existsSync(stats), 'neither the statistics nor the model was written');
    });
    success('compress', TINY, '--recipe', saving, '--out', out);
    assert.deepEqual(readdirSync(join(dir, 'recipe-save')).sort(), ['q.onnx', 'stats.bin', 'stats.json'], 'both written; no lock or staging folder left');
  });
});

describe('interrupted runs', () => {
  it('SIGINT during calibration removes the lock and the folders the run created', async () => {
    const out = join(dir, 'interrupted-cli', 'a', 'stats.json');
    const child = spawn(process.execPath, [BIN, 'calibrate', TINY, '--data', 'prose', '--samples', '2000', '--out', out, '--json'], { stdio: 'ignore' });
    assert.ok(await waitFor(lockFileFor(out), child), 'the run took its lock');
    child.kill('SIGINT');
    const { signal } = await exited(child);
    assert.equal(signal, 'SIGINT', 'the process still dies of the signal, after cleaning up');
    assert.ok(!existsSync(join(dir, 'interrupted-cli')), 'no lock, no folder of its own left');
  });

  it('SIGINT while the result is staged and checked removes staging, lock and created folders', async () => {
    const out = join(dir, 'interrupted-run', 'deep', 'model.onnx');
    const child = spawn(process.execPath, [INTERRUPTED_RUN, TINY, out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    for (let waited = 0; !stdout.includes('\n') && child.exitCode === null && waited < 120_000; waited += 25) await new Promise((r) => setTimeout(r, 25));
    assert.ok(stdout.includes('\n'), `the run reached its check: ${stderr}`);
    const { staged } = JSON.parse(stdout) as { staged: string };
    assert.ok(existsSync(staged) && existsSync(lockFileFor(out)), 'staged and locked while it waits');
    assert.ok(staged.includes('.model.onnx.onnx-compress-'), staged);
    child.kill('SIGINT');
    const { signal } = await exited(child);
    assert.equal(signal, 'SIGINT');
    assert.ok(!existsSync(join(dir, 'interrupted-run')), 'staging folder, lock and the folders made for the output are gone');
  });
});

describe('error lines', () => {
  it('never show a temporary name or a raw system message', () => {
    assert.ok(seen.length >= 20, `the tests above saw their errors (${seen.length})`);
    for (const line of seen) {
      assert.doesNotMatch(line, /\.tmp-\d|onnx-compress-(?!lock)\w{6}|XXXXXX|\.onnx-compress-probe/, line);
      assert.doesNotMatch(line, /\b(EACCES|EPERM|EROFS|ENOENT|ENOTDIR|EISDIR|EEXIST|ENOSPC)\b|mkdtemp|, open '|, rename '/, line);
    }
  });
});
