// MatMul (or Gemm) with a constant 2-D weight -> com.microsoft MatMulNBits, the block-quantized weight format
// ONNX Runtime's matmul_nbits_quantizer writes and transformers.js "q4" files use. Codes, scales and zero points
// follow ORT's quantizer exactly (quantizers.ts, 'mlas' convention) so the kernel sees what it was tuned for.
// Scales (and the bias) take the type of A: float32, or float16 in an fp16 graph (ORT's CPU kernel runs both).
import { DataType } from '../../onnx/types.js';
import type { PlannedNode } from '../plan.js';
import { packBits, type Quantized } from '../quantizers.js';
import { checkPadding, floatTypeOf, scaleBytes, solveWeight, tensorBytes, weightKey, type FormatRewriter, type NodeReport, type RewriteContext } from './common.js';

/** MatMulNBits' weight inputs, in the flat shapes ORT's own quantizer writes. */
export interface NBitsWeights {
  k: number;
  n: number;
  bits: number;
  blockSize: number;
  kBlocks: number;
  /** Bytes per block: blockSize * bits / 8. */
  blobSize: number;
  /** uint8 [N, kBlocks, blobSize]: each block's codes along K, packed low bits first. */
  b: Uint8Array;
  /** float32 [N * kBlocks], row n holding its blocks in K order. */
  scales: Float32Array;
  /** uint8 [N * ceil(kBlocks * bits / 8)], packed like B; absent for symmetric weights (implicit 2^(bits-1)). */
  zeroPoints?: Uint8Array;
}

/**
 * Lays out a 2-D weight quantized in blocks along its reduction axis (unsigned codes) as MatMulNBits' inputs.
 * `reductionAxis` 0 is MatMul's B [K, N]; 1 is Gemm's transposed B [N, K]. A K that the block size does not
 * divide leaves a short last block; its padding holds the block's zero-point code, which dequantizes to 0.
 */
export function packMatMulNBits(q: Quantized, reductionAxis: 0 | 1, withZeroPoints = !q.spec.symmetric): NBitsWeights {
  const g = q.spec.granularity;
  if (q.dims.length !== 2 || g.kind !== 'block' || g.axis !== reductionAxis || q.spec.signed) {
    throw new RangeError('packMatMulNBits needs a 2-D weight with unsigned codes in blocks along its reduction axis');
  }
  const { bits } = q.spec;
  const blockSize = g.blockSize;
  const k = q.dims[reductionAxis];
  const n = q.dims[1 - reductionAxis];
  const kBlocks = Math.ceil(k / blockSize);
  const blobSize = (blockSize * bits) / 8;
  if (!Number.isInteger(blobSize)) throw new RangeError(`block size ${blockSize} x ${bits} bits is not a whole number of bytes`);
  const code = reductionAxis === 0 ? (kk: number, nn: number) => q.codes[kk * n + nn] : (kk: number, nn: number) => q.codes[nn * k + kk];
  const param = reductionAxis === 0 ? (kb: number, nn: number) => kb * n + nn : (kb: number, nn: number) => nn * kBlocks + kb;

  const b = new Uint8Array(n * kBlocks * blobSize);
  const scales = new Float32Array(n * kBlocks);
  const zpRow = Math.ceil((kBlocks * bits) / 8);
  const zeroPoints = withZeroPoints ? new Uint8Array(n * zpRow) : undefined;
  const block = new Int16Array(blockSize);
  const zps = new Int16Array(kBlocks);
  for (let nn = 0; nn < n; nn++) {
    for (let kb = 0; kb < kBlocks; kb++) {
      const p = param(kb, nn);
      scales[nn * kBlocks + kb] = q.scales[p];
      zps[kb] = q.zeroPoints[p];
      for (let j = 0, kk = kb * blockSize; j < blockSize; j++, kk++) block[j] = kk < k ? code(kk, nn) : zps[kb];
      packBits(block, bits, b, (nn * kBlocks + kb) * blobSize);
    }
    if (zeroPoints) packBits(zps, bits, zeroPoints, nn * zpRow);
  }
  return { k, n, bits, blockSize, kBlocks, blobSize, b, scales, ...(zeroPoints ? { zeroPoints } : {}) };
}

/** Rewrites planned 'matmulnbits' nodes (MatMul, Gemm with a per-column bias) as MatMulNBits. */
export function nbitsRewriter(ctx: RewriteContext): FormatRewriter {
  const { edit } = ctx;
  const done = new Map<string, { inputs: string[]; report: Omit<NodeReport, 'node' | 'op' | 'format'> }>();
  const paddedBlocks = new Set<number>();
  let padded = 0;
  let written = 0;
  return {
    rewrite(p: PlannedNode): NodeReport {
      const { target: t, plan } = p;
      if (plan.format !== 'matmulnbits') throw new TypeError(`matmulnbits rewriter given a ${plan.format} node`);
      const { bits, blockSize } = plan.weights;
      const wName = t.weight.name!;
      const k = t.weight.dims[t.reductionAxis];
      const n = t.weight.dims[t.channelAxis];
      if (checkPadding(ctx, p, plan.padK, (kk, b) => `K = ${kk} is not a multiple of block size ${b}`)) {
        padded++;
        paddedBlocks.add(blockSize);
      }
      const key = weightKey(p);
      let entry = done.get(key);
      const shared = entry !== undefined;
      if (!entry) {
        const solved = solveWeight(ctx, p);
        const w = packMatMulNBits(solved.q, t.reductionAxis as 0 | 1);
        const b = edit.tensor(`${wName}_Q${bits}`, DataType.UINT8, [n, w.kBlocks, w.blobSize], w.b);
        const s = edit.tensor(`${wName}_scales`, floatTypeOf(t), [w.scales.length], w.scales);
        const z = w.zeroPoints ? edit.tensor(`${wName}_zero_points`, DataType.UINT8, [w.zeroPoints.length], w.zeroPoints) : '';
        const bytesAfter = w.b.length + scaleBytes(floatTypeOf(t), w.scales.length) + (w.zeroPoints?.length ?? 0);
        entry = {
          inputs: [b, s, z],
          report: { as: 'MatMulNBits', weight: wName, bits, blockSize, granularity: 'block', sqnrDb: solved.sqnrDb, bytesBefore: tensorBytes(t.weight), bytesAfter },
        };
        done.set(key, entry);
      }
      // Inputs: A, B, scales, zero_points, g_idx (deprecated, never written), bias.
      const inputs = [t.activation, ...entry.inputs, '', t.bias?.name ?? ''];
      while (inputs[inputs.length - 1] === '') inputs.pop();
      const node = edit.node(
        'MatMulNBits',
        inputs,
        [t.node.output[0]],
        { K: k, N: n, bits, block_size: blockSize, accuracy_level: plan.accuracyLevel },
        { name: `${t.node.name || 'MatMul'}_Q${bits}`, domain: 'com.microsoft' },
      );
      edit.replace(t.node, [node]);
      written++;
      return { node: t.label, op: t.op, format: 'matmulnbits', ...entry.report, ...(shared ? { sharedWeight: true } : {}) };
    },
    finish(): string[] {
      if (written) edit.requireOpset('com.microsoft', 1);
      return padded ? [`${padded} weight(s) with K not a multiple of ${[...paddedBlocks].join('/')}: last block padded (as ORT's quantizer does)`] : [];
    },
  };
}
