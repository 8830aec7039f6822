// Embedding lookups for the weight-only block schemes (w4, w4a8): Gather(data = W[vocab, hidden] initializer,
// indices) -> com.microsoft GatherBlockQuantized, the format ORT's matmul_nbits_quantizer writes for Gather and
// transformers.js q4 files use for embed_tokens. Codes, scales and zero points are MatMulNBits' ('mlas'
// convention, blocks along the hidden axis), so a table tied to lm_head is quantized the same way on both sides.
//
// What ONNX Runtime 1.30's CPU kernel accepts (contrib_ops/cpu/quantization/gather_block_quantized.cc), and this
// writer emits: data uint8 [vocab, hidden * bits / 8], the row-major codes packed low bits first; gather_axis 0
// and quantize_axis 1 (the last axis; required for uint8 data); block_size a power of two >= 16; bits 4 (also
// 2 or 8); scales float32 [vocab, ceil(hidden / block_size)]; zero_points uint8 [vocab, ceil(blocks * bits / 8)]
// packed like the data, or absent for the implicit 2^(bits-1) (symmetric). Output element = (code - zp) * scale
// in float32. The output width is the packed width * 8 / bits, so hidden * bits must be a whole number of bytes;
// a hidden size the block does not divide is fine (the last block is short, no padding in the data).
import { DataType } from '../../onnx/types.js';
import type { PlannedNode } from '../plan.js';
import { packBits, type Quantized } from '../quantizers.js';
import { floatTypeOf, scaleBytes, solveWeight, tensorBytes, weightKey, type FormatRewriter, type NodeReport, type RewriteContext } from './common.js';

/** GatherBlockQuantized's inputs for a [rows, cols] table quantized in blocks along axis 1 (unsigned codes). */
export interface GatherBlockWeights {
  rows: number;
  cols: number;
  bits: number;
  blockSize: number;
  blocks: number;
  /** uint8 [rows, cols * bits / 8]. */
  data: Uint8Array;
  /** float32 [rows, blocks]. */
  scales: Float32Array;
  /** uint8 [rows, ceil(blocks * bits / 8)]; absent when symmetric (implicit 2^(bits-1)). */
  zeroPoints?: Uint8Array;
}

/** Lays out a quantized [rows, cols] table (blocks along axis 1, unsigned codes) as GatherBlockQuantized's inputs. */
export function packGatherBlockQuantized(q: Quantized, withZeroPoints = !q.spec.symmetric): GatherBlockWeights {
  const g = q.spec.granularity;
  if (q.dims.length !== 2 || g.kind !== 'block' || g.axis !== 1 || q.spec.signed) {
    throw new RangeError('packGatherBlockQuantized needs a 2-D table with unsigned codes in blocks along axis 1');
  }
  const { bits } = q.spec;
  const [rows, cols] = q.dims;
  if ((cols * bits) % 8 !== 0) throw new RangeError(`a row of ${cols} x ${bits}-bit codes is not a whole number of bytes`);
  const blocks = Math.ceil(cols / g.blockSize);
  // Codes are row-major and each row fills whole bytes, so the table packs as one stream.
  const data = packBits(q.codes, bits);
  // quantize() lays block parameters out as [rows, blocks] for axis 1: scales are GatherBlockQuantized's as is.
  const scales = Float32Array.from(q.scales);
  let zeroPoints: Uint8Array | undefined;
  if (withZeroPoints) {
    const zpRow = Math.ceil((blocks * bits) / 8);
    zeroPoints = new Uint8Array(rows * zpRow);
    for (let r = 0; r < rows; r++) packBits(q.zeroPoints.subarray(r * blocks, (r + 1) * blocks), bits, zeroPoints, r * zpRow);
  }
  return { rows, cols, bits, blockSize: g.blockSize, blocks, data, scales, ...(zeroPoints ? { zeroPoints } : {}) };
}

/** The reference dequantization of rows `indices` exactly as ORT's kernel computes it (float32 (q - zp) * s). */
export function dequantizeRows(w: GatherBlockWeights, indices: ArrayLike<number | bigint>): Float32Array {
  const out = new Float32Array(indices.length * w.cols);
  const per = 8 / w.bits;
  const mask = (1 << w.bits) - 1;
  const zpRow = Math.ceil((w.blocks * w.bits) / 8);
  const f32 = new Float32Array(1);
  for (let i = 0; i < indices.length; i++) {
    let r = Number(indices[i]);
    if (r < -w.rows || r >= w.rows) continue; // ORT writes zeros for out-of-range indices
    if (r < 0) r += w.rows;
    for (let c = 0; c < w.cols; c++) {
      const e = r * w.cols + c;
      const q = (w.data[Math.floor(e / per)] >> ((e % per) * w.bits)) & mask;
      const b = Math.floor(c / w.blockSize);
      const zp = w.zeroPoints ? (w.zeroPoints[r * zpRow + Math.floor(b / per)] >> ((b % per) * w.bits)) & mask : 1 << (w.bits - 1);
      f32[0] = (q - zp) * w.scales[r * w.blocks + b];
      out[i * w.cols + c] = f32[0];
    }
  }
  return out;
}

/**
 * Rewrites planned 'gather-block' nodes (embedding lookups, plan.ts's embeddingLookups) as GatherBlockQuantized.
 * The float table is marked superseded, so the editor drops it unless another node (a tied lm_head through
 * Transpose, a MatMul left in float) still reads it.
 */
export function gatherRewriter(ctx: RewriteContext): FormatRewriter {
  const { edit } = ctx;
  const done = new Map<string, { inputs: string[]; report: Omit<NodeReport, 'node' | 'op' | 'format'> }>();
  let written = 0;
  return {
    rewrite(p: PlannedNode): NodeReport {
      const { target, plan } = p;
      if (plan.format !== 'gather-block') throw new TypeError(`gather-block rewriter given a ${plan.format} node`);
      const { bits, blockSize } = plan.weights;
      const node = target.node;
      const t = target.weight;
      const wName = t.name!;
      const key = weightKey(p);
      let entry = done.get(key);
      const shared = entry !== undefined;
      if (!entry) {
        const solved = solveWeight(ctx, p);
        const w = packGatherBlockQuantized(solved.q);
        const data = edit.tensor(`${wName}_Q${bits}`, DataType.UINT8, [w.rows, w.data.length / w.rows], w.data);
        // The output takes the scales' type: the table's (float32, or float16 in an fp16 graph).
        const scales = edit.tensor(`${wName}_scales`, floatTypeOf(target), [w.rows, w.blocks], w.scales);
        const zp = w.zeroPoints ? edit.tensor(`${wName}_zero_points`, DataType.UINT8, [w.rows, w.zeroPoints.length / w.rows], w.zeroPoints) : '';
        entry = {
          inputs: [data, scales, ...(zp ? [zp] : [])],
          report: {
            as: 'GatherBlockQuantized',
            weight: wName,
            bits,
            blockSize,
            granularity: 'block',
            sqnrDb: solved.sqnrDb,
            bytesBefore: tensorBytes(t),
            bytesAfter: w.data.length + scaleBytes(floatTypeOf(target), w.scales.length) + (w.zeroPoints?.length ?? 0),
          },
        };
        done.set(key, entry);
      }
      // Inputs: data, indices, scales, zero_points.
      const [data, scales, zp] = entry.inputs;
      const inputs = [data, node.input[1]!, scales, ...(zp ? [zp] : [])];
      const replacement = edit.node(
        'GatherBlockQuantized',
        inputs,
        [node.output[0]],
        { gather_axis: 0, quantize_axis: 1, block_size: blockSize, bits },
        { name: `${node.name || 'Gather'}_Q${bits}`, domain: 'com.microsoft' },
      );
      edit.replace(node, [replacement]);
      written++;
      return { node: target.label, op: 'Gather', format: 'gather-block', ...entry.report, ...(shared ? { sharedWeight: true } : {}) };
    },
    finish(): string[] {
      if (written) edit.requireOpset('com.microsoft', 1);
      return [];
    },
  };
}
