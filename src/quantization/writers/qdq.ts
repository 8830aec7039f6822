// Static QDQ: quantized weights as integer initializers read through DequantizeLinear, and (w8a8) activations
// passed through a QuantizeLinear/DequantizeLinear pair with parameters from calibration ranges. The float op
// stays; ONNX Runtime fuses DQ -> op (-> Q) patterns into integer kernels where it has them. Weights are
// per channel (DequantizeLinear `axis`, opset 13), per tensor, or in blocks along the reduction axis
// (`block_size`, opset 21); 4-bit codes are stored as int4/uint4 (opset 21), other widths below 8 in 8-bit
// tensors with the codes kept to their range.
import { DataType } from '../../onnx/types.js';
import type { OnnxModel } from '../../onnx/model.js';
import { dequantize, linearAttributes, quantize, scaleZeroPoint, sqnrDb, type Granularity, type QuantSpec } from '../quantizers.js';
import { QuantizationError, type QuantParams } from '../schemes.js';
import { selectTargets, type NodeSelection, type WeightTarget } from '../select.js';
import {
  floatValues,
  GraphEdit,
  makeReport,
  rangeOf,
  refuseQuantized,
  tensorBytes,
  type ActivationRanges,
  type NodeReport,
  type WriterResult,
} from './common.js';

/** Opsets that introduced what a DequantizeLinear needs. */
const OPSET_PER_TENSOR = 10;
const OPSET_AXIS = 13;
const OPSET_BLOCKED_INT4 = 21;

function codeType(bits: number, signed: boolean): { dtype: DataType; bits: number } {
  if (bits === 4) return { dtype: signed ? DataType.INT4 : DataType.UINT4, bits: 4 };
  return { dtype: signed ? DataType.INT8 : DataType.UINT8, bits: 8 };
}

export function writeQdq(model: OnnxModel, selection: NodeSelection, params: QuantParams, activationRanges?: ActivationRanges): WriterResult {
  if (params.writer !== 'qdq') throw new QuantizationError(`scheme ${params.scheme} is not a QDQ scheme`);
  if (params.activations && !activationRanges) {
    throw new QuantizationError(`scheme ${params.scheme} quantizes activations: pass their ranges (tensor name -> [min, max]) from calibration`);
  }
  refuseQuantized(model);
  const { targets, skipped } = selectTargets(model, selection, 'qdq', params.opTypes);
  const edit = new GraphEdit(model);
  const w = params.weights;
  const stored = codeType(w.bits, w.signed);
  const weights = new Map<string, { output: string; report: Omit<NodeReport, 'node' | 'op'> }>();
  const activations = new Map<string, string>();
  const missing: string[] = [];
  const nodes: NodeReport[] = [];
  let padded = 0;

  for (const t of targets) {
    const prefix = [];
    let weight = weights.get(t.weight.name!);
    const shared = weight !== undefined;
    if (!weight) {
      const granularity = weightGranularity(t, params);
      const k = t.weight.dims[t.reductionAxis];
      if (granularity.kind === 'block' && k % granularity.blockSize !== 0) {
        if (!params.padK) {
          throw new QuantizationError(
            `${model.source}: node '${t.label}': reduction axis of ${k} is not a multiple of block size ${granularity.blockSize}, and padding was refused`,
          );
        }
        padded++;
      }
      const made = quantizeWeight(edit, model, t, { bits: w.bits, signed: w.signed, symmetric: w.symmetric, granularity, convention: w.convention }, stored.dtype);
      prefix.push(made.node);
      weight = made;
      weights.set(t.weight.name!, weight);
    }

    let activation: string | undefined;
    if (params.activations) {
      activation = activations.get(t.activation);
      const range = rangeOf(activationRanges, t.activation);
      if (!activation && range) {
        const qdq = quantizeActivation(edit, t.activation, range, params.activations.signed);
        prefix.push(...qdq.nodes);
        activation = qdq.output;
        activations.set(t.activation, activation);
      } else if (!activation) {
        missing.push(t.activation);
      }
    }
    const input = [...t.node.input];
    if (activation) input[0] = activation;
    input[t.weightInput] = weight.output;
    edit.replace(t.node, [...prefix, { ...t.node, input }]);
    nodes.push({
      node: t.label,
      op: t.op,
      ...weight.report,
      ...(activation ? { activation: t.activation } : {}),
      ...(shared ? { sharedWeight: true } : {}),
    });
  }

  const notes: string[] = [];
  if (missing.length) notes.push(`no activation range for ${[...new Set(missing)].join(', ')}: those inputs stay float`);
  if (padded) notes.push(`${padded} weight(s) whose reduction axis is not a multiple of the block size: last block padded`);
  if (w.bits !== stored.bits) notes.push(`${w.bits}-bit weights are stored in ${stored.bits}-bit tensors (codes restricted to the ${w.bits}-bit range)`);
  if (targets.length) {
    const blocked = w.blockSize !== undefined;
    edit.requireOpset('', stored.bits === 4 || blocked ? OPSET_BLOCKED_INT4 : w.perChannel ? OPSET_AXIS : OPSET_PER_TENSOR);
  }
  const finished = edit.finish();
  return { model: finished.model, report: makeReport(params, nodes, skipped, finished, notes) };
}

function weightGranularity(t: WeightTarget, params: QuantParams): Granularity {
  const w = params.weights;
  if (w.blockSize !== undefined) return { kind: 'block', axis: t.reductionAxis, blockSize: w.blockSize };
  return w.perChannel ? { kind: 'channel', axis: t.channelAxis } : { kind: 'tensor' };
}

/** The weight as quantized initializers plus the DequantizeLinear that restores it. */
function quantizeWeight(
  edit: GraphEdit,
  model: OnnxModel,
  t: WeightTarget,
  spec: QuantSpec,
  dtype: DataType,
): { node: ReturnType<GraphEdit['node']>; output: string; report: Omit<NodeReport, 'node' | 'op'> } {
  const name = t.weight.name!;
  edit.quantized(t.weight.name!);
  const x = floatValues(model, t.weight);
  const q = quantize(x, t.weight.dims, spec);
  const codes = edit.tensor(`${name}_quantized`, dtype, t.weight.dims, q.codes);
  const scale = edit.tensor(`${name}_scale`, DataType.FLOAT, q.paramDims, q.scales);
  // Symmetric signed codes have zero points of 0, DequantizeLinear's default: ORT's int4 writer leaves them out.
  const withZp = !(spec.signed && q.zeroPoints.every((z) => z === 0));
  const inputs = [codes, scale];
  if (withZp) inputs.push(edit.tensor(`${name}_zero_point`, dtype, q.paramDims, q.zeroPoints));
  const output = edit.value(`${name}_dequantized`);
  const g = q.spec.granularity;
  const node = edit.node('DequantizeLinear', inputs, [output], linearAttributes(g), { name: `${name}_DequantizeLinear` });
  const elementBits = dtype === DataType.INT4 || dtype === DataType.UINT4 ? 4 : 8;
  const paramBytes = q.scales.length * 4 + (withZp ? Math.ceil((q.zeroPoints.length * elementBits) / 8) : 0);
  return {
    node,
    output,
    report: {
      as: 'DequantizeLinear+' + t.op,
      weight: name,
      bits: spec.bits,
      ...(g.kind === 'block' ? { blockSize: g.blockSize } : {}),
      granularity: g.kind,
      sqnrDb: sqnrDb(x, dequantize(q)),
      bytesBefore: tensorBytes(t.weight),
      bytesAfter: Math.ceil((q.codes.length * elementBits) / 8) + paramBytes,
    },
  };
}

/** QuantizeLinear -> DequantizeLinear on an activation, 8-bit per tensor, parameters from its range. */
function quantizeActivation(
  edit: GraphEdit,
  name: string,
  range: readonly [number, number],
  signed: boolean,
): { nodes: ReturnType<GraphEdit['node']>[]; output: string } {
  const [min, max] = range;
  if (!(Number.isFinite(min) && Number.isFinite(max) && min <= max)) {
    throw new QuantizationError(`activation range of '${name}' is not a finite [min, max]: [${min}, ${max}]`);
  }
  const dtype = signed ? DataType.INT8 : DataType.UINT8;
  const p = scaleZeroPoint(min, max, { bits: 8, signed, symmetric: false, granularity: { kind: 'tensor' }, convention: 'onnx' });
  const scale = edit.tensor(`${name}_scale`, DataType.FLOAT, [], [p.scale]);
  const zp = edit.tensor(`${name}_zero_point`, dtype, [], [p.zeroPoint]);
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
