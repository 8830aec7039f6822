// A statistics worker thread (observer-pool.ts): keeps the states of the tensors it is given and answers each
// message in turn: a batch with where it found a NaN or infinity (if it did) and the batch's buffers, a finalize
// with the statistics.
import { parentPort, workerData } from 'node:worker_threads';
import type { ResolvedStatsOptions } from './observers/tensor-stats.js';
import { TensorObservers, type BatchItem } from './tensor-observers.js';

type Request = { type: 'batch'; items: BatchItem[] } | { type: 'finalize' };

const port = parentPort;
if (!port) throw new Error('observer-worker.js runs as a worker thread of the calibration observer pool');
const observers = new TensorObservers((workerData as { options: ResolvedStatsOptions }).options);
port.on('message', (request: Request) => {
  if (request.type === 'batch') {
    // The values go back (transferred, not copied) to be freed by the main thread's collector: left to this
    // thread's, which sees little allocation of its own, they could pile up for many batches.
    const buffers = request.items.map((i) => i.data.buffer as ArrayBuffer);
    port.postMessage({ type: 'done', problem: observers.observe(request.items), buffers }, buffers);
  } else {
    port.postMessage({ type: 'stats', entries: [...observers.finalize()] });
  }
});
