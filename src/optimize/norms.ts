// RMSNorm and LayerNorm onto ONNX Runtime's fused kernels: a decomposed RMSNorm (Pow, ReduceMean, Add, Sqrt, Div,
// Mul...) becomes SimplifiedLayerNormalization; a norm whose input is the residual stream's Add becomes
// SkipSimplifiedLayerNormalization / SkipLayerNormalization, which also returns the sum (its fourth output keeps
// the residual value's name, so whatever else reads the residual reads it unchanged).
//
// The fused node takes the Add's place in the graph, not the norm's: every consumer of the sum and of the norm
// comes after the Add, so the order stays topological whatever the exporter put between them.
import { makeNode } from '../onnx/builder.js';
import type { NodeProto } from '../onnx/types.js';
import type { Norm } from '../structure/decoder-structure.js';
import type { FusionContext } from './context.js';

export const MS_DOMAIN = 'com.microsoft';

/** Every norm of the decoder (per layer, then the final one), each fused or kept with the reason. */
export function fuseNorms(ctx: FusionContext): void {
  const s = ctx.structure;
  for (const layer of s.layers) {
    fuseNorm(ctx, layer.attentionNorm, `layer ${layer.index} attention norm`);
    fuseNorm(ctx, layer.mlpNorm, `layer ${layer.index} MLP norm`);
  }
  fuseNorm(ctx, s.finalNorm, 'final norm');
}

function fuseNorm(ctx: FusionContext, norm: Norm, block: string): void {
  const last = ctx.producer(norm.output);
  if (!last) return ctx.keep(block, `its output '${norm.output}' has no producing node`);
  if (norm.kind === 'layer' && !norm.bias) return ctx.keep(block, 'a LayerNorm without a bias (beta) initializer');
  const gains = norm.kind === 'layer' ? [norm.gain, norm.bias!] : [norm.gain];
  const attrs = { epsilon: norm.epsilon };
  const add = residualAdd(ctx, norm.input);
  if (add) {
    const op = norm.kind === 'rms' ? 'SkipSimplifiedLayerNormalization' : 'SkipLayerNormalization';
    // A block output that is a projection plus its bias: the fused norm adds the bias itself (its last input).
    const biased = add.input.map((i) => projectionBias(ctx, i)).find((b) => b !== undefined);
    const operands = biased ? add.input.map((i) => (i === biased.node.output[0] ? biased.input : i)) : add.input;
    const fused = makeNode(op, [operands[0], operands[1], ...gains, ...(biased ? [biased.bias] : [])], [norm.output, '', '', add.output[0]], attrs, {
      name: ctx.editor.value(`${last.name ?? 'norm'}/${op}`),
      domain: MS_DOMAIN,
    });
    if (last === add || ctx.isClaimed(last)) return ctx.keep(block, 'its nodes are already part of another fusion');
    ctx.replace(add, [fused]);
    ctx.remove(last);
    if (biased) ctx.remove(biased.node);
    ctx.count(op);
    return;
  }
  const op = norm.kind === 'rms' ? 'SimplifiedLayerNormalization' : 'LayerNormalization';
  // Already the fused op: nothing to gain.
  if (norm.nodes.length === 1 && last.opType === op) return;
  const fused = makeNode(op, [norm.input, ...gains], [norm.output], { axis: -1, ...attrs }, { name: ctx.editor.value(`${last.name ?? 'norm'}/${op}`) });
  if (!ctx.replace(last, [fused])) return ctx.keep(block, 'its nodes are already part of another fusion');
  ctx.count(op);
}

/** The Add that produces `value` from two computed values (the residual stream plus a block's output), if any. */
function residualAdd(ctx: FusionContext, value: string): NodeProto | undefined {
  const node = ctx.producer(value);
  if (!node || node.opType !== 'Add' || (node.domain ?? '') !== '' || node.input.length !== 2 || ctx.isClaimed(node)) return undefined;
  const computed = (i: string) => !ctx.index.initializer(i) && (ctx.index.graphInput(i) !== undefined || (ctx.producer(i)?.opType ?? 'Constant') !== 'Constant');
  if (!node.input.every(computed)) return undefined;
  return node;
}

/** `value` = computed + a 1-D bias initializer, read only by the residual Add: the parts, to fold into the norm. */
function projectionBias(ctx: FusionContext, value: string): { node: NodeProto; input: string; bias: string } | undefined {
  const node = ctx.producer(value);
  if (!node || node.opType !== 'Add' || (node.domain ?? '') !== '' || node.input.length !== 2 || ctx.isClaimed(node)) return undefined;
  const bias = node.input.find((i) => ctx.index.initializer(i)?.dims.length === 1);
  const input = node.input.find((i) => i !== bias);
  if (!bias || !input || ctx.index.initializer(input) || ctx.index.consumers(value).length !== 1) return undefined;
  return { node, input, bias };
}
