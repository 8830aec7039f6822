// Activation ranges for static quantization, from calibration statistics (src/calibration): the [min, max] each
// activation's QuantizeLinear covers. Three clipping methods, as ONNX Runtime's calibrators name them:
//   minmax      the observed [min, max];
//   percentile  |x| at a percentile (99.9, 99.99, 99.999...) as the bound on both sides, each side kept within
//               the observed range (a tensor that is never negative keeps min 0): ORT's symmetric Percentile;
//   entropy     the KL-optimal window of the histogram (observers/entropy.ts), already within [min, max].
// Pure functions over the statistics: nothing here runs a model.
import type { AnyActivationStatistics, TensorRecord } from '../calibration/collect.js';
import { absPercentile } from '../calibration/observers/histogram.js';
import { isFullStats, type AnyTensorStats } from '../calibration/observers/tensor-stats.js';
import { QuantizationError } from './schemes.js';

export type ClipMethod = 'minmax' | 'percentile' | 'entropy';

export const CLIP_METHODS: readonly ClipMethod[] = ['minmax', 'percentile', 'entropy'];

/** Percentiles the calibration statistics record by default (so they need no histogram walk). */
export const STANDARD_PERCENTILES: readonly number[] = [99.9, 99.99, 99.999];

export const DEFAULT_PERCENTILE = 99.99;

export interface ClipOptions {
  method: ClipMethod;
  /** Percentile of |x| for method 'percentile' (0 < p <= 100); default 99.99. */
  percentile?: number;
}

/** One activation's range and where it came from, for reports. */
export interface RangeEntry {
  tensor: string;
  /** The observed [min, max] over the calibration set. */
  observed: [number, number];
  /** What the quantizer uses. */
  range: [number, number];
  /** Share of the observed span cut off by clipping: 1 - (range width / observed width); 0 for minmax. */
  clipped: number;
}

export interface ActivationRangeSet {
  method: ClipMethod;
  percentile?: number;
  /** Tensor name -> [min, max]: what quantizeModel takes as activationRanges. */
  ranges: Map<string, [number, number]>;
  entries: RangeEntry[];
  /** Tensors left without a range, with the reason (empty, not finite). */
  skipped: { tensor: string; reason: string }[];
}

export function isClipMethod(name: string): name is ClipMethod {
  return (CLIP_METHODS as readonly string[]).includes(name);
}

/** Checks clipping options; throws QuantizationError naming what is wrong. */
export function checkClipOptions(options: ClipOptions): void {
  if (!isClipMethod(options.method)) {
    throw new QuantizationError(`unknown clipping method '${options.method}' (known: ${CLIP_METHODS.join(', ')})`);
  }
  if (options.percentile !== undefined) {
    if (options.method !== 'percentile') throw new QuantizationError(`a percentile applies to the 'percentile' clipping method, not '${options.method}'`);
    const p = options.percentile;
    if (!(Number.isFinite(p) && p > 0 && p <= 100)) throw new QuantizationError(`the clipping percentile must lie in (0, 100], got ${p}`);
  }
}

/**
 * The clipping range of one tensor's statistics. Percentiles the statistics already hold are used as they are;
 * others are read from the histogram (same method, histogram.ts's absPercentile).
 */
export function rangeFromStats(stats: AnyTensorStats, options: ClipOptions, tensor?: string): [number, number] {
  checkClipOptions(options);
  const { min, max } = stats;
  if (options.method === 'minmax') return [min, max];
  if (!isFullStats(stats)) {
    // Range-only statistics (observe 'ranges' or 'minmax') hold min, max (and per-channel |x| maxima) only.
    const missing = options.method === 'entropy' ? 'the entropy threshold (histogram)' : 'the |x| percentiles (histogram)';
    throw new QuantizationError(
      `${options.method} clipping needs ${missing}${tensor ? ` of '${tensor}'` : ''}, but the statistics hold ranges only (observe 'ranges' or 'minmax'); collect full statistics or use minmax clipping`,
    );
  }
  switch (options.method) {
    case 'entropy':
      return [stats.entropy.low, stats.entropy.high];
    case 'percentile': {
      const p = options.percentile ?? DEFAULT_PERCENTILE;
      const recorded = stats.absPercentiles.find((e) => e.percentile === p);
      const bound = recorded ? recorded.value : absPercentile(stats.histogram, p, stats.absMax);
      return [Math.max(min, -bound), Math.min(max, bound)];
    }
  }
}

/**
 * Ranges for the given tensors (all recorded tensors when `names` is absent). A tensor asked for but not in the
 * statistics is skipped with the reason, so the writer leaves that activation in float and says so.
 */
export function activationRanges(
  statistics: AnyActivationStatistics | readonly TensorRecord<AnyTensorStats>[],
  options: ClipOptions,
  names?: Iterable<string>,
): ActivationRangeSet {
  checkClipOptions(options);
  const records = Array.isArray(statistics) ? (statistics as readonly TensorRecord<AnyTensorStats>[]) : (statistics as AnyActivationStatistics).tensors;
  const byName = new Map(records.map((r) => [r.name, r]));
  const wanted = names ? [...new Set(names)] : records.map((r) => r.name);
  const ranges = new Map<string, [number, number]>();
  const entries: RangeEntry[] = [];
  const skipped: ActivationRangeSet['skipped'] = [];
  for (const tensor of wanted) {
    const record = byName.get(tensor);
    if (!record) {
      skipped.push({ tensor, reason: 'not in the calibration statistics' });
      continue;
    }
    const s = record.stats;
    if (s.count === 0) {
      skipped.push({ tensor, reason: 'never held a value during calibration' });
      continue;
    }
    const range = rangeFromStats(s, options, tensor);
    if (!(Number.isFinite(range[0]) && Number.isFinite(range[1]) && range[0] <= range[1])) {
      skipped.push({ tensor, reason: `range [${range[0]}, ${range[1]}] is not finite` });
      continue;
    }
    const span = s.max - s.min;
    entries.push({ tensor, observed: [s.min, s.max], range, clipped: span > 0 ? Math.max(0, 1 - (range[1] - range[0]) / span) : 0 });
    ranges.set(tensor, range);
  }
  return { method: options.method, ...(options.method === 'percentile' ? { percentile: options.percentile ?? DEFAULT_PERCENTILE } : {}), ranges, entries, skipped };
}
