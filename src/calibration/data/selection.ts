// Deterministic choice of which samples (windows of a token stream, or tensor samples) calibrate: `count` of
// `total` indices drawn with a seeded generator, returned in ascending order so that the data can be read in one
// forward pass over the files. Memory is O(count), never O(total).

/** mulberry32: small, fast and seedable, so the same seed picks the same samples on every platform. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Ascending indices of the chosen samples: all of 0..total-1 when `count` is undefined or not below `total`,
 * otherwise `count` distinct indices drawn uniformly (Floyd's algorithm) from a generator seeded with `seed`.
 */
export function selectIndices(total: number, count: number | undefined, seed: number): number[] {
  if (count === undefined || count >= total) return Array.from({ length: total }, (_, i) => i);
  const random = mulberry32(seed);
  const chosen = new Set<number>();
  for (let j = total - count; j < total; j++) {
    const t = Math.floor(random() * (j + 1));
    chosen.add(chosen.has(t) ? j : t);
  }
  return [...chosen].sort((a, b) => a - b);
}
