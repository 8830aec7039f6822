// Recognises a decoder language model and reads its dimensions. Exporters disagree on names (optimum's
// `past_key_values.{i}.key`, older `past.{i}.key`, anonymous `onnx::MatMul_123` weights), so the figures come
// from structure: the KV-cache inputs' shapes, the embedding Gather, and the shapes of projection weights.
// A Hugging Face `config.json` (embedded in the model, beside it, or one folder up as in `onnx/model.onnx`) takes
// precedence. The maximum positions, without a config, are the rows of the tables position ids index: GPT-2's
// learned position embedding, a rotary cos/sin cache; past them ONNX Runtime's Gather fails with a raw
// out-of-bounds error, so the decoders stop there with a message of their own.
// Reading that file and caching the description is model-folder.ts's work: describeDecoder is a lookup through it.
import { allNodes } from './graph.js';
import type { OnnxModel } from './model.js';
import { modelFolder } from './model-folder.js';
import { attrInt } from './attributes.js';
import type { GraphProto, TypeProto } from './types.js';

export interface DecoderSummary {
  layers: number | null;
  attentionHeads: number | null;
  kvHeads: number | null;
  headDim: number | null;
  hidden: number | null;
  intermediate: number | null;
  vocab: number | null;
  maxPositions: number | null;
  kvCacheInputs: string[];
  /** Where the figures came from: the graph alone, or a config.json filling in what it knows. */
  source: 'graph' | 'config.json';
  configPath: string | null;
}

const KV_PATTERNS = [/^past_key_values\.(\d+)\.(key|value)$/, /^past\.(\d+)\.(key|value)$/, /^past_(key|value)_values?_?(\d+)$/];

function kvLayer(name: string): number | undefined {
  for (const p of KV_PATTERNS) {
    const m = p.exec(name);
    if (m) return Number(m[1].match(/^\d+$/) ? m[1] : m[2]);
  }
  return undefined;
}

function dims(t: TypeProto | undefined): (number | null)[] | undefined {
  return t?.tensorType?.shape?.dim.map((d) => d.dimValue ?? null);
}

/** [in, out] of every 2-D weight a MatMul, Gemm or MatMulNBits multiplies by. */
function projectionShapes(graph: GraphProto): [number, number][] {
  const inits = new Map(graph.initializer.map((t) => [t.name, t]));
  const out: [number, number][] = [];
  for (const { node } of allNodes(graph)) {
    if (node.opType === 'MatMulNBits') {
      out.push([attrInt(node, 'K'), attrInt(node, 'N')]);
      continue;
    }
    if (node.opType !== 'MatMul' && node.opType !== 'Gemm') continue;
    const w = inits.get(node.input[1]);
    if (!w || w.dims.length !== 2) continue;
    const transposed = node.opType === 'Gemm' && attrInt(node, 'transB', 0) === 1;
    out.push(transposed ? [w.dims[1], w.dims[0]] : [w.dims[0], w.dims[1]]);
  }
  return out;
}

/** Ops that carry position ids through unchanged in value (their type or shape aside). */
const POSITION_PASSTHROUGH = new Set(['Cast', 'Identity', 'Reshape', 'Unsqueeze', 'Squeeze', 'Flatten']);
/** Ops between a stored table and the Gather that reads it, which keep its rows. */
const TABLE_PASSTHROUGH = new Set(['DequantizeLinear', 'Cast', 'Identity']);

/**
 * The fewest rows among the tables gathered (along their first axis) by the `position_ids` input: the longest
 * sequence the graph can encode; null when no such table is found.
 */
export function positionTableRows(graph: GraphProto): number | null {
  if (!graph.input.some((v) => v.name === 'position_ids')) return null;
  const inits = new Map(graph.initializer.map((t) => [t.name, t]));
  const producer = new Map(graph.node.flatMap((n) => n.output.map((o) => [o, n] as const)));
  const positions = new Set(['position_ids']);
  for (let grew = true; grew; ) {
    grew = false;
    for (const n of graph.node) {
      if (POSITION_PASSTHROUGH.has(n.opType ?? '') && positions.has(n.input[0]) && !positions.has(n.output[0])) {
        positions.add(n.output[0]);
        grew = true;
      }
    }
  }
  const rowsOf = (name: string, depth = 0): number | null => {
    const t = inits.get(name);
    if (t) return t.dims.length >= 2 ? t.dims[0] : null;
    const n = producer.get(name);
    return n && depth < 4 && TABLE_PASSTHROUGH.has(n.opType ?? '') ? rowsOf(n.input[0], depth + 1) : null;
  };
  let rows: number | null = null;
  for (const n of graph.node) {
    const axis = n.opType === 'Gather' ? attrInt(n, 'axis', 0) : n.opType === 'GatherBlockQuantized' ? attrInt(n, 'gather_axis', 0) : undefined;
    if (axis !== 0 || !positions.has(n.input[1])) continue;
    const r = rowsOf(n.input[0]);
    if (r !== null && r > 0) rows = rows === null ? r : Math.min(rows, r);
  }
  return rows;
}

function mostCommon(values: number[]): number | null {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best: number | null = null;
  for (const [v, c] of counts) if (best === null || c > counts.get(best)! || (c === counts.get(best)! && v > best)) best = v;
  return best;
}

function minKnown(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.min(a, b);
}

function configNumber(json: Readonly<Record<string, unknown>>, ...keys: string[]): number | null {
  for (const k of keys) if (typeof json[k] === 'number') return json[k] as number;
  return null;
}

/**
 * The model's decoder description, or null when it is not a decoder language model. Computed once per model (and
 * graph) and shared: the result is frozen. `modelFolder(model).decoder` is the same value.
 */
export function describeDecoder(model: OnnxModel): DecoderSummary | null {
  return modelFolder(model).decoder;
}

/** The config.json a description reads: its path and parsed object. */
export interface DecoderConfig {
  path: string;
  json: Readonly<Record<string, unknown>>;
}

/** Describes a decoder from its graph and, when given, its config.json (which wins where it says). Pure. */
export function analyseDecoder(graph: GraphProto, config?: DecoderConfig): DecoderSummary | null {
  const kvInputs = graph.input.filter((v) => kvLayer(v.name ?? '') !== undefined);
  const causal = Array.isArray(config?.json.architectures) && (config!.json.architectures as string[]).some((a) => /CausalLM|LMHead/.test(a));
  if (kvInputs.length === 0 && !causal) return null;

  const layers = new Set(kvInputs.map((v) => kvLayer(v.name!)!)).size || null;
  const keyShape = dims(kvInputs.find((v) => /key/.test(v.name!))?.type);
  const kvHeads = keyShape && keyShape.length === 4 ? keyShape[1] : null;
  const headDim = keyShape && keyShape.length === 4 ? keyShape[3] : null;

  const inits = new Map(graph.initializer.map((t) => [t.name, t]));
  const embedding = graph.node.find((n) => n.opType === 'Gather' && n.input[1] === 'input_ids' && inits.get(n.input[0])?.dims.length === 2);
  const embeddingDims = embedding ? inits.get(embedding.input[0])!.dims : undefined;
  const logits = dims(graph.output.find((o) => o.name === 'logits')?.type);
  const vocab = logits?.at(-1) ?? embeddingDims?.[0] ?? null;
  const hidden = embeddingDims?.[1] ?? null;

  const shapes = projectionShapes(graph);
  const intermediate = hidden === null ? null : mostCommon(shapes.filter(([i, o]) => o === hidden && i !== hidden).map(([i]) => i));
  let attentionHeads: number | null = null;
  if (hidden !== null && headDim) {
    const kvOut = kvHeads !== null ? kvHeads * headDim : null;
    const qOuts = shapes
      .filter(([i, o]) => i === hidden && o % headDim === 0 && o !== kvOut && o !== intermediate && o !== vocab && o !== 2 * (intermediate ?? -1))
      .map(([, o]) => o);
    const q = mostCommon(qOuts);
    // A fused QKV projection holds (heads + 2 kv heads) * head_dim outputs.
    const fused = q !== null && kvHeads !== null && q / headDim - 2 * kvHeads > 0 && q === hidden + 2 * (kvOut ?? 0);
    attentionHeads = q === null ? hidden / headDim : fused ? q / headDim - 2 * kvHeads! : q / headDim;
  }

  const graphView: DecoderSummary = {
    layers,
    attentionHeads,
    kvHeads,
    headDim,
    hidden,
    intermediate,
    vocab,
    maxPositions: positionTableRows(graph),
    kvCacheInputs: kvInputs.map((v) => v.name!),
    source: 'graph',
    configPath: null,
  };
  if (!config) return graphView;
  const c = config.json;
  const heads = configNumber(c, 'num_attention_heads', 'n_head');
  const hid = configNumber(c, 'hidden_size', 'n_embd', 'd_model');
  return {
    ...graphView,
    layers: configNumber(c, 'num_hidden_layers', 'n_layer') ?? graphView.layers,
    attentionHeads: heads ?? graphView.attentionHeads,
    kvHeads: configNumber(c, 'num_key_value_heads') ?? (heads !== null && graphView.kvHeads === null ? heads : graphView.kvHeads),
    headDim: configNumber(c, 'head_dim') ?? (hid && heads ? hid / heads : graphView.headDim),
    hidden: hid ?? graphView.hidden,
    intermediate: configNumber(c, 'intermediate_size', 'n_inner') ?? graphView.intermediate,
    vocab: configNumber(c, 'vocab_size') ?? graphView.vocab,
    // The graph's tables bound what a config may claim: past them the model cannot run at all.
    maxPositions: minKnown(configNumber(c, 'max_position_embeddings', 'n_positions'), graphView.maxPositions),
    source: 'config.json',
    configPath: config.path,
  };
}
