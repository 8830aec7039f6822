// Entry point of the `onnx-compress` command: builds the commander program from one module per command and
// turns every failure into a single line on stderr and a non-zero exit (the stack only with --verbose).
import { Command, CommanderError } from 'commander';
import { registerCalibrate } from './calibrate.js';
import { registerCompareCalib } from './compare-calib.js';
import { registerConvert } from './convert.js';
import { registerEval } from './eval.js';
import { registerGenerate } from './generate.js';
import { registerInspect } from './inspect.js';
import { registerQuantize } from './quantize.js';
import { registerReport } from './report.js';
import { registerRun } from './run.js';

export function buildProgram(): Command {
  const program = new Command('onnx-compress')
    .description('Post-training compression of ONNX models: inspect, calibrate, quantize, prune, evaluate.')
    .option('--verbose', 'print stack traces and extra detail on errors')
    .showHelpAfterError('(run onnx-compress --help for usage)')
    .addHelpText('after', '\nExamples:\n  onnx-compress inspect models/tiny-llama/model.onnx\n  onnx-compress convert in.onnx out.onnx --external-data\n\nEvery command accepts --json for machine-readable output.');
  registerInspect(program);
  registerConvert(program);
  registerRun(program);
  registerCalibrate(program);
  registerQuantize(program);
  registerCompareCalib(program);
  registerEval(program);
  registerGenerate(program);
  registerReport(program);
  return program;
}

function verboseRequested(argv: string[]): boolean {
  return argv.includes('--verbose');
}

export async function main(argv = process.argv): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode; // commander already printed its message or the help
    const err = e as Error;
    if (verboseRequested(argv)) process.stderr.write(`${err.stack ?? err.message}\n`);
    else process.stderr.write(`onnx-compress: ${oneLine(err.message)}\n`);
    return 1;
  }
}

/** Messages from libraries (ONNX Runtime especially) can span lines; the CLI promises one. */
export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}
