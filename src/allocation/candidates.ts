// The candidate formats a layer may take in bit allocation, and the plan entry each one is written as. A width
// goes to MatMulNBits where ONNX Runtime's CPU kernel runs it (2, 4, 8 bits) and the node has a MatMulNBits
// form; anything else (3 bits, Conv, a Gemm MatMulNBits cannot take) to blocked QDQ, which runs every width.
import { OptionError } from '../errors.js';
import type { PlanEntry } from '../quantization/plan-file.js';
import { MAX_BITS, MIN_BITS } from '../quantization/quantizers.js';
import { checkBlockSize, NBITS_BITS } from '../quantization/schemes.js';

/** What the user asked for: a weight width and a block size along the reduction axis. */
export interface CandidateSpec {
  bits: number;
  blockSize: number;
}

export const DEFAULT_CANDIDATES = '2,4,8';
export const DEFAULT_BLOCK = 32;

/** The label a candidate is reported and cached under: `w4 g32`; float layers are `float`. */
export function candidateLabel(c: CandidateSpec): string {
  return `w${c.bits} g${c.blockSize}`;
}

export const FLOAT_LABEL = 'float';

/**
 * `--candidates 2,3,4,8` (optionally with a block size per width, `4g128`), each checked: widths no format can
 * store (outside 2..8) and bad block sizes are errors naming the flag.
 */
export function parseCandidates(text: string, blockSize = DEFAULT_BLOCK, flag = '--candidates'): CandidateSpec[] {
  const out: CandidateSpec[] = [];
  for (const raw of text.split(',').map((s) => s.trim())) {
    const m = /^(\d+)(?:g(\d+))?$/.exec(raw);
    if (!m) throw new OptionError(`${flag}: '${raw}' is not a bit width (e.g. 4) or a width with a block size (e.g. 4g64)`);
    const bits = Number(m[1]);
    if (bits < MIN_BITS || bits > MAX_BITS) {
      throw new OptionError(`${flag}: no format stores ${bits}-bit weights (MatMulNBits runs ${NBITS_BITS.join(', ')} bits, blocked QDQ ${MIN_BITS}..${MAX_BITS})`);
    }
    const spec = { bits, blockSize: m[2] !== undefined ? Number(m[2]) : blockSize };
    try {
      checkBlockSize(`${flag} ${raw}`, spec.blockSize);
    } catch (e) {
      throw new OptionError((e as Error).message);
    }
    if (!out.some((c) => c.bits === spec.bits && c.blockSize === spec.blockSize)) out.push(spec);
  }
  if (out.length === 0) throw new OptionError(`${flag}: give at least one bit width`);
  return out;
}

/** The plan-file entry (without its node) writing a layer in a candidate; `nbits` whether the node has a MatMulNBits form. */
export function candidateEntry(c: CandidateSpec, nbits: boolean): Omit<PlanEntry, 'node'> {
  const format = nbits && NBITS_BITS.includes(c.bits) ? 'matmulnbits' : 'qdq';
  return { format, bits: c.bits, blockSize: c.blockSize };
}
