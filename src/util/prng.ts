// A small seeded generator for sampling: the same seed gives the same draws on every machine and Node version,
// which Math.random cannot promise (and cannot be seeded at all).

/** mulberry32: 32-bit state, uniform floats in [0, 1). Plenty for choosing tokens; not for cryptography. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A fresh seed for a caller that gave none, so the run can still be reported and repeated. */
export function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 32);
}
