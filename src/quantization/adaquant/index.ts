// AdaQuant (Hubara, Nahshan, Hanani, Banner, Soudry, "Improving Post Training Neural Quantization: Layer-wise
// Calibration and Integer Programming", ICML 2021) as a weight solver: per layer, Adam on
// || Q(W') Q_x(X) + b' - (W X + b) ||^2 over the continuous weights W' (straight-through rounding), the bias, the
// weight scales and, for static schemes, the input's scale, starting from round-to-nearest, on the layer's
// captured inputs. The gradients are TensorFlow.js's, on the backend src/runtime/tf/backend.ts selected.
//
// API (what the layer-wise pipeline calls):
//   adaquantSolver(inputsFor, options) -> Promise<AdaquantSolver>
//       selects the tfjs backend (options.backend, default 'auto'), then returns a WeightSolver. Its solve(request)
//       asks inputsFor(request) for the layer's LayerInputs: for MatMul/Gemm (and a one-group Conv, on its im2col
//       patches) { kind: 'gram', h: mean x xᵀ (K x K), mean: mean x, rows } (gram-problem.ts: every calibration row,
//       full-batch Adam) or { kind: 'matmul',
//       x: [rows, K] row-major, rows } (mini-batches of captured rows), or for Conv { kind: 'conv', x: NCHW batch,
//       dims, conv: { strides, pads, dilations, group, autoPad } }; optionally `bias` (the node's float bias,
//       tuned) and, row forms only, `activation` (the input's static quantization { scale, zeroPoint, qmin, qmax },
//       whose scale is tuned). Undefined -> round to nearest, and
//       the record says why. solve returns exactly the Quantized round-to-nearest returns for the spec (same
//       dims, spec, paramDims, zero points; codes and scales tuned), so the rewriters store it unchanged.
//       After solve, solver.tuned.get(request.node) holds the tuned bias and input scale for the writer to store,
//       and solver.records one AdaquantLayerRecord per request (MSE before/after, iterations, seconds, backend).
//   adaquantLayer(request, inputs, options) -> AdaquantLayerResult
//       the same for one layer, synchronous; needs selectBackend() to have run.
//   DEFAULT_ADAQUANT_OPTIONS / REFERENCE_HYPERPARAMETERS: what runs by default, and the reference code's values.
//
// The result is never worse than round-to-nearest on the captured inputs: candidates are scored every
// `evalEvery` iterations on every captured sample, with the weight dequantized as the written model will hold
// it, and the best one (round-to-nearest included) is returned; record.keptRtn says when nothing beat it.
import * as tf from '@tensorflow/tfjs-core';
import { OnnxCompressError } from '../../errors.js';
import { activeBackend, backendSelected, selectBackend, type BackendChoice, type BackendName } from '../../runtime/tf/backend.js';
import { seededRandom } from '../../util/prng.js';
import { codeRange, type Quantized } from '../quantizers.js';
import { QuantizationError, QuantOptionError } from '../schemes.js';
import { roundToNearest, type SolveRequest, type WeightSolver } from '../solvers.js';
import { Adam } from './adam.js';
import { GramProblem } from './gram-problem.js';
import type { AdaquantProblem, Candidate, LearningRates } from './parameters.js';
import { LayerProblem, type LayerInputs } from './problem.js';

export type { ActivationQuant, ConvAttributes, LayerInputs, LearningRates } from './problem.js';

export interface AdaquantOptions {
  /** Adam steps per layer. */
  iterations?: number;
  /** Samples per step in the row forms: rows (tokens) for MatMul/Gemm, images for Conv; all when there are fewer. The Gram form uses every row. */
  batchSize?: number;
  /** Per parameter group; 0 freezes a group. Units: see problem.ts (scale-free). */
  learningRates?: Partial<LearningRates>;
  /** Seed of the mini-batch draws: the same seed, inputs and backend give the same bytes. */
  seed?: number;
  /** Score the current candidate on every sample each this many steps (and after the last). */
  evalEvery?: number;
  /** Learning-rate schedule over the run: constant, or cosine annealing to zero. */
  schedule?: 'constant' | 'cosine';
}

export interface AdaquantSolverOptions extends AdaquantOptions {
  /** tfjs backend to run on (default 'auto': tensorflow, wasm, cpu, the first that loads). */
  backend?: BackendChoice;
}

/**
 * The reference code's hyper-parameters, in its own units (absolute weight and range values in PyTorch):
 * weights lr 1e-5, bias 1e-3, weight range/min 1e-3, activation range/min 1e-1, 1000 iterations, batches of 50.
 */
export const REFERENCE_HYPERPARAMETERS = {
  learningRates: { weights: 1e-5, bias: 1e-3, scales: 1e-3, activation: 1e-1 },
  iterations: 1000,
  batchSize: 50,
} as const;

/**
 * What runs by default: the row form's values (mini-batches of captured rows or images: Conv, and the row form's
 * MatMul), tuned on the byte-level LLaMA's MLP layer (docs/figures.md, "AdaQuant cost per layer"). The Gram form
 * takes GRAM_LEARNING_RATES instead for the rates the caller leaves unset.
 */
export const DEFAULT_ADAQUANT_OPTIONS: Required<AdaquantOptions> = {
  iterations: 500,
  batchSize: 256,
  learningRates: { weights: 3e-3, bias: 1e-3, scales: 1e-3, activation: 1e-2 },
  seed: 0,
  evalEvery: 25,
  schedule: 'cosine',
};

/**
 * The Gram form's rates (full-batch Adam: no mini-batch noise, so larger steps pay), chosen on 10 tiny-llama W3 g32
 * layers (layer 1, layer 3's o_proj and down_proj, lm_head; XᵀX of 32 x 128 prose tokens, judged on held-out prose
 * and code XᵀX, geometric means of the output error over round to nearest's): weights 1e-2 and scales 3e-3 give
 * 0.16 (held-out prose) and 0.30 (code), against 0.19 and 0.33 with the row form's 3e-3 / 1e-3 and 0.18 / 0.32 with
 * weights 3e-2; 1000 steps gain 2% on prose and lose on code, 300 lose 7%. The bias rate (tiny-llama has no
 * biases) is the row form's, not retuned. The same rates make the row form's mini-batch runs on small Conv layers
 * settle on round to nearest, hence two sets.
 */
export const GRAM_LEARNING_RATES: LearningRates = { ...(DEFAULT_ADAQUANT_OPTIONS.learningRates as LearningRates), weights: 1e-2, scales: 3e-3 };

export interface AdaquantLayerRecord {
  node: string;
  weight: string;
  activation?: string;
  solver: 'adaquant' | 'rtn';
  /** Why round to nearest was used instead (no inputs, a layer kind AdaQuant does not take). */
  reason?: string;
  /** Captured samples (rows or images) the layer was tuned on. */
  samples?: number;
  iterations?: number;
  /** Mean squared output error on the captured samples: round to nearest, and what is returned. */
  mseRtn?: number;
  mseAdaquant?: number;
  /** Nothing AdaQuant found beat round to nearest, so its codes are returned. */
  keptRtn?: boolean;
  /** The step whose candidate is returned (0: round to nearest). */
  bestIteration?: number;
  seconds?: number;
  backend?: BackendName;
}

/** What the writer stores besides the codes: the tuned bias and input scale, where they were tuned. */
export interface AdaquantTuned {
  bias?: Float32Array;
  activationScale?: number;
}

export interface AdaquantLayerResult extends AdaquantTuned {
  q: Quantized;
  record: AdaquantLayerRecord;
}

export interface AdaquantSolver extends WeightSolver {
  readonly records: AdaquantLayerRecord[];
  /** By node label, for the nodes whose bias or input scale was tuned. */
  readonly tuned: Map<string, AdaquantTuned>;
  readonly backend: BackendName;
}

function resolveOptions(o: AdaquantOptions, form: 'rows' | 'gram' = 'rows'): Required<AdaquantOptions> & { learningRates: LearningRates } {
  const d = DEFAULT_ADAQUANT_OPTIONS;
  const rates = form === 'gram' ? GRAM_LEARNING_RATES : (d.learningRates as LearningRates);
  const out = {
    iterations: o.iterations ?? d.iterations,
    batchSize: o.batchSize ?? d.batchSize,
    learningRates: { ...rates, ...o.learningRates },
    seed: o.seed ?? d.seed,
    evalEvery: o.evalEvery ?? d.evalEvery,
    schedule: o.schedule ?? d.schedule,
  };
  if (out.schedule !== 'constant' && out.schedule !== 'cosine') throw new QuantOptionError(`AdaQuant: schedule must be 'constant' or 'cosine', got '${String(out.schedule)}'`);
  const positive = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new QuantOptionError(`AdaQuant: ${name} must be a positive integer, got ${v}`);
  };
  if (out.iterations !== 0) positive('iterations', out.iterations);
  positive('batchSize', out.batchSize);
  positive('evalEvery', out.evalEvery);
  for (const [k, v] of Object.entries(out.learningRates)) {
    if (!(v >= 0) || !Number.isFinite(v)) throw new QuantOptionError(`AdaQuant: learning rate '${k}' must be a finite number >= 0, got ${v}`);
  }
  return out;
}

const isFinite32 = (a: ArrayLike<number>): boolean => {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
};

/** One-line errors for inputs that cannot be tuned on, naming the node. */
function check(r: SolveRequest, inputs: LayerInputs): { outputs: number } {
  const where = `node ${r.node}: AdaQuant`;
  if (!isFinite32(r.values)) throw new QuantizationError(`${where}: its weight '${r.weight}' holds NaN or infinity`);
  const input = `its captured input${r.activation ? ` '${r.activation}'` : ''}`;
  const k = r.dims[r.reductionAxis];
  let outputs: number;
  if (inputs.kind === 'gram') {
    if (r.dims.length !== 2) throw new QuantizationError(`${where}: a MatMul/Gemm weight must be 2-D, got [${r.dims.join(', ')}]`, 'bad-data');
    if (inputs.activation) throw new QuantizationError(`${where}: input-scale tuning needs ${input} as rows; the Gram form (mean x xᵀ) cannot quantize its input`, 'bad-option');
    if (!(inputs.rows > 0) || inputs.h.length !== k * k || inputs.mean.length !== k) {
      throw new QuantizationError(`${where}: the second moments of ${input} (${inputs.h.length} and ${inputs.mean.length} values over ${inputs.rows} rows) do not fit a reduction width of ${k}`, 'bad-data');
    }
    if (!isFinite32(inputs.h) || !isFinite32(inputs.mean)) throw new QuantizationError(`${where}: the second moments of ${input} hold NaN or infinity`, 'bad-data');
    outputs = r.dims[1 - r.reductionAxis];
  } else if (!isFinite32(inputs.x)) {
    throw new QuantizationError(`${where}: ${input} holds NaN or infinity`, 'bad-data');
  } else if (inputs.kind === 'matmul') {
    if (r.dims.length !== 2) throw new QuantizationError(`${where}: a MatMul/Gemm weight must be 2-D, got [${r.dims.join(', ')}]`, 'bad-data');
    if (!(inputs.rows > 0) || inputs.x.length !== inputs.rows * k) {
      throw new QuantizationError(`${where}: ${input} holds ${inputs.x.length} values, not ${inputs.rows} rows of ${k}`, 'bad-data');
    }
    outputs = r.dims[1 - r.reductionAxis];
  } else {
    const group = inputs.conv.group ?? 1;
    const d = inputs.dims;
    if (r.dims.length < 3 || r.reductionAxis !== 1 || d.length !== r.dims.length || d[1] !== k * group || d[0] < 1) {
      throw new QuantizationError(`${where}: ${input} of shape [${d.join(', ')}] does not fit a Conv weight [${r.dims.join(', ')}] in ${group} group(s)`, 'bad-data');
    }
    if (inputs.x.length !== d.reduce((a, b) => a * b, 1)) throw new QuantizationError(`${where}: ${input} holds ${inputs.x.length} values for shape [${d.join(', ')}]`, 'bad-data');
    outputs = r.dims[0];
  }
  if (inputs.bias) {
    if (inputs.bias.length !== outputs) throw new QuantizationError(`${where}: its bias holds ${inputs.bias.length} values for ${outputs} output channels`);
    if (!isFinite32(inputs.bias)) throw new QuantizationError(`${where}: its bias holds NaN or infinity`);
  }
  const a = inputs.activation;
  if (a && !(Number.isFinite(a.scale) && a.scale > 0 && a.qmin < a.qmax && a.zeroPoint >= a.qmin && a.zeroPoint <= a.qmax)) {
    throw new QuantizationError(`${where}: the input quantization (scale ${a.scale}, zero point ${a.zeroPoint}, codes ${a.qmin}..${a.qmax}) is not usable`, 'bad-data');
  }
  return { outputs };
}

/** `size` distinct sample indices out of `count` (a partial Fisher-Yates shuffle of a seeded stream), sorted. */
function drawBatch(random: () => number, pool: Int32Array, size: number): Int32Array {
  const n = pool.length;
  for (let i = 0; i < size; i++) {
    const j = i + Math.floor(random() * (n - i));
    const t = pool[i];
    pool[i] = pool[j];
    pool[j] = t;
  }
  return pool.slice(0, size).sort();
}

/**
 * A Conv weight [O, C, k1, ...] in Gram form: the 2-D problem [O, K] (K = C x kernel size, its stored layout) on
 * the second moments of the input's im2col patches (calibration/conv-hessian.ts). One group only (a grouped Conv's
 * outputs each read their own group's patches) and scales per channel or per tensor, whose layout does not depend
 * on the weight's rank; the codes come back in the Conv's own dims.
 */
function convAsMatrix(r: SolveRequest, inputs: LayerInputs & { kind: 'gram' }, options: AdaquantOptions): AdaquantLayerResult {
  const g = r.spec.granularity;
  if (r.reductionAxis !== 1 || g?.kind === 'block' || (g?.kind === 'channel' && g.axis !== 0)) {
    throw new QuantizationError(`node ${r.node}: AdaQuant: the Gram form takes a Conv weight reducing over axis 1 with scales per output channel or per tensor`, 'bad-option');
  }
  const k = r.dims.slice(1).reduce((a, b) => a * b, 1);
  const res = adaquantLayer({ ...r, dims: [r.dims[0], k], reductionAxis: 1, channelAxis: 0 }, inputs, options);
  return { ...res, q: { ...res.q, dims: [...r.dims] } };
}

/** AdaQuant on one layer; the tfjs backend must be selected (selectBackend). */
export function adaquantLayer(r: SolveRequest, inputs: LayerInputs, options: AdaquantOptions = {}): AdaquantLayerResult {
  if (inputs.kind === 'gram' && r.dims.length > 2) return convAsMatrix(r, inputs, options);
  const o = resolveOptions(options, inputs.kind === 'gram' ? 'gram' : 'rows');
  if (!backendSelected()) throw new OnnxCompressError('runtime', `node ${r.node}: AdaQuant needs a TensorFlow.js backend: call selectBackend() first`);
  const { outputs } = check(r, inputs);
  const started = performance.now();
  const rtn = roundToNearest.solve(r);
  // Codes stay where round to nearest can put them: the narrow range for 'onnx' symmetric (ORT's quantizers never
  // write -128), the full range otherwise.
  const narrow = rtn.spec.convention === 'onnx' && rtn.spec.symmetric;
  const { qmin, qmax } = codeRange(rtn.spec.bits, rtn.spec.signed, narrow);
  const shape = { dims: r.dims, reductionAxis: r.reductionAxis, outputs };
  const problem: AdaquantProblem = inputs.kind === 'gram' ? new GramProblem(shape, r.values, rtn, inputs, qmin, qmax) : new LayerProblem(shape, r.values, rtn, inputs, qmin, qmax);
  const optimizers: Adam[] = [];
  try {
    const start: Candidate = { q: rtn, ...(inputs.bias ? { bias: inputs.bias } : {}), ...(inputs.activation ? { activationScale: inputs.activation.scale } : {}) };
    const mseRtn = problem.error(start);
    if (!Number.isFinite(mseRtn) || !Number.isFinite(problem.meanSquare)) {
      throw new QuantizationError(`node ${r.node}: AdaQuant: its output on the captured input${r.activation ? ` '${r.activation}'` : ''} overflows float32`, 'bad-data');
    }
    let best = { candidate: start, error: mseRtn, iteration: 0 };
    const params = problem.params.trainable(o.learningRates);
    const steps = params.map((p) => new Adam(p.variable, p.rate));
    optimizers.push(...steps);
    const random = seededRandom(o.seed);
    const pool = problem.minibatches ? Int32Array.from({ length: problem.count }, (_, i) => i) : new Int32Array(0);
    const batchSize = problem.minibatches ? Math.min(o.batchSize, problem.count) : problem.count;
    const iterations = steps.length > 0 && mseRtn > 0 ? o.iterations : 0;
    for (let it = 1; it <= iterations; it++) {
      const indices = batchSize < problem.count ? drawBatch(random, pool, batchSize) : undefined;
      const factor = o.schedule === 'cosine' ? 0.5 * (1 + Math.cos((Math.PI * (it - 1)) / iterations)) : 1;
      tf.tidy(() => {
        const batch = indices ? tf.tensor1d(indices, 'int32') : undefined;
        const { grads } = tf.variableGrads(() => problem.loss(batch), steps.map((s) => s.variable));
        for (const s of steps) s.step(grads[s.variable.name], factor);
      });
      if (it % o.evalEvery === 0 || it === iterations) {
        const candidate = problem.params.candidate();
        const error = problem.error(candidate);
        if (error < best.error) best = { candidate, error, iteration: it };
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const record: AdaquantLayerRecord = {
      node: r.node,
      weight: r.weight,
      ...(r.activation ? { activation: r.activation } : {}),
      solver: 'adaquant',
      samples: problem.count,
      iterations,
      mseRtn,
      mseAdaquant: best.error,
      keptRtn: best.iteration === 0,
      bestIteration: best.iteration,
      seconds,
      backend: activeBackend()!,
    };
    const c = best.candidate;
    return {
      q: c.q,
      ...(c.bias && best.iteration > 0 ? { bias: c.bias } : {}),
      ...(c.activationScale !== undefined && best.iteration > 0 ? { activationScale: c.activationScale } : {}),
      record,
    };
  } finally {
    for (const opt of optimizers) opt.dispose();
    problem.dispose();
  }
}

/** The 'adaquant' weight solver over the captured inputs `inputsFor` gives per request. */
export async function adaquantSolver(inputsFor: (request: SolveRequest) => LayerInputs | undefined, options: AdaquantSolverOptions = {}): Promise<AdaquantSolver> {
  const { backend: choice, ...layerOptions } = options;
  resolveOptions(layerOptions);
  const backend = choice === undefined && backendSelected() ? activeBackend()! : await selectBackend(choice ?? 'auto');
  const records: AdaquantLayerRecord[] = [];
  const tuned = new Map<string, AdaquantTuned>();
  return {
    name: 'adaquant',
    records,
    tuned,
    backend,
    solve(r) {
      const inputs = inputsFor(r);
      if (!inputs) {
        records.push({ node: r.node, weight: r.weight, ...(r.activation ? { activation: r.activation } : {}), solver: 'rtn', reason: `no captured inputs for ${r.activation ?? 'its input'}` });
        return roundToNearest.solve(r);
      }
      const res = adaquantLayer(r, inputs, layerOptions);
      records.push(res.record);
      if (res.bias || res.activationScale !== undefined) {
        tuned.set(r.node, { ...(res.bias ? { bias: res.bias } : {}), ...(res.activationScale !== undefined ? { activationScale: res.activationScale } : {}) });
      }
      return res.q;
    },
  };
}
