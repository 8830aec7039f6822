// Structured pruning applied to the graph: the kept attention groups' q/k/v columns and o rows, the kept MLP
// neurons' gate/up columns and down rows (and their biases) are all that remain of each weight; every constant
// that encodes a head count or a width is rewritten per layer (a constant several layers share is given one copy
// per reader); the KV-cache inputs and outputs declare their new head counts; FLAP-style compensation becomes a
// bias; and the per-layer sizes are recorded in the model's metadata and its embedded config.json, so the result
// runs in ONNX Runtime as it is.
import { findAttr, intsAttr } from '../onnx/attributes.js';
import type { Dim } from '../onnx/builder.js';
import { GraphEditor } from '../onnx/editor.js';
import { GraphIndex } from '../onnx/graph.js';
import { embeddedKey, modelFolder } from '../onnx/model-folder.js';
import { ModelError, OnnxModel } from '../onnx/model.js';
import { tensorValues } from '../onnx/tensor.js';
import { DataType, type NodeProto, type TensorProto } from '../onnx/types.js';
import { constantNumbers, constantTensor } from '../structure/constants.js';
import type { DecoderLayer, DecoderStructure, Projection, SizeConstant } from '../structure/decoder-structure.js';
import { nodesByLabel } from '../structure/discover.js';
import { queryHeadsOf } from '../structure/groups.js';
import { OptionError } from '../errors.js';
import type { LayerKeep, PruneSelection } from './selection.js';

/**
 * metadata_props key of the per-layer sizes a pruned model records (not under `onnx_compress.`, the prefix of
 * embedded companion files, which folder outputs strip).
 */
export const PRUNING_METADATA_KEY = 'onnx_compress_pruning';

/** Per-layer sizes after pruning, as recorded in the model's metadata and config.json. */
export interface PrunedLayerSizes {
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
}

/** The model with only the selected attention groups and MLP neurons of each layer. */
export function pruneDecoder(model: OnnxModel, structure: DecoderStructure, selection: PruneSelection): OnnxModel {
  checkSelection(model, structure, selection);
  const s = new Surgery(model, structure);
  structure.layers.forEach((layer, i) => s.layer(layer, selection[i]));
  return s.finish(structure.layers.map((l, i) => sizesAfter(l, selection[i])));
}

function sizesAfter(layer: DecoderLayer, keep: LayerKeep): PrunedLayerSizes {
  const a = layer.attention;
  return { heads: keep.groups.length * (a.heads / a.kvHeads), kvHeads: keep.groups.length, headDim: a.headDim, intermediate: keep.neurons.length };
}

function checkSelection(model: OnnxModel, structure: DecoderStructure, selection: PruneSelection): void {
  if (selection.length !== structure.layers.length) {
    throw new OptionError(`${model.source}: the pruning selection has ${selection.length} layers, the model ${structure.layers.length}`);
  }
  const ascending = (xs: readonly number[], below: number, what: string, layer: number): void => {
    if (xs.length === 0) throw new OptionError(`${model.source}: the selection keeps no ${what} in layer ${layer}; at least one must stay`);
    xs.forEach((x, i) => {
      if (!Number.isInteger(x) || x < 0 || x >= below || (i > 0 && x <= xs[i - 1])) {
        throw new OptionError(`${model.source}: layer ${layer} keeps ${what} ${x}: indices must ascend within 0..${below - 1}`);
      }
    });
  };
  structure.layers.forEach((l, i) => {
    const keep = selection[i];
    ascending(keep.groups, l.attention.kvHeads, 'attention groups', i);
    ascending(keep.neurons, l.mlp.width, 'MLP neurons', i);
    for (const [part, v] of Object.entries(keep.compensation ?? {})) {
      if (v && v.length !== structure.hidden) throw new OptionError(`${model.source}: layer ${i}'s ${part} compensation has ${v.length} values, the hidden size is ${structure.hidden}`);
    }
  });
}

class Surgery {
  private readonly editor: GraphEditor;
  private readonly index: GraphIndex;
  private readonly byLabel: Map<string, NodeProto>;
  /** Nodes rewritten (inputs or attributes) and nodes to run right after them, applied once at the end. */
  private readonly copies = new Map<NodeProto, NodeProto>();
  private readonly after = new Map<NodeProto, NodeProto[]>();
  /** Sizes (as they were) that pruning changed: value_info shapes mentioning them may be stale. */
  private readonly changed = new Set<number>();

  constructor(
    private readonly model: OnnxModel,
    private readonly structure: DecoderStructure,
  ) {
    this.editor = new GraphEditor(model);
    this.index = this.editor.index;
    this.byLabel = nodesByLabel(model.graph);
  }

  layer(layer: DecoderLayer, keep: LayerKeep): void {
    const a = layer.attention;
    const rep = a.heads / a.kvHeads;
    const hd = a.headDim;
    const heads = keep.groups.flatMap((g) => queryHeadsOf(a, g)).sort((x, y) => x - y);
    const qCols = heads.flatMap((h) => range(h * hd, hd));
    const kvCols = keep.groups.flatMap((g) => range(g * hd, hd));
    if (a.kind === 'fused-qkv') {
      const qW = a.heads * hd;
      const kvW = a.kvHeads * hd;
      this.shrink(a.qkv!, [...qCols, ...kvCols.map((c) => c + qW), ...kvCols.map((c) => c + qW + kvW)], 'out', a.qkv!.outFeatures);
    } else {
      this.shrink(a.q!, qCols, 'out', a.q!.outFeatures);
      this.shrink(a.k!, kvCols, 'out', a.k!.outFeatures);
      this.shrink(a.v!, kvCols, 'out', a.v!.outFeatures);
    }
    this.shrink(a.o, qCols, 'in', a.o.inFeatures);
    const m = layer.mlp;
    if (m.gate) this.shrink(m.gate, keep.neurons, 'out', m.width);
    this.shrink(m.up, keep.neurons, 'out', m.width);
    this.shrink(m.down, keep.neurons, 'in', m.width);
    if (keep.compensation?.attention) this.compensate(a.o, keep.compensation.attention);
    if (keep.compensation?.mlp) this.compensate(m.down, keep.compensation.mlp);

    const after = sizesAfter(layer, keep);
    const value: Record<SizeConstant['meaning'], number> = {
      heads: after.heads,
      'kv-heads': after.kvHeads,
      'group-size': rep,
      'q-width': after.heads * hd,
      'kv-width': after.kvHeads * hd,
      'qk-width': (after.heads + after.kvHeads) * hd,
      'qkv-width': (after.heads + 2 * after.kvHeads) * hd,
      'mlp-width': after.intermediate,
    };
    this.rewriteSizes([...a.sizes, ...m.sizes], value);
    for (const name of [a.pastKey, a.pastValue, a.presentKey, a.presentValue]) if (name) this.retypeCache(name, a.kvHeads, after.kvHeads);
  }

  /** Keeps the `keep` rows or columns (along the out or in features) of a projection's weight, and its bias's. */
  private shrink(p: Projection, keep: readonly number[], side: 'out' | 'in', size: number): void {
    if (keep.length === size) return; // keeps everything, in order (checkSelection): the weight stays as it is
    this.changed.add(size);
    const w = this.floatWeight(p);
    const axis = side === 'out' ? p.outAxis : 1 - p.outAxis;
    const data = tensorValues(w, this.model.rawBytes(w)).data as Float32Array;
    const [rows, cols] = w.dims;
    const dims = axis === 0 ? [keep.length, cols] : [rows, keep.length];
    const out = new Float32Array(dims[0] * dims[1]);
    if (axis === 0) keep.forEach((r, i) => out.set(data.subarray(r * cols, (r + 1) * cols), i * cols));
    else for (let r = 0; r < rows; r++) for (let i = 0; i < keep.length; i++) out[r * keep.length + i] = data[r * cols + keep[i]];
    this.editor.replaceInitializer(w.name!, w.dataType!, dims, out);
    if (side === 'out' && p.bias) {
      const b = this.index.initializer(p.bias)!;
      this.sole(b.name!, p);
      const bias = tensorValues(b, this.model.rawBytes(b)).data as Float32Array;
      this.editor.replaceInitializer(b.name!, b.dataType!, [keep.length], Float32Array.from(keep, (k) => bias[k]));
    }
  }

  /** The projection's float weight, read by it alone: quantized or shared weights cannot be cut here. */
  private floatWeight(p: Projection): TensorProto {
    const w = this.index.initializer(p.weight)!;
    if (p.op === 'MatMulNBits' || (p.weightVia && this.byLabel.get(p.weightVia)?.opType === 'DequantizeLinear')) {
      throw new ModelError(`${this.model.source}: projection ${p.node} has quantized weights; prune the float model, then quantize`);
    }
    if (w.dataType !== DataType.FLOAT && w.dataType !== DataType.FLOAT16 && w.dataType !== DataType.BFLOAT16) {
      throw new ModelError(`${this.model.source}: weight '${w.name}' of ${p.node} is not a float tensor`);
    }
    this.sole(w.name!, p);
    return w;
  }

  private sole(name: string, p: Projection): void {
    const readers = this.index.consumers(name);
    if (readers.length > 1) {
      throw new ModelError(`${this.model.source}: '${name}' of ${p.node} is also read by ${readers.filter((n) => this.byLabel.get(p.node) !== n).map((n) => n.name ?? n.opType).join(', ')}; pruning it would change them too`);
    }
  }

  /** Adds `vector` to the projection's output: into its bias, or as a new bias Add after it. */
  private compensate(p: Projection, vector: Float32Array): void {
    if (p.bias) {
      const b = this.index.initializer(p.bias)!;
      this.sole(b.name!, p);
      const bias = Float32Array.from(tensorValues(b, this.model.rawBytes(b)).data as Float32Array);
      for (let i = 0; i < bias.length; i++) bias[i] += vector[i];
      this.editor.replaceInitializer(b.name!, b.dataType!, b.dims, bias);
      return;
    }
    const node = this.byLabel.get(p.node)!;
    const w = this.index.initializer(p.weight)!;
    const bias = this.editor.tensor(`${p.weight}.compensation`, w.dataType ?? DataType.FLOAT, [vector.length], vector);
    const raw = this.editor.value(`${p.output}_uncompensated`);
    const copy = this.copyOf(node);
    copy.output = copy.output.map((o) => (o === p.output ? raw : o));
    this.after.set(node, [...(this.after.get(node) ?? []), this.editor.node('Add', [raw, bias], [p.output], undefined, { name: `${node.name ?? 'projection'}/compensation` })]);
  }

  private copyOf(node: NodeProto): NodeProto {
    let copy = this.copies.get(node);
    if (!copy) {
      copy = { ...node, input: [...node.input], output: [...node.output], attribute: [...node.attribute] };
      this.copies.set(node, copy);
    }
    return copy;
  }

  /** Each size constant gets its new value, in a copy of its own for the node that reads it. */
  private rewriteSizes(sizes: readonly SizeConstant[], value: Record<SizeConstant['meaning'], number>): void {
    const byHolder = new Map<string, SizeConstant[]>();
    for (const s of sizes) {
      if (value[s.meaning] === s.value) continue;
      this.changed.add(s.value);
      const key = `${s.node}\u0000${s.holder}`;
      byHolder.set(key, [...(byHolder.get(key) ?? []), s]);
    }
    for (const group of byHolder.values()) {
      const { node: label, holder } = group[0];
      const node = this.byLabel.get(label);
      if (!node) throw new ModelError(`${this.model.source}: size constant of node ${label}: no such node`);
      const copy = this.copyOf(node);
      if (holder.startsWith('attr:')) {
        const name = holder.slice(5);
        const attr = findAttr(copy, name);
        if (!attr || !attr.ints.length) throw new ModelError(`${this.model.source}: node ${label} has no list attribute '${name}' to rewrite`);
        const ints = attr.ints.map(Number);
        for (const s of group) ints[s.position] = value[s.meaning];
        copy.attribute = copy.attribute.map((a) => (a === attr ? intsAttr(name, ints) : a));
        continue;
      }
      const values = constantNumbers(this.model, this.index, holder);
      if (!values) throw new ModelError(`${this.model.source}: the size constant '${holder}' of node ${label} is not a constant`);
      for (const s of group) {
        if (values[s.position] !== s.value) throw new ModelError(`${this.model.source}: '${holder}'[${s.position}] of node ${label} is ${values[s.position]}, not ${s.value}`);
        values[s.position] = value[s.meaning];
      }
      const t = constantTensor(this.model, this.index, holder);
      const dtype = t?.dataType ?? DataType.INT64;
      const dims = t ? t.dims : values.length === 1 && isScalarAttr(this.index.producer(holder)) ? [] : [values.length];
      const wide = dtype === DataType.INT64 || dtype === DataType.UINT64;
      const name = this.editor.tensor(`${holder}_pruned`, dtype, dims, wide ? values.map((v) => BigInt(v)) : values);
      copy.input = copy.input.map((i) => (i === holder ? name : i));
    }
  }

  /** A KV-cache input or output declares the kept key/value heads on its heads axis ([batch, kv_heads, seq, head_dim]). */
  private retypeCache(name: string, before: number, now: number): void {
    if (before === now) return;
    const v = this.index.graphInput(name) ?? this.index.graphOutput(name);
    const t = v?.type?.tensorType;
    if (!t?.shape || t.shape.dim.length !== 4) throw new ModelError(`${this.model.source}: KV-cache value '${name}' does not declare a [batch, heads, sequence, head_dim] shape`);
    const dims: Dim[] = t.shape.dim.map((d, i) => (i === 1 ? now : (d.dimValue ?? d.dimParam ?? null)));
    this.editor.setValueType(name, t.elemType ?? DataType.FLOAT, dims);
  }

  finish(sizes: PrunedLayerSizes[]): OnnxModel {
    for (const [node, copy] of this.copies) this.editor.replace(node, [copy, ...(this.after.get(node) ?? [])]);
    for (const [node, extra] of this.after) if (!this.copies.has(node)) this.editor.replace(node, [node, ...extra]);
    this.clearStaleShapes();
    this.editor.removeDeadCode();
    const edited = this.editor.finish().model;
    return withSizes(edited, this.model, this.structure, sizes);
  }

  /** value_info shapes that mention a size that changed may be stale: they are dropped (ONNX Runtime infers them). */
  private clearStaleShapes(): void {
    if (!this.changed.size) return;
    for (const v of this.model.graph.valueInfo) {
      const t = v.type?.tensorType;
      if (v.name && t?.shape?.dim.some((d) => d.dimValue !== undefined && this.changed.has(d.dimValue))) this.editor.setValueType(v.name, t.elemType ?? DataType.FLOAT);
    }
  }
}

function isScalarAttr(node: NodeProto | undefined): boolean {
  return !!node?.attribute.some((a) => a.name === 'value_int' || a.name === 'value_float');
}

function range(start: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => start + i);
}

/** The per-layer sizes in metadata_props, and in the embedded config.json when the model has a config. */
function withSizes(model: OnnxModel, original: OnnxModel, structure: DecoderStructure, sizes: PrunedLayerSizes[]): OnnxModel {
  const meta = (model.proto.metadataProps ?? []).filter((e) => e.key !== PRUNING_METADATA_KEY && e.key !== embeddedKey('config.json'));
  meta.push({ key: PRUNING_METADATA_KEY, value: JSON.stringify({ layers: sizes }) });
  const config = modelFolder(original).config;
  if (config) meta.push({ key: embeddedKey('config.json'), value: `${JSON.stringify(prunedConfig(config, structure, sizes), null, 2)}\n` });
  return new OnnxModel({ ...model.proto, metadataProps: meta }, model.baseDir, model.source);
}

/**
 * config.json with per-layer lists (`num_attention_heads_per_layer`, `num_key_value_heads_per_layer`,
 * `intermediate_size_per_layer`), the uniform keys set where every layer agrees (else to the largest layer, the
 * size the model's buffers must hold), and `head_dim` explicit, since hidden / heads no longer gives it.
 */
export function prunedConfig(config: Readonly<Record<string, unknown>>, structure: DecoderStructure, sizes: readonly PrunedLayerSizes[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config };
  const heads = sizes.map((s) => s.heads);
  const kv = sizes.map((s) => s.kvHeads);
  const inter = sizes.map((s) => s.intermediate);
  const pick = (xs: number[]): number => Math.max(...xs);
  const set = (keys: string[], v: number, always = false): void => {
    let done = false;
    for (const k of keys) if (k in out) ((out[k] = v), (done = true));
    if (!done && always) out[keys[0]] = v;
  };
  set(['num_attention_heads', 'n_head'], pick(heads), true);
  set(['num_key_value_heads'], pick(kv), 'num_attention_heads' in config || structure.layers.some((l) => l.attention.kvHeads !== l.attention.heads));
  set(['intermediate_size', 'n_inner'], pick(inter), true);
  out.head_dim = structure.layers[0]?.attention.headDim ?? out.head_dim;
  out.num_attention_heads_per_layer = heads;
  out.num_key_value_heads_per_layer = kv;
  out.intermediate_size_per_layer = inter;
  return out;
}

