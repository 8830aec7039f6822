// The weight solvers the layer-wise pipeline drives, behind one seam: given what was captured for a block
// (XᵀX per input, bounded row samples per input where the method asks for them), a WeightSolver for that block's
// weights, with a record per weight. The algorithms stay in their own modules (gptq.ts, adaquant/); this is only
// the wiring.
import type { ActivationSample } from '../../calibration/activation-samples.js';
import type { Hessian } from '../../calibration/hessian.js';
import { attrFloat, attrInt, attrInts, attrString } from '../../onnx/attributes.js';
import { GraphIndex } from '../../onnx/graph.js';
import type { OnnxModel } from '../../onnx/model.js';
import { tensorValues } from '../../onnx/tensor.js';
import type { NodeProto } from '../../onnx/types.js';
import { adaquantSolver, type AdaquantSolverOptions, type ConvAttributes, type LayerInputs } from '../adaquant/index.js';
import { tunableParameters } from '../bias-tuning.js';
import { gptqSolver, type GptqLayerRecord, type GptqOptions, type LayerHessian } from '../gptq.js';
import { weightSpec, type PlannedNode, type QuantPlan } from '../plan.js';
import type { Granularity } from '../quantizers.js';
import type { SolveRequest, WeightSolver } from '../solvers.js';

/** The weight solvers a quantize run offers: round to nearest, or a layer-wise method. */
export const QUANT_METHODS = ['rtn', 'gptq', 'adaquant'] as const;
export type QuantMethod = (typeof QUANT_METHODS)[number];
/** The methods that solve weights block by block from captured calibration inputs. */
export type LayerwiseMethodName = Exclude<QuantMethod, 'rtn'>;
export const LAYERWISE_METHODS: readonly QuantMethod[] = ['gptq', 'adaquant'] satisfies LayerwiseMethodName[];

/** What one block's capture run collected, by the activation tensor a weight multiplies. */
export interface BlockData {
  /** XᵀX of a MatMul/Gemm input, with Σ x (AdaQuant's Gram form reads the mean). */
  hessian(activation: string): Hessian | undefined;
  /** A Conv node's XᵀX over its im2col patches, one per group (calibration/conv-hessian.ts), by the node's label. */
  convHessians(node: string): readonly Hessian[] | undefined;
  samples(activation: string): ActivationSample | undefined;
  /** The float bias a node (by label) may have tuned (layerBiases); undefined when it has none of its own. */
  bias(node: string): LayerBias | undefined;
}

/** A node's own bias initializer and its float values. */
export interface LayerBias {
  name: string;
  values: Float32Array;
}

/** What a method says about one weight it solved (or left to round to nearest, with the reason). */
export type SolverRecord = Omit<GptqLayerRecord, 'solver'> & {
  solver: LayerwiseMethodName | 'rtn';
  /** AdaQuant: the TensorFlow.js backend it ran on, its steps, and whether round to nearest stayed best. */
  backend?: string;
  iterations?: number;
  keptRtn?: boolean;
  /** AdaQuant: the bias initializer whose tuned value the written model holds. */
  tunedBias?: string;
};

export interface BlockSolver extends WeightSolver {
  readonly records: readonly SolverRecord[];
  /** Tuned biases by initializer name, for the written model (AdaQuant). */
  readonly tunedBiases?: ReadonlyMap<string, Float32Array>;
}

export interface LayerwiseMethod {
  readonly name: LayerwiseMethodName;
  /** Rows of an input the solver needs as a sample, for the nodes needsSamples accepts (a Conv's items: a budget of this many x 1024 values). */
  readonly sampleRows: number;
  /** Whether a planned node needs its input sampled (absent: every node; XᵀX is collected for MatMul/Gemm/Conv whatever the method). */
  needsSamples?(p: PlannedNode): boolean;
  /** The solver of one block's weights; `nodes` finds a request's node (AdaQuant reads a Conv's attributes). */
  solver(data: BlockData, nodes: ReadonlyMap<string, NodeProto>): Promise<BlockSolver>;
}

export function gptqMethod(options: GptqOptions = {}): LayerwiseMethod {
  return { name: 'gptq', sampleRows: 0, needsSamples: () => false, solver: async (data) => gptqSolver((a, node) => data.convHessians(node) ?? data.hessian(a), options) };
}

/** Samples of a Conv's input AdaQuant tunes on, as a budget of this many x 1024 values per input. */
export const ADAQUANT_SAMPLE_ROWS = 2048;

const GRAM_OPS = new Set(['MatMul', 'Gemm']);

/**
 * Whether AdaQuant tunes a node on its input's second moments (the Gram form): MatMul/Gemm, and a one-group Conv
 * with scales per channel or tensor (its im2col patches' XᵀX); grouped Convs and blocked Conv scales tune on
 * sampled items, so only those need their input sampled.
 */
function tunesOnMoments(node: NodeProto, granularity: Granularity['kind']): boolean {
  const op = node.opType ?? '';
  return GRAM_OPS.has(op) || (op === 'Conv' && granularity !== 'block' && attrInt(node, 'group', 1) === 1);
}

/**
 * AdaQuant (adaquant/index.ts): MatMul/Gemm and one-group Convs on their input's XᵀX (the Gram form: every calibration row), other Convs on
 * sampled items. The node's own bias is tuned with the weight and handed back for the written model; the input
 * scale is not tuned, since the writers do not store it.
 */
export function adaquantMethod(options: AdaquantSolverOptions = {}, sampleRows = ADAQUANT_SAMPLE_ROWS): LayerwiseMethod {
  return {
    name: 'adaquant',
    sampleRows,
    needsSamples: (p) => !tunesOnMoments(p.target.node, weightSpec(p).granularity.kind),
    async solver(data, nodes) {
      const inner = await adaquantSolver((r) => inputsOf(r, data, nodes.get(r.node)), options);
      const records: SolverRecord[] = [];
      const tunedBiases = new Map<string, Float32Array>();
      return {
        name: 'adaquant',
        records,
        tunedBiases,
        solve(r) {
          const q = inner.solve(r);
          const a = inner.records[inner.records.length - 1];
          const bias = inner.tuned.get(r.node)?.bias;
          const own = data.bias(r.node);
          if (bias && own) tunedBiases.set(own.name, bias);
          records.push({
            node: a.node,
            weight: a.weight,
            ...(a.activation ? { activation: a.activation } : {}),
            solver: a.solver,
            ...(a.reason ? { reason: a.reason } : {}),
            ...(a.samples !== undefined ? { tokens: a.samples } : {}),
            ...(a.iterations !== undefined ? { iterations: a.iterations } : {}),
            ...(a.keptRtn !== undefined ? { keptRtn: a.keptRtn } : {}),
            ...(a.seconds !== undefined ? { seconds: a.seconds } : {}),
            ...(bias && own ? { tunedBias: own.name } : {}),
            backend: inner.backend,
          });
          return q;
        },
      };
    },
  };
}

/**
 * A request's inputs as AdaQuant takes them: a MatMul/Gemm's mean x xᵀ and mean x from the block's XᵀX, else its
 * sampled [rows, K] matrix or a Conv's batch of whole items; with the node's own float bias.
 */
function inputsOf(r: SolveRequest, data: BlockData, node: NodeProto | undefined): LayerInputs | undefined {
  if (!node || r.activation === undefined) return undefined;
  const bias = data.bias(r.node);
  const withBias = bias ? { bias: bias.values } : {};
  const gram = (h: Hessian): LayerInputs => ({ kind: 'gram', h: h.h.map((v) => v / h.rows), mean: h.sum.map((v) => v / h.rows), rows: h.rows, ...withBias });
  if (tunesOnMoments(node, r.spec.granularity.kind)) {
    const h = node.opType === 'Conv' ? data.convHessians(r.node)?.[0] : data.hessian(r.activation);
    return h && h.rows > 0 ? gram(h) : undefined;
  }
  const sample = data.samples(r.activation);
  if (!sample || sample.units.length === 0) return undefined;
  const width = sample.units[0].values.length;
  const x = new Float32Array(sample.units.length * width);
  sample.units.forEach((u, i) => x.set(u.values, i * width));
  if (sample.unit !== 'items') return { kind: 'matmul', x, rows: sample.units.length, ...withBias };
  return { kind: 'conv', x, dims: [sample.units.length, ...sample.units[0].dims], conv: convAttributes(node), ...withBias };
}

/**
 * The bias of each planned node that a layer-wise method may tune with its weight, by node label: the node's own
 * float bias as bias-tuning.ts finds it (Gemm's C, Conv's B, the Add of a 1-D initializer after a MatMul), one per
 * output channel, read by that node alone (a shared bias would change another layer too) and, on a Gemm, added
 * unscaled (alpha = beta = 1, so the tuned change is the stored one).
 */
export function layerBiases(model: OnnxModel, plan: QuantPlan): Map<string, LayerBias> {
  const index = new GraphIndex(model.graph);
  const byLabel = new Map(plan.nodes.map((p) => [p.target.label, p.target]));
  const out = new Map<string, LayerBias>();
  for (const p of tunableParameters(model, plan)) {
    const target = byLabel.get(p.node);
    if (p.kind !== 'bias' || !target || index.consumers(p.name).length !== 1) continue;
    const n = target.node;
    if (n.opType === 'Gemm' && (attrFloat(n, 'alpha', 1) !== 1 || attrFloat(n, 'beta', 1) !== 1)) continue;
    const outputs = n.opType === 'Conv' ? target.weight.dims[0] : target.weight.dims[1 - target.reductionAxis];
    if (p.size !== outputs) continue;
    const t = index.initializer(p.name)!;
    out.set(p.node, { name: p.name, values: Float32Array.from(tensorValues(t, model.rawBytes(t)).data as ArrayLike<number>) });
  }
  return out;
}

function convAttributes(node: NodeProto): ConvAttributes {
  const pads = attrInts(node, 'pads', []);
  const strides = attrInts(node, 'strides', []);
  const dilations = attrInts(node, 'dilations', []);
  return {
    ...(pads.length ? { pads } : {}),
    ...(strides.length ? { strides } : {}),
    ...(dilations.length ? { dilations } : {}),
    group: attrInt(node, 'group', 1),
    autoPad: attrString(node, 'auto_pad', 'NOTSET') as ConvAttributes['autoPad'],
  };
}
