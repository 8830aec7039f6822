// Dynamic int8 quantization, the graph ORT's quantize_dynamic writes for MatMul (and transformers.js ships as
// "model_quantized.onnx"): the activation is quantized at run time by DynamicQuantizeLinear (uint8, per tensor),
// the weight ahead of time (int8 symmetric per tensor by default), and
//   MatMulInteger(A_q, B_q, A_zp, B_zp) -> Cast(float) -> Mul(by A_scale * B_scale)
// gives the float result. ONNX Runtime fuses the chain into DynamicQuantizeMatMul where it can.
import { DataType } from '../../onnx/types.js';
import type { OnnxModel } from '../../onnx/model.js';
import { dequantize, quantize, sqnrDb } from '../quantizers.js';
import { QuantizationError, type QuantParams } from '../schemes.js';
import { selectTargets, type NodeSelection } from '../select.js';
import { floatValues, GraphEdit, makeReport, refuseQuantized, tensorBytes, type ActivationRanges, type NodeReport, type WriterResult } from './common.js';

/** DynamicQuantizeLinear exists from opset 11. */
const DYNAMIC_OPSET = 11;

export function writeDynamic(
  model: OnnxModel,
  selection: NodeSelection,
  params: QuantParams,
  _activationRanges?: ActivationRanges,
): WriterResult {
  if (params.writer !== 'dynamic') throw new QuantizationError(`scheme ${params.scheme} is not a dynamic-quantization scheme`);
  const { bits, symmetric, signed, perChannel } = params.weights;
  refuseQuantized(model);
  const { targets, skipped } = selectTargets(model, selection, 'dynamic', params.opTypes);
  const edit = new GraphEdit(model);
  const weightType = signed ? DataType.INT8 : DataType.UINT8;
  const weights = new Map<string, { q: string; scale: string; zp: string; report: Omit<NodeReport, 'node' | 'op'> }>();
  const activations = new Map<string, { q: string; scale: string; zp: string }>();
  const nodes: NodeReport[] = [];

  for (const t of targets) {
    const wName = t.weight.name!;
    let w = weights.get(wName);
    const shared = w !== undefined;
    if (!w) {
      edit.quantized(t.weight.name!);
      const x = floatValues(model, t.weight);
      // Per channel means per column of B [K, N]: MatMulInteger takes a b_zero_point of N values.
      const q = quantize(x, t.weight.dims, {
        bits,
        signed,
        symmetric,
        granularity: perChannel ? { kind: 'channel', axis: t.channelAxis } : { kind: 'tensor' },
        convention: 'onnx',
      });
      w = {
        q: edit.tensor(`${wName}_quantized`, weightType, t.weight.dims, q.codes),
        scale: edit.tensor(`${wName}_scale`, DataType.FLOAT, q.paramDims, q.scales),
        zp: edit.tensor(`${wName}_zero_point`, weightType, q.paramDims, q.zeroPoints),
        report: {
          as: 'MatMulInteger',
          weight: wName,
          bits,
          granularity: perChannel ? 'channel' : 'tensor',
          sqnrDb: sqnrDb(x, dequantize(q)),
          bytesBefore: tensorBytes(t.weight),
          bytesAfter: q.codes.length + q.scales.length * 5,
        },
      };
      weights.set(wName, w);
    }
    const out = t.node.output[0];
    const base = t.node.name || out;
    const prefix = [];
    let a = activations.get(t.activation);
    if (!a) {
      // One DynamicQuantizeLinear per activation, shared by every MatMul reading it (q/k/v projections).
      a = { q: edit.value(`${t.activation}_quantized`), scale: edit.value(`${t.activation}_scale`), zp: edit.value(`${t.activation}_zero_point`) };
      activations.set(t.activation, a);
      prefix.push(edit.node('DynamicQuantizeLinear', [t.activation], [a.q, a.scale, a.zp], undefined, { name: `${t.activation}_QuantizeLinear` }));
    }
    const integer = edit.value(`${out}_quantized`);
    const asFloat = edit.value(`${out}_quantized_cast`);
    const scale = edit.value(`${base}_scales_mul`);
    edit.replace(t.node, [
      ...prefix,
      edit.node('MatMulInteger', [a.q, w.q, a.zp, w.zp], [integer], undefined, { name: `${base}_quant` }),
      edit.node('Cast', [integer], [asFloat], { to: DataType.FLOAT }, { name: `${base}_quant_cast` }),
      edit.node('Mul', [a.scale, w.scale], [scale], undefined, { name: `${base}_quant_scales_mul` }),
      edit.node('Mul', [asFloat, scale], [out], undefined, { name: `${base}_quant_output_scale_mul` }),
    ]);
    nodes.push({ node: t.label, op: t.op, ...w.report, ...(shared ? { sharedWeight: true } : {}) });
  }
  if (targets.length) edit.requireOpset('', DYNAMIC_OPSET);
  const notes = bits < 8 ? [`${bits}-bit weights are stored in 8-bit tensors (codes restricted to the ${bits}-bit range)`] : [];
  const finished = edit.finish();
  return { model: finished.model, report: makeReport(params, nodes, skipped, finished, notes) };
}
