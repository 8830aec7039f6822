// The cos/sin caches GroupQueryAttention's do_rotary reads ([max positions, head size / 2] each, non-interleaved
// halves as LLaMA's rotate_half uses). Taken from the model's own tables where it has them (an initializer of
// [positions, head size] that a Gather indexes with position_ids, Hugging Face's cat(freqs, freqs) layout), so the
// fused model rotates by exactly the exporter's numbers; otherwise computed from rope_theta as Hugging Face does
// (inverse frequencies and angles in float32).
import { tensorValues } from '../onnx/tensor.js';
import { DataType } from '../onnx/types.js';
import type { FusionContext } from './context.js';

export interface RotaryCaches {
  cos: string;
  sin: string;
  rows: number;
  origin: 'model tables' | 'rope_theta';
}

export function rotaryCaches(ctx: FusionContext, headDim: number, theta: number, maxPositions: number | null): RotaryCaches | string {
  if (headDim % 2 !== 0) return `head size ${headDim} is odd`;
  const half = headDim / 2;
  const tables = modelTables(ctx, headDim);
  if (tables) {
    return {
      cos: ctx.editor.tensor('optimize.rotary.cos_cache', DataType.FLOAT, [tables.rows, half], tables.cos),
      sin: ctx.editor.tensor('optimize.rotary.sin_cache', DataType.FLOAT, [tables.rows, half], tables.sin),
      rows: tables.rows,
      origin: 'model tables',
    };
  }
  if (maxPositions === null) return 'the model has no rotary tables and no maximum position count (config.json max_position_embeddings)';
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / headDim)));
  const cos = new Float32Array(maxPositions * half);
  const sin = new Float32Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * invFreq[i]);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return {
    cos: ctx.editor.tensor('optimize.rotary.cos_cache', DataType.FLOAT, [maxPositions, half], cos),
    sin: ctx.editor.tensor('optimize.rotary.sin_cache', DataType.FLOAT, [maxPositions, half], sin),
    rows: maxPositions,
    origin: 'rope_theta',
  };
}

/** The first halves of the model's cos and sin tables, when it has them in the cat(freqs, freqs) layout. */
function modelTables(ctx: FusionContext, headDim: number): { cos: Float32Array; sin: Float32Array; rows: number } | null {
  const half = headDim / 2;
  const found: Float32Array[] = [];
  let rows = 0;
  for (const node of ctx.model.graph.node) {
    if (node.opType !== 'Gather' || node.input[1] !== 'position_ids') continue;
    const t = ctx.index.initializer(node.input[0]);
    if (!t || t.dataType !== DataType.FLOAT || t.dims.length !== 2 || t.dims[1] !== headDim) continue;
    const values = tensorValues(t, ctx.model.rawBytes(t)).data as Float32Array;
    rows = t.dims[0];
    // Both halves of every row must agree, or this is not the rotate_half layout.
    const first = new Float32Array(rows * half);
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < half; i++) {
        if (values[r * headDim + i] !== values[r * headDim + half + i]) return null;
        first[r * half + i] = values[r * headDim + i];
      }
    }
    found.push(first);
  }
  if (found.length !== 2) return null;
  // cos(0) = 1 and sin(0) = 0 tell the two apart.
  const [a, b] = found;
  const cos = a[0] === 1 ? a : b;
  const sin = cos === a ? b : a;
  if (cos[0] !== 1 || sin[0] !== 0 || a.length !== b.length) return null;
  return { cos, sin, rows };
}
