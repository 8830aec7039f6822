// `onnx-compress optimize MODEL --out OUT`: rewrites a decoder onto ONNX Runtime's fused CPU kernels (the optimize
// pass through the runner: checked against the input, saved, verified, renamed into place) and reports node
// counts before and after, the fusions applied per kind and every block kept unfused with the reason.
import type { Command } from 'commander';
import { optimizePass } from '../passes/optimize.js';
import { runSteps, type CompressReport } from '../passes/runner.js';
import type { OptimizeReport } from '../optimize/optimize.js';
import { EXAMPLES_DIR, examplesText, SAMPLE_LLAMA } from './examples.js';
import { positiveWholeNumber } from './options.js';
import { emit, formatBytes } from './output.js';

interface OptimizeFlags {
  out: string;
  threads?: string;
  packQkv: boolean;
  json?: boolean;
}

export interface OptimizeCommandReport {
  model: string;
  output: string;
  optimize: OptimizeReport;
  run: CompressReport;
}

export function registerOptimize(program: Command): void {
  program
    .command('optimize')
    .description("rewrite a decoder onto ONNX Runtime's fused CPU kernels (GroupQueryAttention, SkipSimplifiedLayerNormalization...); same interface, same logits")
    .argument('<model>', 'decoder .onnx file (float, quantized or pruned)')
    .requiredOption('--out <path>', 'output .onnx file (or a Hugging Face folder)')
    .option('--threads <n>', 'ONNX Runtime intra-op threads for the checks (default: one per core)')
    .option('--no-pack-qkv', 'keep separate q/k/v projections instead of packing them into one product')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      '\nThe optimized model keeps the inputs and outputs of the original (input_ids, attention_mask, position_ids,\n' +
        'past_key_values.*, logits, present.*). GroupQueryAttention masks from sequence lengths, so batches whose rows\n' +
        'have padding are refused when run. Its logits are compared with the original in ONNX Runtime before it is\n' +
        'written (docs/optimize.md).\n' +
        examplesText([`optimize ${SAMPLE_LLAMA} --out ${EXAMPLES_DIR}/tiny-llama-optimized.onnx`]),
    )
    .action(async (modelPath: string, flags: OptimizeFlags) => {
      const threads = flags.threads === undefined ? undefined : positiveWholeNumber(flags.threads, '--threads');
      const run = await runSteps(modelPath, [{ pass: optimizePass, options: flags.packQkv === false ? { packQkv: false } : {}, where: 'optimize' }], {
        out: flags.out,
        session: threads ? { intraOpThreads: threads } : {},
      });
      const optimize = run.passes.find((p) => p.pass === 'optimize')!.report as OptimizeReport;
      const report: OptimizeCommandReport = { model: modelPath, output: run.output!.path, optimize, run };
      emit(report, flags, formatOptimize);
    });
}

export function formatOptimize(r: OptimizeCommandReport): string {
  const o = r.optimize;
  const lines = [
    `${r.model} -> ${r.output}`,
    `  nodes ${o.nodes.before} -> ${o.nodes.after} (${o.layers} layers)`,
    `  fused: ${Object.entries(o.fusions).map(([k, n]) => `${k} ${n}`).join(', ')}`,
    `  logits vs original: max |diff| ${o.check.maxAbsDiff.toExponential(2)} (${o.check.relative.toExponential(2)} of the largest logit, tolerance ${o.check.tolerance}) over ${o.check.positions} positions`,
  ];
  if (r.run.verification) lines.push(`  verification: worst cosine ${r.run.verification.worst.cosine.toFixed(6)}`);
  if (r.run.output) lines.push(`  file ${formatBytes(r.run.model.bytes)} -> ${formatBytes(r.run.output.bytes)}`);
  if (o.kept.length) lines.push('  kept unfused:', ...o.kept.map((k) => `    ${k.block}: ${k.reason}`));
  if (r.run.notes.length) lines.push('', 'notes:', ...r.run.notes.map((n) => `  - ${n}`));
  return lines.join('\n');
}
