// Deterministic choice of which samples (windows of a token stream, or tensor samples) calibrate: `count` of
// `total` indices drawn with a seeded generator, returned in ascending order so that the data can be read in one
// forward pass over the files. Memory is O(count), never O(total).
import { seededRandom } from '../../util/prng.js';

/**
 * Ascending indices of the chosen samples: all of 0..total-1 when `count` is undefined or not below `total`,
 * otherwise `count` distinct indices drawn uniformly (Floyd's algorithm) from a generator seeded with `seed`.
 */
export function selectIndices(total: number, count: number | undefined, seed: number): number[] {
  if (count === undefined || count >= total) return Array.from({ length: total }, (_, i) => i);
  const random = seededRandom(seed);
  const chosen = new Set<number>();
  for (let j = total - count; j < total; j++) {
    const t = Math.floor(random() * (j + 1));
    chosen.add(chosen.has(t) ? j : t);
  }
  return [...chosen].sort((a, b) => a - b);
}
