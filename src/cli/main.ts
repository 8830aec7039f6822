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

/** One example per command, so the top-level help shows every command in use. */
const EXAMPLES = [
  'inspect models/tiny-llama/model.onnx',
  'convert model.onnx model-ext.onnx --external-data',
  'run model.onnx --inputs test_data_set_0 --out outputs --compare',
  'calibrate models/tiny-llama/model.onnx --data prose --out stats.json --samples 32',
  'quantize models/tiny-llama/model.onnx --scheme w8a8 --calib prose --samples 128 --seq-len 128 --out tiny-w8a8.onnx',
  'compare-calib models/tiny-llama/model.onnx --sets prose code nonsense --eval prose code --html calib.html',
  'eval tiny-w8a8.onnx --reference models/tiny-llama/model.onnx --data prose --max-tokens 20000',
  'generate models/tiny-llama/model.onnx --prompt "Call me Ishmael." --max-new-tokens 32',
  'report calib.json --out calib.html',
];

export function buildProgram(): Command {
  const program = new Command('onnx-compress')
    .description('Post-training compression of ONNX models: inspect, calibrate, quantize, evaluate and decode.')
    .option('--verbose', 'print stack traces and extra detail on errors')
    .showHelpAfterError('(run onnx-compress --help for usage)')
    .addHelpText('after', `\nExamples:\n${EXAMPLES.map((e) => `  onnx-compress ${e}`).join('\n')}\n\nEvery command accepts --json for machine-readable output; \`onnx-compress COMMAND --help\` shows more examples.`);
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
