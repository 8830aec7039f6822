// A sensitivity worker thread (sensitivity-pool.ts): one ONNX Runtime session of the model with the allocated
// layers' weights as inputs, one intra-op thread. It runs the float model once per batch for the
// reference, then answers each job (a set of replacement weights: one layer's fake-quantized weight, or a whole
// plan's) with the loss of the changed model against that reference. Swapping a weight through a feed keeps one
// session for every candidate instead of building and loading a model per candidate.
import { parentPort, workerData } from 'node:worker_threads';
import { Tensor } from 'onnxruntime-node';
import { decodeModel } from '../onnx/codec.js';
import { OnnxModel } from '../onnx/model.js';
import { Session, type Feeds } from '../runtime/session.js';
import { klSum, referenceLogProbs, squaredError, type LossKind, type Reference } from './loss.js';

export interface WireTensor {
  type: Tensor.Type;
  dims: number[];
  data: Tensor.DataType;
}

export interface WorkerSetup {
  model: Uint8Array;
  baseDir?: string;
  source: string;
  /** The float values of the weights that are inputs. */
  weights: WeightFeed[];
  batches: Record<string, WireTensor>[];
  loss: LossKind;
  /** The logits output (loss 'kl'); every output otherwise. */
  outputs: string[];
}

export interface WeightFeed {
  name: string;
  dims: number[];
  values: Float32Array;
}

export type WorkerRequest = { type: 'job'; id: number; weights: WeightFeed[] };
export type WorkerReply = { type: 'ready' } | { type: 'loss'; id: number; loss: number } | { type: 'error'; message: string; code?: string };

const port = parentPort;
if (!port) throw new Error('sensitivity-worker.js runs as a worker thread of the sensitivity pool');
const setup = workerData as WorkerSetup;

function toFeeds(wire: Record<string, WireTensor>): Feeds {
  const feeds: Feeds = {};
  for (const [name, t] of Object.entries(wire)) feeds[name] = new Tensor(t.type, t.data, t.dims);
  return feeds;
}

function floats(t: Tensor): Float32Array {
  if (t.type !== 'float32') throw new Error(`output of type ${t.type}: sensitivity needs float32 outputs`);
  return t.data as Float32Array;
}

async function start(): Promise<void> {
  const model = new OnnxModel(decodeModel(setup.model), setup.baseDir, setup.source);
  const session = await Session.create(model, { intraOpThreads: 1, spinning: false });
  const floatWeights: Feeds = {};
  for (const w of setup.weights) floatWeights[w.name] = new Tensor('float32', w.values, w.dims);
  const batches = setup.batches.map((b) => ({ ...toFeeds(b), ...floatWeights }));
  const references: Reference[] = [];
  for (const feeds of batches) {
    const out = await session.run(feeds, setup.outputs);
    if (setup.loss === 'kl') {
      const t = out[setup.outputs[0]];
      const vocab = t.dims[t.dims.length - 1];
      references.push({ kind: 'kl', vocab, logp: referenceLogProbs(floats(t), vocab) });
    } else {
      references.push({ kind: 'relative-mse', outputs: setup.outputs.map((n) => floats(out[n]).slice()) });
    }
  }
  port!.postMessage({ type: 'ready' } satisfies WorkerReply);
  port!.on('message', (request: WorkerRequest) => {
    lossOf(session, batches, references, request.weights).then(
      (loss) => port!.postMessage({ type: 'loss', id: request.id, loss } satisfies WorkerReply),
      (e: unknown) => port!.postMessage({ type: 'error', message: (e as Error).message, code: (e as { code?: string }).code } satisfies WorkerReply),
    );
  });
}

async function lossOf(session: Session, batches: Feeds[], references: Reference[], weights: WeightFeed[]): Promise<number> {
  const swapped: Feeds = {};
  for (const w of weights) swapped[w.name] = new Tensor('float32', w.values, w.dims);
  let sum = 0;
  let count = 0;
  let energy = 0;
  for (let b = 0; b < batches.length; b++) {
    const out = await session.run({ ...batches[b], ...swapped }, setup.outputs);
    const ref = references[b];
    if (ref.kind === 'kl') {
      const r = klSum(ref.logp, floats(out[setup.outputs[0]]), ref.vocab);
      sum += r.sum;
      count += r.count;
    } else {
      setup.outputs.forEach((name, i) => {
        const e = squaredError(ref.outputs[i], floats(out[name]));
        sum += e.error;
        energy += e.energy;
      });
    }
  }
  if (setup.loss === 'kl') return count ? sum / count : 0;
  return energy > 0 ? sum / energy : sum;
}

start().catch((e: unknown) => port.postMessage({ type: 'error', message: (e as Error).message, code: (e as { code?: string }).code } satisfies WorkerReply));
