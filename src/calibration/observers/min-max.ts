// Smallest and largest value: the range a min/max quantizer would use.
import type { Chunk } from './chunk.js';
import type { Observer } from './observer.js';

export interface MinMaxState {
  min: number;
  max: number;
}

export interface MinMax {
  /** NaN when nothing was observed (as for max and absMax). */
  min: number;
  max: number;
  absMax: number;
}

export const minMaxObserver: Observer<MinMaxState, MinMax> = {
  init: () => ({ min: Infinity, max: -Infinity }),
  update(state: MinMaxState, chunk: Chunk): void {
    const { min, max } = chunk.scan;
    if (min < state.min) state.min = min;
    if (max > state.max) state.max = max;
  },
  merge: (a, b) => ({ min: Math.min(a.min, b.min), max: Math.max(a.max, b.max) }),
  finalize({ min, max }: MinMaxState): MinMax {
    if (min > max) return { min: NaN, max: NaN, absMax: NaN };
    // + 0 turns a -0 minimum into 0: JSON, and so the statistics file, cannot tell them apart.
    return { min: min + 0, max, absMax: Math.max(-min, max) };
  },
};
