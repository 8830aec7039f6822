// Perplexity and bits per byte of a decoder on a scoring set: exp(mean negative log-likelihood per token), and
// the summed NLL in bits over the UTF-8 bytes of the scored text (comparable across tokenizers).
import type { DecoderSession } from './decoder-session.js';
import { logSoftmax } from './logits.js';
import { forEachScoredToken, type WindowPlan } from './scoring-windows.js';
import type { ScoringSet } from './text-set.js';

export interface PerplexityReport {
  tokens: number;
  bytes: number;
  /** Summed negative log-likelihood of the scored tokens, in nats. */
  nll: number;
  meanNll: number;
  perplexity: number;
  bitsPerByte: number;
}

/** Sums the NLL of scored tokens; one per model being scored. */
export class NllAccumulator {
  private sum = 0;
  private count = 0;
  private readonly scratch: Float64Array;

  constructor(vocab: number) {
    this.scratch = new Float64Array(vocab);
  }

  /** Adds one token; returns the log-probabilities it computed (valid until the next call) for reuse. */
  add(logits: Float32Array, target: number): Float64Array {
    const logp = logSoftmax(logits, this.scratch);
    this.sum -= logp[target];
    this.count++;
    return logp;
  }

  report(bytes: number): PerplexityReport {
    const meanNll = this.sum / this.count;
    return { tokens: this.count, bytes, nll: this.sum, meanNll, perplexity: Math.exp(meanNll), bitsPerByte: this.sum / (Math.LN2 * bytes) };
  }
}

/** `onWindow`: progress, the number of windows run so far. */
export async function perplexity(
  decoder: DecoderSession,
  set: ScoringSet,
  plan: WindowPlan,
  onWindow?: (windows: number) => void,
): Promise<PerplexityReport & { windows: number }> {
  const nll = new NllAccumulator(decoder.vocab);
  const { windows } = await forEachScoredToken([decoder], set.documents, plan, (t) => nll.add(t.logits[0], t.target), onWindow);
  return { ...nll.report(set.bytes), windows };
}
