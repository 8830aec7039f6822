// Where a collection run's statistics are computed: on the calling thread, or spread over worker threads so that
// ONNX Runtime runs the next batch while the workers read this one. onnxruntime-node runs a session on the
// calling thread and blocks it, so without workers the forward pass and the statistics take turns; with them
// the statistics use cores ORT leaves idle, and each tensor's values travel to its worker without a copy (the
// ArrayBuffer is transferred).
//
// Each tensor belongs to one worker for the whole run (assigned on first sight to the least-loaded one), so a
// tensor's state never needs merging and the statistics are the same as on one thread, bit for bit.
import { cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ResolvedStatsOptions, TensorStats } from './observers/tensor-stats.js';
import { TensorObservers, type BatchItem, type NonFiniteReport } from './tensor-observers.js';

/** A NaN or infinity, located to its batch. */
export interface BatchProblem extends NonFiniteReport {
  batch: number;
}

export interface ObserverSink {
  /** How many threads compute statistics (0: the calling thread). */
  readonly workers: number;
  /** Batches handed over and not yet observed, at most, once submit resolves. */
  readonly maxInFlight: number;
  /**
   * Hands over batch number `batch` (0, 1, 2, ... in order); the items' buffers may be transferred and must not be
   * used afterwards. Resolves once there is room for another batch, with the first problem found in a batch
   * whose predecessors are all done, if any.
   */
  submit(batch: number, items: BatchItem[]): Promise<BatchProblem | undefined>;
  /** Waits for every batch handed over; the first problem, if any. */
  drain(): Promise<BatchProblem | undefined>;
  /** Every tensor's statistics, by target position (after drain). */
  finalize(): Promise<Map<number, TensorStats>>;
  close(): Promise<void>;
}

/** Threads for statistics by default: the cores beyond one, at most 4 (more rarely pays: ORT wants cores too). */
export function defaultObserverWorkers(): number {
  return Math.max(0, Math.min(4, cpus().length - 1));
}

export async function openObserverSink(options: ResolvedStatsOptions, workers = defaultObserverWorkers()): Promise<ObserverSink> {
  if (!Number.isInteger(workers) || workers < 0) throw new RangeError(`observer workers must be a whole number >= 0, not ${workers}`);
  return workers === 0 ? new InlineSink(options) : WorkerSink.open(options, workers);
}

class InlineSink implements ObserverSink {
  readonly workers = 0;
  readonly maxInFlight = 0;
  private readonly observers: TensorObservers;
  private problem?: BatchProblem;

  constructor(options: ResolvedStatsOptions) {
    this.observers = new TensorObservers(options);
  }

  async submit(batch: number, items: BatchItem[]): Promise<BatchProblem | undefined> {
    const found = this.observers.observe(items);
    if (found && !this.problem) this.problem = { batch, ...found };
    return this.problem;
  }

  async drain(): Promise<BatchProblem | undefined> {
    return this.problem;
  }

  async finalize(): Promise<Map<number, TensorStats>> {
    return this.observers.finalize();
  }

  async close(): Promise<void> {}
}

type Reply = { type: 'done'; problem?: NonFiniteReport; buffers: ArrayBuffer[] } | { type: 'stats'; entries: [number, TensorStats][] };

/** One worker thread and the replies it owes, in the order it was asked. */
class ObserverThread {
  private readonly waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private failure?: Error;
  /** Values per batch of the tensors it owns, for balancing. */
  load = 0;

  constructor(readonly worker: Worker) {
    worker.on('message', (reply: Reply) => this.waiting.shift()?.resolve(reply));
    worker.on('error', (e: Error) => this.fail(new Error(`a statistics worker failed: ${e.message}`)));
    worker.on('exit', (code) => this.fail(new Error(`a statistics worker stopped (exit code ${code})`)));
  }

  ask(message: unknown, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.worker.postMessage(message, transfer);
    });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiting.splice(0)) w.reject(this.failure);
  }
}

class WorkerSink implements ObserverSink {
  /** One batch left with the workers while ONNX Runtime runs the next keeps both busy; more would only hold memory. */
  readonly maxInFlight = 1;
  private readonly owner = new Map<number, ObserverThread>();
  private readonly pending = new Map<number, Promise<BatchProblem | undefined>>();
  private readonly problems: BatchProblem[] = [];
  private doneUpTo = -1;
  private readonly done = new Set<number>();

  private constructor(private readonly threads: ObserverThread[]) {}

  get workers(): number {
    return this.threads.length;
  }

  static async open(options: ResolvedStatsOptions, workers: number): Promise<WorkerSink> {
    const url = new URL('./observer-worker.js', import.meta.url);
    // None of the process's Node flags: workers would inherit them, and some (--input-type, --expose-gc) stop a
    // worker from starting; plain compiled JavaScript needs none.
    const threads = Array.from({ length: workers }, () => new ObserverThread(new Worker(url, { workerData: { options }, execArgv: [] })));
    return new WorkerSink(threads);
  }

  async submit(batch: number, items: BatchItem[]): Promise<BatchProblem | undefined> {
    const byThread = new Map<ObserverThread, BatchItem[]>();
    const transferred = new Set<ArrayBuffer>();
    for (const item of items) {
      const thread = this.ownerOf(item);
      // Only a whole, not yet listed buffer can be transferred; anything else travels as a copy of its view.
      const buffer = item.data.buffer as ArrayBuffer;
      const whole = item.data.byteOffset === 0 && item.data.byteLength === buffer.byteLength && !transferred.has(buffer);
      const data = whole ? item.data : item.data.slice();
      transferred.add(data.buffer as ArrayBuffer);
      const list = byThread.get(thread) ?? [];
      list.push({ ...item, data });
      byThread.set(thread, list);
    }
    const replies = [...byThread].map(([thread, list]) =>
      thread.ask(
        { type: 'batch', items: list },
        list.map((i) => i.data.buffer as ArrayBuffer),
      ),
    );
    const observed = Promise.all(replies).then((rs) => {
      // Items reach each worker in target order, so the smallest tensor among the reports is the batch's first.
      const found = rs
        .map((r) => (r.type === 'done' ? r.problem : undefined))
        .filter((p): p is NonFiniteReport => p !== undefined)
        .sort((a, b) => a.tensor - b.tensor)[0];
      this.settle(batch, found);
      return found && { batch, ...found };
    });
    // A failed worker fails every pending batch; the first to be awaited reports it, the others must not surface
    // as unhandled rejections.
    observed.catch(() => undefined);
    this.pending.set(batch, observed);
    while (this.pending.size > this.maxInFlight) await Promise.race(this.pending.values());
    return this.firstSettledProblem();
  }

  async drain(): Promise<BatchProblem | undefined> {
    await Promise.all(this.pending.values());
    return this.firstSettledProblem();
  }

  async finalize(): Promise<Map<number, TensorStats>> {
    await this.drain();
    const replies = await Promise.all(this.threads.map((t) => t.ask({ type: 'finalize' })));
    const out = new Map<number, TensorStats>();
    for (const r of replies) if (r.type === 'stats') for (const [tensor, stats] of r.entries) out.set(tensor, stats);
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }

  private ownerOf(item: BatchItem): ObserverThread {
    let thread = this.owner.get(item.tensor);
    if (!thread) {
      thread = this.threads.reduce((a, b) => (b.load < a.load ? b : a));
      thread.load += item.data.length;
      this.owner.set(item.tensor, thread);
    }
    return thread;
  }

  private settle(batch: number, problem: NonFiniteReport | undefined): void {
    this.pending.delete(batch);
    if (problem) this.problems.push({ batch, ...problem });
    this.done.add(batch);
    while (this.done.has(this.doneUpTo + 1)) this.done.delete(++this.doneUpTo);
  }

  /** The earliest problem whose batch and all batches before it are done: later ones cannot come first. */
  private firstSettledProblem(): BatchProblem | undefined {
    return this.problems.filter((p) => p.batch <= this.doneUpTo).sort((a, b) => a.batch - b.batch)[0];
  }
}
