// Streaming statistics over activation values: single-purpose observers and the per-tensor composite.
export { Chunk, firstNonFinite, scanValues, type ChunkScan } from './chunk.js';
export { DEFAULT_QUANTIZED_BINS, entropyThreshold, type EntropyThreshold } from './entropy.js';
export {
  absPercentile,
  binEdges,
  binWidth,
  copyHistogram,
  countOutside,
  DEFAULT_HISTOGRAM_BINS,
  growRange,
  histogramObserver,
  powerOfTwoAtLeast,
  totalCount,
  type HistogramState,
} from './histogram.js';
export { magnitudeObserver, type Magnitude, type MagnitudeState } from './magnitude.js';
export { minMaxObserver, type MinMax, type MinMaxState } from './min-max.js';
export { combineMoments, momentsObserver, type Moments, type MomentsState } from './moments.js';
export { observe, type Observer } from './observer.js';
export {
  isFullStats,
  resolveStatsOptions,
  tensorStatsObserver,
  type AnyTensorStats,
  type RangeStats,
  type ResolvedStatsOptions,
  type TensorStats,
  type TensorStatsOptions,
  type TensorStatsState,
} from './tensor-stats.js';
