// Per-layer score normalisation before the global ranking. NIRVANA's reference ranks raw saliency across layers,
// so a layer whose gradients are small overall (its scores sit on a lower scale, not just its weak units) loses
// most of its units to the ranking. Normalising within each layer and unit kind makes the ranking compare units
// against their own layer's typical unit: 'mean' divides by the layer's mean score (scores stay >= 0, ratios are
// kept), 'zscore' standardises as FLAP does. 'none' is the reference.
import { OptionError } from '../errors.js';
import type { UnitScores } from './units.js';

export const SCORE_NORMALISATIONS = ['none', 'mean', 'zscore'] as const;
export type ScoreNormalisation = (typeof SCORE_NORMALISATIONS)[number];

/** (x - mean) / standard deviation; all zero when the layer's scores are all equal. */
export function standardised(x: Float64Array): Float64Array {
  const n = x.length;
  const mean = x.reduce((a, v) => a + v, 0) / n;
  const sd = Math.sqrt(x.reduce((a, v) => a + (v - mean) ** 2, 0) / n);
  return x.map((v) => (sd > 0 ? (v - mean) / sd : 0));
}

/** x / mean(x); unchanged when the mean is not positive (a layer of all-zero scores stays all zero). */
export function meanScaled(x: Float64Array): Float64Array {
  const mean = x.reduce((a, v) => a + v, 0) / x.length;
  return mean > 0 ? x.map((v) => v / mean) : Float64Array.from(x);
}

export function normaliseScores(scores: UnitScores, how: ScoreNormalisation): UnitScores {
  if (!SCORE_NORMALISATIONS.includes(how)) throw new OptionError(`normalisation must be one of ${SCORE_NORMALISATIONS.join(', ')}, got '${String(how)}'`);
  if (how === 'none') return scores;
  const f = how === 'mean' ? meanScaled : standardised;
  return { attention: scores.attention.map(f), mlp: scores.mlp.map(f) };
}
