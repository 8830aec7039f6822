// How far a compressed decoder (the candidate) has moved from the original (the reference), token by token over
// the same windows: KL(reference || candidate) of the next-token distributions, whether their most likely tokens
// agree, and each model's own perplexity. Streaming: only the per-token KL values are kept (for the p95).
import type { DecoderSession } from './decoder-session.js';
import { argmax } from './logits.js';
import { NllAccumulator, type PerplexityReport } from './perplexity.js';
import { forEachScoredToken, type WindowPlan } from './scoring-windows.js';
import type { ScoringSet } from './text-set.js';
import { ModelError } from '../onnx/model.js';

export interface ComparisonReport {
  tokens: number;
  windows: number;
  /** KL(reference || candidate) per token, in nats. */
  kl: { mean: number; p95: number; max: number };
  /** Share of tokens where both models' most likely next token is the same. */
  top1Agreement: number;
  reference: PerplexityReport;
  candidate: PerplexityReport;
}

/** `onWindow`: progress, the number of windows run so far. */
export async function compareDecoders(
  reference: DecoderSession,
  candidate: DecoderSession,
  set: ScoringSet,
  plan: WindowPlan,
  onWindow?: (windows: number) => void,
): Promise<ComparisonReport> {
  if (reference.vocab !== candidate.vocab) {
    throw new ModelError(`${candidate.source}: vocabulary of ${candidate.vocab} differs from the reference's ${reference.vocab} (${reference.source})`);
  }
  const refNll = new NllAccumulator(reference.vocab);
  const candNll = new NllAccumulator(candidate.vocab);
  const kls = new Float64Array(set.tokens);
  let agree = 0;
  let n = 0;
  const { windows } = await forEachScoredToken([reference, candidate], set.documents, plan, ({ target, logits: [r, c] }) => {
    const p = refNll.add(r, target);
    const q = candNll.add(c, target);
    kls[n++] = klDivergence(p, q);
    if (argmax(r) === argmax(c)) agree++;
  }, onWindow);
  const sorted = kls.subarray(0, n).sort();
  return {
    tokens: n,
    windows,
    kl: { mean: sorted.reduce((a, v) => a + v, 0) / n, p95: percentile(sorted, 0.95), max: sorted[n - 1] },
    top1Agreement: agree / n,
    reference: refNll.report(set.bytes),
    candidate: candNll.report(set.bytes),
  };
}

/** KL(P || Q) = sum p (log p - log q), from log-probabilities. Tokens P rules out (p = 0) add nothing. */
export function klDivergence(logP: Float64Array, logQ: Float64Array): number {
  let kl = 0;
  for (let i = 0; i < logP.length; i++) {
    const p = Math.exp(logP[i]);
    if (p > 0) kl += p * (logP[i] - logQ[i]);
  }
  // Rounding can leave a tiny negative sum for near-identical distributions; KL itself never is.
  return Math.max(kl, 0);
}

/** Nearest-rank percentile of ascending values. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
