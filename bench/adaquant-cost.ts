// AdaQuant's cost per layer on each TensorFlow.js backend (issue 12): one MatMul layer of the byte-level LLaMA's
// MLP shape, 1024 captured rows of width 384 times a [384 x 1024] weight, W4 g32 (MatMulNBits' 4-bit
// asymmetric blocks), with the default options (iterations, batch, learning rates: DEFAULT_ADAQUANT_OPTIONS, and
// GRAM_LEARNING_RATES for the Gram form), in both forms: 'rows' (mini-batches of the captured rows) and 'gram'
// (full-batch on mean x xᵀ of the same rows, what the pipeline runs for MatMul/Gemm).
// Inputs are random rows sharing a few factors (timing does not depend on the values). Wall and CPU seconds are
// both reported: on a shared machine wall time includes waiting for a core. The cpu backend is an order of
// magnitude slower, so it runs `--cpu-iterations` steps (default 100) and its per-layer time at the full count is
// projected from its time per step (steps, scoring included, cost the same throughout a run).
//
//   npx tsc -p . && node dist/bench/adaquant-cost.js [--iterations N] [--cpu-iterations N] [--backends wasm,cpu]
//
// Prints a table and writes bench/results/adaquant-cost.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { table } from '../src/cli/output.js';
import { adaquantLayer, DEFAULT_ADAQUANT_OPTIONS, GRAM_LEARNING_RATES, type LayerInputs } from '../src/quantization/adaquant/index.js';
import { quantize, type QuantSpec } from '../src/quantization/quantizers.js';
import { selectBackend, type BackendName } from '../src/runtime/tf/backend.js';
import { seededRandom } from '../src/util/prng.js';
import { machineFacts } from './support/machine.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ROWS = 1024;
const K = 384;
const N = 1024;
const SPEC: Required<QuantSpec> = { bits: 4, signed: false, symmetric: false, granularity: { kind: 'block', axis: 0, blockSize: 32 }, convention: 'mlas' };

function parseArgs(argv: string[]): { iterations: number; cpuIterations: number; backends: BackendName[] } {
  const args = { iterations: DEFAULT_ADAQUANT_OPTIONS.iterations, cpuIterations: 100, backends: ['wasm', 'cpu'] as BackendName[] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[++i];
    if (a === '--iterations' && Number.isSafeInteger(Number(v)) && Number(v) >= 1) args.iterations = Number(v);
    else if (a === '--cpu-iterations' && Number.isSafeInteger(Number(v)) && Number(v) >= 1) args.cpuIterations = Number(v);
    else if (a === '--backends' && v) args.backends = v.split(',') as BackendName[];
    else throw new Error(`unknown or bad argument ${a} ${v ?? ''}`);
  }
  return args;
}

function inputs(): { x: Float32Array; w: Float32Array } {
  const random = seededRandom(1);
  const g = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const factors = 4;
  const mix = Array.from({ length: factors * K }, g);
  const x = new Float32Array(ROWS * K);
  for (let r = 0; r < ROWS; r++) {
    const f = Array.from({ length: factors }, g);
    for (let k = 0; k < K; k++) {
      let v = g() * 0.5;
      for (let p = 0; p < factors; p++) v += f[p] * mix[p * K + k];
      x[r * K + k] = v;
    }
  }
  return { x, w: Float32Array.from({ length: K * N }, () => g() * 0.05) };
}

/** The Gram form's inputs from the same rows: mean x xᵀ and mean x, in float64. */
function moments(x: Float32Array): { h: Float64Array; mean: Float64Array } {
  const h = new Float64Array(K * K);
  const mean = new Float64Array(K);
  for (let r = 0; r < ROWS; r++) {
    for (let i = 0; i < K; i++) {
      const xi = x[r * K + i];
      mean[i] += xi / ROWS;
      for (let j = 0; j < K; j++) h[i * K + j] += (xi * x[r * K + j]) / ROWS;
    }
  }
  return { h, mean };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const { x, w } = inputs();
  const { h, mean } = moments(x);
  const forms: { form: 'rows' | 'gram'; inputs: LayerInputs }[] = [
    { form: 'rows', inputs: { kind: 'matmul', x, rows: ROWS } },
    { form: 'gram', inputs: { kind: 'gram', h, mean, rows: ROWS } },
  ];
  const request = { node: 'mlp/MatMul', weight: 'W', values: w, dims: [K, N], spec: quantize(w, [K, N], SPEC).spec, reductionAxis: 0, channelAxis: 1 };
  const runs = [];
  for (const choice of args.backends) {
    const backend = await selectBackend(choice);
    for (const { form, inputs: layerInputs } of forms) {
      const load = loadavg()[0];
      const cpu = process.cpuUsage();
      const iterations = backend === 'cpu' ? Math.min(args.iterations, args.cpuIterations) : args.iterations;
      const res = adaquantLayer(request, layerInputs, { iterations });
      const used = process.cpuUsage(cpu);
      const r = res.record;
      runs.push({
        backend,
        form,
        iterations: r.iterations!,
        batchSize: form === 'gram' ? ROWS : DEFAULT_ADAQUANT_OPTIONS.batchSize,
        wallSeconds: r.seconds!,
        cpuSeconds: (used.user + used.system) / 1e6,
        msPerIteration: (r.seconds! * 1000) / r.iterations!,
        projectedWallSeconds: (r.seconds! * args.iterations) / r.iterations!,
        projectedCpuSeconds: ((used.user + used.system) / 1e6) * (args.iterations / r.iterations!),
        mseRtn: r.mseRtn!,
        mseAdaquant: r.mseAdaquant!,
        loadAverageAtStart: load,
      });
    }
  }
  console.log(`AdaQuant, one [${ROWS} x ${K}] x [${K} x ${N}] MatMul layer, W4 g32; per layer at ${args.iterations} iterations`);
  console.log(
    table(
      ['backend', 'form', 'iterations run', 'wall s', 'CPU s', 'ms / iteration', 'per layer wall s', 'per layer CPU s', 'MSE RTN', 'MSE AdaQuant', 'load avg'],
      runs.map((r) => [
        r.backend,
        r.form,
        r.iterations,
        r.wallSeconds.toFixed(1),
        r.cpuSeconds.toFixed(1),
        r.msPerIteration.toFixed(1),
        r.projectedWallSeconds.toFixed(1),
        r.projectedCpuSeconds.toFixed(1),
        r.mseRtn.toExponential(3),
        r.mseAdaquant.toExponential(3),
        r.loadAverageAtStart.toFixed(1),
      ]),
    ),
  );
  const result = { layer: { rows: ROWS, k: K, n: N, spec: SPEC }, options: { ...DEFAULT_ADAQUANT_OPTIONS, iterations: args.iterations, gramLearningRates: GRAM_LEARNING_RATES }, runs, machine: machineFacts() };
  mkdirSync(join(REPO, 'bench', 'results'), { recursive: true });
  writeFileSync(join(REPO, 'bench', 'results', 'adaquant-cost.json'), `${JSON.stringify(result, null, 2)}\n`);
}

await main();
