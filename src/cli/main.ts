// Entry point of the `onnx-compress` command: builds the commander program from one module per command and
// turns every failure into a single line on stderr and a non-zero exit (the stack only with --verbose). With
// --json that line is JSON: {"error":{"code":...,"message":...}}, the code an ErrorCode of src/errors.ts, or
// 'internal' for an error that is not an OnnxCompressError (a bug, or a failure nobody classified yet).
import { Command, CommanderError } from 'commander';
import { OnnxCompressError } from '../errors.js';
import { removePendingTemporaries } from '../util/atomic.js';
import { registerAllocate } from './allocate.js';
import { registerCalibrate } from './calibrate.js';
import { registerCompareCalib } from './compare-calib.js';
import { registerCompress } from './compress.js';
import { registerConvert } from './convert.js';
import { registerEval } from './eval.js';
import { registerGenerate } from './generate.js';
import { registerInspect } from './inspect.js';
import { registerOptimize } from './optimize.js';
import { registerPrune } from './prune.js';
import { registerQuantize } from './quantize.js';
import { registerReport } from './report.js';
import { registerRun } from './run.js';
import { registerSpeculate } from './speculate.js';
import { registerDraft } from './draft.js';
import { CONFORMANCE, EXAMPLES_DIR, examplesText, SAMPLE_LLAMA } from './examples.js';
import { packageVersion } from './version.js';

// One example per command, so the top-level help shows every command in use; a later one reads what an earlier
// one wrote (src/cli/examples.ts: they run as shown, in order).
const X = EXAMPLES_DIR;
const EXAMPLES = [
  `inspect ${SAMPLE_LLAMA}`,
  `convert ${SAMPLE_LLAMA} ${X}/tiny-llama-ext.onnx --external-data`,
  `run ${CONFORMANCE}/node/test_relu/model.onnx --inputs ${CONFORMANCE}/node/test_relu/test_data_set_0 --out ${X}/relu-outputs --compare`,
  `calibrate ${SAMPLE_LLAMA} --data prose --out ${X}/stats.json --samples 32`,
  `quantize ${SAMPLE_LLAMA} --scheme w8a8 --calib prose --samples 128 --seq-len 128 --out ${X}/tiny-w8a8.onnx`,
  `allocate ${SAMPLE_LLAMA} --calib prose --budget 4.25bits --candidates 2,4,8 --samples 4 --out ${X}/tiny-alloc-plan.json`,
  `compress ${SAMPLE_LLAMA} --recipe recipes/w8a8-prose.json --out ${X}/tiny-w8a8-recipe.onnx`,
  `optimize ${SAMPLE_LLAMA} --out ${X}/tiny-llama-optimized.onnx`,
  `compare-calib ${SAMPLE_LLAMA} --sets prose code nonsense --eval prose code --html ${X}/calib.html --json > ${X}/calib.json`,
  `eval ${X}/tiny-w8a8.onnx --reference ${SAMPLE_LLAMA} --data prose --max-tokens 20000`,
  `prune ${SAMPLE_LLAMA} --sparsity 0.2 --method magnitude --no-gate --out ${X}/tiny-pruned.onnx`,
  `generate ${SAMPLE_LLAMA} --prompt "Call me Ishmael." --max-new-tokens 32`,
  `speculate ${SAMPLE_LLAMA} --draft ${X}/tiny-w8a8.onnx --prompt "Call me Ishmael." --max-new-tokens 32`,
  `draft ${SAMPLE_LLAMA} --scheme w4 --out ${X}/tiny-draft-q4.onnx --gamma-sweep 1..4 --prompt-count 1`,
  `report ${X}/calib.json --out ${X}/calib-from-json.html`,
];

export function buildProgram(): Command {
  const program = new Command('onnx-compress')
    .description('Post-training compression of ONNX models: inspect, calibrate, quantize, allocate bits, prune, optimize decoders, evaluate and decode (speculatively too).')
    .version(packageVersion(), '--version', 'print the version of onnx-compress')
    .option('--verbose', 'print stack traces and extra detail on errors')
    .showHelpAfterError('(run onnx-compress --help for usage)')
    .addHelpText('after', `${examplesText(EXAMPLES)}\n\nEvery command accepts --json for machine-readable output; \`onnx-compress COMMAND --help\` shows more examples.`);
  registerInspect(program);
  registerConvert(program);
  registerRun(program);
  registerCalibrate(program);
  registerQuantize(program);
  registerPrune(program);
  registerAllocate(program);
  registerCompress(program);
  registerOptimize(program);
  registerCompareCalib(program);
  registerEval(program);
  registerGenerate(program);
  registerSpeculate(program);
  registerDraft(program);
  registerReport(program);
  return program;
}

function verboseRequested(argv: string[]): boolean {
  return argv.includes('--verbose');
}

function jsonRequested(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end >= 0 ? argv.slice(0, end) : argv).includes('--json');
}

/** The code an error is reported under: its ErrorCode, 'bad-option' for commander's parse errors, else 'internal'. */
export function errorCode(e: unknown): string {
  if (e instanceof OnnxCompressError) return e.code;
  if (e instanceof CommanderError) return 'bad-option';
  return 'internal';
}

/**
 * The exit status of a failure: QUALITY_GATE_EXIT for a model that was produced but refused by the quality gate
 * (so that a script can tell "lost accuracy" from "could not run"), 1 for everything else.
 */
export const QUALITY_GATE_EXIT = 3;
export function exitCode(e: unknown): number {
  return errorCode(e) === 'quality-gate' ? QUALITY_GATE_EXIT : 1;
}

/** The --json error line (without the newline). */
export function jsonErrorLine(e: unknown, verbose = false): string {
  const err = e instanceof Error ? e : new Error(String(e));
  const message = e instanceof CommanderError ? err.message.replace(/^error: /, '') : err.message;
  return JSON.stringify({ error: { code: errorCode(e), message: oneLine(message), ...(verbose && err.stack ? { stack: err.stack } : {}) } });
}

function everyCommand(c: Command): Command[] {
  return [c, ...c.commands.flatMap((sub) => everyCommand(sub as Command))];
}

export async function main(argv = process.argv): Promise<number> {
  const program = buildProgram();
  const json = jsonRequested(argv);
  for (const c of everyCommand(program)) {
    // Subcommands too: commander would otherwise process.exit on their parse errors.
    c.exitOverride();
    // With --json, commander's own error text (and the help it shows after an error) would break the one JSON
    // line, so it is silenced and the error is reported below; help asked for still goes to stdout.
    if (json) c.configureOutput({ writeErr: () => {}, outputError: () => {} });
  }
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit through here with code 0; otherwise commander printed its message (not with --json)
      if (json && e.exitCode !== 0) process.stderr.write(`${jsonErrorLine(e)}\n`);
      return e.exitCode;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    if (json) process.stderr.write(`${jsonErrorLine(err, verboseRequested(argv))}\n`);
    else if (verboseRequested(argv)) process.stderr.write(`${err.stack ?? err.message}\n`);
    else process.stderr.write(`onnx-compress: ${oneLine(err.message)}\n`);
    return exitCode(err);
  }
}

const CLEANUP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let cleanupInstalled = false;

/**
 * Makes this process remove the library's pending temporary files (half-written outputs, staging folders) when
 * it exits or is interrupted. The library itself installs no process-wide handlers; the CLI's bin script calls
 * this once, before main. A signal is re-raised after the cleanup, so the process still dies of it.
 */
export function installProcessCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', removePendingTemporaries);
  for (const sig of CLEANUP_SIGNALS) {
    process.once(sig, () => {
      removePendingTemporaries();
      process.kill(process.pid, sig);
    });
  }
}

/** Messages from libraries (ONNX Runtime especially) can span lines; the CLI promises one. */
export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}
