// The target's verdict on a run of draft tokens: how many it accepts and which token it adds after them. Greedy:
// the longest prefix equal to the target's argmax, then the target's own argmax. Sampling: the rejection rule of
// Leviathan et al. 2023 / Chen et al. 2023 (accept x with probability min(1, p(x)/q(x)); at the first rejection
// draw from norm(max(0, p - q)); when every draft token is accepted draw a bonus token from p), which makes the
// output distributed exactly as sampling from the target alone. Pure functions over distributions, so the rule
// can be checked on its own and a wrong rule can be swapped in to show the statistical test catches it.
import { argmax } from './logits.js';
import { tokenDistribution, type TokenDistribution } from './sampling.js';

export interface Verdict {
  /** Draft tokens accepted (a prefix of the proposal). */
  accepted: number;
  /** The token the target adds after them: its correction at the first rejection, or the bonus token. */
  next: number;
}

/** The sampler's settings that shape a distribution; temperature 0 is greedy. */
export interface Processing {
  temperature: number;
  topK: number;
  topP: number;
}

/** A token distribution as a dense, normalised vector over the vocabulary. */
export function denseDistribution(logits: Float32Array, processing: Processing): Float64Array {
  return densify(tokenDistribution(logits, processing.temperature, processing.topK, processing.topP), logits.length);
}

function densify({ ids, weights, total }: TokenDistribution, vocab: number): Float64Array {
  const p = new Float64Array(vocab);
  for (let k = 0; k < ids.length; k++) p[ids[k]] = weights[k] / total;
  return p;
}

/** A draw from a dense distribution (`u` uniform in [0, 1)); a total of 0 is not expected and picks the last id. */
export function drawDense(p: Float64Array, u: number): number {
  let total = 0;
  for (let i = 0; i < p.length; i++) total += p[i];
  let target = u * total;
  let last = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] <= 0) continue;
    last = i;
    target -= p[i];
    if (target < 0) return i;
  }
  return last;
}

/** Greedy verification: `targetLogits[i]` predicts draft token i; it has one more entry, for the bonus token. */
export function verifyGreedy(drafts: readonly number[], targetLogits: readonly Float32Array[]): Verdict {
  let accepted = 0;
  while (accepted < drafts.length && argmax(targetLogits[accepted]) === drafts[accepted]) accepted++;
  return { accepted, next: argmax(targetLogits[accepted]) };
}

/**
 * The sampled rule. `p[i]` / `q[i]`: the target's and the draft's processed distributions for draft token i (`p`
 * has one more entry, for the bonus token); `random` gives the acceptance draws and the final draw.
 */
export type SampledVerifier = (drafts: readonly number[], p: readonly Float64Array[], q: readonly Float64Array[], random: () => number) => Verdict;

export const verifySampled: SampledVerifier = (drafts, p, q, random) => {
  for (let i = 0; i < drafts.length; i++) {
    const x = drafts[i];
    // q(x) > 0: the draft drew x from q.
    if (random() * q[i][x] < p[i][x]) continue;
    return { accepted: i, next: drawDense(residual(p[i], q[i]), random()) };
  }
  return { accepted: drafts.length, next: drawDense(p[drafts.length], random()) };
};

/** norm(max(0, p - q)), unnormalised (drawDense normalises); p itself where p <= q everywhere (then p = q). */
export function residual(p: Float64Array, q: Float64Array): Float64Array {
  const r = new Float64Array(p.length);
  let any = false;
  for (let i = 0; i < p.length; i++) {
    const d = p[i] - q[i];
    if (d > 0) {
      r[i] = d;
      any = true;
    }
  }
  return any ? r : p;
}
