// Static QDQ: quantized weights as integer initializers read through DequantizeLinear, and (w8a8) activations
// passed through a QuantizeLinear/DequantizeLinear pair with parameters from calibration ranges. The float op
// stays; ONNX Runtime fuses DQ -> op (-> Q) patterns into integer kernels where it has them. Weights are
// per channel (DequantizeLinear `axis`, opset 13), per tensor, or in blocks along the reduction axis
// (`block_size`, opset 21); 4-bit codes are stored as int4/uint4 (opset 21), other widths below 8 in 8-bit
// tensors with the codes kept to their range. In a float16 or bfloat16 graph the scales take the graph's type
// (DequantizeLinear outputs its scale's type; float16/bfloat16 scales need opset 19), so the float ops keep their
// type and the file does not grow.
import type { GraphEditor } from '../../onnx/editor.js';
import { DataType, type NodeProto } from '../../onnx/types.js';
import { weightSpec, type PlannedNode, type QuantPlan } from '../plan.js';
import { linearAttributes, scaleZeroPoint } from '../quantizers.js';
import { QuantizationError } from '../schemes.js';
import type { FloatType, WeightTarget } from '../select.js';
import {
  checkPadding,
  floatTypeOf,
  rangeOf,
  scaleBytes,
  solveWeight,
  tensorBytes,
  weightKey,
  type ActivationRanges,
  type FormatRewriter,
  type NodeReport,
  type RewriteContext,
  type SolvedWeight,
} from './common.js';

/** Opsets that introduced what a DequantizeLinear needs. */
const OPSET_PER_TENSOR = 10;
const OPSET_AXIS = 13;
const OPSET_BLOCKED_INT4 = 21;
const OPSET_FLOAT16_SCALE = 19;

function codeType(bits: number, signed: boolean): { dtype: DataType; bits: number } {
  if (bits === 4) return { dtype: signed ? DataType.INT4 : DataType.UINT4, bits: 4 };
  return { dtype: signed ? DataType.INT8 : DataType.UINT8, bits: 8 };
}

/** Rewrites planned 'qdq' nodes: DequantizeLinear of the solved weight, and Q/DQ of the input when planned. */
export function qdqRewriter(ctx: RewriteContext): FormatRewriter {
  const { edit } = ctx;
  const weights = new Map<string, { output: string; report: Omit<NodeReport, 'node' | 'op' | 'format'> }>();
  const activations = new Map<string, string>();
  const missing: string[] = [];
  const widened = new Set<string>();
  let padded = 0;
  let opset = 0;
  return {
    rewrite(p: PlannedNode): NodeReport {
      const { target: t, plan } = p;
      if (plan.format !== 'qdq') throw new TypeError(`qdq rewriter given a ${plan.format} node`);
      const prefix = [];
      const key = weightKey(p);
      let weight = weights.get(key);
      const shared = weight !== undefined;
      const spec = weightSpec(p);
      const stored = codeType(spec.bits, spec.signed);
      if (!weight) {
        if (checkPadding(ctx, p, plan.padK, (k, b) => `reduction axis of ${k} is not a multiple of block size ${b}`)) padded++;
        const made = quantizeWeight(edit, t, solveWeight(ctx, p), stored.dtype);
        prefix.push(made.node);
        weight = made;
        weights.set(key, weight);
      }
      if (spec.bits !== stored.bits) widened.add(`${spec.bits}-bit weights are stored in ${stored.bits}-bit tensors (codes restricted to the ${spec.bits}-bit range)`);
      const g = spec.granularity.kind;
      opset = Math.max(opset, stored.bits === 4 || g === 'block' ? OPSET_BLOCKED_INT4 : g === 'channel' ? OPSET_AXIS : OPSET_PER_TENSOR);
      if (floatTypeOf(t) !== DataType.FLOAT) opset = Math.max(opset, OPSET_FLOAT16_SCALE);

      let activation: string | undefined;
      if (plan.activations) {
        const aKey = `${t.activation}\u0000${plan.activations.signed}`;
        activation = activations.get(aKey);
        const range = rangeOf(ctx.activationRanges, t.activation);
        if (!activation && range) {
          const qdq = activationQdq(edit, t.activation, activationQuant(t.activation, range, plan.activations.signed, floatTypeOf(t)));
          prefix.push(...qdq.nodes);
          activation = qdq.output;
          activations.set(aKey, activation);
        } else if (!activation) {
          missing.push(t.activation);
        }
      }
      const input = [...t.node.input];
      if (activation) input[0] = activation;
      input[t.weightInput] = weight.output;
      edit.replace(t.node, [...prefix, { ...t.node, input }]);
      return {
        node: t.label,
        op: t.op,
        format: 'qdq',
        ...weight.report,
        ...(activation ? { activation: t.activation } : {}),
        ...(shared ? { sharedWeight: true } : {}),
      };
    },
    finish(): string[] {
      const notes: string[] = [];
      if (missing.length) notes.push(`no activation range for ${[...new Set(missing)].join(', ')}: those inputs stay float`);
      if (padded) notes.push(`${padded} weight(s) whose reduction axis is not a multiple of the block size: last block padded`);
      notes.push(...widened);
      if (opset) edit.requireOpset('', opset, ctx.valueFacts);
      return notes;
    },
  };
}

/** The solved weight as integer initializers plus the DequantizeLinear that restores it. */
function quantizeWeight(
  edit: GraphEditor,
  t: WeightTarget,
  solved: SolvedWeight,
  dtype: DataType,
): { node: NodeProto; output: string; report: Omit<NodeReport, 'node' | 'op' | 'format'> } {
  const name = t.weight.name!;
  const { q } = solved;
  const codes = edit.tensor(`${name}_quantized`, dtype, t.weight.dims, q.codes);
  const scaleType = floatTypeOf(t);
  const scale = edit.tensor(`${name}_scale`, scaleType, q.paramDims, q.scales);
  // Symmetric signed codes have zero points of 0, DequantizeLinear's default: ORT's int4 writer leaves them out.
  const withZp = !(q.spec.signed && q.zeroPoints.every((z) => z === 0));
  const inputs = [codes, scale];
  if (withZp) inputs.push(edit.tensor(`${name}_zero_point`, dtype, q.paramDims, q.zeroPoints));
  const output = edit.value(`${name}_dequantized`);
  const g = q.spec.granularity;
  const node = edit.node('DequantizeLinear', inputs, [output], linearAttributes(g), { name: `${name}_DequantizeLinear` });
  const elementBits = dtype === DataType.INT4 || dtype === DataType.UINT4 ? 4 : 8;
  const paramBytes = scaleBytes(scaleType, q.scales.length) + (withZp ? Math.ceil((q.zeroPoints.length * elementBits) / 8) : 0);
  return {
    node,
    output,
    report: {
      as: 'DequantizeLinear+' + t.op,
      weight: name,
      bits: q.spec.bits,
      ...(g.kind === 'block' ? { blockSize: g.blockSize } : {}),
      granularity: g.kind,
      sqnrDb: solved.sqnrDb,
      bytesBefore: tensorBytes(t.weight),
      bytesAfter: Math.ceil((q.codes.length * elementBits) / 8) + paramBytes,
    },
  };
}

/** How the writer quantizes one activation: 8-bit per tensor, its code type and the scale's float type. */
export interface ActivationQuant {
  scale: number;
  zeroPoint: number;
  /** INT8 or UINT8. */
  type: DataType;
  scaleType: FloatType;
}

/** The writer's parameters for an activation of range [min, max] (also what the layer-wise capture simulates). */
export function activationQuant(name: string, range: readonly [number, number], signed: boolean, scaleType: FloatType): ActivationQuant {
  const [min, max] = range;
  if (!(Number.isFinite(min) && Number.isFinite(max) && min <= max)) {
    throw new QuantizationError(`activation range of '${name}' is not a finite [min, max]: [${min}, ${max}]`);
  }
  const p = scaleZeroPoint(min, max, { bits: 8, signed, symmetric: false, granularity: { kind: 'tensor' }, convention: 'onnx' });
  return { scale: p.scale, zeroPoint: p.zeroPoint, type: signed ? DataType.INT8 : DataType.UINT8, scaleType };
}

/** An activation the written model quantizes, and the planned nodes that read it through its Q/DQ pair. */
export type PlannedActivationQuant = ActivationQuant & { readers: NodeProto[] };

/**
 * Every activation a plan's QDQ nodes will quantize, given the ranges: what rewrite() above writes for them (the
 * first node reading a tensor sets its signedness; a mixed plan's other sign gives the same grid, shifted by 128).
 */
export function plannedActivationQuant(plan: QuantPlan, ranges: ActivationRanges): Map<string, PlannedActivationQuant> {
  const out = new Map<string, PlannedActivationQuant>();
  for (const p of plan.nodes) {
    if (p.plan.format !== 'qdq' || !p.plan.activations) continue;
    const name = p.target.activation;
    const range = rangeOf(ranges, name);
    if (!range) continue;
    const known = out.get(name) ?? { ...activationQuant(name, range, p.plan.activations.signed, floatTypeOf(p.target)), readers: [] };
    known.readers.push(p.target.node);
    out.set(name, known);
  }
  return out;
}

/** The opset an activation's Q/DQ pair needs: per-tensor uint8/int8, and float16/bfloat16 scales from 19. */
export function activationQdqOpset(q: ActivationQuant): number {
  return q.scaleType === DataType.FLOAT ? OPSET_PER_TENSOR : OPSET_FLOAT16_SCALE;
}

/** QuantizeLinear -> DequantizeLinear on an activation with the given parameters. */
export function activationQdq(edit: GraphEditor, name: string, q: ActivationQuant): { nodes: NodeProto[]; output: string } {
  const scale = edit.tensor(`${name}_scale`, q.scaleType, [], [q.scale]);
  const zp = edit.tensor(`${name}_zero_point`, q.type, [], [q.zeroPoint]);
  const quantized = edit.value(`${name}_quantized`);
  const output = edit.value(`${name}_dequantized`);
  return {
    nodes: [
      edit.node('QuantizeLinear', [name, scale, zp], [quantized], undefined, { name: `${name}_QuantizeLinear` }),
      edit.node('DequantizeLinear', [quantized, scale, zp], [output], undefined, { name: `${name}_DequantizeLinear` }),
    ],
    output,
  };
}
