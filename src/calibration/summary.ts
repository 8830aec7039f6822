// What a calibration run says about its statistics, in one report: sizes, throughput, the tensors with the
// largest ranges and the most outliers. The calibrate command prints it, the calibrate pass returns it, the HTML
// report draws it (report/sections/calibrate.ts).
import type { AnyActivationStatistics, ObserveMode, TensorRecord } from './collect.js';
import { isFullStats, type AnyTensorStats } from './observers/tensor-stats.js';
import type { WrittenStats } from './stats-file.js';
import type { TensorLine } from './tensor-line.js';

/** How many tensors each ranking lists. */
export const LISTED = 10;

/**
 * Magnitudes from 2^127 up are the float32 limit that exporters fill attention masks with (for -inf): such
 * tensors would top every ranking without saying anything about the activations, so they are counted apart.
 */
export const MASK_MAGNITUDE = 2 ** 127;

export interface CalibrationReport {
  model: string;
  data: AnyActivationStatistics['data'];
  /** What was computed: 'full' statistics, or ranges only ('ranges', 'minmax'). */
  observe: ObserveMode;
  /** The statistics file, when the run saved one. */
  statistics?: WrittenStats;
  tensors: number;
  skipped: number;
  samples: number;
  tokens: number;
  batches: number;
  /** Whole run: opening the model in ONNX Runtime, streaming the batches, finalising the statistics. */
  seconds: number;
  timing: AnyActivationStatistics['timing'];
  /** Over the streaming of the batches. */
  tokensPerSecond: number;
  /** Threads that computed the statistics beside ONNX Runtime's (0: the main thread or inside ONNX Runtime). */
  observerWorkers: number;
  /** Full statistics only: the outlier thresholds the counts use. */
  outlierMagnitude?: number;
  outlierSigmas?: number;
  /** Tensors holding the float32 limit (attention masks), left out of the rankings. */
  maskTensors: string[];
  largestRanges: TensorLine[];
  /** Full statistics only (empty otherwise). */
  mostOutliers: TensorLine[];
}

export function calibrationReport(s: AnyActivationStatistics, written?: WrittenStats): CalibrationReport {
  const masks = s.tensors.filter((t) => t.stats.absMax >= MASK_MAGNITUDE).map((t) => t.name);
  const lines = s.tensors.filter((t) => t.stats.absMax < MASK_MAGNITUDE).map(tensorLine);
  const byRange = [...lines].sort((a, b) => b.absMax - a.absMax);
  const full = s.options.observe === 'full';
  const byOutliers = full
    ? [...lines].sort((a, b) => b.atLeastMagnitude! - a.atLeastMagnitude! || b.beyondSigmas![0] - a.beyondSigmas![0] || (b.kurtosis ?? 0) - (a.kurtosis ?? 0))
    : [];
  return {
    model: s.model,
    data: s.data,
    observe: s.options.observe,
    ...(written ? { statistics: written } : {}),
    tensors: s.tensors.length,
    skipped: s.skipped.length,
    samples: s.samples,
    tokens: s.tokens,
    batches: s.batches,
    seconds: s.seconds,
    timing: s.timing,
    tokensPerSecond: s.tokens / Math.max(1e-9, s.timing.streamSeconds),
    observerWorkers: s.observerWorkers,
    ...(full ? { outlierMagnitude: s.options.stats.outlierMagnitude, outlierSigmas: s.options.stats.outlierSigmas } : {}),
    maskTensors: masks,
    largestRanges: byRange.slice(0, LISTED),
    mostOutliers: byOutliers.slice(0, LISTED),
  };
}

/** One tensor's line; the figures only full statistics have are absent for range-only ones. */
export function tensorLine(t: TensorRecord<AnyTensorStats>): TensorLine {
  const s = t.stats;
  const base = { name: t.name, op: t.producer?.opType ?? 'input', min: s.min, max: s.max, absMax: s.absMax };
  if (!isFullStats(s)) return base;
  return {
    ...base,
    p9999: s.absPercentiles.find((p) => p.percentile === 99.99)?.value ?? NaN,
    entropy: [s.entropy.low, s.entropy.high],
    kurtosis: Number.isNaN(s.kurtosis) ? null : s.kurtosis,
    atLeastMagnitude: s.outliers.atLeastMagnitude,
    beyondSigmas: [s.outliers.beyondSigmas.lower, s.outliers.beyondSigmas.upper],
  };
}
