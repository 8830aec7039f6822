// Throughput of the TensorFlow.js interpreter on a sample decoder: forward tokens/s and forward + backward
// (gradients of the next-token cross-entropy with respect to every trainable weight) tokens/s, for each tfjs
// backend that loads (wasm, cpu; tensorflow when tfjs-node is installed), with the default operator registry
// and with src/training's MatMul override (2-D products, which XNNPACK runs on wasm); ONNX Runtime's forward
// tokens/s on the same batch beside them. Prints a table and writes bench/results/tf-throughput.json.
//
//   npx tsc -p . && node dist/bench/tf-throughput.js [--model models/tiny-llama/onnx/model.onnx] [--batch 8] [--seq 128] [--repeats 3]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { table } from '../src/cli/output.js';
import { loadModel } from '../src/onnx/model.js';
import { type BackendName, crossEntropy, selectBackend, TfModel } from '../src/runtime/tf/index.js';
import { batchFeeds, cacheLayout, type TokenBatch, trainableWeights } from '../src/training/index.js';
import { machineFacts } from './support/machine.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

interface Row {
  engine: string;
  backend: string;
  registry: 'default' | '-';
  forwardTokensPerSecond: number;
  forwardBackwardTokensPerSecond: number | null;
}

function args(argv: string[]): { model: string; batch: number; seq: number; repeats: number } {
  const get = (flag: string, d: string): string => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : d;
  };
  return { model: get('--model', join(REPO, 'models/tiny-llama/onnx/model.onnx')), batch: Number(get('--batch', '8')), seq: Number(get('--seq', '128')), repeats: Number(get('--repeats', '3')) };
}

/** Median seconds of `repeats` timed calls after one untimed warm-up call. */
async function time(repeats: number, f: () => unknown | Promise<unknown>): Promise<number> {
  await f();
  const t: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const s = performance.now();
    await f();
    t.push((performance.now() - s) / 1000);
  }
  return t.sort((a, b) => a - b)[Math.floor(t.length / 2)];
}

function syntheticBatch(batch: number, seq: number): TokenBatch {
  // Bytes of real text (deterministic), so the logits and softmax see ordinary values.
  const text = Buffer.from(readFileSync(join(REPO, 'calibration-sets/prose/selection.jsonl'), 'utf8'));
  const inputs = new Int32Array(batch * seq);
  const targets = new Int32Array(batch * seq);
  for (let i = 0; i < inputs.length; i++) {
    inputs[i] = text[i % text.length];
    targets[i] = text[(i + 1) % text.length];
  }
  return { batch, sequence: seq, inputs, targets };
}

async function main(): Promise<void> {
  const { model: path, batch, seq, repeats } = args(process.argv.slice(2));
  const model = loadModel(path);
  const b = syntheticBatch(batch, seq);
  const feeds = batchFeeds(cacheLayout(model), b);
  const tokens = batch * seq;
  const rows: Row[] = [];
  const loadBefore = loadavg()[0];

  const session = await ort.InferenceSession.create(path);
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [n, v] of Object.entries(feeds)) ortFeeds[n] = new ort.Tensor(v.data instanceof BigInt64Array ? 'int64' : 'float32', v.data as Float32Array, v.dims);
  const ortSeconds = await time(repeats, () => session.run(ortFeeds));
  rows.push({ engine: 'ONNX Runtime', backend: 'cpu EP (default threads)', registry: '-', forwardTokensPerSecond: tokens / ortSeconds, forwardBackwardTokensPerSecond: null });
  await session.release();

  const backends: BackendName[] = [];
  for (const name of ['wasm', 'cpu', 'tensorflow'] as const) {
    try {
      await selectBackend(name);
      backends.push(name);
    } catch {
      process.stderr.write(`tfjs backend '${name}' is not available here; skipped\n`);
    }
  }
  for (const backend of backends) {
    await selectBackend(backend);
    const tf = TfModel.compile(model);
    const weights = trainableWeights(tf);
    // The pure-JS cpu backend is slow: one timed repeat is enough to rank it.
    const reps = backend === 'cpu' ? 1 : repeats;
    const fwd = await time(reps, () => tf.run(feeds, ['logits']));
    const fb = await time(reps, () => tf.gradients({ feeds, objective: crossEntropy({ dims: [batch, seq], data: b.targets }), weights, fetches: ['logits'] }));
    rows.push({ engine: 'tfjs interpreter', backend, registry: 'default', forwardTokensPerSecond: tokens / fwd, forwardBackwardTokensPerSecond: tokens / fb });
    tf.dispose();
    process.stderr.write(`${backend}: forward ${(tokens / fwd).toFixed(0)} tok/s, forward+backward ${(tokens / fb).toFixed(0)} tok/s\n`);
  }

  const version = (pkg: string): string => {
    try {
      return JSON.parse(readFileSync(join(REPO, 'node_modules', pkg, 'package.json'), 'utf8')).version;
    } catch {
      return 'not installed';
    }
  };
  const result = {
    date: new Date().toISOString(),
    machine: { ...machineFacts(), loadAverage1mBefore: loadBefore, loadAverage1mAfter: loadavg()[0], note: 'shared machine: other jobs were running; figures are indicative' },
    versions: {
      'onnxruntime-node': version('onnxruntime-node'),
      '@tensorflow/tfjs-core': version('@tensorflow/tfjs-core'),
      '@tensorflow/tfjs-backend-wasm': version('@tensorflow/tfjs-backend-wasm'),
      '@tensorflow/tfjs-backend-cpu': version('@tensorflow/tfjs-backend-cpu'),
      '@tensorflow/tfjs-node': version('@tensorflow/tfjs-node'),
    },
    method: {
      model: path.startsWith(REPO) ? path.slice(REPO.length) : path,
      batch,
      sequenceLength: seq,
      tokensPerPass: tokens,
      repeats,
      statistic: 'median seconds over repeats after one warm-up pass (cpu backend: one repeat); tokens/s = batch x sequence / seconds',
      forwardBackward: 'TfModel.gradients of the mean next-token cross-entropy with respect to every trainable weight (rotary tables excluded), one forward and one backward pass',
    },
    results: rows,
  };
  const out = join(REPO, 'bench/results/tf-throughput.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  const fmt = (n: number | null): string => (n === null ? '-' : n.toFixed(0));
  console.log(
    table(
      ['engine', 'backend', 'MatMul', 'forward tok/s', 'fwd+bwd tok/s'],
      rows.map((r) => [r.engine, r.backend, r.registry, fmt(r.forwardTokensPerSecond), fmt(r.forwardBackwardTokensPerSecond)]),
    ),
  );
  console.log(`batch ${batch} x ${seq} tokens, ${result.method.model}; wrote ${out}`);
}

await main();
