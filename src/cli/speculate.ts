// `onnx-compress speculate TARGET --draft DRAFT --prompt TEXT`: continues a prompt by speculative decoding (the
// draft proposes, the target verifies), streaming the text, then decodes the same prompt with the target alone and
// ends with the draft's acceptance and the speed-up (or one JSON report with --json).
import type { Command } from 'commander';
import { speculateText, type SpeculateReport } from '../decoding/speculative-text.js';
import { DEFAULT_THRESHOLD, MAX_GAMMA, MIN_GAMMA, type Gamma } from '../decoding/speculative.js';
import { OptionError } from '../errors.js';
import { examplesText, SAMPLE_GPT2, SAMPLE_LLAMA } from './examples.js';
import { decodingOptions, decodingSettings, stopLine, type DecodingFlags } from './generate.js';
import { emit } from './output.js';
import { fraction } from './options.js';

interface SpeculateFlags extends DecodingFlags {
  draft: string;
  prompt: string;
  gamma: string;
  threshold?: string;
}

/** --gamma N (1..16) or auto. */
export function gammaFlag(value: string, flag = '--gamma'): Gamma {
  if (value === 'auto') return 'auto';
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < MIN_GAMMA || n > MAX_GAMMA) throw new OptionError(`${flag} must be a whole number from ${MIN_GAMMA} to ${MAX_GAMMA} or 'auto', got '${value}'`);
  return n;
}

export function registerSpeculate(program: Command): void {
  decodingOptions(
    program
      .command('speculate')
      .description('continue a prompt by speculative decoding (a draft model proposes, the target verifies); report acceptance and speed-up over the target alone')
      .argument('<target>', 'decoder .onnx file whose output is produced')
      .requiredOption('--draft <model>', 'a smaller or compressed decoder with the same vocabulary and special tokens (see `onnx-compress draft`)')
      .requiredOption('--prompt <text>', 'the text to continue')
      .option('--gamma <n|auto>', `draft tokens per target step, ${MIN_GAMMA}-${MAX_GAMMA}, or auto: stop drafting when the draft's top probability falls below --threshold`, '4')
      .option('--threshold <p>', `with --gamma auto: the draft probability under which drafting stops (default ${DEFAULT_THRESHOLD})`),
  )
    .addHelpText(
      'after',
      '\nGreedy output is the target\'s own greedy output, token for token; sampled output follows the target\'s sampling\n' +
        'distribution exactly (rejection sampling). The speed-up is measured against the target alone on the same prompt.\n' +
        examplesText([
          `speculate ${SAMPLE_LLAMA} --draft ${SAMPLE_LLAMA} --prompt "Call me Ishmael." --gamma 4 --max-new-tokens 32`,
          `speculate ${SAMPLE_LLAMA} --draft ${SAMPLE_GPT2} --prompt "Call me Ishmael." --gamma auto --temperature 0.8 --seed 7 --json`,
        ]),
    )
    .action(async (path: string, flags: SpeculateFlags) => {
      const gamma = gammaFlag(flags.gamma);
      const threshold = flags.threshold === undefined ? undefined : fraction(flags.threshold, '--threshold');
      if (threshold !== undefined && gamma !== 'auto') throw new OptionError('--threshold applies to --gamma auto only');
      const report = await speculateText(path, flags.prompt, {
        ...decodingSettings(flags),
        draft: flags.draft,
        gamma,
        ...(threshold !== undefined ? { threshold } : {}),
      });
      emit(report, flags, () => '');
      if (!flags.json) process.stderr.write(`(${stopLine(report)})\n${summaryLine(report)}\n`);
    });
}

const pct = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
const num = (x: number | null, digits = 2) => (x === null ? 'n/a' : x.toFixed(digits));

/** Acceptance and speed-up in one line. */
export function summaryLine(r: SpeculateReport): string {
  const c = r.comparison;
  const same = c.identical === null ? '' : c.identical ? '; output identical to the target alone' : '; OUTPUT DIFFERS from the target alone';
  return (
    `γ ${r.stats.gamma}: α ${pct(c.alpha)}, acceptance ${pct(c.acceptanceRate)}, τ ${num(c.tau)} tokens per target step, c ${num(c.costRatio, 3)}; ` +
    `${num(c.tokensPerSecond, 1)} tokens/s vs ${num(c.targetOnlyTokensPerSecond, 1)} for the target alone: ${num(c.measuredSpeedup)}x measured, ${num(c.predictedSpeedup)}x predicted${same}`
  );
}
