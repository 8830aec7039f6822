// Dynamic int8 quantization, the graph ORT's quantize_dynamic writes for MatMul (and transformers.js ships as
// "model_quantized.onnx"): the activation is quantized at run time by DynamicQuantizeLinear (uint8, per tensor),
// the weight ahead of time (int8 symmetric per tensor by default), and
//   MatMulInteger(A_q, B_q, A_zp, B_zp) -> Cast(float) -> Mul(by A_scale * B_scale)
// gives the float result. ONNX Runtime fuses the chain into DynamicQuantizeMatMul where it can.
// DynamicQuantizeLinear takes float32 only, so in a float16/bfloat16 graph each rewritten MatMul is a float32
// island: Cast(A) to float32 before DynamicQuantizeLinear (one per activation, shared like the quantizer), the
// scale arithmetic in float32 (an int32 product cast straight to float16 would overflow past 65504), and one
// Cast back to the graph's type on the output. The weight's codes and its one scale are the same bytes as in a
// float32 graph.
import { DataType } from '../../onnx/types.js';
import type { PlannedNode } from '../plan.js';
import { floatTypeOf, solveWeight, tensorBytes, weightKey, type FormatRewriter, type NodeReport, type RewriteContext } from './common.js';

/** DynamicQuantizeLinear exists from opset 11. */
const DYNAMIC_OPSET = 11;

/** Rewrites planned 'dynamic' MatMul nodes as DynamicQuantizeLinear + MatMulInteger. */
export function dynamicRewriter(ctx: RewriteContext): FormatRewriter {
  const { edit } = ctx;
  const weights = new Map<string, { q: string; scale: string; zp: string; report: Omit<NodeReport, 'node' | 'op' | 'format'> }>();
  const activations = new Map<string, { q: string; scale: string; zp: string }>();
  const widened = new Set<number>();
  let written = 0;
  return {
    rewrite(p: PlannedNode): NodeReport {
      const { target: t, plan } = p;
      if (plan.format !== 'dynamic') throw new TypeError(`dynamic rewriter given a ${plan.format} node`);
      const { bits, signed, perChannel } = plan.weights;
      const weightType = signed ? DataType.INT8 : DataType.UINT8;
      const wName = t.weight.name!;
      const key = weightKey(p);
      let w = weights.get(key);
      const shared = w !== undefined;
      if (!w) {
        // Per channel means per column of B [K, N]: MatMulInteger takes a b_zero_point of N values.
        const { q, sqnrDb } = solveWeight(ctx, p);
        w = {
          q: edit.tensor(`${wName}_quantized`, weightType, t.weight.dims, q.codes),
          scale: edit.tensor(`${wName}_scale`, DataType.FLOAT, q.paramDims, q.scales),
          zp: edit.tensor(`${wName}_zero_point`, weightType, q.paramDims, q.zeroPoints),
          report: {
            as: 'MatMulInteger',
            weight: wName,
            bits,
            granularity: perChannel ? 'channel' : 'tensor',
            sqnrDb,
            bytesBefore: tensorBytes(t.weight),
            bytesAfter: q.codes.length + q.scales.length * 5,
          },
        };
        weights.set(key, w);
      }
      if (bits < 8) widened.add(bits);
      const out = t.node.output[0];
      const base = t.node.name || out;
      const prefix = [];
      const floatType = floatTypeOf(t);
      let a = activations.get(t.activation);
      if (!a) {
        // One DynamicQuantizeLinear per activation, shared by every MatMul reading it (q/k/v projections).
        a = { q: edit.value(`${t.activation}_quantized`), scale: edit.value(`${t.activation}_scale`), zp: edit.value(`${t.activation}_zero_point`) };
        activations.set(t.activation, a);
        let input = t.activation;
        if (floatType !== DataType.FLOAT) {
          input = edit.value(`${t.activation}_float32`);
          prefix.push(edit.node('Cast', [t.activation], [input], { to: DataType.FLOAT }, { name: `${t.activation}_Cast_float32` }));
        }
        prefix.push(edit.node('DynamicQuantizeLinear', [input], [a.q, a.scale, a.zp], undefined, { name: `${t.activation}_QuantizeLinear` }));
      }
      const integer = edit.value(`${out}_quantized`);
      const asFloat = edit.value(`${out}_quantized_cast`);
      const scale = edit.value(`${base}_scales_mul`);
      const result = floatType === DataType.FLOAT ? out : edit.value(`${out}_float32`);
      edit.replace(t.node, [
        ...prefix,
        edit.node('MatMulInteger', [a.q, w.q, a.zp, w.zp], [integer], undefined, { name: `${base}_quant` }),
        edit.node('Cast', [integer], [asFloat], { to: DataType.FLOAT }, { name: `${base}_quant_cast` }),
        edit.node('Mul', [a.scale, w.scale], [scale], undefined, { name: `${base}_quant_scales_mul` }),
        edit.node('Mul', [asFloat, scale], [result], undefined, { name: `${base}_quant_output_scale_mul` }),
        ...(result === out ? [] : [edit.node('Cast', [result], [out], { to: floatType }, { name: `${base}_quant_output_cast` })]),
      ]);
      written++;
      return { node: t.label, op: t.op, format: 'dynamic', ...w.report, ...(shared ? { sharedWeight: true } : {}) };
    },
    finish(): string[] {
      if (written) edit.requireOpset('', DYNAMIC_OPSET, ctx.valueFacts);
      return [...widened].map((bits) => `${bits}-bit weights are stored in 8-bit tensors (codes restricted to the ${bits}-bit range)`);
    },
  };
}
