// `onnx-compress compress MODEL --recipe RECIPE --out OUT`: runs a recipe (a JSON list of passes: calibrate,
// quantize, verify, evaluate, compare-calib) on one model through the pass runner, with one progress display and
// one report (text, --json, or an HTML page with --html).
import type { Command } from 'commander';
import { readRecipe } from '../passes/recipe.js';
import { PASSES } from '../passes/registry.js';
import { runSteps, type CompressReport } from '../passes/runner.js';
import type { EvalReport } from '../decoding/evaluate.js';
import type { PruneReport } from '../passes/prune.js';
import type { QuantizeReport } from '../passes/quantize.js';
import { DEFAULT_GATE, describeGate, type VerificationReport } from '../quantization/verify.js';
import { renderReport, writeReportFile } from '../report/html.js';
import { compressDocument } from '../report/sections/compress.js';
import { positiveWholeNumber } from './options.js';
import { EXAMPLES_DIR, examplesText, SAMPLE_LLAMA } from './examples.js';
import { emit, formatBytes } from './output.js';
import { gateSettings, type GateFlags } from './gate-flags.js';
import { withStageProgress } from './stage-progress.js';
import { writingTo } from '../util/output-lock.js';

interface CompressFlags extends GateFlags {
  recipe: string;
  out?: string;
  threads?: string;
  html?: string;
  json?: boolean;
}

export function registerCompress(program: Command): void {
  program
    .command('compress')
    .description('run a recipe of passes (calibrate, quantize, verify, evaluate, compare-calib) on a model; write, verify and report the result')
    .argument('<model>', '.onnx file')
    .requiredOption('--recipe <file>', 'recipe: JSON with a list of passes and their options (see recipes/)')
    .option('--out <path>', 'output .onnx file (or a Hugging Face folder, for a named scheme); required when a pass changes the model')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: one per core)')
    .option('--html <file>', 'also write the report as one self-contained HTML page')
    .option('--min-cosine <x>', `quality gate for every verification of the run (over the recipe's): smallest cosine similarity of any output with the original's (default ${DEFAULT_GATE.minCosine})`)
    .option('--min-top1 <x>', `quality gate, language models: smallest top-1 agreement with the original, 0-1 (default ${DEFAULT_GATE.minTop1Agreement})`)
    .option('--no-gate', 'accept the written model whatever its verification figures (still measured and reported)')
    .option('--json', 'print the report as JSON (no progress bar)')
    .addHelpText(
      'after',
      `\nPasses:\n${Object.values(PASSES)
        .map((p) => `  ${p.name.padEnd(14)} ${p.kind.padEnd(9)} ${p.summary}`)
        .join('\n')}\n\n` +
        'Passes run in the recipe\'s order; checks (verify, evaluate) run on the saved result, last. Every written model is\n' +
        'verified in ONNX Runtime against the input before it is renamed to OUT; a failed run writes nothing.\n' +
        examplesText([
          `compress ${SAMPLE_LLAMA} --recipe recipes/w8a8-prose.json --out ${EXAMPLES_DIR}/tiny-w8a8.onnx`,
          `compress ${SAMPLE_LLAMA} --recipe recipes/mixed-mlp4-attn8.json --out ${EXAMPLES_DIR}/tiny-mixed.onnx --html ${EXAMPLES_DIR}/mixed.html`,
        ]),
    )
    .action(async (modelPath: string, flags: CompressFlags) => {
      const recipe = readRecipe(flags.recipe);
      const threads = flags.threads === undefined ? undefined : positiveWholeNumber(flags.threads, '--threads');
      const verify = gateSettings(flags); // laid over the recipe's verify steps
      await writingTo([flags.html], async () => {
        const report = await withStageProgress(flags.json, (stage) => ({ unit: stage === 'calibration' ? 'samples' : 'steps' }), (onProgress) =>
          runSteps(modelPath, recipe.steps, {
            ...(flags.out !== undefined ? { out: flags.out } : {}),
            session: threads ? { intraOpThreads: threads } : {},
            recipe: { ...(recipe.name ? { name: recipe.name } : {}), path: flags.recipe },
            ...(Object.keys(verify).length ? { verify } : {}),
            ...(onProgress ? { onProgress } : {}),
          }),
        );
        if (flags.html) writeReportFile(flags.html, await renderReport(compressDocument(report)));
        emit(report, flags, (r) => formatCompress(r) + (flags.html ? `\n\nwrote ${flags.html}` : ''));
      });
    });
}

export function formatCompress(r: CompressReport): string {
  const out = [`${r.recipe.name ?? r.recipe.path ?? 'recipe'}: ${r.model.path}${r.output ? ` -> ${r.output.path}` : ''}`];
  for (const p of r.passes) out.push(`  ${p.pass.padEnd(14)} ${p.seconds.toFixed(2).padStart(7)} s  ${passLine(p.pass, p.report)}`);
  if (r.output) out.push(`  file ${formatBytes(r.model.bytes)} -> ${formatBytes(r.output.bytes)} (${(r.output.bytes / r.model.bytes).toFixed(3)}x)`);
  out.push(`  ${r.timing.totalSeconds.toFixed(1)} s in all; ONNX Runtime ${r.engine.version} (${r.engine.executionProvider})`);
  if (r.notes.length) out.push('', 'notes:', ...r.notes.map((n) => `  - ${n}`));
  return out.join('\n');
}

function passLine(pass: string, report: unknown): string {
  const r = report as Record<string, unknown>;
  switch (pass) {
    case 'quantize': {
      const q = report as QuantizeReport;
      const formats = new Map<string, number>();
      for (const n of q.nodes.list) formats.set(n.format, (formats.get(n.format) ?? 0) + 1);
      return `${q.scheme.name}: ${q.nodes.quantized} nodes (${[...formats].map(([f, n]) => `${f} ${n}`).join(', ')}), ${q.nodes.skipped} left in float; weights ${(q.weights.ratio * 100).toFixed(1)}% of float`;
    }
    case 'verify': {
      const v = report as VerificationReport;
      const lm = v.languageModel;
      return `worst cosine ${v.worst.cosine.toFixed(6)}${lm ? `, top-1 agreement ${(100 * lm.top1Agreement).toFixed(2)}%, KL mean ${lm.kl.mean.toExponential(2)}` : ''}; ${describeGate(v)}`;
    }
    case 'evaluate': {
      const e = report as EvalReport;
      const ppl = (m: EvalReport['candidate'] | null) => (m?.perplexity ? `perplexity ${m.perplexity.perplexity.toFixed(3)}, ${m.perplexity.bitsPerByte.toFixed(3)} bits/byte` : '');
      const parts = [`${e.data}: ${ppl(e.candidate) || 'evaluated'}`];
      if (e.reference?.perplexity) parts.push(`reference ${ppl(e.reference)}`);
      if (e.comparison) parts.push(`top-1 agreement ${(100 * e.comparison.top1Agreement).toFixed(2)}%`);
      if (e.agreement) parts.push('outputs compared with the reference');
      return parts.join('; ');
    }
    case 'prune': {
      const p = report as PruneReport;
      return `${p.method} at sparsity ${p.sparsity}: ${p.attention.pruned} of ${p.attention.total} attention groups, ${p.mlp.pruned} of ${p.mlp.total} MLP neurons; attention + MLP parameters ${p.params.kept} (target ${Math.round(p.params.targetKept)})`;
    }
    case 'calibrate':
      return `${String(r.tensors)} tensors, ${String(r.samples)} samples, ${String(r.tokens)} tokens`;
    default:
      return '';
  }
}
