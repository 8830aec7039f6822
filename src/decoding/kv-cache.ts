// The key/value cache of a decoder: which inputs carry the past and which outputs bring back the present, the
// shape and element type of each, an empty past for the first step, and the presents of one step as the past
// of the next. Exporters differ in names (`past_key_values.0.key` -> `present.0.key` for optimum and GPT-2,
// `past.0.key`, `past_key_0`...), in element type (float32, float16) and in which axis grows; all of it is read
// from the model's signature rather than assumed.
import { Tensor } from 'onnxruntime-node';
import type { DecoderSummary } from '../onnx/decoder-info.js';
import { ModelError } from '../onnx/model.js';
import { OptionError } from '../errors.js';

export type KvKind = 'key' | 'value';
export type KvElementType = 'float32' | 'float16';

/** One cache tensor: the input that takes it and the output that returns it one step longer. */
export interface KvSlot {
  layer: number;
  kind: KvKind;
  past: string;
  present: string;
  type: KvElementType;
  /** The shape with the batch on axis 0 and 0 on the sequence axis; batch is filled in per run. */
  emptyShape: number[];
  /** The axis that grows by one per token. */
  sequenceAxis: number;
}

/** What ORT says about a value (a subset of InferenceSession.ValueMetadata). */
export interface ValueMeta {
  name: string;
  type?: string;
  shape?: readonly (number | string)[];
}

// Longest prefix first: `past_key_values.0.value` must not read its kind from the prefix's "key".
const PAST_PREFIXES = [/^past_key_values[._]/, /^past[._]/];
const PRESENT_PREFIXES = [/^present_key_values[._]/, /^present[._]/];

/** Layer and key/value of a cache name once its past/present prefix is gone (`0.key`, `key_0`, `key_value_3`). */
function slotOf(name: string, prefixes: readonly RegExp[]): { layer: number; kind: KvKind } | undefined {
  for (const prefix of prefixes) {
    const m = prefix.exec(name);
    if (!m) continue;
    const rest = name.slice(m[0].length);
    const layer = /\d+/.exec(rest);
    const kind = /key|value/.exec(rest);
    if (layer && kind) return { layer: Number(layer[0]), kind: kind[0] as KvKind };
  }
  return undefined;
}

/**
 * Pairs every past input with its present output and works out the empty-past shape. Symbolic dimensions other
 * than batch and sequence (heads, head size) come from the decoder's description (config.json or graph).
 */
export function kvSlots(source: string, inputs: readonly ValueMeta[], outputs: readonly ValueMeta[], decoder: DecoderSummary): KvSlot[] {
  const presents = new Map<string, string>();
  for (const o of outputs) {
    const s = slotOf(o.name, PRESENT_PREFIXES);
    if (s) presents.set(`${s.layer}.${s.kind}`, o.name);
  }
  const slots: KvSlot[] = [];
  for (const input of inputs) {
    const s = slotOf(input.name, PAST_PREFIXES);
    if (!s) continue;
    const present = presents.get(`${s.layer}.${s.kind}`);
    if (!present) throw new ModelError(`${source}: cache input '${input.name}' has no matching present output (outputs: ${outputs.map((o) => o.name).join(', ')})`);
    if (input.type !== 'float32' && input.type !== 'float16') {
      throw new ModelError(`${source}: cache input '${input.name}' is ${input.type}; only float32 and float16 caches are supported`);
    }
    slots.push({ ...s, past: input.name, present, type: input.type, ...emptyShape(source, input, decoder) });
  }
  return slots.sort((a, b) => a.layer - b.layer || a.kind.localeCompare(b.kind));
}

function emptyShape(source: string, input: ValueMeta, d: DecoderSummary): { emptyShape: number[]; sequenceAxis: number } {
  const shape = input.shape ?? [];
  if (shape.length !== 4) {
    throw new ModelError(`${source}: cache input '${input.name}' has shape [${shape.join(',')}]; a [batch, heads, sequence, head size] cache was expected`);
  }
  // The growing axis is the symbolic one named after the past or the sequence; [batch, heads, past, head] otherwise.
  const named = shape.findIndex((dim, i) => i > 0 && typeof dim === 'string' && /past|seq|len|cache/i.test(dim));
  const sequenceAxis = named > 0 ? named : 2;
  // The two remaining axes are heads then head size, in either layout (BNSH or BSNH).
  const fill = [d.kvHeads, d.headDim];
  const out = shape.map((dim, i) => {
    if (i === 0 || i === sequenceAxis) return 0;
    const known = fill.shift() ?? null;
    if (typeof dim === 'number') return dim;
    if (known === null) throw new ModelError(`${source}: cannot tell the size of axis ${i} ('${dim}') of cache input '${input.name}' (no config.json with num_key_value_heads / head_dim)`);
    return known;
  });
  return { emptyShape: out, sequenceAxis };
}

/** The cache tensors of one batch at one length. Immutable: each step makes a new one from the presents. */
export class KvCache {
  private constructor(
    readonly slots: readonly KvSlot[],
    readonly tensors: Readonly<Record<string, Tensor>>,
    /** Tokens cached per row (padding included). */
    readonly length: number,
  ) {}

  /** The past of a first step: every cache tensor with 0 on its sequence axis. */
  static empty(slots: readonly KvSlot[], batch: number): KvCache {
    const tensors: Record<string, Tensor> = {};
    for (const s of slots) {
      const dims = s.emptyShape.map((d, i) => (i === 0 ? batch : d));
      tensors[s.past] = new Tensor(s.type, s.type === 'float16' ? new Uint16Array(0) : new Float32Array(0), dims);
    }
    return new KvCache(slots, tensors, 0);
  }

  /** The presents a run returned, as the past of the next run. */
  static fromOutputs(slots: readonly KvSlot[], outputs: Readonly<Record<string, Tensor>>, source: string): KvCache {
    const tensors: Record<string, Tensor> = {};
    let length = -1;
    for (const s of slots) {
      const t = outputs[s.present];
      if (!t) throw new ModelError(`${source}: the run returned no '${s.present}'`);
      const l = t.dims[s.sequenceAxis];
      if (length >= 0 && l !== length) throw new ModelError(`${source}: present outputs disagree on the cached length (${length} vs ${l} for '${s.present}')`);
      length = l;
      tensors[s.past] = t;
    }
    return new KvCache(slots, tensors, Math.max(length, 0));
  }

  /**
   * The cache of the first `length` tokens of every row: what a speculative decoder rolls back to once the
   * target has rejected the draft's later tokens. Copies; the cache it came from stays valid.
   */
  truncate(length: number): KvCache {
    if (!Number.isInteger(length) || length < 0 || length > this.length) throw new OptionError(`cannot truncate a cache of ${this.length} tokens to ${length}`);
    if (length === this.length) return this;
    const tensors: Record<string, Tensor> = {};
    for (const s of this.slots) {
      const t = this.tensors[s.past];
      const dims = t.dims.map((d, i) => (i === s.sequenceAxis ? length : d));
      // Rows of `inner` contiguous elements repeat `outer` times along the sequence axis; keep the first `length`.
      const inner = t.dims.slice(s.sequenceAxis + 1).reduce((a, d) => a * d, 1);
      const outer = t.dims.slice(0, s.sequenceAxis).reduce((a, d) => a * d, 1);
      const from = t.data as Float32Array | Uint16Array;
      const to = new (from.constructor as Float32ArrayConstructor | Uint16ArrayConstructor)(outer * length * inner);
      for (let o = 0; o < outer; o++) to.set(from.subarray(o * this.length * inner, (o * this.length + length) * inner), o * length * inner);
      tensors[s.past] = new Tensor(s.type, to, dims);
    }
    return new KvCache(this.slots, tensors, length);
  }
}
