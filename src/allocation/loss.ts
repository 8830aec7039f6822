// The loss sensitivity is measured in: for language models the mean KL divergence of the changed model's
// next-token distribution from the float model's, per scored position (nats); for other models the squared error
// of every output relative to the float output's energy, summed over outputs.
import { klDivergence } from '../decoding/compare.js';
import { logSoftmax } from '../decoding/logits.js';

export type LossKind = 'kl' | 'relative-mse';

/** The float model's outputs for one batch, prepared once: log-probabilities per position, or raw values. */
export type Reference = { kind: 'kl'; vocab: number; logp: Float64Array[] } | { kind: 'relative-mse'; outputs: Float32Array[] };

/** Log-probabilities of every position of a [.., vocab] logits block. */
export function referenceLogProbs(logits: Float32Array, vocab: number): Float64Array[] {
  const rows: Float64Array[] = [];
  for (let at = 0; at < logits.length; at += vocab) rows.push(logSoftmax(logits.subarray(at, at + vocab)));
  return rows;
}

/** Summed KL(reference || candidate) over the positions of one batch, and how many positions. */
export function klSum(ref: Float64Array[], logits: Float32Array, vocab: number, scratch = new Float64Array(vocab)): { sum: number; count: number } {
  let sum = 0;
  for (let p = 0; p < ref.length; p++) sum += klDivergence(ref[p], logSoftmax(logits.subarray(p * vocab, (p + 1) * vocab), scratch));
  return { sum, count: ref.length };
}

/** Σ (y - ŷ)² and Σ y² of one output. */
export function squaredError(ref: Float32Array, out: Float32Array): { error: number; energy: number } {
  let error = 0;
  let energy = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = ref[i] - out[i];
    error += d * d;
    energy += ref[i] * ref[i];
  }
  return { error, energy };
}
