// The contract every activation statistic follows: a state that starts empty, takes chunks of values as they
// stream past, merges with another state of the same statistic, and ends as a typed result. States are plain
// data, so they can be merged across batches, workers or files; nothing here does I/O.
import type { Chunk } from './chunk.js';

export interface Observer<State, Result> {
  /** A state that has seen nothing. */
  init(): State;
  /**
   * Folds a chunk into `state`, in place: a histogram is too large to copy for every chunk. The chunk's values
   * must be finite (the collector rejects NaN and Inf before any observer sees them).
   */
  update(state: State, chunk: Chunk): void;
  /** The state of both streams together, as a new state; `a` and `b` are left as they were. */
  merge(a: State, b: State): State;
  finalize(state: State): Result;
}

/** Runs an observer over chunks: init, update with each, finalize. */
export function observe<State, Result>(observer: Observer<State, Result>, chunks: Iterable<Chunk>): Result {
  const state = observer.init();
  for (const chunk of chunks) observer.update(state, chunk);
  return observer.finalize(state);
}
