// `onnx-compress convert IN OUT`: re-save a model, moving weights to or from external data.
import type { Command } from 'commander';
import { OptionError } from '../errors.js';
import { loadModel } from '../onnx/model.js';
import { withCompanionsEmbedded } from '../onnx/model-folder.js';
import { saveModel, type SaveReport } from '../onnx/save.js';
import { EXAMPLES_DIR, examplesText, SAMPLE_LLAMA } from './examples.js';
import { emit, formatBytes } from './output.js';
import { wholeNumber } from './options.js';
import { writingTo } from '../util/output-lock.js';

interface ConvertOptions {
  externalData?: boolean;
  inline?: boolean;
  threshold?: string;
  location?: string;
  json?: boolean;
}

export function registerConvert(program: Command): void {
  program
    .command('convert')
    .description('re-save a model, moving weights to or from external data')
    .argument('<in>', 'input .onnx file')
    .argument('<out>', 'output .onnx file (never the input)')
    .option('--external-data', 'store initializers of at least --threshold bytes in <out>_data')
    .option('--inline', 'store every weight inside the .onnx file (protobuf caps it at 2 GiB)')
    .option('--threshold <bytes>', 'smallest tensor moved to external data', '1024')
    .option('--location <file>', 'external data file name, relative to <out>')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      examplesText([
        `convert ${SAMPLE_LLAMA} ${EXAMPLES_DIR}/tiny-llama-ext.onnx --external-data --threshold 4096`,
        `convert ${EXAMPLES_DIR}/tiny-llama-ext.onnx ${EXAMPLES_DIR}/tiny-llama-inline.onnx --inline`,
      ]),
    )
    .action(async (input: string, output: string, opts: ConvertOptions) => {
      if (opts.externalData && opts.inline) throw new OptionError('choose one of --external-data and --inline');
      const threshold = opts.threshold === undefined ? undefined : wholeNumber(opts.threshold, '--threshold');
      const report = await writingTo([output], () =>
        // The config and tokenizer files travel inside the copy (model-folder.ts reads them back).
        saveModel(withCompanionsEmbedded(loadModel(input)), output, { externalData: opts.externalData ? true : opts.inline ? false : undefined, threshold, location: opts.location }),
      );
      emit(report, opts, formatConvert);
    });
}

function formatConvert(r: SaveReport): string {
  const lines = [`wrote ${r.path} (${formatBytes(r.bytes)})`];
  if (r.externalData) lines.push(`wrote ${r.externalData.path} (${formatBytes(r.externalData.bytes)}, ${r.externalData.tensors} tensors)`);
  return lines.join('\n');
}
