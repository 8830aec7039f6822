// The blocks of a decoder language model, found from its graph (not from tensor names): per layer the attention
// projections, head counts, the MLP, the norms, the residual values and the KV-cache values, and every constant
// that encodes a head count or a width. Pruning (which shrinks these) and the decoder optimizer (which rewrites
// them onto fused kernels) both read this one description.
//
// Node references are node labels as `nodeLabel` (src/onnx/graph.ts) gives them, so they survive copies of the
// model; values and initializers are referenced by name.

/** A weight-carrying projection: MatMul [in, out], Gemm (transB 0 or 1) or MatMulNBits. */
export interface Projection {
  node: string;
  op: 'MatMul' | 'Gemm' | 'MatMulNBits';
  /** The initializer holding the weight (for MatMulNBits its packed codes, for a QDQ weight its integer codes). */
  weight: string;
  /**
   * The node between the initializer and the projection, when there is one: a DequantizeLinear (QDQ weight, whose
   * scales and zero points belong to the weight too) or a Transpose (an lm_head tied to the embedding table).
   */
  weightVia?: string;
  /** Bias initializer added to the output (Gemm's C, or an Add right after the MatMul), if any. */
  bias?: string;
  /** The Add node that applies `bias` after a MatMul, if the bias is a separate node. */
  biasNode?: string;
  /** Where the out-features axis is in the stored weight: 1 for MatMul [in, out], 0 for Gemm transB=1 / MatMulNBits. */
  outAxis: 0 | 1;
  inFeatures: number;
  outFeatures: number;
  /** The value the projection reads and the value it produces (after the bias, when there is one). */
  input: string;
  output: string;
}

export type NormKind = 'rms' | 'layer';

export interface Norm {
  kind: NormKind;
  /** Every node of the norm (one LayerNormalization / SimplifiedLayerNormalization, or the decomposed chain). */
  nodes: string[];
  input: string;
  output: string;
  /** Gain (gamma) and, for LayerNorm, bias (beta) initializers. */
  gain: string;
  bias?: string;
  epsilon: number;
}

/**
 * A constant that encodes a size pruning changes: a Reshape's target shape, a Split's sizes, an Expand/Tile
 * repeat, an attribute. `meaning` says which size; `position` which element of the constant holds it.
 */
export interface SizeConstant {
  /** The node whose input or attribute carries the constant. */
  node: string;
  /** The initializer or Constant-node output holding the value, or an attribute name ('attr:num_heads'). */
  holder: string;
  position: number;
  /**
   * 'qk-width' and 'qkv-width' are the offsets where a fused QKV projection's k and v columns end (the Slice bounds
   * of exports that slice rather than Split it): (heads + kvHeads) x head_dim and (heads + 2 kvHeads) x head_dim.
   */
  meaning: 'heads' | 'kv-heads' | 'q-width' | 'kv-width' | 'qk-width' | 'qkv-width' | 'mlp-width' | 'group-size';
  value: number;
}

export interface Attention {
  /**
   * Separate q/k/v projections, or one fused QKV projection whose output columns are [q | k | v] (cut by a Split
   * or by three Slices).
   */
  kind: 'separate' | 'fused-qkv';
  q?: Projection;
  k?: Projection;
  v?: Projection;
  qkv?: Projection;
  o: Projection;
  heads: number;
  kvHeads: number;
  headDim: number;
  /**
   * Which query heads read key/value head g (a GQA group): 'contiguous' (repeat_kv, Expand after Unsqueeze on
   * axis 2) heads g*n_rep ... g*n_rep + n_rep - 1; 'strided' (Tile, or Expand after Unsqueeze on axis 1) heads
   * g, g + kvHeads, g + 2 kvHeads... Absent means contiguous. `queryHeadsOf` (src/structure/groups.ts) lists them.
   */
  groupLayout?: 'contiguous' | 'strided';
  /** Rotary embedding applied to q and k (LLaMA) or none (learned absolute positions, GPT-2). */
  positions: 'rotary' | 'none';
  /** Graph input and output names of this layer's KV cache (optimum layout [batch, kvHeads, past, headDim]). */
  pastKey?: string;
  pastValue?: string;
  presentKey?: string;
  presentValue?: string;
  /** Every constant in this layer's attention that holds a head count or width. */
  sizes: SizeConstant[];
  /** Scores Softmax node, and the attention output value before the o projection ([batch, seq, heads*headDim]). */
  softmax: string;
  context: string;
}

export interface Mlp {
  /** SwiGLU: down(silu(gate(x)) * up(x)); GELU: proj(gelu(fc(x))). */
  kind: 'swiglu' | 'gelu';
  gate?: Projection;
  up: Projection;
  down: Projection;
  width: number;
  sizes: SizeConstant[];
}

export interface DecoderLayer {
  index: number;
  /** The residual stream value entering the layer, after attention's residual add, and leaving the layer. */
  residualIn: string;
  residualMid: string;
  residualOut: string;
  attentionNorm: Norm;
  attention: Attention;
  mlpNorm: Norm;
  mlp: Mlp;
}

export interface DecoderStructure {
  layers: DecoderLayer[];
  hidden: number;
  vocab: number;
  /** Token embedding Gather and its table; the final norm and the lm_head projection (which may share the table). */
  embedding: { node: string; table: string };
  finalNorm: Norm;
  lmHead: Projection;
}

/** A graph that is not a decoder this module recognises; the message names the node or value where matching failed. */
export { StructureError } from './errors.js';
