// The weight solvers the layer-wise pipeline drives, behind one seam: given what was captured for a block
// (XᵀX per input, bounded row samples per input), a WeightSolver for that block's weights, with a record per
// weight. The algorithms stay in their own modules (gptq.ts, adaquant.ts); this is only the wiring.
import type { ActivationSample } from '../../calibration/activation-samples.js';
import { attrInt, attrInts, attrString } from '../../onnx/attributes.js';
import type { NodeProto } from '../../onnx/types.js';
import { adaquantSolver, type AdaquantSolverOptions, type ConvAttributes, type LayerInputs } from '../adaquant/index.js';
import { gptqSolver, type GptqLayerRecord, type GptqOptions, type LayerHessian } from '../gptq.js';
import type { SolveRequest, WeightSolver } from '../solvers.js';

/** The weight solvers a quantize run offers: round to nearest, or a layer-wise method. */
export const QUANT_METHODS = ['rtn', 'gptq', 'adaquant'] as const;
export type QuantMethod = (typeof QUANT_METHODS)[number];
/** The methods that solve weights block by block from captured calibration inputs. */
export type LayerwiseMethodName = Exclude<QuantMethod, 'rtn'>;
export const LAYERWISE_METHODS: readonly QuantMethod[] = ['gptq', 'adaquant'] satisfies LayerwiseMethodName[];

/** What one block's capture run collected, by the activation tensor a weight multiplies. */
export interface BlockData {
  hessian(activation: string): LayerHessian | undefined;
  samples(activation: string): ActivationSample | undefined;
}

/** What a method says about one weight it solved (or left to round to nearest, with the reason). */
export type SolverRecord = Omit<GptqLayerRecord, 'solver'> & {
  solver: LayerwiseMethodName | 'rtn';
  /** AdaQuant: the TensorFlow.js backend it ran on, its steps, and whether round to nearest stayed best. */
  backend?: string;
  iterations?: number;
  keptRtn?: boolean;
};

export interface BlockSolver extends WeightSolver {
  readonly records: readonly SolverRecord[];
}

export interface LayerwiseMethod {
  readonly name: LayerwiseMethodName;
  /** Rows of each input a block's solver needs as a sample (AdaQuant); 0 when XᵀX is enough (GPTQ). */
  readonly sampleRows: number;
  /** The solver of one block's weights; `nodes` finds a request's node (AdaQuant reads a Conv's attributes). */
  solver(data: BlockData, nodes: ReadonlyMap<string, NodeProto>): Promise<BlockSolver>;
}

export function gptqMethod(options: GptqOptions = {}): LayerwiseMethod {
  return { name: 'gptq', sampleRows: 0, solver: async (data) => gptqSolver((a) => data.hessian(a), options) };
}

/** Rows of each input AdaQuant tunes on (the brief's bounded sample: it costs rows x K floats per input). */
export const ADAQUANT_SAMPLE_ROWS = 2048;

/**
 * AdaQuant (adaquant/index.ts) on each weight's sampled inputs. Weights only: the bias and the input scale are
 * not given to it, since the writers store neither tuned value.
 */
export function adaquantMethod(options: AdaquantSolverOptions = {}, sampleRows = ADAQUANT_SAMPLE_ROWS): LayerwiseMethod {
  return {
    name: 'adaquant',
    sampleRows,
    async solver(data, nodes) {
      const inner = await adaquantSolver((r) => inputsOf(r, data, nodes.get(r.node)), options);
      const records: SolverRecord[] = [];
      return {
        name: 'adaquant',
        records,
        solve(r) {
          const q = inner.solve(r);
          const a = inner.records[inner.records.length - 1];
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
            backend: inner.backend,
          });
          return q;
        },
      };
    },
  };
}

/** A request's sampled inputs as AdaQuant takes them: a [rows, K] matrix, or a Conv's batch of whole items. */
function inputsOf(r: SolveRequest, data: BlockData, node: NodeProto | undefined): LayerInputs | undefined {
  const sample = r.activation !== undefined ? data.samples(r.activation) : undefined;
  if (!sample || sample.units.length === 0 || !node) return undefined;
  const width = sample.units[0].values.length;
  const x = new Float32Array(sample.units.length * width);
  sample.units.forEach((u, i) => x.set(u.values, i * width));
  if (sample.unit !== 'items') return { kind: 'matmul', x, rows: sample.units.length };
  return { kind: 'conv', x, dims: [sample.units.length, ...sample.units[0].dims], conv: convAttributes(node) };
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
