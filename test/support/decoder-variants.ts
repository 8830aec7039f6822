// Small decoder variants for the structure and pruning tests, made with the sample builders and the graph editor.
import { GraphEditor } from '../../src/onnx/editor.js';
import { OnnxModel } from '../../src/onnx/model.js';
import { buildLlama, TINY_LLAMA, type DecoderConfig } from '../../src/models/llama.js';
import { tensorValues } from '../../src/onnx/tensor.js';
import { DataType } from '../../src/onnx/types.js';
import type { Norm } from '../../src/structure/decoder-structure.js';
import { nodesByLabel } from '../../src/structure/discover.js';

/** A small LLaMA config (2 layers, hidden 48, MLP 40) with `over` on top. */
export const smallLlama = (over: Partial<DecoderConfig>): DecoderConfig => ({ ...TINY_LLAMA, hiddenSize: 48, intermediateSize: 40, numHiddenLayers: 2, maxPositionEmbeddings: 64, ...over });

export const llamaModel = (c: DecoderConfig, seed: number, name: string): OnnxModel => new OnnxModel(buildLlama(c, seed), undefined, name);

/** The model with a small non-zero bias Add after every q, k and v projection (Add(bias, x), as torch exports nn.Linear). */
export function withQkvBiases(model: OnnxModel): OnnxModel {
  const editor = new GraphEditor(model);
  for (const n of model.graph.node) {
    if (n.opType !== 'MatMul' || !/\/(q|k|v)_proj\/MatMul$/.test(n.name ?? '')) continue;
    const w = model.graph.initializer.find((t) => t.name === n.input[1])!;
    const out = w.dims[1];
    const bias = editor.tensor(`${w.name}.bias`, DataType.FLOAT, [out], Float32Array.from({ length: out }, (_, i) => ((i % 7) - 3) * 0.05));
    const raw = editor.value(`${n.output[0]}_nobias`);
    editor.replace(n, [{ ...n, output: [raw] }, editor.node('Add', [bias, raw], n.output)]);
  }
  return editor.finish().model;
}

/**
 * The model with each 3-way Split of a fused QKV output replaced by three Slices on the last axis (as exports that
 * index `qkv[..., a:b]` write them), their bounds in initializers that all layers share; v's end is open.
 */
export function withSlicedQkv(model: OnnxModel): OnnxModel {
  const editor = new GraphEditor(model);
  const shared = new Map<bigint, string>();
  const bound = (v: bigint): string => {
    if (!shared.has(v)) shared.set(v, editor.tensor(`qkv_bound_${v === 2n ** 63n - 1n ? 'end' : v}`, DataType.INT64, [1], [v]));
    return shared.get(v)!;
  };
  const inits = new Map(model.graph.initializer.map((t) => [t.name, t]));
  const producers = new Map(model.graph.node.flatMap((n) => n.output.map((o) => [o, n] as const)));
  for (const n of model.graph.node) {
    if (n.opType !== 'Split' || n.output.length !== 3) continue;
    const c = inits.get(n.input[1]) ?? producers.get(n.input[1])?.attribute.find((a) => a.name === 'value')?.t;
    const [a, b] = Array.from(tensorValues(c!).data as BigInt64Array);
    const cuts: [bigint, bigint][] = [
      [0n, a],
      [a, a + b],
      [a + b, 2n ** 63n - 1n],
    ];
    editor.replace(
      n,
      cuts.map(([s, e], i) => editor.node('Slice', [n.input[0], bound(s), bound(e), bound(-1n)], [n.output[i]], undefined, { name: `${n.name}/slice_${i}` })),
    );
  }
  editor.removeDeadCode();
  return editor.finish().model;
}

/**
 * The model with repeat_kv's Unsqueeze -> Expand -> Reshape replaced by Tile on the heads axis, which interleaves
 * the copies: query head h then reads key/value head h mod kvHeads (a different model, equally valid).
 */
export function withTiledRepeat(model: OnnxModel): OnnxModel {
  const editor = new GraphEditor(model);
  const producers = new Map(model.graph.node.flatMap((n) => n.output.map((o) => [o, n] as const)));
  const inits = new Map(model.graph.initializer.map((t) => [t.name, t]));
  const constant = (name: string): bigint[] => {
    const t = inits.get(name) ?? producers.get(name)!.attribute.find((a) => a.name === 'value')!.t!;
    return Array.from(tensorValues(t).data as BigInt64Array);
  };
  for (const reshape of model.graph.node) {
    const expand = producers.get(reshape.input[0]);
    const unsqueeze = expand?.opType === 'Expand' ? producers.get(expand.input[0]) : undefined;
    if (reshape.opType !== 'Reshape' || unsqueeze?.opType !== 'Unsqueeze') continue;
    const rep = constant(expand!.input[1])[2];
    const repeats = editor.tensor('tile_repeats', DataType.INT64, [4], [1n, rep, 1n, 1n]);
    editor.replace(reshape, [editor.node('Tile', [unsqueeze.input[0], repeats], reshape.output)]);
  }
  editor.removeDeadCode();
  return editor.finish().model;
}

/** The model with each LayerNormalization written out as opsets before 17 export it (ReduceMean, Sub, Pow, ...). */
export function withDecomposedLayerNorm(model: OnnxModel): OnnxModel {
  const editor = new GraphEditor(model);
  const scalar = (v: number): string => editor.tensor('ln_const', DataType.FLOAT, [], [v]);
  for (const n of model.graph.node) {
    if (n.opType !== 'LayerNormalization') continue;
    const eps = n.attribute.find((a) => a.name === 'epsilon')?.f ?? 1e-5;
    const v = (s: string): string => editor.value(`${n.name}/${s}`);
    const [mean, d, sq, variance, shifted, std, normed, scaled] = ['mean', 'd', 'sq', 'var', 'shifted', 'std', 'normed', 'scaled'].map(v);
    editor.replace(n, [
      editor.node('ReduceMean', [n.input[0]], [mean], { axes: [-1], keepdims: 1 }),
      editor.node('Sub', [n.input[0], mean], [d]),
      editor.node('Pow', [d, scalar(2)], [sq]),
      editor.node('ReduceMean', [sq], [variance], { axes: [-1], keepdims: 1 }),
      editor.node('Add', [variance, scalar(eps)], [shifted]),
      editor.node('Sqrt', [shifted], [std]),
      editor.node('Div', [d, std], [normed]),
      editor.node('Mul', [normed, n.input[1]], [scaled]),
      editor.node('Add', [scaled, n.input[2]], n.output),
    ]);
  }
  return editor.finish().model;
}

/** The model with each RMSNorm `structure` found replaced by ONNX Runtime's SimplifiedLayerNormalization node. */
export function withSimplifiedNorms(model: OnnxModel, norms: readonly Norm[]): OnnxModel {
  const editor = new GraphEditor(model);
  const byLabel = nodesByLabel(model.graph);
  for (const norm of norms) {
    const nodes = norm.nodes.map((l) => byLabel.get(l)!);
    for (const n of nodes.slice(0, -1)) editor.remove(n);
    editor.replace(nodes.at(-1)!, [editor.node('SimplifiedLayerNormalization', [norm.input, norm.gain], [norm.output], { axis: -1, epsilon: norm.epsilon })]);
  }
  editor.removeDeadCode();
  return editor.finish().model;
}
