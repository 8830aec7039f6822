// The command line's rough edges: one validator per kind of flag, so that a bad value gets the same message in
// every command (and '1e2' is no longer read as 100); a mistyped calibration set name is answered with the
// shipped sets; a truncated model says so; --version; text-mode generate says why it stopped; and every example
// of every --help runs as shown, in order, without writing into the working folder (slow: behind
// ONNX_COMPRESS_HELP_EXAMPLES=1, see the README).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildProgram } from '../src/cli/main.js';
import { EXAMPLES_DIR } from '../src/cli/examples.js';
import { BIN, cli, cliInProcess, oneLineError } from './support/cli.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TINY = join(ROOT, 'models/tiny-llama/onnx/model.onnx');
const RECIPE = join(ROOT, 'recipes/w8a8-prose.json');
const dir = mkdtempSync(join(tmpdir(), 'cli-flags-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The error line of an in-process run, without the program's prefix. */
async function errorOf(args: string[]): Promise<string> {
  return oneLineError(await cliInProcess(...args)).replace(/^onnx-compress: /, '');
}

describe('numeric flags: one message per flag, whichever command takes it', () => {
  const out = join(dir, 'never.onnx');
  // Each command with what it needs besides the flag; the flag is checked before any of it is read.
  const commands: Record<string, string[]> = {
    calibrate: ['calibrate', TINY, '--data', 'prose', '--out', join(dir, 'never.json')],
    quantize: ['quantize', TINY, '--scheme', 'w8a8', '--calib', 'prose', '--out', out],
    'compare-calib': ['compare-calib', TINY, '--sets', 'prose'],
    compress: ['compress', TINY, '--recipe', RECIPE, '--out', out],
    eval: ['eval', TINY, '--data', 'prose'],
    generate: ['generate', TINY, '--prompt', 'x'],
  };
  const flags: Record<string, string[]> = {
    '--samples': ['calibrate', 'quantize', 'compare-calib'],
    '--seq-len': ['calibrate', 'quantize', 'compare-calib'],
    '--batch': ['calibrate', 'quantize', 'compare-calib'],
    '--seed': ['calibrate', 'quantize', 'compare-calib', 'generate'],
    '--threads': ['quantize', 'compress', 'compare-calib', 'eval', 'generate'],
    '--window': ['eval', 'compare-calib'],
    '--percentile': ['quantize', 'compare-calib'],
  };
  const bad = ['0', '-3', 'abc', '1e2', '1.5', '0x10', ''];

  for (const [flag, users] of Object.entries(flags)) {
    it(`${flag} in ${users.join(', ')}`, async () => {
      for (const value of bad) {
        // 0 is a valid seed and 1.5 a valid percentile: those values are expected to pass this check
        if ((flag === '--seed' && value === '0') || (flag === '--percentile' && value === '1.5')) continue;
        const messages = new Map<string, string>();
        for (const command of users) {
          // --percentile alone implies --clip percentile, which quantize accepts for w8a8 with --calib
          messages.set(command, await errorOf([...commands[command], `${flag}=${value}`]));
        }
        const distinct = new Set(messages.values());
        assert.equal(distinct.size, 1, `${flag}=${value}: ${JSON.stringify(Object.fromEntries(messages))}`);
        const [message] = distinct;
        assert.ok(message.startsWith(`${flag} must `) && message.endsWith(`, got '${value}'`), message);
      }
    });
  }

  it('a value after a space reads the same as after =', async () => {
    for (const value of ['1e2', '-3']) assert.equal(await errorOf([...commands.calibrate, '--samples', value]), await errorOf([...commands.calibrate, `--samples=${value}`]));
  });

  it('a whole number written in digits is accepted where 1e2 is not', async () => {
    // --samples 100 passes the flag check and the run goes on to the model, which is missing here
    const missing = join(dir, 'missing.onnx');
    const message = await errorOf(['calibrate', missing, '--data', 'prose', '--out', join(dir, 'ok.json'), '--samples', '100']);
    assert.match(message, /missing\.onnx: no such file/);
  });
});

describe('calibration set names', () => {
  it('an unknown name lists the sets shipped in calibration-sets/', async () => {
    const shipped = readdirSync(join(ROOT, 'calibration-sets'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    assert.ok(shipped.length >= 2, 'the shipped sets are there');
    for (const args of [
      ['calibrate', TINY, '--data', 'nosuchset', '--out', join(dir, 'sets.json')],
      ['quantize', TINY, '--scheme', 'w8a8', '--calib', 'nosuchset', '--out', join(dir, 'sets.onnx')],
      ['eval', TINY, '--data', 'nosuchset'],
    ]) {
      const message = await errorOf(args);
      assert.match(message, /^nosuchset: /, message);
      for (const name of shipped) assert.ok(message.includes(name), `${args[0]}: ${message} lists ${name}`);
    }
  });
});

describe('truncated models', () => {
  it('a model file cut short says it is truncated, in every command that reads it', async () => {
    const bytes = readFileSync(TINY);
    for (const fraction of [0.5, 0.99]) {
      const cut = join(dir, `cut-${fraction}.onnx`);
      writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * fraction)));
      for (const args of [['inspect', cut], ['quantize', cut, '--scheme', 'w4', '--out', join(dir, 'cut-q4.onnx')], ['convert', cut, join(dir, 'cut-copy.onnx')]]) {
        const message = await errorOf(args);
        assert.match(message, /truncated/, `${args[0]} on ${fraction} of the file: ${message}`);
        assert.ok(message.startsWith(cut), message);
      }
    }
    assert.ok(!existsSync(join(dir, 'cut-q4.onnx')) && !existsSync(join(dir, 'cut-copy.onnx')));
  });
});

describe('--version', () => {
  it("prints package.json's version and exits 0", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = cli('--version');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), pkg.version);
  });
});

describe('generate in text mode', () => {
  it('says why it stopped, on stderr, apart from the text', () => {
    const r = cli('generate', TINY, '--prompt', 'Call me', '--max-new-tokens', '3');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^\(stopped after 3 new tokens: the --max-new-tokens limit\)$/m);
    assert.ok(!r.stdout.includes('stopped'), 'the text on stdout stays the text');
    const json = cli('generate', TINY, '--prompt', 'Call me', '--max-new-tokens', '3', '--json');
    assert.equal(json.stderr, '', 'no stop line with --json (the report has stopReason)');
    assert.equal((JSON.parse(json.stdout) as { stopReason: string }).stopReason, 'max-new-tokens');
  });
});

/** Every "Examples:" block of the program's help texts: the top level's, then each command's. */
function helpExamples(): { help: string; lines: string[] }[] {
  const program = buildProgram();
  const examplesOf = (text: string): string[] => {
    const lines: string[] = [];
    for (const l of (text.split('\nExamples:\n')[1] ?? '').split('\n')) {
      if (!l.startsWith('  ')) break;
      lines.push(l.trim());
    }
    return lines;
  };
  return [program, ...program.commands].map((c) => ({
    help: c === program ? 'onnx-compress --help' : `onnx-compress ${c.name()} --help`,
    lines: examplesOf(helpText(c)),
  }));
}

/** The whole --help text of a command, as printed (helpInformation() leaves out what addHelpText adds). */
function helpText(c: ReturnType<typeof buildProgram>): string {
  let text = '';
  c.configureOutput({ writeOut: (s) => (text += s), writeErr: () => {} });
  c.outputHelp();
  return text;
}

describe('help examples', () => {
  it('every command shows examples, and none writes into the working folder by name', () => {
    const blocks = helpExamples();
    assert.equal(blocks.length, buildProgram().commands.length + 1, blocks.map((b) => b.help).join(', '));
    for (const { help, lines } of blocks) {
      assert.ok(lines.length > 0, help);
      for (const line of lines) {
        // every path written (--out, --html, --save-plan, convert's OUT, a redirect) lies under EXAMPLES_DIR
        for (const m of line.matchAll(/(?:--out|--html|--save-plan|>)\s+(\S+)/g)) assert.ok(m[1].startsWith(`${EXAMPLES_DIR}/`), `${help}: ${line}`);
        const convert = /(?:^|onnx-compress )convert \S+ (\S+)/.exec(line);
        if (convert) assert.ok(convert[1].startsWith(`${EXAMPLES_DIR}/`), `${help}: ${line}`);
      }
    }
  });

  // Runs every example of every help: minutes on two cores, so only when asked for.
  it('every example runs as shown, in order, from a fresh working folder that it leaves as it found it', { skip: process.env.ONNX_COMPRESS_HELP_EXAMPLES !== '1' && 'set ONNX_COMPRESS_HELP_EXAMPLES=1 to run them (a few minutes)' }, () => {
    const bin = join(dir, 'bin');
    spawnSync('mkdir', ['-p', bin]);
    symlinkSync(BIN, join(bin, 'onnx-compress'));
    for (const { help, lines } of helpExamples()) {
      // Each help's examples stand alone: nothing from another help's run is there to lean on.
      rmSync(EXAMPLES_DIR, { recursive: true, force: true });
      const cwd = mkdtempSync(join(dir, 'cwd-'));
      const linked = ['models', 'recipes', 'calibration-sets'];
      for (const name of linked) symlinkSync(join(ROOT, name), join(cwd, name));
      for (const line of lines) {
        const r = spawnSync('bash', ['-c', line], { cwd, encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, timeout: 600_000 });
        assert.equal(r.status, 0, `${help}: ${line}\n${r.stderr}`);
      }
      assert.deepEqual(readdirSync(cwd).sort(), linked.sort(), `${help}: the examples wrote into the working folder`);
    }
    rmSync(EXAMPLES_DIR, { recursive: true, force: true });
  });
});
