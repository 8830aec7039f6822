// Self-attention onto com.microsoft GroupQueryAttention (CPU, float32): the projections stay as they are (float,
// MatMulNBits or QDQ weights carried through; q/k/v packed into one product where packed-projections.ts can),
// and everything between them and the output projection — head reshapes, rotary, the cache Concats, the
// grouped-head Expand, scores, mask, Softmax — becomes one node. The cache keeps the optimum layout
// [batch, kv heads, sequence, head size] as separate past/present tensors with the original names, and
// seqlens_k / total_sequence_length come from attention_mask inside the graph (sequence-lengths.ts).
//
// GroupQueryAttention masks causally from seqlens_k alone: it has no notion of left padding, so a batch whose
// rows have padding is refused at run time by the decoder (decoder-session.ts), not computed wrongly.
import { makeNode } from '../onnx/builder.js';
import type { NodeProto } from '../onnx/types.js';
import type { Attention, DecoderLayer } from '../structure/decoder-structure.js';
import type { FusionContext } from './context.js';
import { MS_DOMAIN } from './norms.js';
import { packProjections } from './packed-projections.js';
import { rotaryCaches, type RotaryCaches } from './rotary.js';
import { sequenceLengths, type SequenceLengths } from './sequence-lengths.js';

export const MASK_INPUT = 'attention_mask';

export interface AttentionSettings {
  /** rope_theta (config.json), used only when the model carries no rotary tables. */
  ropeTheta: number;
  maxPositions: number | null;
  /** Pack separate q/k/v projections into one (default true). */
  packQkv: boolean;
}

export function fuseAttention(ctx: FusionContext, settings: AttentionSettings): void {
  const layers = ctx.structure.layers;
  if (!ctx.index.graphInput(MASK_INPUT)) {
    for (const l of layers) ctx.keep(`layer ${l.index} attention`, `the model has no '${MASK_INPUT}' input to compute sequence lengths from`);
    return;
  }
  let shared: SequenceLengths | null = null;
  let rotary: RotaryCaches | string | null = null;
  // The shared nodes go before the attention that comes first in the graph.
  const order = [...layers].sort((a, b) => ctx.position(ctx.producer(a.attention.context)!) - ctx.position(ctx.producer(b.attention.context)!));
  for (const layer of order) {
    const block = `layer ${layer.index} attention`;
    const a = layer.attention;
    const why = unsupported(ctx, layer);
    if (why) {
      ctx.keep(block, why);
      continue;
    }
    let caches: RotaryCaches | null = null;
    if (a.positions === 'rotary') {
      rotary ??= rotaryCaches(ctx, a.headDim, settings.ropeTheta, settings.maxPositions);
      if (typeof rotary === 'string') {
        ctx.keep(block, `rotary caches: ${rotary}`);
        continue;
      }
      caches = rotary;
    }
    const first = shared === null;
    shared ??= sequenceLengths(ctx, MASK_INPUT);
    const nodes: NodeProto[] = first ? [...shared.nodes] : [];
    let qkv: string[];
    if (a.kind === 'fused-qkv') qkv = [a.qkv!.output, '', ''];
    else {
      const packed = settings.packQkv ? packProjections(ctx, [a.q!, a.k!, a.v!], `/model/layers.${layer.index}/attn/qkv_proj/MatMul`) : 'packing is off';
      if (typeof packed === 'string') qkv = [a.q!.output, a.k!.output, a.v!.output];
      else {
        nodes.push(packed.node);
        qkv = [packed.output, '', ''];
        ctx.count('PackedQKV');
      }
    }
    const inputs = [...qkv, a.pastKey!, a.pastValue!, shared.seqlensK, shared.totalLength, ...(caches ? [caches.cos, caches.sin] : [])];
    const attrs = { num_heads: a.heads, kv_num_heads: a.kvHeads, do_rotary: caches ? 1 : 0, rotary_interleaved: 0 };
    nodes.push(makeNode('GroupQueryAttention', inputs, [a.context, a.presentKey!, a.presentValue!], attrs, {
      name: ctx.editor.value(`/model/layers.${layer.index}/attn/GroupQueryAttention`),
      domain: MS_DOMAIN,
    }));
    ctx.replace(ctx.producer(a.context)!, nodes);
    ctx.remove(ctx.producer(a.presentKey!)!);
    ctx.remove(ctx.producer(a.presentValue!)!);
    ctx.count('GroupQueryAttention');
  }
}

/** Why this layer's attention cannot become GroupQueryAttention, or null when it can. */
function unsupported(ctx: FusionContext, layer: DecoderLayer): string | null {
  const a: Attention = layer.attention;
  if (!a.pastKey || !a.pastValue || !a.presentKey || !a.presentValue) return 'no KV-cache inputs and outputs (past/present) to map onto the fused cache';
  if (a.heads % a.kvHeads !== 0) return `${a.heads} query heads are not a multiple of ${a.kvHeads} key/value heads`;
  const projections = a.kind === 'fused-qkv' ? [a.qkv] : [a.q, a.k, a.v];
  if (projections.some((p) => !p)) return 'a q/k/v projection is missing from the description';
  if (a.kind === 'separate' && (a.k!.input !== a.q!.input || a.v!.input !== a.q!.input)) return 'cross-attention (keys/values read another input than queries)';
  const producers = [a.context, a.presentKey, a.presentValue].map((v) => ctx.producer(v));
  if (producers.some((p) => !p)) return 'the attention output or a present output has no producing node';
  if (producers.some((p) => ctx.isClaimed(p!))) return 'its nodes are already part of another fusion';
  if (new Set(producers).size !== 3) return 'one node produces several of the attention output and presents';
  return null;
}
