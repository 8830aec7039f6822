// Activation ranges for static quantization, from calibration statistics (src/calibration): the [min, max] each
// activation's QuantizeLinear covers. Three clipping methods, as ONNX Runtime's calibrators name them:
//   minmax      the observed [min, max];
//   percentile  |x| at a percentile (99.9, 99.99, 99.999...) as the bound on both sides, each side kept within
//               the observed range (a tensor that is never negative keeps min 0): ORT's symmetric Percentile;
//   entropy     the KL-optimal window of the histogram (observers/entropy.ts), already within [min, max].
// A fourth setting, 'auto', picks one of those per tensor by running the node that reads it (clip-auto.ts); the
// functions here compute the fixed methods and the entries both report.
// Pure functions over the statistics: nothing here runs a model.
import type { AnyActivationStatistics, TensorRecord } from '../calibration/collect.js';
import { absPercentile } from '../calibration/observers/histogram.js';
import { isFullStats, type AnyTensorStats } from '../calibration/observers/tensor-stats.js';
import { QuantizationError } from './schemes.js';

export type ClipMethod = 'minmax' | 'percentile' | 'entropy';

export const CLIP_METHODS: readonly ClipMethod[] = ['minmax', 'percentile', 'entropy'];

/** What a user may ask for: a fixed method, or 'auto' (each tensor's method chosen by its consumer's error). */
export type ClipSetting = ClipMethod | 'auto';

export const CLIP_SETTINGS: readonly ClipSetting[] = [...CLIP_METHODS, 'auto'];

/** Percentiles the calibration statistics record by default (so they need no histogram walk). */
export const STANDARD_PERCENTILES: readonly number[] = [99.9, 99.99, 99.999];

export const DEFAULT_PERCENTILE = 99.99;

export interface ClipOptions {
  method: ClipMethod;
  /** Percentile of |x| for method 'percentile' (0 < p <= 100); default 99.99. */
  percentile?: number;
}

/** What the quantize pass takes: a fixed method (with its percentile), or 'auto'. */
export type ClipChoice = ClipOptions | { method: 'auto' };

/**
 * The quantize pass's default: auto, which was best or within noise of the best fixed method on every model
 * measured (docs/figures.md, "Activation clipping"), while each fixed method was clearly worse on one of them.
 */
export const DEFAULT_CLIP: ClipChoice = { method: 'auto' };

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
  method: ClipSetting;
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

export function isClipSetting(name: string): name is ClipSetting {
  return (CLIP_SETTINGS as readonly string[]).includes(name);
}

/** Clipping options from a method name and an optional percentile, as flags and recipes give them; checkClipOptions judges them. */
export function clipChoice(method: ClipSetting, percentile?: number): ClipChoice {
  return { method, ...(percentile !== undefined ? { percentile } : {}) } as ClipChoice;
}

/** Checks clipping options; throws QuantizationError naming what is wrong. */
export function checkClipOptions(options: ClipChoice): void {
  if (!isClipSetting(options.method)) {
    throw new QuantizationError(`unknown clipping method '${options.method}' (known: ${CLIP_SETTINGS.join(', ')})`);
  }
  const p = 'percentile' in options ? options.percentile : undefined;
  if (p !== undefined) {
    if (options.method !== 'percentile') throw new QuantizationError(`a percentile applies to the 'percentile' clipping method, not '${options.method}'`);
    if (!(Number.isFinite(p) && p > 0 && p <= 100)) throw new QuantizationError(`the clipping percentile must lie in (0, 100], got ${p}`);
  }
}

/**
 * The clipping range of one tensor's statistics. Percentiles the statistics already hold are used as they are;
 * others are read from the histogram (same method, histogram.ts's absPercentile).
 */
export function rangeFromStats(stats: AnyTensorStats, options: ClipOptions, tensor?: string): [number, number] {
  checkFixedMethod(options, tensor);
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
  checkFixedMethod(options);
  const set = rangesBy(statistics, names, (stats, tensor) => rangeFromStats(stats, options, tensor));
  return { method: options.method, ...(options.method === 'percentile' ? { percentile: options.percentile ?? DEFAULT_PERCENTILE } : {}), ...set };
}

/**
 * The ranges `pick` gives each wanted tensor with statistics, with their report entries; tensors without a usable
 * range are skipped with the reason. What every clipping setting shares.
 */
export function rangesBy(
  statistics: AnyActivationStatistics | readonly TensorRecord<AnyTensorStats>[],
  names: Iterable<string> | undefined,
  pick: (stats: AnyTensorStats, tensor: string) => [number, number],
): Pick<ActivationRangeSet, 'ranges' | 'entries' | 'skipped'> {
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
    const range = pick(s, tensor);
    if (!isFiniteRange(range)) {
      skipped.push({ tensor, reason: `range [${range[0]}, ${range[1]}] is not finite` });
      continue;
    }
    const span = s.max - s.min;
    entries.push({ tensor, observed: [s.min, s.max], range, clipped: span > 0 ? Math.max(0, 1 - (range[1] - range[0]) / span) : 0 });
    ranges.set(tensor, range);
  }
  return { ranges, entries, skipped };
}

export function isFiniteRange(range: readonly [number, number]): boolean {
  return Number.isFinite(range[0]) && Number.isFinite(range[1]) && range[0] <= range[1];
}

/** Options naming a fixed method (what statistics alone give a range for); 'auto' is refused with the way to it. */
function checkFixedMethod(options: ClipOptions, tensor?: string): void {
  const method: string = options.method;
  if (method === 'auto') throw autoNeedsSamples(tensor);
  if (!isClipMethod(method)) throw new QuantizationError(`unknown clipping method '${method}' (known: ${CLIP_METHODS.join(', ')})`);
  checkClipOptions(options);
}

function autoNeedsSamples(tensor?: string): QuantizationError {
  return new QuantizationError(
    `auto clipping${tensor ? ` of '${tensor}'` : ''} chooses each range by running the node that reads the activation on calibration samples (clip-auto.ts autoActivationRanges), not from statistics alone`,
  );
}
