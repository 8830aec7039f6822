// What the per-format rewriters share: the rewriter protocol, their result and report types, the refusal of
// already-quantized models, reading a float weight and solving it once per weight and spec.
import { dtypeInfo, byteSize } from '../../onnx/dtypes.js';
import type { EditResult, GraphEditor, OpsetChange } from '../../onnx/editor.js';
import { allNodes, nodeLabel } from '../../onnx/graph.js';
import type { OnnxModel } from '../../onnx/model.js';
import { roundTo, tensorValues } from '../../onnx/tensor.js';
import { DataType, type TensorProto } from '../../onnx/types.js';
import type { ValueFacts } from '../../onnx/value-facts.js';
import { weightSpec, type NodeFormat, type PlannedNode, type PlanOrigin } from '../plan.js';
import { dequantize, quantizeWith, sqnrDb, type Quantized } from '../quantizers.js';
import { QuantizationError, type SchemeName, type SchemeWriter } from '../schemes.js';
import type { FloatType, SkippedNode, WeightTarget } from '../select.js';
import { roundToNearest, type SolveRequest, type WeightSolver } from '../solvers.js';

export type { OpsetChange } from '../../onnx/editor.js';

/** One rewritten node. Bytes count the weight's float32 data against its codes, scales and zero points. */
export interface NodeReport {
  node: string;
  op: string;
  /** The plan's format for the node. */
  format: NodeFormat;
  /** What the node became ('MatMulNBits', 'DequantizeLinear+MatMul', 'MatMulInteger'...). */
  as: string;
  weight: string;
  bits: number;
  /** Block size along the reduction axis; absent for per-channel / per-tensor weights. */
  blockSize?: number;
  /** 'tensor', 'channel' or 'block'. */
  granularity: 'tensor' | 'channel' | 'block';
  /** SQNR of the dequantized weight against the float weight. */
  sqnrDb: number;
  bytesBefore: number;
  bytesAfter: number;
  /** Static QDQ: the activation input quantized before the node, if its range was known. */
  activation?: string;
  /** A weight shared with an earlier node is quantized once; its bytes are counted there. */
  sharedWeight?: boolean;
}

export interface WriterReport {
  /** The scheme the plan came from, or 'plan' for a plan file. */
  scheme: SchemeName | 'plan';
  /** The format every node was written in, or 'mixed'. */
  writer: SchemeWriter | 'mixed';
  /** Where the plan came from and the solver that chose the codes (absent in reports of version 0.1 writers). */
  plan?: PlanOrigin;
  solver?: string;
  nodes: NodeReport[];
  skipped: SkippedNode[];
  opsetChanges: OpsetChange[];
  irVersion: { from?: number; to?: number };
  /** Things a user should know that are not per node (weights removed from graph inputs, padding...). */
  notes: string[];
  totals: { bytesBefore: number; bytesAfter: number };
}

export interface WriterResult {
  /** A new model; the input model is never modified (untouched tensors are shared, not copied). */
  model: OnnxModel;
  report: WriterReport;
}

/** Activation clipping ranges by tensor name, as calibration produces them. */
export type ActivationRanges = ReadonlyMap<string, readonly [number, number]> | Readonly<Record<string, readonly [number, number]>>;

export function rangeOf(ranges: ActivationRanges | undefined, name: string): readonly [number, number] | undefined {
  if (!ranges) return undefined;
  return ranges instanceof Map ? ranges.get(name) : (ranges as Record<string, readonly [number, number]>)[name];
}

// Ops that only appear in quantized graphs; quantizing such a model again would stack formats ORT cannot fuse
// and double-count the error.
const QUANTIZED_OPS = new Set([
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
  'MatMulInteger',
  'ConvInteger',
  'MatMulNBits',
  'MatMulBnb4',
  'MatMulIntegerToFloat',
  'DynamicQuantizeMatMul',
  'DynamicQuantizeLSTM',
  'GatherBlockQuantized',
  'QGemm',
  'QAttention',
  'QEmbedLayerNormalization',
]);

export function isQuantizedOp(op: string): boolean {
  return QUANTIZED_OPS.has(op) || op.startsWith('QLinear') || op.startsWith('QOrdered');
}

/** Throws when the model already holds quantized operators (anywhere, subgraphs included). */
export function refuseQuantized(model: OnnxModel): void {
  for (const { node, graph } of allNodes(model.graph)) {
    const op = node.opType ?? '';
    if (isQuantizedOp(op)) {
      throw new QuantizationError(
        `${model.source}: the model is already quantized (node ${nodeLabel(node, graph)}); quantize the float model instead`,
      );
    }
  }
}

/** A float32, float16 or bfloat16 weight's values as float32 (exact), from raw data, typed fields or external data. */
export function floatValues(model: OnnxModel, t: TensorProto): Float32Array {
  return tensorValues(t, model.rawBytes(t)).data as Float32Array;
}

/** Bytes a tensor's data takes (raw layout). */
export function tensorBytes(t: TensorProto): number {
  const count = t.dims.reduce((a, b) => a * b, 1);
  return byteSize(dtypeInfo(t.dataType).code, count);
}

/** The report with totals computed and the edit's side effects written out as notes. */
export function makeReport(
  origin: PlanOrigin,
  solver: string,
  nodes: NodeReport[],
  skipped: SkippedNode[],
  finished: EditResult,
  notes: string[] = [],
): WriterReport {
  const all = [...notes];
  for (const c of finished.opsetChanges) {
    const name = c.domain || 'ai.onnx';
    all.push(c.from === undefined ? `imported opset ${name} ${c.to}` : `raised opset ${name} from ${c.from} to ${c.to}`);
  }
  if (finished.irVersion.to !== undefined) all.push(`raised IR version from ${finished.irVersion.from} to ${finished.irVersion.to}`);
  if (finished.removedInputs.length) {
    all.push(`quantized weights removed from the graph inputs (they were overridable initializers): ${finished.removedInputs.join(', ')}`);
  }
  if (finished.supersededStillRead.length) {
    all.push(`float weights also read by nodes left in float, so kept beside their quantized copies: ${finished.supersededStillRead.join(', ')}`);
  }
  const counted = nodes.filter((n) => !n.sharedWeight);
  // Embedding lookups ride with MatMulNBits (the block schemes write both).
  const formats = new Set(nodes.map((n) => (n.format === 'gather-block' ? 'matmulnbits' : n.format)));
  return {
    scheme: origin.kind === 'scheme' ? origin.scheme : 'plan',
    writer: origin.kind === 'scheme' ? origin.writer : formats.size === 1 ? [...formats][0] : 'mixed',
    plan: origin,
    solver,
    nodes,
    skipped,
    opsetChanges: finished.opsetChanges,
    irVersion: finished.irVersion,
    notes: all,
    totals: {
      bytesBefore: counted.reduce((a, n) => a + n.bytesBefore, 0),
      bytesAfter: counted.reduce((a, n) => a + n.bytesAfter, 0),
    },
  };
}

/** What every format's rewriter is given: the model, the one editor, the solver and calibration ranges. */
export interface RewriteContext {
  model: OnnxModel;
  edit: GraphEditor;
  solver: WeightSolver;
  activationRanges?: ActivationRanges;
  valueFacts?: ValueFacts;
}

/** Rewrites the planned nodes of one format; created per rewrite, so its caches (shared weights) are per model. */
export interface FormatRewriter {
  /** Rewrites one node (through ctx.edit) and reports it. */
  rewrite(p: PlannedNode): NodeReport;
  /** After every node: require the opsets the written nodes need; returns notes for the report. */
  finish(): string[];
}

/**
 * The float type of a target's node (its weight's: float32, float16 or bfloat16). Scales, biases and
 * dequantized values are written in it, so an fp16 graph stays fp16 and its file does not grow.
 */
export function floatTypeOf(t: WeightTarget): FloatType {
  return t.weight.dataType as FloatType;
}

/** Bytes of `count` scales stored in `dtype`. */
export function scaleBytes(dtype: FloatType, count: number): number {
  return byteSize(dtype, count);
}

/** A solved weight: the float values and the codes of the planned spec. */
export interface SolvedWeight {
  x: Float32Array;
  q: Quantized;
  sqnrDb: number;
}

/** What a solver is asked for a planned node: its float weight (read from the model), spec and axes. */
export function solveRequest(model: OnnxModel, p: PlannedNode): SolveRequest {
  const t = p.target;
  return {
    node: t.label,
    weight: t.weight.name!,
    values: floatValues(model, t.weight),
    dims: t.weight.dims,
    spec: weightSpec(p),
    reductionAxis: t.reductionAxis,
    channelAxis: t.channelAxis,
    activation: t.activation,
  };
}

/** Reads the planned node's float weight, marks it superseded and has the solver quantize it. */
export function solveWeight(ctx: RewriteContext, p: PlannedNode): SolvedWeight {
  const t = p.target;
  ctx.edit.supersede(t.weight.name!);
  const request = solveRequest(ctx.model, p);
  const x = request.values;
  const solved = ctx.solver.solve(request);
  const q = storedScales(solved, x, floatTypeOf(t), ctx.solver === roundToNearest);
  return { x, q, sqnrDb: sqnrDb(x, dequantize(q)) };
}

// The smallest positive float16 (a subnormal): a scale that would round to 0 takes it instead, so no group
// dequantizes to 0 / NaN; its weights are below 2^-24 * 127 in magnitude anyway.
const MIN_FLOAT16 = 2 ** -24;

/**
 * The scales as they will be stored: in a float16/bfloat16 graph they are rounded to that type. Round to
 * nearest's codes are re-derived for the rounded scales (the nearest codes for what is stored); a layer-wise
 * solver's codes are kept, since they were chosen against the layer's inputs and re-rounding would undo that
 * (the scale moves by at most half a float16 ulp). Float32 scales are stored as solved.
 */
function storedScales(q: Quantized, x: Float32Array, dtype: FloatType, rederive: boolean): Quantized {
  if (dtype === DataType.FLOAT) return q;
  const scales = roundTo(dtype, q.scales);
  for (let i = 0; i < scales.length; i++) if (scales[i] === 0 && q.scales[i] !== 0) scales[i] = MIN_FLOAT16;
  return rederive ? quantizeWith(x, q.dims, q.spec, scales, q.zeroPoints) : { ...q, scales };
}

/** Cache key of a weight written once for every node that reads it with the same spec. */
export function weightKey(p: PlannedNode): string {
  return `${p.target.weight.name}\u0000${JSON.stringify(weightSpec(p))}`;
}

/** A block size that does not divide K: allowed (last block padded) unless the plan refuses padding. */
export function checkPadding(ctx: RewriteContext, p: PlannedNode, padK: boolean, what: (k: number, blockSize: number) => string): boolean {
  const spec = weightSpec(p);
  if (spec.granularity.kind !== 'block') return false;
  const k = p.target.weight.dims[p.target.reductionAxis];
  if (k % spec.granularity.blockSize === 0) return false;
  if (!padK) throw new QuantizationError(`${ctx.model.source}: node '${p.target.label}': ${what(k, spec.granularity.blockSize)}, and padding was refused`);
  return true;
}
