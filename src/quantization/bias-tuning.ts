// Bias and norm tuning, CalibTIP's last step (Hubara et al. 2021, ../shared/notes/calibtip.md): once every layer
// is quantized, the biases of the quantized layers and the norms' gains (and LayerNorm biases) are trained to bring
// the quantized model's outputs back to the float model's on the calibration set — KL(float || quantized) of the
// next-token distributions for a language model, squared error on the outputs otherwise.
//
// Gradients come from the TensorFlow.js interpreter on a float copy of the model whose quantized weights hold
// their dequantized values (fake quantization: what the written MatMulNBits/QDQ weights compute, up to float
// rounding; static activation quantization is not simulated), with only those biases and gains as variables;
// Adam (src/training/optimizer.ts, no decay) steps once per calibration batch, a few epochs. Every
// `holdOutEvery`-th batch is never tuned on: it chooses the epoch to keep, and ONNX Runtime then measures the
// written model on it with the untuned and the tuned values; the tuned ones are kept only when they lower that
// loss. Tuned values replace the initializers of the same names in the written model (biases stay float; a
// MatMul without a bias gets none).
import type { CalibrationSet } from '../calibration/data/index.js';
import { klDivergence } from '../decoding/compare.js';
import { logSoftmax } from '../decoding/logits.js';
import { OnnxCompressError } from '../errors.js';
import { describeDecoder } from '../onnx/decoder-info.js';
import type * as tf from '@tensorflow/tfjs-core';
import { GraphEditor } from '../onnx/editor.js';
import { GraphIndex } from '../onnx/graph.js';
import type { OnnxModel } from '../onnx/model.js';
import { tensorValues, type DecodedTensor } from '../onnx/tensor.js';
import type { DataType, NodeProto } from '../onnx/types.js';
import type { SessionChoice } from '../passes/types.js';
import { fromOrtTensor } from '../runtime/ort-tensor.js';
import { Session, type Feeds as OrtFeeds } from '../runtime/session.js';
import { activeBackend, backendSelected, selectBackend, type BackendChoice, type BackendName } from '../runtime/tf/backend.js';
import { TfModel, type Feeds as TfFeeds, type Objective } from '../runtime/tf/interpreter.js';
import { normAt } from '../structure/norm.js';
import { graphView, projectionOf } from '../structure/projection.js';
import { AdamW, type Parameter } from '../training/optimizer.js';
import { seededRandom } from '../util/prng.js';
import { plannedActivations, type QuantPlan } from './plan.js';
import { dequantize } from './quantizers.js';
import { QuantizationError, QuantOptionError } from './schemes.js';
import { isFloatWeight } from './select.js';
import type { WeightSolver } from './solvers.js';
import { solveWeight, weightKey } from './writers/common.js';

export interface BiasTuningOptions {
  /** Passes over the tuning batches. */
  epochs?: number;
  /** Adam's step size (biases and gains alike: Adam's steps are scale-free). */
  learningRate?: number;
  /** Every this-many-th calibration batch is held out as the selection split. */
  holdOutEvery?: number;
  /** Order of the tuning batches within each epoch. */
  seed?: number;
  /** tfjs backend (default: the one already selected, else 'auto'). */
  backend?: BackendChoice;
  /** ONNX Runtime options for the float targets and the written model's check. */
  session?: SessionChoice;
  /** After each epoch: epochs done, epochs in all. */
  onEpoch?: (done: number, total: number) => void;
}

/** Chosen on tiny-llama w4 g32 (docs/figures.md, "Bias and norm tuning"). */
export const DEFAULT_BIAS_TUNING: Required<Omit<BiasTuningOptions, 'backend' | 'session' | 'onEpoch'>> = {
  epochs: 4,
  learningRate: 1e-2,
  holdOutEvery: 4,
  seed: 0,
};

export type TunedKind = 'bias' | 'norm-gain' | 'norm-bias';

/** An initializer tuning may change: a quantized layer's bias, a norm's gain or bias. */
export interface TunableParameter {
  name: string;
  kind: TunedKind;
  /** The quantized node (biases) or the norm's last node it belongs to. */
  node: string;
  size: number;
}

export interface BiasTuningReport {
  /** 'kl': KL(float || quantized) per next-token position, nats; 'mse': mean squared output difference, summed over outputs. */
  objective: 'kl' | 'mse';
  outputs: string[];
  parameters: { bias: number; normGain: number; normBias: number; values: number };
  split: { tuneBatches: number; selectionBatches: number; holdOutEvery: number };
  epochs: number;
  /** Adam steps taken (one per tuning batch per epoch). */
  iterations: number;
  learningRate: number;
  /** Mean loss on the tuning batches per epoch, from the interpreter (fake-quantized model). */
  trainLoss: number[];
  /** Loss on the selection split in the interpreter, untuned (index 0) and after each epoch. */
  selectionInterpreter: number[];
  /** The epoch whose values were carried to ONNX Runtime's check (0: none beat the untuned values). */
  bestEpoch: number;
  /** ONNX Runtime on the written model, selection split: untuned, and with the tuned values. */
  selection: { before: number; after: number };
  /** Whether the written model keeps the tuned values, or the untuned ones because tuning did not lower the selection loss. */
  kept: 'tuned' | 'untuned';
  backend: BackendName;
  seconds: number;
}

export interface BiasTuningInput {
  /** The float model the plan was made on (after constant folding): the reference, and the base of the fake-quantized copy. */
  float: OnnxModel;
  /** The model the writers produced from it with `solver`. */
  written: OnnxModel;
  plan: QuantPlan;
  solver: WeightSolver;
  set: CalibrationSet;
}

export interface BiasTuningResult {
  model: OnnxModel;
  report: BiasTuningReport | null;
  notes: string[];
}

/** Ops a norm starts with, on the value it normalises (norm.ts recognises the rest). */
const NORM_ENTRIES = new Set(['LayerNormalization', 'SimplifiedLayerNormalization', 'ReduceMean', 'Pow', 'Mul']);

/**
 * The biases of the planned MatMul/Gemm/Conv nodes (Gemm's C, Conv's B, an Add of a 1-D initializer right after
 * a MatMul) and every norm's gain and bias: float initializers, each once.
 */
export function tunableParameters(model: OnnxModel, plan: QuantPlan): TunableParameter[] {
  const index = new GraphIndex(model.graph);
  const view = graphView(model.graph, index);
  const found = new Map<string, TunableParameter>();
  const fed = new Set(model.graph.input.map((v) => v.name));
  const add = (name: string | undefined, kind: TunedKind, node: string): void => {
    const t = name ? index.initializer(name) : undefined;
    // A weight a caller may feed (an overridable initializer) is the caller's, not ours to tune.
    if (!t || !isFloatWeight(t) || found.has(name!) || fed.has(name!)) return;
    found.set(name!, { name: name!, kind, node, size: t.dims.reduce((a, b) => a * b, 1) });
  };
  for (const p of plan.nodes) {
    const n = p.target.node;
    if (n.opType === 'Conv') add(n.input[2], 'bias', p.target.label);
    else if (n.opType === 'MatMul' || n.opType === 'Gemm') add(projectionOf(view, n)?.bias, 'bias', p.target.label);
  }
  const seen = new Set<string>();
  for (const n of model.graph.node) {
    const x = n.input[0];
    if (!NORM_ENTRIES.has(n.opType ?? '') || !x || seen.has(x)) continue;
    seen.add(x);
    const norm = normAt(model, view, x);
    if (!norm) continue;
    const last = norm.nodes[norm.nodes.length - 1];
    add(norm.gain, 'norm-gain', last);
    add(norm.bias, 'norm-bias', last);
  }
  return [...found.values()];
}

/**
 * The float model with each planned weight replaced by the values the written model dequantizes it to (the
 * writers' own solveWeight, so float16 scale rounding included). A weight that something else reads too (a node
 * left in float, such as a head tied to an embedding table, or a planned node with another spec) is not replaced:
 * each planned reader gets a copy for its spec, as the writers keep the float weight beside its quantized copies.
 */
export function fakeQuantModel(model: OnnxModel, plan: QuantPlan, solver: WeightSolver): OnnxModel {
  const edit = new GraphEditor(model);
  // solveWeight marks weights superseded on the editor it is given; that bookkeeping belongs to a writer.
  const scratch = { model, edit: new GraphEditor(model), solver };
  const keyOf = new Map<NodeProto, string>(plan.nodes.map((p) => [p.target.node, weightKey(p)]));
  const outputs = new Set(model.graph.output.map((o) => o.name));
  const replaced = new Set<string>();
  const copies = new Map<string, string>(); // weightKey -> name of the copy
  for (const p of plan.nodes) {
    const t = p.target;
    const name = t.weight.name!;
    const key = weightKey(p);
    const alone = !outputs.has(name) && edit.index.consumers(name).every((n) => keyOf.get(n) === key);
    if (alone && replaced.has(name)) continue;
    let copy = copies.get(key);
    if (copy === undefined) {
      const values = dequantize(solveWeight(scratch, p).q);
      if (alone) {
        edit.replaceInitializer(name, t.weight.dataType as DataType, t.weight.dims, values);
        replaced.add(name);
        continue;
      }
      copy = edit.tensor(`${name}_fake_quant`, t.weight.dataType as DataType, t.weight.dims, values);
      copies.set(key, copy);
    }
    const node = t.node;
    edit.replace(node, [{ ...node, input: node.input.map((v, i) => (i === t.weightInput ? copy! : v)) }]);
  }
  return edit.finish().model;
}

/** Mean KL(softmax(p) || softmax(q)) over rows of `vocab` logits, in float64. */
export function meanKl(p: ArrayLike<number>, q: ArrayLike<number>, vocab: number): number {
  const rows = p.length / vocab;
  const lp = new Float64Array(vocab);
  const lq = new Float64Array(vocab);
  let sum = 0;
  for (let r = 0; r < rows; r++) {
    const at = r * vocab;
    logSoftmax(Array.prototype.slice.call(p, at, at + vocab) as number[], lp);
    logSoftmax(Array.prototype.slice.call(q, at, at + vocab) as number[], lq);
    sum += klDivergence(lp, lq);
  }
  return sum / rows;
}

/** Mean squared difference, in float64. */
export function meanSquared(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  return sum / a.length;
}

/** Output values by name, as float32, with their shapes. */
type Values = Record<string, { data: Float32Array; dims: readonly number[] }>;

const lastDim = (dims: readonly number[]): number => dims[dims.length - 1];

interface Loss {
  kind: 'kl' | 'mse';
  outputs: string[];
  /** The loss of one batch's outputs against the float model's, in float64. */
  of(target: Values, got: Values): number;
  /** The same as a tfjs scalar, for gradients. */
  objective(target: Values): Objective;
}

/** KL on the logits of a decoder language model (as verification recognises one), else MSE on every float output. */
function lossFor(model: OnnxModel): Loss {
  const outputs = model.graph.output.map((o) => o.name!);
  if (describeDecoder(model) !== null) {
    const logits = outputs.includes('logits') ? 'logits' : outputs[0];
    return {
      kind: 'kl',
      outputs: [logits],
      of: (target, got) => meanKl(target[logits].data, got[logits].data, lastDim(got[logits].dims)),
      objective: (target) => (values, ops) => {
        const vocab = lastDim(target[logits].dims);
        const rows = target[logits].data.length / vocab;
        const q = ops.logSoftmax(ops.reshape(values[logits], [rows, vocab]) as tf.Tensor2D);
        const p = ops.logSoftmax(ops.tensor2d(target[logits].data, [rows, vocab]));
        return ops.mean(ops.sum(ops.mul(ops.exp(p), ops.sub(p, q)), 1));
      },
    };
  }
  const floats = model.graph.output.filter((o) => isFloatType(o.type?.tensorType?.elemType)).map((o) => o.name!);
  return {
    kind: 'mse',
    outputs: floats,
    of: (target, got) => floats.reduce((a, n) => a + meanSquared(target[n].data, got[n].data), 0),
    objective: (target) => (values, ops) =>
      ops.addN(floats.map((n) => ops.mean(ops.squaredDifference(values[n], ops.tensor(target[n].data, [...target[n].dims]))))),
  };
}

const FLOAT_ELEMENTS = new Set<number | undefined>([1, 10, 16]); // float32, float16, bfloat16
const isFloatType = (t: number | undefined): boolean => FLOAT_ELEMENTS.has(t);

const asValues = (got: Record<string, DecodedTensor>, names: readonly string[]): Values =>
  Object.fromEntries(names.map((n) => [n, { data: got[n].data instanceof Float32Array ? got[n].data : Float32Array.from(got[n].data as ArrayLike<number>), dims: got[n].dims }]));

/** Runs a model in ONNX Runtime over batches and returns the chosen outputs. */
async function ortOutputs(model: OnnxModel, batches: readonly OrtFeeds[], names: readonly string[], session: SessionChoice): Promise<Values[]> {
  const s = await Session.create(model, session);
  try {
    const out: Values[] = [];
    for (const feeds of batches) {
      const got = await s.run(feeds, names);
      out.push(asValues(Object.fromEntries(names.map((n) => [n, fromOrtTensor(got[n], n)])), names));
    }
    return out;
  } finally {
    await s.dispose();
  }
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

function resolve(options: BiasTuningOptions): typeof DEFAULT_BIAS_TUNING {
  const o = { ...DEFAULT_BIAS_TUNING, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as typeof DEFAULT_BIAS_TUNING;
  for (const k of ['epochs', 'holdOutEvery'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < (k === 'holdOutEvery' ? 2 : 1)) throw new QuantOptionError(`bias tuning: ${k} must be an integer of at least ${k === 'holdOutEvery' ? 2 : 1}, got ${o[k]}`);
  }
  if (!(o.learningRate > 0) || !Number.isFinite(o.learningRate)) throw new QuantOptionError(`bias tuning: learningRate must be a positive number, got ${o.learningRate}`);
  return o;
}

/** Tunes the biases and norm parameters of `input.written`; returns it unchanged (report null) when it has none. */
export async function tuneBiases(input: BiasTuningInput, options: BiasTuningOptions = {}): Promise<BiasTuningResult> {
  const o = resolve(options);
  const started = performance.now();
  const { float, written, plan, solver, set } = input;
  const writtenIndex = new GraphIndex(written.graph);
  // Only what the written model still holds under the same name and shape can take a tuned value.
  const parameters = tunableParameters(float, plan).filter((p) => {
    const w = writtenIndex.initializer(p.name);
    return w !== undefined && isFloatWeight(w) && w.dims.reduce((a, b) => a * b, 1) === p.size;
  });
  if (parameters.length === 0) {
    return { model: written, report: null, notes: ['bias tuning: the quantized layers have no bias and the model no norm gain to tune: left as written'] };
  }
  const batches: OrtFeeds[] = [];
  for await (const b of set.batches()) batches.push(b);
  if (batches.length < 2) {
    throw new QuantOptionError(
      `${set.source}: --bias-tuning holds every ${o.holdOutEvery}th calibration batch out to check the tuning, but the set gives ${batches.length} batch: use more --samples or a smaller --batch`,
    );
  }
  const held = (i: number): boolean => i % o.holdOutEvery === o.holdOutEvery - 1 || (batches.length < o.holdOutEvery && i === batches.length - 1);
  const tuneIdx = batches.map((_, i) => i).filter((i) => !held(i));
  const selectIdx = batches.map((_, i) => i).filter(held);

  const loss = lossFor(float);
  const targets = await ortOutputs(float, batches, loss.outputs, options.session ?? {});
  const tfFeeds = (i: number): TfFeeds => Object.fromEntries(Object.entries(batches[i]).map(([n, t]) => [n, fromOrtTensor(t, n)]));

  const backend = options.backend === undefined && backendSelected() ? activeBackend()! : await selectBackend(options.backend ?? 'auto');
  const engine = TfModel.compile(fakeQuantModel(float, plan, solver));
  const names = parameters.map((p) => p.name);
  // Tuning starts from the written model's values (which a solver may have changed), not the float model's.
  const params = new Map<string, Parameter>(
    names.map((n) => {
      const t = writtenIndex.initializer(n)!;
      const start = { dims: [...engine.readWeight(n).dims], data: Float32Array.from(tensorValues(t, written.rawBytes(t)).data as ArrayLike<number>) };
      engine.assignWeight(n, start);
      return [n, start];
    }),
  );
  const untuned = new Map([...params].map(([n, p]) => [n, Float32Array.from(p.data)]));
  const selectionLoss = (): number => mean(selectIdx.map((i) => loss.of(targets[i], asValues(engine.run(tfFeeds(i), loss.outputs), loss.outputs))));
  const trainLoss: number[] = [];
  const selectionInterpreter: number[] = [];
  let best = { epoch: 0, loss: 0, values: untuned };
  let iterations = 0;
  try {
    best.loss = selectionLoss();
    selectionInterpreter.push(best.loss);
    const adam = new AdamW(params, { weightDecay: 0 });
    const random = seededRandom(o.seed);
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const order = shuffled(tuneIdx, random);
      const losses: number[] = [];
      for (const i of order) {
        const g = engine.gradients({ feeds: tfFeeds(i), objective: loss.objective(targets[i]), weights: names, fetches: loss.outputs });
        if (!Number.isFinite(g.objective)) {
          throw new QuantizationError(`bias tuning: the loss on calibration batch ${i} is ${g.objective} after ${iterations} steps; the float and quantized outputs cannot be compared`, 'bad-data');
        }
        losses.push(g.objective);
        adam.step(new Map(names.map((n) => [n, g.weights[n].data as Float32Array])), o.learningRate);
        for (const n of names) engine.assignWeight(n, { dims: [...params.get(n)!.dims], data: params.get(n)!.data });
        iterations++;
      }
      trainLoss.push(mean(losses));
      const s = selectionLoss();
      selectionInterpreter.push(s);
      if (s < best.loss) best = { epoch, loss: s, values: new Map([...params].map(([n, p]) => [n, Float32Array.from(p.data)])) };
      options.onEpoch?.(epoch, o.epochs);
    }
  } finally {
    engine.dispose();
  }

  const selectBatches = selectIdx.map((i) => batches[i]);
  const selectTargets = selectIdx.map((i) => targets[i]);
  const ortLoss = async (m: OnnxModel): Promise<number> => {
    const got = await ortOutputs(m, selectBatches, loss.outputs, options.session ?? {});
    return mean(got.map((g, k) => loss.of(selectTargets[k], g)));
  };
  const before = await ortLoss(written);
  const tunedModel = best.epoch > 0 ? withValues(written, best.values) : written;
  const after = best.epoch > 0 ? await ortLoss(tunedModel) : before;
  const kept = after < before ? 'tuned' : 'untuned';
  const count = (k: TunedKind): number => parameters.filter((p) => p.kind === k).length;
  const report: BiasTuningReport = {
    objective: loss.kind,
    outputs: loss.outputs,
    parameters: { bias: count('bias'), normGain: count('norm-gain'), normBias: count('norm-bias'), values: parameters.reduce((a, p) => a + p.size, 0) },
    split: { tuneBatches: tuneIdx.length, selectionBatches: selectIdx.length, holdOutEvery: o.holdOutEvery },
    epochs: o.epochs,
    iterations,
    learningRate: o.learningRate,
    trainLoss,
    selectionInterpreter,
    bestEpoch: best.epoch,
    selection: { before, after },
    kept,
    backend,
    seconds: (performance.now() - started) / 1000,
  };
  const notes: string[] = [];
  if (kept === 'untuned') {
    notes.push(
      best.epoch === 0
        ? `bias tuning: no epoch lowered the held-out selection loss in the interpreter (${best.loss.toExponential(3)}): the untuned values are kept`
        : `bias tuning: the tuned values raised the held-out selection loss in ONNX Runtime (${before.toExponential(3)} -> ${after.toExponential(3)}): the untuned values are kept`,
    );
  }
  if (plannedActivations(plan).length) notes.push('bias tuning simulated the quantized weights only, not the static activation quantization');
  return { model: kept === 'tuned' ? tunedModel : written, report, notes };
}

/** `model` with these initializers' values replaced, each in its own element type. */
export function withValues(model: OnnxModel, values: ReadonlyMap<string, Float32Array>): OnnxModel {
  const edit = new GraphEditor(model);
  for (const [name, v] of values) {
    const t = edit.index.initializer(name);
    if (!t) throw new OnnxCompressError('bad-model', `${model.source}: no initializer '${name}' for its tuned value`);
    edit.replaceInitializer(name, t.dataType as DataType, t.dims, v);
  }
  return edit.finish().model;
}

/** A seeded Fisher-Yates shuffle (a new array). */
function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
