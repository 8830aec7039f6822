// Streams a calibration set through ONNX Runtime once and keeps statistics of the target tensors. Each batch's
// targets come back as extra graph outputs of one run (capture once per batch) and go to the observers, in
// worker threads by default (observer-pool.ts) so that ORT runs the next batch meanwhile; at most one batch is
// with them at a time. Memory holds two batches' activations plus fixed-size observer states, however many
// samples the set has.
//
// NaN or infinite values are an error naming the first tensor, in topological order, that holds one, and the
// sample (a float model input holding one is named as such, before the model runs). When the targets do not
// cover every node output, the failing batch is run once more with all of them captured, so the tensor named is
// where the value first appears rather than the first target it reached.
import type { Tensor } from 'onnxruntime-node';
import { ModelError, OnnxModel } from '../onnx/model.js';
import { withOutputs } from '../runtime/capture.js';
import { fromOrtTensor } from '../runtime/ort-tensor.js';
import { type Feeds, Session, type SessionOptions } from '../runtime/session.js';
import type { CalibrationSet } from './data/index.js';
import { Chunk, firstNonFinite } from './observers/chunk.js';
import { defaultObserverWorkers, openObserverSink, type BatchProblem } from './observer-pool.js';
import {
  resolveStatsOptions,
  type ResolvedStatsOptions,
  type TensorStats,
  type TensorStatsOptions,
} from './observers/tensor-stats.js';
import { selectTargets, type Target, type TargetOptions } from './targets.js';
import { locateNonFinite, type NonFiniteReport } from './tensor-observers.js';

export interface CollectOptions extends TensorStatsOptions {
  targets?: TargetOptions;
  /** ONNX Runtime threads and execution provider; graph optimisation stays off so every target exists as written. */
  session?: Pick<SessionOptions, 'intraOpThreads' | 'executionProvider' | 'spinning'>;
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

export interface TensorRecord {
  name: string;
  producer?: { node: string; opType: string };
  /** Element type ONNX Runtime returned. */
  dtype: 'float32' | 'float16';
  /** Dimensions in the last batch. */
  shape: number[];
  stats: TensorStats;
}

export interface ActivationStatistics {
  /** The model file (or in-memory label) the statistics are of. */
  model: string;
  data: { source: string; kind: CalibrationSet['kind']; sampleCount: number; tokenCount: number };
  options: { targets: TargetDescription; stats: ResolvedStatsOptions };
  /** Threads that computed the statistics besides the one running ONNX Runtime (0: the same thread). */
  observerWorkers: number;
  samples: number;
  tokens: number;
  batches: number;
  /** Wall time of the whole collection: opening the session, streaming the batches, finalising the statistics. */
  seconds: number;
  timing: { openSeconds: number; streamSeconds: number; finalizeSeconds: number };
  /** In topological order. */
  tensors: TensorRecord[];
  /** Targets left out, with the reason (not a float type, never held a value). */
  skipped: { name: string; reason: string }[];
}

/** TargetOptions in a form that survives JSON. */
export interface TargetDescription {
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

export async function collectStatistics(model: OnnxModel, set: CalibrationSet, options: CollectOptions = {}): Promise<ActivationStatistics> {
  const started = performance.now();
  const statsOptions = resolveStatsOptions(options);
  const targets = selectTargets(model, options.targets);
  if (targets.length === 0) throw new ModelError(`${model.source}: no tensor matches the calibration targets`);
  const workers = options.workers ?? defaultObserverWorkers();
  // With workers, ORT's idle threads must not spin on the cores the workers need.
  const capture = await openCapture(model, targets, { ...options.session, ...(workers > 0 ? { spinning: false } : {}) });
  const sink = await openObserverSink(statsOptions, workers).catch(async (e: unknown) => {
    await capture.session.dispose();
    throw e;
  });
  const opened = performance.now();
  const skipped = capture.skipped;
  const observed = capture.targets.map((target) => ({ target, dtype: '' as TensorRecord['dtype'], shape: [] as number[] }));
  const targetDescription = describeTargets(options.targets);
  const coversEveryOutput = Object.keys(targetDescription).length === 0;
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
    throw nonFiniteError(model, where.target, where.dims, where, batch.firstSample, batch.rows);
  };

  let batches = 0;
  let samples = 0;
  let tokens = 0;
  let statistics: Map<number, TensorStats>;
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
      const items = observed.map((o, tensor) => {
        const output = outputs[o.target.name];
        o.dtype = output.type as TensorRecord['dtype'];
        o.shape = [...output.dims];
        const { data, channels } = chunkOf(output);
        return { tensor, data, channels };
      });
      inFlight.set(batches, { feeds, firstSample: samples, rows, shapes: observed.map((o) => o.shape) });
      inFlight.delete(batches - sink.maxInFlight - 1); // observed by now: the sink holds no more batches than that
      const problem = await sink.submit(batches, items);
      if (problem) await fail(problem);
      batches++;
      samples += rows;
      tokens += tokensOf(feeds);
      options.onProgress?.({
        batches,
        samples,
        tokens,
        totalSamples: set.sampleCount,
        totalTokens: set.tokenCount,
        seconds: (performance.now() - opened) / 1000,
      });
    }
    const problem = await sink.drain();
    if (problem) await fail(problem);
    if (batches === 0) throw new ModelError(`${set.source}: the calibration set gave no batches`);
    streamed = performance.now();
    statistics = await sink.finalize();
  } finally {
    await Promise.all([capture.session.dispose(), sink.close()]);
  }

  const tensors: TensorRecord[] = [];
  observed.forEach((o, i) => {
    const stats = statistics.get(i);
    if (!stats || stats.count === 0) skipped.push({ name: o.target.name, reason: 'always empty' });
    else tensors.push({ name: o.target.name, ...(o.target.producer ? { producer: o.target.producer } : {}), dtype: o.dtype, shape: o.shape, stats });
  });
  return {
    model: model.source,
    data: { source: set.source, kind: set.kind, sampleCount: set.sampleCount, tokenCount: set.tokenCount },
    options: { targets: targetDescription, stats: statsOptions },
    observerWorkers: sink.workers,
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
}

/**
 * A session over a copy of the model with every target added as an output. Targets whose type the graph does
 * not declare are kept or dropped by the type ONNX Runtime gives the output.
 */
async function openCapture(model: OnnxModel, targets: readonly Target[], options: CollectOptions['session'] = {}): Promise<OpenCapture> {
  const copy = new OnnxModel(withOutputs(model.proto, targets.map((t) => t.name), model.source), model.baseDir, model.source);
  const session = await Session.create(copy, { ...options, graphOptimization: 'disabled' });
  const types = new Map(session.outputMetadata.map((m) => [m.name, m.isTensor ? m.type : 'non-tensor']));
  const kept: Target[] = [];
  const skipped: OpenCapture['skipped'] = [];
  for (const t of targets) {
    const type = types.get(t.name) ?? 'unknown';
    if (OBSERVED_ORT_TYPES.has(type)) kept.push(t);
    else skipped.push({ name: t.name, reason: `${type} is not a float type` });
  }
  return { session, targets: kept, fetches: kept.map((t) => t.name), skipped };
}

/** The batch's values of one tensor; float16 widened to float32. */
function chunkOf(t: Tensor): Chunk {
  const data = t.type === 'float16' ? (fromOrtTensor(t).data as Float32Array) : (t.data as Float32Array);
  const last = t.dims.length > 0 ? t.dims[t.dims.length - 1] : 1;
  return new Chunk(data, data.length === 0 ? 1 : last);
}

/** Runs the batch again capturing every float node output, and finds the first holding a NaN or infinity. */
async function locateFirstNonFinite(model: OnnxModel, feeds: Feeds, options: CollectOptions['session']): Promise<{ target: Target; dims: number[] } & NonFiniteReport> {
  const capture = await openCapture(model, selectTargets(model), options);
  try {
    const outputs = await capture.session.run(feeds, capture.fetches);
    for (const [tensor, target] of capture.targets.entries()) {
      const { data } = chunkOf(outputs[target.name]);
      if (firstNonFinite(data) >= 0) return { target, dims: [...outputs[target.name].dims], tensor, ...locateNonFinite(data) };
    }
    // The targets held one, so some node output does; a model that is not deterministic could still disagree.
    throw new ModelError(`${model.source}: a NaN or infinity appeared in one run of a batch but not in a second`);
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
  return {
    ...(options.names ? { names: [...options.names] } : {}),
    ...(options.ops ? { ops: [...options.ops] } : {}),
    ...(options.inputsOf ? { inputsOf: [...options.inputsOf] } : {}),
    ...(options.include ? { include: options.include.source } : {}),
    ...(options.exclude ? { exclude: options.exclude.source } : {}),
  };
}
