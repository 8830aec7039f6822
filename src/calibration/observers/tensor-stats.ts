// Everything the toolkit records about one activation tensor: range, moments, per-channel magnitude, outlier
// counts, |x| percentiles and the entropy threshold. Its state is the single-purpose observers' states side by
// side (so they merge and finalize the same way), but a chunk is read once, by onePass, rather than once per
// observer: the single-purpose observers stay the plain reference the tests hold this one to.
import type { Chunk } from './chunk.js';
import { checkQuantizedBins, DEFAULT_QUANTIZED_BINS, entropyThreshold, type EntropyThreshold } from './entropy.js';
import {
  absPercentile,
  binWidth,
  countOutside,
  DEFAULT_HISTOGRAM_BINS,
  foldCounts,
  growRange,
  histogramObserver,
  type HistogramState,
} from './histogram.js';
import { magnitudeObserver, raiseMagnitude, type MagnitudeState } from './magnitude.js';
import { minMaxObserver, type MinMaxState } from './min-max.js';
import { combineMoments, momentsObserver, type MomentsState } from './moments.js';
import type { Observer } from './observer.js';
import { centralFromShifted, onePass } from './one-pass.js';

export interface TensorStatsOptions {
  /** Bins of the streaming histogram; default 2048. */
  histogramBins?: number;
  /** Quantized bins of the entropy search (ORT's num_quantized_bins); default 128. */
  quantizedBins?: number;
  /** Values with |x| at or above this count as magnitude outliers; default 6 (LLM.int8()). */
  outlierMagnitude?: number;
  /** Values further than this many standard deviations from the mean count as sigma outliers; default 6. */
  outlierSigmas?: number;
  /** Percentiles of |x| to report; default 99.9, 99.99, 99.999. */
  percentiles?: readonly number[];
}

export type ResolvedStatsOptions = Required<TensorStatsOptions>;

export function resolveStatsOptions(options: TensorStatsOptions = {}): ResolvedStatsOptions {
  return {
    histogramBins: options.histogramBins ?? DEFAULT_HISTOGRAM_BINS,
    quantizedBins: options.quantizedBins ?? DEFAULT_QUANTIZED_BINS,
    outlierMagnitude: options.outlierMagnitude ?? 6,
    outlierSigmas: options.outlierSigmas ?? 6,
    percentiles: [...(options.percentiles ?? [99.9, 99.99, 99.999])],
  };
}

export interface TensorStatsState {
  minMax: MinMaxState;
  moments: MomentsState;
  magnitude: MagnitudeState;
  histogram: HistogramState;
}

export interface TensorStats {
  count: number;
  min: number;
  max: number;
  absMax: number;
  mean: number;
  /** Population standard deviation. */
  std: number;
  /** Pearson kurtosis (3 for a normal distribution); NaN for a constant tensor. */
  kurtosis: number;
  outliers: {
    magnitude: number;
    /** Exact count of |x| >= magnitude. */
    atLeastMagnitude: number;
    sigmas: number;
    /**
     * Count of |x - mean| > sigmas * std, bounded from the histogram after the fact (one pass, no second look at
     * the data): the exact count lies in [lower, upper]; they differ by the values of the (at most two) bins
     * the cut points fall in.
     */
    beyondSigmas: { lower: number; upper: number };
  };
  /** Percentiles of |x|, each at most `percentileResolution` above the exact value (see histogram.ts). */
  absPercentiles: { percentile: number; value: number }[];
  percentileResolution: number;
  entropy: EntropyThreshold;
  /** Largest |x| per channel of the last axis. */
  channelAbsMax: Float32Array;
  histogram: HistogramState;
}

/**
 * What range-only collection records (observe 'ranges' in collect.ts, computed inside ONNX Runtime): the fields
 * of TensorStats a min/max quantizer reads, with the same values the full statistics would have. The others
 * (moments, outliers, percentiles, entropy, histogram) were not computed and are absent, not zero.
 */
/** Ranges only: per-tensor extremes, and per-channel |x| maxima unless they were not asked for (observe 'minmax'). */
export type RangeStats = Pick<TensorStats, 'count' | 'min' | 'max' | 'absMax'> & { channelAbsMax?: Float32Array };

/** Full statistics, or ranges only. */
export type AnyTensorStats = TensorStats | RangeStats;

/** Whether these are the full statistics (histogram, percentiles, entropy...) rather than ranges only. */
export function isFullStats(stats: AnyTensorStats): stats is TensorStats {
  return 'histogram' in stats;
}

export function tensorStatsObserver(options: TensorStatsOptions = {}): Observer<TensorStatsState, TensorStats> {
  const o = resolveStatsOptions(options);
  for (const p of o.percentiles) if (!(p >= 0 && p <= 100)) throw new RangeError(`a percentile lies in [0, 100], not ${p}`);
  if (!(o.outlierSigmas > 0)) throw new RangeError(`outlier sigmas must be positive, not ${o.outlierSigmas}`);
  const magnitude = magnitudeObserver(o.outlierMagnitude);
  const histogram = histogramObserver(o.histogramBins);
  checkQuantizedBins(o.histogramBins, o.quantizedBins); // now rather than at finalize
  return {
    init: () => ({ minMax: minMaxObserver.init(), moments: momentsObserver.init(), magnitude: magnitude.init(), histogram: histogram.init() }),
    /** Reads the chunk once; a chunk holding NaN or an infinity leaves the state as it was (its scan says so). */
    update(state: TensorStatsState, chunk: Chunk): void {
      updateInOnePass(state, chunk, o.outlierMagnitude);
    },
    merge: (a, b) => ({
      minMax: minMaxObserver.merge(a.minMax, b.minMax),
      moments: momentsObserver.merge(a.moments, b.moments),
      magnitude: magnitude.merge(a.magnitude, b.magnitude),
      histogram: histogram.merge(a.histogram, b.histogram),
    }),
    finalize(state: TensorStatsState): TensorStats {
      const { min, max, absMax } = minMaxObserver.finalize(state.minMax);
      const { count, mean, std, kurtosis } = momentsObserver.finalize(state.moments);
      const peaks = magnitude.finalize(state.magnitude);
      const h = histogram.finalize(state.histogram);
      const spread = o.outlierSigmas * std;
      return {
        count,
        min,
        max,
        absMax,
        mean,
        std,
        kurtosis,
        outliers: {
          magnitude: o.outlierMagnitude,
          atLeastMagnitude: peaks.atLeastThreshold,
          sigmas: o.outlierSigmas,
          beyondSigmas: count > 0 && spread > 0 ? countOutside(h, mean - spread, mean + spread) : { lower: 0, upper: 0 },
        },
        absPercentiles: o.percentiles.map((percentile) => ({ percentile, value: absPercentile(h, percentile, absMax) })),
        percentileResolution: binWidth(h),
        entropy: entropyThreshold(h, o.quantizedBins, { min, max }),
        channelAbsMax: peaks.channelAbsMax,
        histogram: h,
      };
    },
  };
}

function updateInOnePass(state: TensorStatsState, chunk: Chunk, threshold: number): void {
  const { data, channels } = chunk;
  const h = state.histogram;
  // About the running mean once there is one: the sums then stay small and the moments lose nothing.
  const shift = state.moments.count > 0 ? state.moments.mean : data.length > 0 ? data[0] : 0;
  let pass = onePass(data, channels, shift, h.range, threshold, h.bins);
  const { count, min, max, finite } = pass;
  chunk.recordScan({ count, min, max, sum: count * shift + pass.s1, finite });
  if (count === 0) return;
  if (!finite) {
    pass.counts.fill(0); // nothing of a chunk holding NaN or an infinity is kept
    return;
  }
  if (min < -h.range || max > h.range) {
    // Binned at a range too narrow (out-of-range values went to the end bins): widen it and pass again. This
    // happens on a tensor's first chunk and whenever its range doubles, a few times per run.
    pass.counts.fill(0);
    growRange(h, Math.max(-min, max));
    pass = onePass(data, channels, shift, h.range, threshold, h.bins);
  }
  const last = h.bins - 1;
  const scale = h.bins / (2 * h.range);
  const binOf = (x: number) => Math.min(last, Math.max(0, Math.floor(x * scale + h.bins / 2)));
  foldCounts(h, pass.counts, binOf(min), binOf(max));
  if (min < state.minMax.min) state.minMax.min = min;
  if (max > state.minMax.max) state.minMax.max = max;
  state.moments = combineMoments(state.moments, centralFromShifted(pass));
  raiseMagnitude(state.magnitude, pass.peaks, channels, pass.atLeast);
}
