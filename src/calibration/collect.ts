// Streams a calibration set through ONNX Runtime once and keeps statistics of the target tensors. What is
// observed is chosen per run (`observe`):
//   full    every statistic (range, moments, outliers, percentiles, entropy, histogram): each batch's targets come
//           back as extra graph outputs of one run and go to the observers, in worker threads by default
//           (observer-pool.ts) so that ORT runs the next batch meanwhile; at most one batch is with them at a time.
//   ranges  min, max and per-channel |x| maxima only, computed inside ONNX Runtime by reductions added to the
//           graph (runtime/capture.ts withRangeOutputs): no target tensor leaves the runtime, and the values are
//           exactly those the full statistics would have.
//   minmax  min and max of each tensor only (what per-tensor min/max clipping needs), inside ONNX Runtime like
//           'ranges' but reduced over whole tensors, which ORT does several times faster than per channel.
//   none    no statistics: only the accumulators.
// Accumulators (ActivationAccumulator) are the seam for per-layer statistics of other kinds (e.g. the XᵀX a
// layer-wise quantizer needs): each names the tensors it reads and is fed their full values, batch by batch, on
// the calling thread. Memory holds two batches' activations plus fixed-size states, however many samples the set
// has.
//
// NaN or infinite values are an error naming the first tensor, in topological order, that holds one, and the
// sample (a float model input holding one is named as such, before the model runs). When the targets do not
// cover every node output (and always with observe 'ranges', which keeps no values to point into), the failing
// batch is run once more with all of them captured, so the tensor named is where the value first appears rather
// than the first target it reached.
import type { Tensor } from 'onnxruntime-node';
import { OptionError } from '../errors.js';
import { ModelError, OnnxModel } from '../onnx/model.js';
import { type RangeOutputs, withOutputs, withRangeOutputs } from '../runtime/capture.js';
import { fromOrtTensor } from '../runtime/ort-tensor.js';
import { type Feeds, Session, type SessionOptions } from '../runtime/session.js';
import type { CalibrationSet } from './data/index.js';
import { Chunk, firstNonFinite } from './observers/chunk.js';
import { defaultObserverWorkers, openObserverSink, type BatchProblem } from './observer-pool.js';
import {
  resolveStatsOptions,
  type AnyTensorStats,
  type RangeStats,
  type ResolvedStatsOptions,
  type TensorStats,
  type TensorStatsOptions,
} from './observers/tensor-stats.js';
import { selectTargets, type Target, type TargetOptions, type TargetSet } from './targets.js';
import { locateNonFinite, type NonFiniteReport } from './tensor-observers.js';

/** Which statistics a run computes: see the top of this file. */
export type ObserveMode = 'full' | 'ranges' | 'minmax' | 'none';

export const OBSERVE_MODES: readonly ObserveMode[] = ['full', 'ranges', 'minmax', 'none'];

/**
 * Per-layer statistics of another kind than the observers', fed with the full values of its target tensors: the
 * seam layer-wise quantization plugs its XᵀX (Hessian) accumulators into. collectStatistics captures every name
 * in `targets` (a node output, graph input or initializer of the main graph, of a float type), calls `add` once
 * per target per batch, in batch order, on the calling thread, and `finish` once after the last batch of a run
 * that succeeded. The values (float16 widened to float32) are only valid during the call: the collector may hand
 * their buffer to a statistics worker afterwards, so copy what must be kept.
 */
export interface ActivationAccumulator {
  readonly targets: readonly string[];
  add(name: string, values: Float32Array, dims: readonly number[]): void;
  finish(): void;
}

export interface CollectOptions extends TensorStatsOptions {
  /** Which tensors to observe: a target set ('inputs', the default, or 'all') or finer options (targets.ts). */
  targets?: TargetOptions | TargetSet;
  /**
   * Which statistics: 'full' (default), 'ranges' (min, max, per-channel |x| max, inside ONNX Runtime), 'minmax'
   * (min and max of each tensor, inside ONNX Runtime) or 'none'.
   */
  observe?: ObserveMode;
  /** Fed with the full values of their own targets, besides (or, with observe 'none', instead of) the statistics. */
  accumulators?: readonly ActivationAccumulator[];
  /**
   * ONNX Runtime threads, execution provider and graph optimisation. Optimisation defaults to 'disabled', so
   * every target is computed as the graph is written; another level gives the statistics of the graph as ORT
   * rewrites it (fused kernels round differently, so the values may differ in the last bits).
   */
  session?: Pick<SessionOptions, 'intraOpThreads' | 'executionProvider' | 'spinning' | 'graphOptimization'>;
  /**
   * Worker threads that compute the statistics while ONNX Runtime runs the next batch; 0 computes them on the
   * calling thread. Default: one per core beyond the first, at most 4. The statistics do not depend on it.
   */
  workers?: number;
  /** Called after every batch. */
  onProgress?: (progress: CollectProgress) => void;
}

export interface CollectProgress {
  batches: number;
  samples: number;
  tokens: number;
  /** The set's sample and token counts, for a progress bar. */
  totalSamples: number;
  totalTokens: number;
  /** Since the first batch started. */
  seconds: number;
}

export interface TensorRecord<S extends AnyTensorStats = TensorStats> {
  name: string;
  producer?: { node: string; opType: string };
  /** Element type ONNX Runtime returned. */
  dtype: 'float32' | 'float16';
  /** Dimensions in the last batch. */
  shape: number[];
  /** With observe 'ranges' or 'minmax', RangeStats: only the fields computed are present. */
  stats: S;
}

/** Statistics of a run whose observe mode is not known statically (e.g. read from a file). */
export type AnyActivationStatistics = ActivationStatistics<AnyTensorStats>;

export interface ActivationStatistics<S extends AnyTensorStats = TensorStats> {
  /** The model file (or in-memory label) the statistics are of. */
  model: string;
  data: { source: string; kind: CalibrationSet['kind']; sampleCount: number; tokenCount: number };
  /** `observe` absent in files written before it existed, which are 'full'. */
  options: { targets: TargetDescription; stats: ResolvedStatsOptions; observe: ObserveMode };
  /** Threads that computed the statistics besides the one running ONNX Runtime (0: the same thread). */
  observerWorkers: number;
  samples: number;
  tokens: number;
  batches: number;
  /** Wall time of the whole collection: opening the session, streaming the batches, finalising the statistics. */
  seconds: number;
  timing: { openSeconds: number; streamSeconds: number; finalizeSeconds: number };
  /** In topological order. */
  tensors: TensorRecord<S>[];
  /** Targets left out, with the reason (not a float type, never held a value). */
  skipped: { name: string; reason: string }[];
}

/** TargetOptions in a form that survives JSON. */
export interface TargetDescription {
  /**
   * The set the candidates came from, when names, ops and inputsOf were not given. (Files written before it
   * existed leave it out; their default was the MatMul/Gemm/Conv inputs and every node output.)
   */
  set?: TargetSet;
  names?: string[];
  ops?: string[];
  inputsOf?: string[];
  include?: string;
  exclude?: string;
}

/** A NaN or infinite value in an activation, located. */
export class NonFiniteError extends ModelError {
  constructor(
    message: string,
    readonly tensor: string,
    readonly value: 'NaN' | 'Infinity' | '-Infinity',
    /** First and last sample of the set the value may belong to; equal when it is known exactly. */
    readonly samples: [number, number],
    readonly producer?: { node: string; opType: string },
  ) {
    super(message);
    this.name = 'NonFiniteError';
  }
}

const OBSERVED_ORT_TYPES = new Set(['float32', 'float16']);

/** Full statistics of the targets (the default). */
export function collectStatistics(
  model: OnnxModel,
  set: CalibrationSet,
  options?: CollectOptions & { observe?: 'full' },
): Promise<ActivationStatistics<TensorStats>>;
/** Ranges only (computed inside ONNX Runtime), or no statistics (accumulators only). */
export function collectStatistics(
  model: OnnxModel,
  set: CalibrationSet,
  options: CollectOptions & { observe: 'ranges' | 'minmax' | 'none' },
): Promise<ActivationStatistics<RangeStats>>;
export function collectStatistics(model: OnnxModel, set: CalibrationSet, options?: CollectOptions): Promise<AnyActivationStatistics>;
export async function collectStatistics(model: OnnxModel, set: CalibrationSet, options: CollectOptions = {}): Promise<AnyActivationStatistics> {
  const started = performance.now();
  const observe = options.observe ?? 'full';
  if (!OBSERVE_MODES.includes(observe)) throw new OptionError(`calibration: unknown observe mode '${String(observe)}' (known: ${OBSERVE_MODES.join(', ')})`);
  const accumulators = options.accumulators ?? [];
  if (observe === 'none' && accumulators.length === 0) throw new OptionError(`calibration: observe 'none' with no accumulator computes nothing`);
  const statsOptions = resolveStatsOptions(options);
  const targets = observe === 'none' ? [] : selectTargets(model, options.targets);
  if (observe !== 'none' && targets.length === 0) throw new ModelError(`${model.source}: no tensor matches the calibration targets`);
  const accumulated = accumulatorTargets(model, accumulators);
  const workers = observe === 'full' ? (options.workers ?? defaultObserverWorkers()) : 0;
  const inGraph = observe === 'ranges' || observe === 'minmax';
  // With workers, ORT's idle threads must not spin on the cores the workers need.
  const sessionOptions = { ...options.session, ...(workers > 0 ? { spinning: false } : {}) };
  const capture =
    inGraph ? await openRangeCapture(model, targets, accumulated, sessionOptions, observe === 'ranges') : await openCapture(model, targets, sessionOptions, accumulated);
  const sink =
    observe === 'full'
      ? await openObserverSink(statsOptions, workers).catch(async (e: unknown) => {
          await capture.session.dispose();
          throw e;
        })
      : undefined;
  const opened = performance.now();
  const skipped = capture.skipped;
  const observed = capture.targets.map((target) => ({ target, dtype: '' as TensorRecord['dtype'], shape: [] as number[] }));
  const ranges = inGraph ? observed.map(() => emptyRange()) : [];
  const targetDescription = describeTargets(typeof options.targets === 'string' ? { set: options.targets } : options.targets);
  const coversEveryOutput = observe === 'full' && Object.keys(targetDescription).length === 1 && targetDescription.set === 'all';
  // What a NaN/Inf error needs of each batch still being observed: its samples and, to locate the value when
  // the targets do not cover every output, its feeds. At most a few batches are in flight.
  const inFlight = new Map<number, { feeds: Feeds; firstSample: number; rows: number; shapes: number[][] }>();
  const fail = async (problem: BatchProblem): Promise<never> => {
    const batch = inFlight.get(problem.batch)!;
    if (coversEveryOutput) {
      const target = observed[problem.tensor].target;
      throw nonFiniteError(model, target, batch.shapes[problem.tensor], problem, batch.firstSample, batch.rows);
    }
    const where = await locateFirstNonFinite(model, batch.feeds, options.session);
    if (!where) throw new ModelError(`${model.source}: a NaN or infinity appeared in one run of a batch but not in a second`);
    throw nonFiniteError(model, where.target, where.dims, where, batch.firstSample, batch.rows);
  };

  let batches = 0;
  let samples = 0;
  let tokens = 0;
  let statistics: Map<number, AnyTensorStats>;
  let streamed: number;
  try {
    for await (const feeds of set.batches()) {
      const rows = batchRows(feeds);
      // A NaN in the data is the data's fault: named before the model runs.
      const badFeed = Object.entries(feeds).find(([, t]) => OBSERVED_ORT_TYPES.has(t.type) && !chunkOf(t).scan.finite);
      if (badFeed) {
        const { data } = chunkOf(badFeed[1]);
        throw nonFiniteError(model, { name: badFeed[0], rank: -1 }, [...badFeed[1].dims], locateNonFinite(data), samples, rows);
      }
      const outputs = await capture.session.run(feeds, capture.fetches);
      // Accumulators first: the statistics workers may take the buffers.
      for (const { accumulator, names } of accumulated) {
        for (const name of names) accumulator.add(name, chunkOf(outputs[name]).data, outputs[name].dims);
      }
      inFlight.delete(batches - (sink?.maxInFlight ?? 0) - 1); // observed by now: the sink holds no more batches than that
      if (inGraph) {
        const batch = reducedBatch(outputs, capture);
        const suspect = foldRanges(observed, ranges, batch);
        if (suspect) {
          // The reductions saw a NaN or an infinity (or a sum that overflowed): locate it with every output captured.
          const where = await locateFirstNonFinite(model, feeds, options.session);
          if (where) throw nonFiniteError(model, where.target, where.dims, where, samples, rows);
          if (suspect === 'extreme') throw new ModelError(`${model.source}: a NaN or infinity appeared in one run of a batch but not in a second`);
          // Only the sum was NaN, from overflowing both ways: every value is finite after all.
          foldRanges(observed, ranges, batch, true);
        }
      } else if (sink) {
        const items = observed.map((o, tensor) => {
          const output = outputs[o.target.name];
          o.dtype = output.type as TensorRecord['dtype'];
          o.shape = [...output.dims];
          const { data, channels } = chunkOf(output);
          return { tensor, data, channels };
        });
        inFlight.set(batches, { feeds, firstSample: samples, rows, shapes: observed.map((o) => o.shape) });
        const problem = await sink.submit(batches, items);
        if (problem) await fail(problem);
      }
      batches++;
      samples += rows;
      tokens += tokensOf(feeds);
      options.onProgress?.({
        batches,
        samples,
        tokens,
        totalSamples: set.rowCount ?? set.sampleCount,
        totalTokens: set.tokenCount,
        seconds: (performance.now() - opened) / 1000,
      });
    }
    const problem = await sink?.drain();
    if (problem) await fail(problem);
    if (batches === 0) throw new ModelError(`${set.source}: the calibration set gave no batches`);
    streamed = performance.now();
    statistics = sink ? await sink.finalize() : new Map(ranges.map((r, i) => [i, finishRange(r, observe === 'ranges')]));
    for (const { accumulator } of accumulated) accumulator.finish();
  } finally {
    await Promise.all([capture.session.dispose(), sink?.close()]);
  }

  const tensors: TensorRecord<AnyTensorStats>[] = [];
  observed.forEach((o, i) => {
    const stats = statistics.get(i);
    if (!stats || stats.count === 0) skipped.push({ name: o.target.name, reason: 'always empty' });
    else tensors.push({ name: o.target.name, ...(o.target.producer ? { producer: o.target.producer } : {}), dtype: o.dtype, shape: o.shape, stats });
  });
  return {
    model: model.source,
    data: { source: set.source, kind: set.kind, sampleCount: set.sampleCount, tokenCount: set.tokenCount },
    options: { targets: targetDescription, stats: statsOptions, observe },
    observerWorkers: sink?.workers ?? 0,
    samples,
    tokens,
    batches,
    seconds: (performance.now() - started) / 1000,
    timing: { openSeconds: (opened - started) / 1000, streamSeconds: (streamed - opened) / 1000, finalizeSeconds: (performance.now() - streamed) / 1000 },
    tensors,
    skipped,
  };
}

interface OpenCapture {
  session: Session;
  /** The float targets, in topological order. */
  targets: Target[];
  fetches: string[];
  skipped: { name: string; reason: string }[];
  /** With observe 'ranges': per target, the outputs carrying its range, and its element type. */
  rangeOutputs: RangeOutputs[];
  dtypes?: TensorRecord['dtype'][];
}

interface AccumulatorFeed {
  accumulator: ActivationAccumulator;
  /** Its targets without repeats. */
  names: string[];
}

/** The accumulators' targets, checked to be tensors of the main graph. */
function accumulatorTargets(model: OnnxModel, accumulators: readonly ActivationAccumulator[]): AccumulatorFeed[] {
  return accumulators.map((accumulator) => {
    const names = [...new Set(accumulator.targets)];
    if (names.length > 0) selectTargets(model, { names }); // throws naming a tensor the graph lacks
    return { accumulator, names };
  });
}

/**
 * A session over a copy of the model with every target (and every accumulator target) added as an output.
 * Targets whose type the graph does not declare are kept or dropped by the type ONNX Runtime gives the output.
 */
async function openCapture(
  model: OnnxModel,
  targets: readonly Target[],
  options: CollectOptions['session'] = {},
  accumulated: readonly AccumulatorFeed[] = [],
): Promise<OpenCapture> {
  const extra = accumulated.flatMap((a) => a.names);
  const copy = new OnnxModel(withOutputs(model.proto, [...targets.map((t) => t.name), ...extra], model.source), model.baseDir, model.source);
  const session = await Session.create(copy, { ...options, graphOptimization: options.graphOptimization ?? 'disabled' });
  const types = outputTypes(session);
  const kept: Target[] = [];
  const skipped: OpenCapture['skipped'] = [];
  for (const t of targets) {
    const type = types.get(t.name) ?? 'unknown';
    if (OBSERVED_ORT_TYPES.has(type)) kept.push(t);
    else skipped.push({ name: t.name, reason: `${type} is not a float type` });
  }
  await checkAccumulatorTypes(model, types, extra, session);
  return { session, targets: kept, fetches: [...new Set([...kept.map((t) => t.name), ...extra])], skipped, rangeOutputs: [] };
}

/**
 * A session over a copy of the model whose outputs are, for each float target, its shape and per-channel
 * extremes computed inside ONNX Runtime (withRangeOutputs), plus the accumulators' targets in full. Element types
 * and ranks come from ONNX Runtime's inference, read from a session that only opens (never runs) the model with
 * the targets as outputs.
 */
async function openRangeCapture(
  model: OnnxModel,
  targets: readonly Target[],
  accumulated: readonly AccumulatorFeed[],
  options: CollectOptions['session'] = {},
  perChannel = true,
): Promise<OpenCapture> {
  const extra = accumulated.flatMap((a) => a.names);
  const probe = await Session.create(new OnnxModel(withOutputs(model.proto, targets.map((t) => t.name), model.source), model.baseDir, model.source), {
    ...options,
    graphOptimization: 'disabled',
  });
  const inferred = new Map(
    probe.outputMetadata.map((m) => {
      const last = m.isTensor ? m.shape?.[m.shape.length - 1] : undefined;
      return [m.name, m.isTensor ? { type: m.type as string, rank: m.shape?.length, channels: typeof last === 'number' && last > 0 ? last : undefined } : { type: 'non-tensor' }];
    }),
  );
  await probe.dispose();
  const kept: Target[] = [];
  const dtypes: TensorRecord['dtype'][] = [];
  const shapes: { rank?: number; channels?: number }[] = [];
  const skipped: OpenCapture['skipped'] = [];
  for (const t of targets) {
    const { type, rank, channels } = inferred.get(t.name) ?? { type: 'unknown' };
    if (OBSERVED_ORT_TYPES.has(type)) {
      kept.push(t);
      dtypes.push(type as TensorRecord['dtype']);
      shapes.push({ ...(rank !== undefined ? { rank } : {}), ...(channels !== undefined ? { channels } : {}) });
    } else {
      skipped.push({ name: t.name, reason: `${type} is not a float type` });
    }
  }
  const { proto, outputs } = withRangeOutputs(
    withOutputs(model.proto, extra, model.source),
    kept.map((t, i) => ({ name: t.name, float16: dtypes[i] === 'float16', ...shapes[i] })),
    model.source,
    perChannel,
  );
  const session = await Session.create(new OnnxModel(proto, model.baseDir, model.source), { ...options, graphOptimization: options.graphOptimization ?? 'disabled' });
  await checkAccumulatorTypes(model, outputTypes(session), extra, session);
  const fetches = [...new Set([...outputs.flatMap((o) => [o.shape, o.channelMin, o.channelMax, ...(o.sum ? [o.sum] : [])]), ...extra])];
  return { session, targets: kept, fetches, skipped, rangeOutputs: outputs, dtypes };
}

function outputTypes(session: Session): Map<string, string> {
  return new Map(session.outputMetadata.map((m) => [m.name, m.isTensor ? m.type : 'non-tensor']));
}

async function checkAccumulatorTypes(model: OnnxModel, types: ReadonlyMap<string, string>, names: readonly string[], session: Session): Promise<void> {
  const bad = names.find((name) => !OBSERVED_ORT_TYPES.has(types.get(name) ?? 'unknown'));
  if (bad === undefined) return;
  await session.dispose();
  throw new OptionError(`${model.source}: an accumulator reads '${bad}', which is ${types.get(bad) ?? 'of unknown type'}, not a float tensor`);
}

/** One target's running range (observe 'ranges'). */
interface RangeState {
  count: number;
  min: number;
  max: number;
  channelAbsMax: Float32Array;
}

const emptyRange = (): RangeState => ({ count: 0, min: Infinity, max: -Infinity, channelAbsMax: new Float32Array(0) });

/** One target's extremes in one batch: per channel of the last axis (or one 'channel' for the whole tensor). */
interface BatchRange {
  dtype: TensorRecord['dtype'];
  dims: number[];
  count: number;
  mins: Float32Array;
  maxs: Float32Array;
  /** The reductions' sum, NaN when a value was NaN (0 where the target is its own extremes: rank 0 or 1). */
  sum: number;
}

/** The batch's extremes as the graph's reductions computed them (withRangeOutputs). */
function reducedBatch(outputs: Record<string, Tensor>, capture: OpenCapture): BatchRange[] {
  const { rangeOutputs, dtypes = [] } = capture;
  return rangeOutputs.map((r, i) => {
    const dims = Array.from(outputs[r.shape].data as BigInt64Array, Number);
    const sum = r.sum ? (outputs[r.sum].data as Float32Array)[0] : 0; // without a sum the extremes are the values
    return { dtype: dtypes[i], dims, count: dims.reduce((a, b) => a * b, 1), mins: outputs[r.channelMin].data as Float32Array, maxs: outputs[r.channelMax].data as Float32Array, sum };
  });
}

/**
 * Folds one batch's extremes into the running ranges, exactly as the full observers would fold the values:
 * min of minima, max of maxima, each channel's |x| max raised to max(-min, max) of that channel. Returns, without
 * folding anything, 'extreme' when some extreme is NaN or infinite (a NaN or infinity in the values) and 'sum'
 * when only a sum is NaN (a NaN the min/max reductions passed over, or a sum that overflowed both ways);
 * `trustExtremes` folds in the latter case.
 */
function foldRanges(observed: { dtype: TensorRecord['dtype']; shape: number[] }[], ranges: RangeState[], batch: readonly BatchRange[], trustExtremes = false): 'extreme' | 'sum' | undefined {
  let suspect: 'extreme' | 'sum' | undefined;
  for (const b of batch) {
    if (b.count === 0) continue;
    for (let c = 0; c < b.mins.length; c++) if (!Number.isFinite(b.mins[c]) || !Number.isFinite(b.maxs[c])) return 'extreme';
    if (Number.isNaN(b.sum) && !trustExtremes) suspect = 'sum';
  }
  if (suspect) return suspect;
  batch.forEach((b, i) => {
    const o = observed[i];
    o.dtype = b.dtype;
    o.shape = b.dims;
    if (b.count === 0) return;
    const state = ranges[i];
    state.count += b.count;
    const channels = b.mins.length;
    if (state.channelAbsMax.length < channels) {
      const wider = new Float32Array(channels);
      wider.set(state.channelAbsMax);
      state.channelAbsMax = wider;
    }
    const peak = state.channelAbsMax;
    for (let c = 0; c < channels; c++) {
      const lo = b.mins[c];
      const hi = b.maxs[c];
      if (lo < state.min) state.min = lo;
      if (hi > state.max) state.max = hi;
      const a = Math.max(-lo, hi);
      if (a > peak[c]) peak[c] = a;
    }
  });
  return undefined;
}

/** The statistics of a running range, as minMaxObserver and magnitudeObserver would finalize them. */
function finishRange(state: RangeState, perChannel: boolean): RangeStats {
  const channels = perChannel ? { channelAbsMax: state.count === 0 ? new Float32Array(0) : Float32Array.from(state.channelAbsMax) } : {};
  if (state.count === 0) return { count: 0, min: NaN, max: NaN, absMax: NaN, ...channels };
  // + 0 turns a -0 minimum into 0, as minMaxObserver does.
  return { count: state.count, min: state.min + 0, max: state.max, absMax: Math.max(-state.min, state.max), ...channels };
}

/** The batch's values of one tensor; float16 widened to float32. */
function chunkOf(t: Tensor): Chunk {
  const data = t.type === 'float16' ? (fromOrtTensor(t).data as Float32Array) : (t.data as Float32Array);
  const last = t.dims.length > 0 ? t.dims[t.dims.length - 1] : 1;
  return new Chunk(data, data.length === 0 ? 1 : last);
}

/**
 * Runs the batch again capturing every float node output, and finds the first holding a NaN or infinity;
 * undefined when none does.
 */
async function locateFirstNonFinite(
  model: OnnxModel,
  feeds: Feeds,
  options: CollectOptions['session'],
): Promise<({ target: Target; dims: number[] } & NonFiniteReport) | undefined> {
  const capture = await openCapture(model, selectTargets(model, 'all'), options);
  try {
    const outputs = await capture.session.run(feeds, capture.fetches);
    for (const [tensor, target] of capture.targets.entries()) {
      const { data } = chunkOf(outputs[target.name]);
      if (firstNonFinite(data) >= 0) return { target, dims: [...outputs[target.name].dims], tensor, ...locateNonFinite(data) };
    }
    // The targets held one, so some node output should; a model that is not deterministic could still disagree.
    return undefined;
  } finally {
    await capture.session.dispose();
  }
}

function nonFiniteError(
  model: OnnxModel,
  target: Target,
  dims: readonly number[],
  { at, value }: Omit<NonFiniteReport, 'tensor'>,
  firstSample: number,
  rows: number,
): NonFiniteError {
  const size = dims.reduce((a, b) => a * b, 1);
  // The batch is axis 0 when the tensor has one row per sample; a tensor shared by the batch cannot say which.
  const row = rows === 1 ? 0 : dims[0] === rows ? Math.floor(at / (size / rows)) : undefined;
  const samples: [number, number] = row === undefined ? [firstSample, firstSample + rows - 1] : [firstSample + row, firstSample + row];
  const which = samples[0] === samples[1] ? `calibration sample ${samples[0]}` : `the batch of calibration samples ${samples[0]}-${samples[1]}`;
  const where = target.producer
    ? `tensor '${target.name}', output of node '${target.producer.node}' (${target.producer.opType}),`
    : `model input '${target.name}'`;
  return new NonFiniteError(`${model.source}: ${value} first appears in ${where} for ${which}`, target.name, value, samples, target.producer);
}

function batchRows(feeds: Feeds): number {
  for (const t of Object.values(feeds)) if (t.dims.length > 0) return t.dims[0];
  return 1;
}

/** Tokens a batch carries: attention-mask ones when the model takes a mask, else input ids; 0 for other models. */
function tokensOf(feeds: Feeds): number {
  const mask = feeds.attention_mask;
  if (mask) {
    const values = mask.data as ArrayLike<number | bigint>;
    let n = 0;
    for (let i = 0; i < values.length; i++) if (values[i]) n++;
    return n;
  }
  return feeds.input_ids?.size ?? 0;
}

function describeTargets(options: TargetOptions = {}): TargetDescription {
  const fromSet = !options.names && !options.ops && !options.inputsOf;
  return {
    ...(fromSet ? { set: options.set ?? 'inputs' } : {}),
    ...(options.names ? { names: [...options.names] } : {}),
    ...(options.ops ? { ops: [...options.ops] } : {}),
    ...(options.inputsOf ? { inputsOf: [...options.inputsOf] } : {}),
    ...(options.include ? { include: options.include.source } : {}),
    ...(options.exclude ? { exclude: options.exclude.source } : {}),
  };
}
