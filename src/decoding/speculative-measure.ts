// Speculative decoding measured against the target alone on the same prompts (Spec-Bench's protocol at batch 1:
// a warm-up first, then wall-clock tokens per second of each): the draft's acceptance (α, τ, by position), the
// cost ratio c (a draft step over a target step), the speed-up the formula predicts from them and the one
// measured. With greedy decoding the two outputs must be the same tokens; `identical` says whether they were.
import type { DecoderSession } from './decoder-session.js';
import { generate } from './generate.js';
import type { SamplingOptions } from './sampling.js';
import { predictedSpeedup, speculativeGenerate, type Gamma, type PositionAcceptance, type SpeculativeResult } from './speculative.js';

export interface TargetRun {
  tokens: number[];
  seconds: number;
  /** Single-token forwards after the prefill, and their time. */
  steps: number;
  stepSeconds: number;
}

/** Target-only decoding of each prompt, as the reference for speed and (greedy) output. */
export async function targetOnly(target: DecoderSession, prompts: readonly (readonly number[])[], options: SamplingOptions & { maxNewTokens: number }): Promise<TargetRun[]> {
  const runs: TargetRun[] = [];
  for (const prompt of prompts) {
    const r = await generate(target, [prompt], options);
    const tokens = r.tokens[0];
    runs.push({ tokens, seconds: r.prefillSeconds + r.decodeSeconds, steps: Math.max(0, tokens.length - 1), stepSeconds: r.decodeSeconds });
  }
  return runs;
}

/** First runs pay for ORT's lazy initialisation and allocations: a short untimed generation on each model. */
export async function warmUp(prompt: readonly number[], ...decoders: DecoderSession[]): Promise<void> {
  for (const d of decoders) await generate(d, [prompt], { maxNewTokens: 4 });
}

export interface SpeculativeMeasurement {
  gamma: Gamma;
  prompts: number;
  tokens: number;
  /** Per-token acceptance α, acceptance rate (accepted / drafted), τ and the mean draft length per step. */
  alpha: number | null;
  acceptanceRate: number | null;
  tau: number | null;
  meanGamma: number | null;
  byPosition: PositionAcceptance[];
  draftStepMs: number | null;
  targetStepMs: number | null;
  /** The target's verification forward (γ + 1 tokens) over its single-token step. */
  verifyCostRatio: number | null;
  /** c: draft step time over target step time. */
  costRatio: number | null;
  predictedSpeedup: number | null;
  tokensPerSecond: number;
  targetOnlyTokensPerSecond: number;
  measuredSpeedup: number;
  /** Greedy: every prompt's output equalled the target's own; null when sampling. */
  identical: boolean | null;
}

export interface MeasureOptions extends SamplingOptions {
  maxNewTokens: number;
  threshold?: number;
  maxGamma?: number;
}

/** Speculative decoding of every prompt with one γ, summed over the prompts and set against the target-only runs. */
export async function measureSpeculative(
  target: DecoderSession,
  draft: DecoderSession,
  prompts: readonly (readonly number[])[],
  gamma: Gamma,
  reference: readonly TargetRun[],
  options: MeasureOptions,
  onResult?: (result: SpeculativeResult, prompt: number) => void,
): Promise<SpeculativeMeasurement> {
  const results: SpeculativeResult[] = [];
  for (const [i, prompt] of prompts.entries()) {
    const r = await speculativeGenerate(target, draft, [prompt], { ...options, gamma });
    results.push(r);
    onResult?.(r, i);
  }
  return summarize(gamma, results, reference, options);
}

/** Speculative runs of several prompts summed and set against the target-only runs of the same prompts. */
export function summarize(gamma: Gamma, results: readonly SpeculativeResult[], reference: readonly TargetRun[], sampling: SamplingOptions): SpeculativeMeasurement {
  const sum = (f: (r: SpeculativeResult) => number) => results.reduce((a, r) => a + f(r), 0);
  const tokens = sum((r) => r.tokens.length);
  const accepted = sum((r) => r.stats.accepted);
  const judged = accepted + sum((r) => r.stats.rejected);
  const drafted = sum((r) => r.stats.drafted);
  const steps = sum((r) => r.stats.steps);
  const draftCount = sum((r) => r.stats.draftSteps.count);
  const draftStepMs = draftCount ? (1000 * sum((r) => r.stats.draftSteps.seconds)) / draftCount : null;
  const verifyMs = steps ? (1000 * sum((r) => r.stats.targetSteps.seconds)) / steps : null;
  const refSteps = reference.reduce((a, r) => a + r.steps, 0);
  const targetStepMs = refSteps ? (1000 * reference.reduce((a, r) => a + r.stepSeconds, 0)) / refSteps : null;
  const refTokens = reference.reduce((a, r) => a + r.tokens.length, 0);
  const refSeconds = reference.reduce((a, r) => a + r.seconds, 0);
  const alpha = judged ? accepted / judged : null;
  const meanGamma = steps ? drafted / steps : null;
  const costRatio = draftStepMs !== null && targetStepMs ? draftStepMs / targetStepMs : null;
  const tokensPerSecond = tokens / sum((r) => r.seconds);
  const targetOnlyTokensPerSecond = refTokens / refSeconds;
  return {
    gamma,
    prompts: results.length,
    tokens,
    alpha,
    acceptanceRate: drafted ? accepted / drafted : null,
    tau: steps ? tokens / steps : null,
    meanGamma,
    byPosition: mergePositions(results.map((r) => r.stats.byPosition)),
    draftStepMs,
    targetStepMs,
    verifyCostRatio: verifyMs !== null && targetStepMs ? verifyMs / targetStepMs : null,
    costRatio,
    predictedSpeedup: alpha !== null && meanGamma && costRatio !== null ? predictedSpeedup(alpha, meanGamma, costRatio) : null,
    tokensPerSecond,
    targetOnlyTokensPerSecond,
    measuredSpeedup: tokensPerSecond / targetOnlyTokensPerSecond,
    identical: (sampling.temperature ?? 0) === 0 ? results.every((r, i) => sameTokens(r.tokens, reference[i].tokens)) : null,
  };
}

function sameTokens(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

function mergePositions(lists: readonly PositionAcceptance[][]): PositionAcceptance[] {
  const out: PositionAcceptance[] = [];
  for (const list of lists) {
    for (const p of list) {
      const o = (out[p.position - 1] ??= { position: p.position, reached: 0, accepted: 0, rate: null });
      o.reached += p.reached;
      o.accepted += p.accepted;
    }
  }
  return out.map((o) => ({ ...o, rate: o.reached ? o.accepted / o.reached : null }));
}
