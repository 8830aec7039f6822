// The statistics states of some of a run's target tensors, and what feeds them one batch at a time. The same
// class runs on the main thread (no workers) and inside each observer worker (observer-pool.ts), so both paths
// compute the very same statistics.
import { Chunk, firstNonFinite } from './observers/chunk.js';
import { tensorStatsObserver, type ResolvedStatsOptions, type TensorStats, type TensorStatsState } from './observers/tensor-stats.js';

/** One target tensor's values in one batch. */
export interface BatchItem {
  /** The target's position in the run's target list (topological order). */
  tensor: number;
  data: Float32Array;
  /** Size of the last axis (1 for a scalar). */
  channels: number;
}

/** Where a NaN or infinity turned up: the first such tensor of the batch (in target order) and element. */
export interface NonFiniteReport {
  tensor: number;
  /** Flat index of the first non-finite element. */
  at: number;
  value: 'NaN' | 'Infinity' | '-Infinity';
}

/** The first NaN or infinite element of `data`, which holds one. */
export function locateNonFinite(data: Float32Array): Omit<NonFiniteReport, 'tensor'> {
  const at = firstNonFinite(data);
  return { at, value: Number.isNaN(data[at]) ? 'NaN' : data[at] > 0 ? 'Infinity' : '-Infinity' };
}

export class TensorObservers {
  private readonly observer;
  private readonly states = new Map<number, TensorStatsState>();

  constructor(options: ResolvedStatsOptions) {
    this.observer = tensorStatsObserver(options);
  }

  /**
   * Folds one batch's items (in target order) into their states. At the first item holding a NaN or infinity it
   * stops and says where; the batch is then abandoned, so states already fed from it no longer matter.
   */
  observe(items: readonly BatchItem[]): NonFiniteReport | undefined {
    for (const { tensor, data, channels } of items) {
      let state = this.states.get(tensor);
      if (!state) this.states.set(tensor, (state = this.observer.init()));
      const chunk = new Chunk(data, channels);
      this.observer.update(state, chunk);
      if (!chunk.scan.finite) return { tensor, ...locateNonFinite(data) };
    }
    return undefined;
  }

  /** Final statistics of every tensor observed, by target position. */
  finalize(): Map<number, TensorStats> {
    return new Map([...this.states].map(([tensor, state]) => [tensor, this.observer.finalize(state)]));
  }
}
