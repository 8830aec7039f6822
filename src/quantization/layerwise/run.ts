// The layer-wise pipeline: the plan's weight nodes in blocks (blocks.ts), solved one block at a time in
// topological order by a layer-wise method (methods.ts) from that block's inputs on the calibration set,
// captured with ONNX Runtime (capture-model.ts) from the float model (parallel) or from the model whose earlier
// blocks already hold their solved weights (sequential, the CalibTIP and GPTQ default). Each block streams the
// set once and keeps only its own accumulators (XᵀX per input, a bounded seeded row sample where the method
// needs one), so memory is one block's activations and accumulators plus the weights, however deep the model.
// The result is a solver that hands the rewriters the codes found here.
import { ActivationSampler, type ActivationSample, type SampleRequest } from '../../calibration/activation-samples.js';
import { collectStatistics, type ActivationAccumulator } from '../../calibration/collect.js';
import type { CalibrationSet } from '../../calibration/data/index.js';
import { ConvHessianAccumulator } from '../../calibration/conv-hessian.js';
import { HessianAccumulator, type Hessian, type HessianRequest } from '../../calibration/hessian.js';
import type { OnnxModel } from '../../onnx/model.js';
import type { NodeProto } from '../../onnx/types.js';
import type { SessionChoice } from '../../passes/types.js';
import type { DecoderStructure } from '../../structure/decoder-structure.js';
import { sampleUnitOf } from '../clip-auto.js';
import { DEFAULT_PERCDAMP, hessiansFor, layerError, type WeightHessians } from '../gptq.js';
import type { PlannedNode, QuantPlan } from '../plan.js';
import { dequantize, type Quantized } from '../quantizers.js';
import { roundToNearest, type SolveRequest, type WeightSolver } from '../solvers.js';
import { solveRequest, weightKey } from '../writers/common.js';
import type { PlannedActivationQuant } from '../writers/qdq.js';
import { findBlocks, type Block, type BlockGrouping } from './blocks.js';
import { captureModel, renamedAccumulator, type ActivationScope, type FakeQuantWeight } from './capture-model.js';
import { layerBiases, type LayerwiseMethod, type SolverRecord } from './methods.js';
import { CaptureWatch } from './watch.js';

export type LayerwiseMode = 'sequential' | 'parallel';

export interface LayerwiseOptions {
  method: LayerwiseMethod;
  mode: LayerwiseMode;
  session?: SessionChoice;
  /** Seed of the row samples (AdaQuant). */
  seed?: number;
  /** The decoder structure, when discovery recognised the graph: its layers are the blocks. */
  structure?: DecoderStructure;
  /** Why discovery did not give one, for the report. */
  structureNote?: string;
  /**
   * Static schemes: the activations the written model quantizes (plannedActivationQuant in writers/qdq.ts, from the
   * ranges the quantize pass computes first), simulated in the captures so that XᵀX is that of the inputs as deployed.
   */
  activationQuant?: ReadonlyMap<string, PlannedActivationQuant>;
  /**
   * Where to simulate them (capture-model.ts): 'graph' (every quantized reader upstream too; the sequential default)
   * or 'inputs' (only the captured block inputs, from the float graph; the parallel default).
   */
  activationScope?: ActivationScope;
  /** After each block: blocks done, blocks in all, the block's name. */
  onBlock?: (done: number, total: number, block: string) => void;
}

/** One weight: the method's record, its block, and the output error before and after on the block's inputs. */
export type LayerRecord = SolverRecord & {
  block: string;
  /**
   * Mean squared error of the layer's output, per output value, on every calibration token of its captured input
   * (tr((W-Q) XᵀX (W-Q)ᵀ) / (tokens x outputs)): with round-to-nearest codes, and with the method's.
   */
  errorBefore?: number;
  errorAfter?: number;
};

export interface LayerwiseSummary {
  method: LayerwiseMethod['name'];
  mode: LayerwiseMode;
  grouping: BlockGrouping['from'];
  blocks: { name: string; nodes: number; seconds: number }[];
  /**
   * Largest memory any block's capture held at once, in bytes: one batch of captured activations plus the
   * method's accumulators (XᵀX, row samples). Weights are not counted.
   */
  peakCapturedBytes: number;
  /** The TensorFlow.js backend AdaQuant ran on. */
  backend?: string;
  /** Static schemes: activation quantization was simulated in the captures, where, and on how many tensors. */
  activations?: { simulated: true; scope: ActivationScope; tensors: number };
  seconds: number;
}

export interface LayerwiseResult {
  /** Hands the rewriters the codes solved here (round to nearest for any weight the pipeline did not see). */
  solver: WeightSolver;
  records: LayerRecord[];
  summary: LayerwiseSummary;
  notes: string[];
  /** Biases the method tuned with their weights (AdaQuant), by initializer name: the written model holds these values. */
  tunedBiases: Map<string, Float32Array>;
}

export async function solveLayerwise(model: OnnxModel, plan: QuantPlan, set: CalibrationSet, options: LayerwiseOptions): Promise<LayerwiseResult> {
  const started = performance.now();
  const { method, mode } = options;
  const grouping = findBlocks(model, plan, options.structure);
  const solved = new Map<string, Quantized>();
  const replaced = new Map<string, FakeQuantWeight>();
  const biases = layerBiases(model, plan);
  const tunedBiases = new Map<string, Float32Array>();
  const records: LayerRecord[] = [];
  const notes: string[] = [];
  if (options.structureNote && grouping.from !== 'decoder') notes.push(`layer-wise ${method.name}: blocks from the graph's ${grouping.from === 'residual' ? 'residual Adds' : 'nodes'}: ${options.structureNote}`);
  const remember = (p: PlannedNode, r: SolveRequest, q: Quantized): void => {
    solved.set(weightKey(p), q);
    if (mode === 'sequential') replaced.set(r.weight, { dtype: p.target.weight.dataType!, dims: r.dims, values: dequantize(q) });
  };
  // Embedding lookups are rounded to nearest, before everything they feed.
  for (const p of plan.nodes) {
    if (p.plan.format !== 'gather-block' || solved.has(weightKey(p))) continue;
    const r = solveRequest(model, p);
    remember(p, r, roundToNearest.solve(r));
  }
  const summary: LayerwiseSummary = { method: method.name, mode, grouping: grouping.from, blocks: [], peakCapturedBytes: 0, seconds: 0 };
  if (options.activationQuant?.size) summary.activations = { simulated: true, scope: activationScope(options), tensors: options.activationQuant.size };
  const blocks = grouping.blocks;
  for (const [i, block] of blocks.entries()) {
    const t = performance.now();
    const data = await captureBlock(model, block, blocks[i - 1], set, replaced, options);
    summary.peakCapturedBytes = Math.max(summary.peakCapturedBytes, data.bytes);
    const nodes = new Map<string, NodeProto>(block.nodes.map((p) => [p.target.label, p.target.node]));
    const solver = await method.solver({ ...data, bias: (node) => biases.get(node) }, nodes);
    for (const p of block.nodes) {
      if (solved.has(weightKey(p))) continue; // a weight shared with an earlier node is solved once
      const r = solveRequest(model, p);
      const q = solver.solve(r);
      remember(p, r, q);
      const own = solver.records[solver.records.length - 1];
      // GPTQ measured the same figures on the same XᵀX (summed over tokens): reused, not recomputed.
      const errors =
        own.errorRtn !== undefined && own.errorGptq !== undefined && own.tokens
          ? { errorBefore: own.errorRtn / own.tokens, errorAfter: own.errorGptq / own.tokens }
          : outputErrors(r, q, data.convHessians(p.target.label) ?? data.hessian(p.target.activation));
      records.push({ ...own, block: block.name, ...errors });
    }
    for (const [name, values] of solver.tunedBiases ?? []) {
      tunedBiases.set(name, values);
      // Later blocks are captured with the bias the written model will hold, as with the weights.
      const t = model.graph.initializer.find((i) => i.name === name)!;
      if (mode === 'sequential') replaced.set(name, { dtype: t.dataType!, dims: t.dims, values });
    }
    notes.push(...hessianNotes(method.name, block, data.hessians, records));
    summary.blocks.push({ name: block.name, nodes: block.nodes.length, seconds: (performance.now() - t) / 1000 });
    options.onBlock?.(i + 1, blocks.length, block.name);
  }
  summary.seconds = (performance.now() - started) / 1000;
  const backend = records.find((r) => r.backend)?.backend;
  if (backend) summary.backend = backend;
  return {
    solver: { name: method.name, solve: (r) => solved.get(`${r.weight}\u0000${JSON.stringify(r.spec)}`) ?? roundToNearest.solve(r) },
    records,
    summary,
    notes,
    tunedBiases,
  };
}

interface CapturedBlock {
  hessian(activation: string): ReturnType<HessianAccumulator['get']>;
  samples(activation: string): ActivationSample | undefined;
  /** A Conv node's XᵀX over its im2col patches, one per group, by the node's label. */
  convHessians(node: string): Hessian[] | undefined;
  hessians: HessianAccumulator;
  bytes: number;
}

/** Streams the set once through the capture model of one block and keeps what its method needs. */
async function captureBlock(
  model: OnnxModel,
  block: Block,
  previous: Block | undefined,
  set: CalibrationSet,
  replaced: ReadonlyMap<string, FakeQuantWeight>,
  options: LayerwiseOptions,
): Promise<CapturedBlock> {
  const { method, mode } = options;
  const hessianRequests: HessianRequest[] = block.nodes
    .filter((p) => p.target.op === 'MatMul' || p.target.op === 'Gemm')
    .map((p) => ({ tensor: p.target.activation, unit: sampleUnitOf(p.target.node) === 'columns' ? 'columns' : 'rows' }));
  const hessians = new HessianAccumulator(hessianRequests);
  const convs = block.nodes.filter((p) => p.target.op === 'Conv');
  const convHessians = new ConvHessianAccumulator(convs.map((p) => ({ key: p.target.label, node: p.target.node, weightDims: p.target.weight.dims })));
  const sampleRequests: SampleRequest[] = method.sampleRows > 0 ? block.nodes.filter((p) => method.needsSamples?.(p) ?? true).map((p) => ({ tensor: p.target.activation, unit: sampleUnitOf(p.target.node) })) : [];
  // Rows are sampled by count; a Conv's whole items by a budget of values (an image is far wider than a row).
  const rows = new ActivationSampler(sampleRequests.filter((r) => r.unit !== 'items'), { minUnits: Math.max(1, method.sampleRows), maxValues: 1, batches: Infinity, seed: options.seed ?? 0 });
  const items = new ActivationSampler(sampleRequests.filter((r) => r.unit === 'items'), { maxValues: Math.max(1, method.sampleRows) * 1024, minUnits: 8, batches: Infinity, seed: options.seed ?? 0 });
  const inputs = [...new Set(block.nodes.map((p) => p.target.activation))];
  const readers = new Map(block.nodes.map((p) => [p.target.activation, p.target.label]));
  const earlier = mode === 'sequential' ? ', computed with the earlier blocks quantized' : '';
  const watch = new CaptureWatch([...inputs, ...(previous?.output ? [previous.output] : [])], (tensor, value) =>
    tensor === previous?.output
      ? `${model.source}: layer-wise ${method.name}: block '${previous.name}': ${value} in its output '${tensor}'${mode === 'sequential' ? ' with its weights quantized' : ''} on the calibration set`
      : `${model.source}: layer-wise ${method.name}: block '${block.name}': ${value} in its input '${tensor}' (read by node ${readers.get(tensor)})${earlier} on the calibration set`,
  );
  const accumulators: ActivationAccumulator[] = [watch, ...(hessians.targets.length ? [hessians] : []), ...(convHessians.targets.length ? [convHessians] : []), ...[rows, items].filter((s) => s.targets.length > 0)];
  const activations = options.activationQuant?.size ? { quant: options.activationQuant, scope: activationScope(options) } : undefined;
  const capture = captureModel(model, watch.targets, mode === 'sequential' ? replaced : new Map(), activations);
  await collectStatistics(capture.model, set, { observe: 'none', accumulators: accumulators.map((a) => renamedAccumulator(a, capture.captured)), session: options.session ?? {} });
  const samples = new Map<string, ActivationSample>();
  for (const s of [...rows.samples(), ...items.samples()]) samples.set(s.tensor, s);
  let held = 0;
  for (const tensor of hessians.targets) for (const unit of ['rows', 'columns'] as const) held += (hessians.get(tensor, unit)?.h.byteLength ?? 0);
  for (const s of samples.values()) for (const u of s.units) held += u.values.byteLength;
  held += convHessians.bytes;
  return {
    hessian: (a) => hessians.get(a) ?? hessians.get(a, 'columns'),
    samples: (a) => samples.get(a),
    convHessians: (node) => convHessians.get(node),
    hessians,
    bytes: watch.peakBatchBytes + held,
  };
}

function activationScope(options: LayerwiseOptions): ActivationScope {
  return options.activationScope ?? (options.mode === 'sequential' ? 'graph' : 'inputs');
}

/** Output errors of RTN's and the method's codes, from the block's XᵀX (a Conv's per group); none without one. */
function outputErrors(r: SolveRequest, q: Quantized, found: WeightHessians | undefined): { errorBefore?: number; errorAfter?: number } {
  const groups = hessiansFor(r, found);
  if (typeof groups === 'string' || groups[0].rows === 0) return {};
  const per = groups[0].rows; // layerError divides by the output channels already
  const h = groups.map((g) => g.h);
  return {
    errorBefore: layerError(r.values, dequantize(roundToNearest.solve(r)), r.dims, r.reductionAxis, h) / per,
    errorAfter: layerError(r.values, dequantize(q), r.dims, r.reductionAxis, h) / per,
  };
}

/** Warnings for inputs with fewer calibration tokens than their width, and for Hessians that needed more damping. */
function hessianNotes(method: string, block: Block, hessians: HessianAccumulator, records: readonly LayerRecord[]): string[] {
  const notes: string[] = [];
  const mine = records.filter((r) => r.block === block.name);
  for (const tensor of hessians.targets) {
    const h = hessians.get(tensor) ?? hessians.get(tensor, 'columns');
    if (!h) continue;
    const damped = mine.filter((r) => r.activation === tensor && r.percdamp !== undefined).map((r) => r.percdamp!);
    const damping = damped.length ? `; damped by ${Math.max(...damped)} of its mean diagonal` : '';
    if (h.rows < h.k) {
      notes.push(
        `layer-wise ${method}: block '${block.name}': input '${tensor}' has ${h.rows} calibration tokens for ${h.k} inputs: its Hessian is rank-deficient${damping}; give more --samples or a longer --seq-len`,
      );
    } else if (damped.some((d) => d > DEFAULT_PERCDAMP)) {
      notes.push(`layer-wise ${method}: block '${block.name}': the Hessian of input '${tensor}' is not positive definite at ${DEFAULT_PERCDAMP} damping${damping}`);
    }
  }
  return notes;
}
