// How large values get: the largest magnitude in each channel of the last axis (what per-channel scales and
// SmoothQuant/AWQ-style channel balancing read) and how many values reach a fixed outlier magnitude (LLM.int8()'s
// rule counts features with |x| >= 6). Both read |x| of every value, so they share one pass.
import type { Chunk } from './chunk.js';
import type { Observer } from './observer.js';

export interface MagnitudeState {
  /** Per channel of the last axis; grows when a chunk has more channels (a tensor whose last axis varies). */
  channelAbsMax: Float32Array;
  /** Values with |x| >= threshold. */
  atLeastThreshold: number;
}

export interface Magnitude {
  threshold: number;
  atLeastThreshold: number;
  channelAbsMax: Float32Array;
}

export function magnitudeObserver(threshold = 6): Observer<MagnitudeState, Magnitude> {
  if (!(threshold > 0)) throw new RangeError(`the outlier magnitude must be positive, not ${threshold}`);
  return {
    init: () => ({ channelAbsMax: new Float32Array(0), atLeastThreshold: 0 }),
    update(state: MagnitudeState, chunk: Chunk): void {
      const { data, channels } = chunk;
      if (data.length === 0) return;
      if (state.channelAbsMax.length < channels) state.channelAbsMax = widened(state.channelAbsMax, channels);
      const peak = state.channelAbsMax;
      let reached = 0;
      for (let row = 0; row < data.length; row += channels) {
        for (let c = 0; c < channels; c++) {
          const a = Math.abs(data[row + c]);
          if (a > peak[c]) peak[c] = a;
          if (a >= threshold) reached++;
        }
      }
      state.atLeastThreshold += reached;
    },
    merge(a, b) {
      const [long, short] = a.channelAbsMax.length >= b.channelAbsMax.length ? [a, b] : [b, a];
      const channelAbsMax = Float32Array.from(long.channelAbsMax);
      for (let c = 0; c < short.channelAbsMax.length; c++) channelAbsMax[c] = Math.max(channelAbsMax[c], short.channelAbsMax[c]);
      return { channelAbsMax, atLeastThreshold: a.atLeastThreshold + b.atLeastThreshold };
    },
    finalize: (state) => ({ threshold, atLeastThreshold: state.atLeastThreshold, channelAbsMax: Float32Array.from(state.channelAbsMax) }),
  };
}

/** Raises the state's per-channel maxima to `peaks` (its first `channels` entries) and adds `atLeast` outliers. */
export function raiseMagnitude(state: MagnitudeState, peaks: Float32Array, channels: number, atLeast: number): void {
  if (state.channelAbsMax.length < channels) state.channelAbsMax = widened(state.channelAbsMax, channels);
  const peak = state.channelAbsMax;
  for (let c = 0; c < channels; c++) if (peaks[c] > peak[c]) peak[c] = peaks[c];
  state.atLeastThreshold += atLeast;
}

function widened(values: Float32Array, length: number): Float32Array {
  const out = new Float32Array(length);
  out.set(values);
  return out;
}
