// MLP activations onto single fused nodes: SiLU written as x * Sigmoid(x) becomes QuickGelu with alpha 1
// (x * sigmoid(alpha x), the same function); GPT-2's tanh GELU (gelu_new, eight elementwise nodes) becomes
// FastGelu, which also takes the preceding projection's bias, and an erf GELU becomes Gelu. Which function the
// nodes compute is told by the ops between the projections (Tanh or Erf); the logits check confirms it.
import { floatAttr } from '../onnx/attributes.js';
import { makeNode } from '../onnx/builder.js';
import type { NodeProto } from '../onnx/types.js';
import type { Mlp } from '../structure/decoder-structure.js';
import type { FusionContext } from './context.js';
import { MS_DOMAIN } from './norms.js';

export function fuseActivations(ctx: FusionContext): void {
  for (const layer of ctx.structure.layers) {
    const block = `layer ${layer.index} MLP activation`;
    const why = layer.mlp.kind === 'swiglu' ? fuseSilu(ctx, layer.mlp) : fuseGelu(ctx, layer.mlp);
    if (why) ctx.keep(block, why);
  }
}

function fuseSilu(ctx: FusionContext, mlp: Mlp): string | null {
  if (!mlp.gate) return 'no gate projection';
  const x = mlp.gate.output;
  const consumers = ctx.index.consumers(x);
  const sigmoid = consumers.find((n) => n.opType === 'Sigmoid');
  const mul = sigmoid && consumers.find((n) => n.opType === 'Mul' && n.input.includes(sigmoid.output[0]));
  if (!sigmoid || !mul) return 'the gate activation is not x * Sigmoid(x)';
  if (ctx.index.consumers(sigmoid.output[0]).length !== 1) return 'the Sigmoid is read elsewhere';
  const fused = makeNode('QuickGelu', [x], [mul.output[0]], [floatAttr('alpha', 1)], { name: ctx.editor.value(`${mul.name ?? 'silu'}/QuickGelu`), domain: MS_DOMAIN });
  if (!ctx.replace(mul, [fused])) return 'its nodes are already part of another fusion';
  ctx.count('QuickGelu');
  return null;
}

/** Elementwise nodes between `from` and `to` (to's producer back to from), or null past `limit` nodes. */
function region(ctx: FusionContext, from: string, to: string, limit = 12): NodeProto[] | null {
  const seen = new Set<NodeProto>();
  const stack = [to];
  while (stack.length) {
    const value = stack.pop()!;
    if (value === from) continue;
    const node = ctx.producer(value);
    if (!node || node.opType === 'Constant' || seen.has(node)) continue;
    seen.add(node);
    if (seen.size > limit) return null;
    for (const i of node.input) if (i && !ctx.index.initializer(i)) stack.push(i);
  }
  return [...seen];
}

function fuseGelu(ctx: FusionContext, mlp: Mlp): string | null {
  const nodes = region(ctx, mlp.up.output, mlp.down.input);
  if (!nodes || nodes.length === 0) return 'the activation between the projections is not a small elementwise chain';
  const ops = new Set(nodes.map((n) => n.opType));
  const op = ops.has('Tanh') ? 'FastGelu' : ops.has('Erf') ? 'Gelu' : null;
  if (!op) return `no Tanh or Erf in the activation (${[...ops].join(', ')})`;
  if (ops.has('MatMul') || ops.has('Gemm') || ops.has('MatMulNBits')) return 'the activation region holds a projection';
  const last = ctx.producer(mlp.down.input)!;
  if (nodes.some((n) => ctx.isClaimed(n))) return 'its nodes are already part of another fusion';
  // FastGelu adds the projection's bias itself: the bias Add goes too when nothing else reads its output.
  const biasAdd = mlp.up.biasNode ? ctx.producer(mlp.up.output) : undefined;
  const foldBias = op === 'FastGelu' && biasAdd && mlp.up.bias && ctx.index.consumers(mlp.up.output).every((c) => nodes.includes(c)) && !ctx.isClaimed(biasAdd);
  const x = foldBias ? biasAdd.input.find((i) => i !== mlp.up.bias)! : mlp.up.output;
  const fused = makeNode(op, foldBias ? [x, mlp.up.bias!] : [x], [mlp.down.input], undefined, { name: ctx.editor.value(`${last.name ?? 'gelu'}/${op}`), domain: MS_DOMAIN });
  ctx.replace(last, [fused]);
  if (foldBias) ctx.remove(biasAdd);
  ctx.count(op);
  return null;
}
