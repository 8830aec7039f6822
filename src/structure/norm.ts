// The norm that reads a residual value: one LayerNormalization / SimplifiedLayerNormalization node, RMSNorm as
// torch exports it (x * 1/sqrt(mean(x^2) + eps) * weight, with Pow or Mul for the square and Div, Reciprocal or a
// direct Div for the inverse, and the float casts torch adds around it), or LayerNorm decomposed as opsets before
// 17 export it.
import { attrFloat } from '../onnx/attributes.js';
import type { OnnxModel } from '../onnx/model.js';
import type { NodeProto } from '../onnx/types.js';
import { constantNumbers } from './constants.js';
import type { Norm } from './decoder-structure.js';
import { aliases, type GraphView } from './projection.js';

const single = (view: GraphView, value: string, op: string): NodeProto | undefined => {
  const c = view.index.consumers(value);
  return c.length === 1 && c[0].opType === op ? c[0] : undefined;
};

/** The norm reading `value` (or a cast of it), or undefined when none does. */
export function normAt(model: OnnxModel, view: GraphView, value: string): Norm | undefined {
  const xs = aliases(view, value);
  const readers = [...xs].flatMap((x) => view.index.consumers(x).map((n) => [x, n] as const));
  for (const [x, n] of readers) {
    if ((n.opType === 'LayerNormalization' || n.opType === 'SimplifiedLayerNormalization') && n.input[0] === x) {
      const gain = n.input[1];
      const bias = n.opType === 'LayerNormalization' && n.input[2] ? n.input[2] : undefined;
      if (!view.index.initializer(gain)) continue;
      return {
        kind: n.opType === 'LayerNormalization' ? 'layer' : 'rms',
        nodes: [view.label(n)],
        input: value,
        output: n.output[0],
        gain,
        ...(bias ? { bias } : {}),
        epsilon: attrFloat(n, 'epsilon', 1e-5),
      };
    }
  }
  for (const [x, n] of readers) {
    if (n.opType === 'ReduceMean' && n.input[0] === x) {
      const norm = decomposedLayerNorm(model, view, value, xs, n);
      if (norm) return norm;
    }
  }
  for (const [x, sq] of readers) {
    const squares = (sq.opType === 'Pow' && sq.input[0] === x && constantNumbers(model, view.index, sq.input[1])?.[0] === 2) || (sq.opType === 'Mul' && sq.input[0] === x && sq.input[1] === x);
    if (!squares) continue;
    const mean = single(view, sq.output[0], 'ReduceMean');
    const add = mean && single(view, mean.output[0], 'Add');
    const epsValue = add && (add.input[0] === mean!.output[0] ? add.input[1] : add.input[0]);
    const eps = epsValue !== undefined ? constantNumbers(model, view.index, epsValue) : undefined;
    const sqrt = add && single(view, add.output[0], 'Sqrt');
    if (!sqrt || eps?.length !== 1) continue;
    const nodes: NodeProto[] = [sq, mean!, add!, sqrt];
    let scaled: NodeProto | undefined;
    for (const n of view.index.consumers(sqrt.output[0])) {
      if (n.opType === 'Div' && xs.has(n.input[0]) && n.input[1] === sqrt.output[0]) scaled = n;
      let inverse: NodeProto | undefined;
      if (n.opType === 'Reciprocal') inverse = n;
      if (n.opType === 'Div' && n.input[1] === sqrt.output[0] && constantNumbers(model, view.index, n.input[0])?.[0] === 1) inverse = n;
      if (inverse) {
        const mul = view.index.consumers(inverse.output[0]).find((m) => m.opType === 'Mul' && m.input.some((i) => xs.has(i)));
        if (mul) {
          nodes.push(inverse);
          scaled = mul;
        }
      }
    }
    if (!scaled) continue;
    nodes.push(scaled);
    let y = scaled.output[0];
    for (let c = single(view, y, 'Cast'); c; c = single(view, y, 'Cast')) {
      nodes.push(c);
      y = c.output[0];
    }
    const gainMul = single(view, y, 'Mul');
    const gain = gainMul?.input.find((i) => i !== y && view.index.initializer(i)?.dims.length === 1);
    if (!gainMul || !gain) continue;
    nodes.push(gainMul);
    return { kind: 'rms', nodes: nodes.map(view.label), input: value, output: gainMul.output[0], gain, epsilon: eps[0] };
  }
  return undefined;
}

/** LayerNorm as older opsets export it: (x - mean) / sqrt(mean((x - mean)^2) + eps) * weight + bias. */
function decomposedLayerNorm(model: OnnxModel, view: GraphView, value: string, xs: ReadonlySet<string>, mean: NodeProto): Norm | undefined {
  const sub = view.index.consumers(mean.output[0]).find((n) => n.opType === 'Sub' && xs.has(n.input[0]) && n.input[1] === mean.output[0]);
  if (!sub) return undefined;
  const d = sub.output[0];
  const sq = view.index.consumers(d).find((n) => (n.opType === 'Pow' && constantNumbers(model, view.index, n.input[1])?.[0] === 2) || (n.opType === 'Mul' && n.input[0] === d && n.input[1] === d));
  const variance = sq && single(view, sq.output[0], 'ReduceMean');
  const add = variance && single(view, variance.output[0], 'Add');
  const eps = add && constantNumbers(model, view.index, add.input[0] === variance!.output[0] ? add.input[1] : add.input[0]);
  const sqrt = add && single(view, add.output[0], 'Sqrt');
  const div = sqrt && view.index.consumers(sqrt.output[0]).find((n) => n.opType === 'Div' && n.input[0] === d);
  if (!div || eps?.length !== 1) return undefined;
  const nodes: NodeProto[] = [mean, sub, sq!, variance!, add!, sqrt!, div];
  let y = div.output[0];
  for (let c = single(view, y, 'Cast'); c; c = single(view, y, 'Cast')) (nodes.push(c), (y = c.output[0]));
  const gainMul = single(view, y, 'Mul');
  const gain = gainMul?.input.find((i) => i !== y && view.index.initializer(i)?.dims.length === 1);
  if (!gainMul || !gain) return undefined;
  nodes.push(gainMul);
  const biasAdd = single(view, gainMul.output[0], 'Add');
  const bias = biasAdd?.input.find((i) => i !== gainMul.output[0] && view.index.initializer(i)?.dims.length === 1);
  if (biasAdd && bias) nodes.push(biasAdd);
  const output = biasAdd && bias ? biasAdd.output[0] : gainMul.output[0];
  return { kind: 'layer', nodes: nodes.map(view.label), input: value, output, gain, ...(bias ? { bias } : {}), epsilon: eps[0] };
}
