// Worker threads that measure the loss of the model with some weights swapped (sensitivity-worker.ts), each with
// its own ONNX Runtime session on one intra-op thread: jobs go to whichever worker is free, so N cores measure N
// candidates at once. The model copy they load has the swappable weights as graph inputs (initializers
// removed and fed, with their float values unless a job swaps them: withWeightInputs).
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Tensor } from 'onnxruntime-node';
import { OnnxCompressError, type ErrorCode } from '../errors.js';
import { valueInfo } from '../onnx/builder.js';
import { encodeModel } from '../onnx/codec.js';
import type { OnnxModel } from '../onnx/model.js';
import { DataType } from '../onnx/types.js';
import { floatValues } from '../quantization/writers/common.js';
import { RuntimeError, type Feeds } from '../runtime/session.js';
import type { LossKind } from './loss.js';
import type { WeightFeed, WireTensor, WorkerReply, WorkerSetup } from './sensitivity-worker.js';

export interface PoolOptions {
  workers?: number;
  loss: LossKind;
  outputs: string[];
}

export function defaultWorkers(): number {
  return Math.max(1, availableParallelism());
}

/**
 * The model's proto with these float32 initializers turned into graph inputs, and their values: onnxruntime-node
 * feeds only the inputs it lists, which leave out initializers (even overridable ones), so the weights to swap are
 * inputs, fed with their float values unless a job swaps them. The given model is untouched.
 */
export function withWeightInputs(model: OnnxModel, names: readonly string[]): { bytes: Uint8Array; weights: WeightFeed[] } {
  const proto = model.proto;
  const graph = model.graph;
  const moved = new Set(names);
  const tensors = graph.initializer.filter((t) => moved.has(t.name ?? ''));
  const weights = tensors.map((t) => ({ name: t.name!, dims: [...t.dims], values: floatValues(model, t) }));
  const inputs = tensors.map((t) => valueInfo(t.name!, DataType.FLOAT, t.dims));
  const bytes = encodeModel({
    ...proto,
    irVersion: Math.max(proto.irVersion ?? 0, 4),
    graph: { ...graph, input: [...graph.input.filter((i) => !moved.has(i.name ?? '')), ...inputs], initializer: graph.initializer.filter((t) => !moved.has(t.name ?? '')) },
  });
  return { bytes, weights };
}

function wire(feeds: Feeds): Record<string, WireTensor> {
  const out: Record<string, WireTensor> = {};
  for (const [name, t] of Object.entries(feeds)) out[name] = { type: t.type as Tensor.Type, dims: [...t.dims], data: t.data };
  return out;
}

class PoolWorker {
  private pending?: { resolve: (loss: number) => void; reject: (e: Error) => void };
  ready: Promise<void>;

  constructor(
    readonly worker: Worker,
    source: string,
  ) {
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise((res, rej) => ((readyResolve = res), (readyReject = rej)));
    const fail = (e: Error): void => {
      if (this.pending) this.pending.reject(e);
      else readyReject(e);
      this.pending = undefined;
    };
    worker.on('message', (m: WorkerReply) => {
      if (m.type === 'ready') readyResolve();
      else if (m.type === 'loss') {
        const p = this.pending;
        this.pending = undefined;
        p?.resolve(m.loss);
      } else fail(m.code ? new OnnxCompressError(m.code as ErrorCode, m.message) : new RuntimeError(source, m.message));
    });
    worker.on('error', (e) => fail(new RuntimeError(source, `sensitivity worker failed: ${e.message}`)));
  }

  run(id: number, weights: WeightFeed[]): Promise<number> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage({ type: 'job', id, weights }, weights.map((w) => w.values.buffer as ArrayBuffer));
    });
  }
}

/** A job: weights to swap in (copies: their buffers are transferred to the worker). */
export type LossJob = WeightFeed[];

export class SensitivityPool {
  private constructor(private readonly workers: PoolWorker[]) {}

  static async open(model: OnnxModel, weights: readonly string[], batches: readonly Feeds[], options: PoolOptions): Promise<SensitivityPool> {
    const moved = withWeightInputs(model, weights);
    const setup: WorkerSetup = {
      model: moved.bytes,
      weights: moved.weights,
      ...(model.baseDir ? { baseDir: model.baseDir } : {}),
      source: model.source,
      batches: batches.map(wire),
      loss: options.loss,
      outputs: options.outputs,
    };
    const url = new URL('./sensitivity-worker.js', import.meta.url);
    const n = Math.max(1, options.workers ?? defaultWorkers());
    const workers = Array.from({ length: n }, () => new PoolWorker(new Worker(url, { workerData: setup, execArgv: [] }), model.source));
    const pool = new SensitivityPool(workers);
    try {
      await Promise.all(workers.map((w) => w.ready));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  get size(): number {
    return this.workers.length;
  }

  /** Runs every job (made lazily, so only as many swapped weights as workers are in memory); losses in job order. */
  async runAll(count: number, make: (i: number) => LossJob, onDone?: (done: number) => void): Promise<number[]> {
    const losses = new Array<number>(count);
    let next = 0;
    let done = 0;
    await Promise.all(
      this.workers.map(async (w) => {
        while (next < count) {
          const i = next++;
          losses[i] = await w.run(i, make(i));
          onDone?.(++done);
        }
      }),
    );
    return losses;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
