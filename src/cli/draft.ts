// `onnx-compress draft TARGET (--recipe R ... | --scheme Q | --sparsity S) --out DRAFT`: makes draft models for
// speculative decoding with the project's own passes and judges each as a draft (acceptance, τ, cost ratio,
// predicted and measured speed-up for every γ of a sweep); the fastest is written to --out.
import type { Command } from 'commander';
import { makeDraft, DEFAULT_PROMPT_SETS, DEFAULT_PROMPTS_PER_SET, DEFAULT_PROMPT_TOKENS, type DraftCandidate, type DraftReport } from '../decoding/speculative-draft.js';
import type { SpeculativeMeasurement } from '../decoding/speculative-measure.js';
import { MAX_GAMMA, type Gamma } from '../decoding/speculative.js';
import { OptionError } from '../errors.js';
import { readRecipe } from '../passes/recipe.js';
import { PASSES } from '../passes/registry.js';
import type { Step } from '../passes/types.js';
import { renderReport, writeReportFile } from '../report/html.js';
import { draftDocument } from '../report/sections/speculative.js';
import { writingTo } from '../util/output-lock.js';
import { EXAMPLES_DIR, examplesText, SAMPLE_LLAMA } from './examples.js';
import { emit, table } from './output.js';
import { fraction, positiveWholeNumber } from './options.js';
import { gateSettings, type GateFlags } from './gate-flags.js';
import { withStageProgress } from './stage-progress.js';
import { gammaFlag } from './speculate.js';

interface DraftFlags extends GateFlags {
  recipe?: string[];
  scheme?: string;
  calib?: string;
  sparsity?: string;
  out: string;
  prompts?: string[];
  promptCount: string;
  promptTokens: string;
  gammaSweep: string;
  maxNewTokens: string;
  threads?: string;
  html?: string;
  json?: boolean;
}

/** '1..8', '2,4,auto', '1..4,auto': whole numbers 1..16 and 'auto', in the order given, each once. */
export function gammaSweep(spec: string): Gamma[] {
  const out: Gamma[] = [];
  for (const part of spec.split(',').map((p) => p.trim())) {
    const range = /^(\d+)\.\.(\d+)$/.exec(part);
    if (range) {
      const [a, b] = [gammaFlag(range[1], '--gamma-sweep') as number, gammaFlag(range[2], '--gamma-sweep') as number];
      if (a > b) throw new OptionError(`--gamma-sweep: range ${part} runs backwards`);
      for (let g = a; g <= b; g++) out.push(g);
    } else out.push(gammaFlag(part, '--gamma-sweep'));
  }
  return [...new Set(out)];
}

/** The one candidate the flags describe: prune (when --sparsity), then quantize (when --scheme). */
function flagCandidate(flags: DraftFlags): DraftCandidate | null {
  if (flags.scheme === undefined && flags.sparsity === undefined) {
    if (flags.calib !== undefined) throw new OptionError('--calib applies to --scheme and --sparsity');
    return null;
  }
  const steps: Step[] = [];
  const parts: string[] = [];
  if (flags.sparsity !== undefined) {
    const sparsity = fraction(flags.sparsity, '--sparsity');
    const prune = PASSES.prune;
    const raw = { pass: 'prune', sparsity, ...(flags.calib !== undefined ? { calib: flags.calib } : {}) };
    steps.push({ pass: prune, options: prune.parse(raw, '--sparsity'), where: 'prune' });
    parts.push(`sparsity ${sparsity}`);
  }
  if (flags.scheme !== undefined) {
    const quantize = PASSES.quantize;
    const raw = { pass: 'quantize', scheme: flags.scheme, ...(flags.calib !== undefined ? { calib: flags.calib } : {}) };
    steps.push({ pass: quantize, options: quantize.parse(raw, '--scheme'), where: 'quantize' });
    parts.push(`scheme ${flags.scheme}`);
  }
  return { label: parts.join(' + '), steps };
}

export function registerDraft(program: Command): void {
  program
    .command('draft')
    .description('make a draft model for speculative decoding by compressing the target (recipes, a scheme, pruning) and measure it as a draft')
    .argument('<target>', 'decoder .onnx file the draft will serve')
    .option('--recipe <files...>', 'one or more recipes (JSON lists of passes); each is a candidate, the fastest draft is kept')
    .option('--scheme <name>', 'a candidate quantized with this scheme (w4, w4a8, w8, w8a8 with --calib...)')
    .option('--calib <set>', 'calibration set for --scheme (static schemes need one) and --sparsity')
    .option('--sparsity <s>', 'a candidate pruned to this sparsity (0-1) first (needs the prune pass)')
    .requiredOption('--out <file.onnx>', 'where the best draft is written (config and tokenizer embedded)')
    .option('--prompts <sets...>', `prompt sets: .jsonl files, set folders or shipped names (default: ${DEFAULT_PROMPT_SETS.join(' ')}; their evaluation splits)`)
    .option('--prompt-count <n>', 'prompts read from each set', String(DEFAULT_PROMPTS_PER_SET))
    .option('--prompt-tokens <n>', 'tokens of each prompt (after BOS)', String(DEFAULT_PROMPT_TOKENS))
    .option('--gamma-sweep <list>', `γ values to measure: ranges and lists of 1-${MAX_GAMMA} and auto, e.g. 1..8,auto`, '1..8,auto')
    .option('--max-new-tokens <n>', 'tokens generated per prompt', '64')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: one per core)')
    .option('--html <file>', 'also write the report as one self-contained HTML page')
    .option('--min-cosine <x>', 'quality gate of each candidate: smallest output cosine with the target (0-1)')
    .option('--min-top1 <x>', 'quality gate of each candidate: smallest top-1 agreement with the target (0-1)')
    .option('--no-gate', "accept every candidate whatever its verification figures (a draft's quality shows in its acceptance)")
    .option('--json', 'print the report as JSON (no progress bar)')
    .addHelpText(
      'after',
      '\nEach candidate is made and verified as `compress` does, then decodes the prompts greedily with the target for every γ\n' +
        'of the sweep. The report gives α (per-token acceptance), τ (tokens per target step), acceptance by position, c (draft\n' +
        'step / target step), the predicted speed-up (1 - α^(γ+1)) / ((1 - α)(γc + 1)) and the measured one; the candidate\n' +
        'with the highest measured tokens/s (at its best γ) is written to --out.\n' +
        examplesText([
          `draft ${SAMPLE_LLAMA} --scheme w4 --out ${EXAMPLES_DIR}/tiny-draft-q4.onnx --gamma-sweep 1..4 --prompt-count 1`,
          `draft ${SAMPLE_LLAMA} --recipe recipes/w4-eval.json recipes/w8a8-prose.json --out ${EXAMPLES_DIR}/tiny-draft.onnx --gamma-sweep 2,4,auto --prompt-count 1 --json`,
        ]),
    )
    .action(async (target: string, flags: DraftFlags) => {
      const candidates: DraftCandidate[] = (flags.recipe ?? []).map((path) => {
        const recipe = readRecipe(path);
        return { label: `recipe ${recipe.name ?? path}`, steps: recipe.steps };
      });
      const fromFlags = flagCandidate(flags);
      if (fromFlags) candidates.push(fromFlags);
      if (!candidates.length) throw new OptionError('give --recipe, --scheme or --sparsity: how to make the draft');
      const gammas = gammaSweep(flags.gammaSweep);
      const threads = flags.threads === undefined ? undefined : positiveWholeNumber(flags.threads, '--threads');
      const verify = gateSettings(flags);
      await writingTo([flags.html], async () => {
        const report = await withStageProgress(flags.json, undefined, (onProgress) =>
          makeDraft(target, {
            out: flags.out,
            candidates,
            gammas,
            ...(flags.prompts ? { promptSets: flags.prompts } : {}),
            promptsPerSet: positiveWholeNumber(flags.promptCount, '--prompt-count'),
            promptTokens: positiveWholeNumber(flags.promptTokens, '--prompt-tokens'),
            maxNewTokens: positiveWholeNumber(flags.maxNewTokens, '--max-new-tokens'),
            session: threads ? { intraOpThreads: threads } : {},
            ...(Object.keys(verify).length ? { verify } : {}),
            ...(onProgress ? { onProgress } : {}),
          }),
        );
        if (flags.html) writeReportFile(flags.html, await renderReport(draftDocument(report)));
        emit(report, flags, (r) => formatDraft(r) + (flags.html ? `\n\nwrote ${flags.html}` : ''));
      });
    });
}

const f = (x: number | null, d = 2) => (x === null ? 'n/a' : x.toFixed(d));

function sweepTable(sweep: readonly SpeculativeMeasurement[]): string {
  return table(
    ['γ', 'α', 'accept', 'τ', 'c', 'predicted', 'measured', 'tokens/s', 'same output'],
    sweep.map((m) => [String(m.gamma), f(m.alpha, 3), f(m.acceptanceRate, 3), f(m.tau), f(m.costRatio, 3), `${f(m.predictedSpeedup)}x`, `${f(m.measuredSpeedup)}x`, f(m.tokensPerSecond, 1), m.identical === null ? '-' : m.identical ? 'yes' : 'NO']),
  );
}

export function formatDraft(r: DraftReport): string {
  const out = [
    `draft for ${r.target}: ${r.prompts.count} prompts of ${r.prompts.tokensEach} tokens (${r.prompts.sets.join(', ')}), ${r.prompts.maxNewTokens} new tokens each; target alone ${f(r.targetOnly.tokensPerSecond, 1)} tokens/s (${f(r.targetOnly.stepMs, 3)} ms a step)`,
  ];
  for (const c of r.candidates) {
    out.push('', `${c.label}${c.label === r.chosen ? '  (kept)' : ''}: ${c.compress.output ? `${(c.compress.output.bytes / 1e6).toFixed(2)} MB` : ''}, best γ ${c.best.gamma} at ${f(c.best.measuredSpeedup)}x`, sweepTable(c.sweep));
  }
  out.push('', `wrote ${r.out} (${r.chosen})`);
  return out.join('\n');
}
