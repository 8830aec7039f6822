// Choosing the next token from logits: greedy (argmax) or sampling with temperature, top-k and top-p (nucleus),
// applied in Hugging Face's order (temperature scales the logits; top-k, then top-p, trim the candidates).
import { argmax } from './logits.js';
import { seededRandom } from '../util/prng.js';
import { OptionError } from '../errors.js';

export interface SamplingOptions {
  /** 0 (the default) is greedy decoding; above 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or absent: all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 or absent: all). */
  topP?: number;
  /** Seed of the generator the draws come from: the same seed gives the same tokens. */
  seed?: number;
}

export type TokenChooser = (logits: Float32Array) => number;

/** Checks the options and returns the function that picks each next token. */
export function tokenChooser(options: SamplingOptions): TokenChooser {
  const { temperature, topK, topP, seed } = samplingSettings(options);
  if (temperature === 0) return argmax;
  const random = seededRandom(seed);
  return (logits) => sample(logits, temperature, topK, topP, random());
}

/**
 * The distribution a sampler draws from, after temperature, top-k and top-p: the kept token ids (most likely
 * first when top-k or top-p ordered them) and their unnormalised weights, which sum to `total`. Speculative
 * decoding applies this same processing to the target's and the draft's logits, so both sides of its
 * acceptance test are the distributions plain sampling would draw from.
 */
export interface TokenDistribution {
  ids: number[];
  weights: number[];
  total: number;
}

export function tokenDistribution(logits: Float32Array, temperature: number, topK: number, topP: number): TokenDistribution {
  const candidates = topK > 0 && topK < logits.length ? largest(logits, topK) : allIndices(logits, topP < 1);
  // Unnormalised probabilities relative to the best candidate: exp of a non-positive number cannot overflow.
  let max = -Infinity;
  for (const i of candidates) if (logits[i] > max) max = logits[i];
  const weights = candidates.map((i) => Math.exp((logits[i] - max) / temperature));
  let total = weights.reduce((a, w) => a + w, 0);
  let kept = candidates.length;
  if (topP < 1) {
    // Candidates are sorted most likely first here: keep them until their share reaches top-p.
    let mass = 0;
    for (kept = 0; kept < candidates.length && mass < topP * total; kept++) mass += weights[kept];
    total = mass;
  }
  return { ids: candidates.slice(0, kept), weights: weights.slice(0, kept), total };
}

/** The options checked, with their defaults filled in. */
export function samplingSettings(options: SamplingOptions): Required<SamplingOptions> {
  const { temperature = 0, topK = 0, topP = 1, seed = 0 } = options;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new OptionError(`temperature must be a number >= 0, got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0) throw new OptionError(`top-k must be a whole number >= 0, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new OptionError(`top-p must be in (0, 1], got ${topP}`);
  return { temperature, topK, topP, seed };
}

/** One draw, `u` uniform in [0, 1). Exposed for tests of the trimming rules. */
export function sample(logits: Float32Array, temperature: number, topK: number, topP: number, u: number): number {
  return draw(tokenDistribution(logits, temperature, topK, topP), u);
}

/** The token a uniform `u` in [0, 1) picks from a distribution. */
export function draw({ ids, weights, total }: TokenDistribution, u: number): number {
  let target = u * total;
  for (let k = 0; k < ids.length; k++) {
    target -= weights[k];
    if (target < 0) return ids[k];
  }
  return ids[ids.length - 1]; // u * total rounded up to the total
}

/** Every index, sorted by logit (descending) only when top-p needs the order. */
function allIndices(logits: Float32Array, sorted: boolean): number[] {
  const all = Array.from({ length: logits.length }, (_, i) => i);
  return sorted ? all.sort((a, b) => logits[b] - logits[a] || a - b) : all;
}

/** The k indices with the largest logits, most likely first (ties: lower index first). */
function largest(logits: Float32Array, k: number): number[] {
  // One pass keeping a sorted list of k: O(V k) at worst but O(V) in practice, as few logits beat the k-th.
  const best: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    if (best.length === k && logits[i] <= logits[best[k - 1]]) continue;
    let at = best.length;
    while (at > 0 && logits[best[at - 1]] < logits[i]) at--;
    best.splice(at, 0, i);
    if (best.length > k) best.pop();
  }
  return best;
}
