// Pieces shared by the sample decoder builders (llama.ts, gpt2.ts): the seeded weight generator, the optimum
// decoder IO declaration, the additive causal + padding mask, projections, head reshapes and the attention core
// with its KV cache. The graphs use plain opset-17 ops, named the way torch.onnx names them.
import { writeSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, modelFrom } from '../onnx/builder.js';
import { encodeModel } from '../onnx/codec.js';
import { DataType, type GraphProto, type ModelProto } from '../onnx/types.js';
import { withWeights } from '../training/checkpoint.js';
import { AtomicFiles } from '../util/atomic.js';
import { byteTokenizerConfig, byteTokenizerJson, generationConfig } from './byte-tokenizer.js';

/** Byte-level vocabulary: ids 0-255 are the bytes, then three special tokens. */
export const SPECIAL_TOKENS = { bos: 256, eos: 257, pad: 258 } as const;
export const BYTE_VOCAB_SIZE = 259;

export const OPSET = 17;
/** Standard deviation of every projection and embedding weight (Hugging Face's initializer_range). */
export const INIT_STD = 0.02;
/** float32's lowest value, the additive mask Hugging Face uses: masked scores vanish without making NaNs. */
export const MASK_MIN = -3.4028234663852886e38;
export const INT64_MAX = 2n ** 63n - 1n;

/** mulberry32 with Box-Muller on top: small, seedable, and the same sequence on every platform. */
export class Rng {
  private state: number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  uniform(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    const u = 1 - this.uniform(); // (0, 1]: log stays finite
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  normals(n: number, std: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal() * std;
    return out;
  }
}

export const int64 = (b: GraphBuilder, values: (number | bigint)[]): string =>
  b.constant(DataType.INT64, [values.length], values.map((v) => BigInt(v)));
export const scalarF = (b: GraphBuilder, v: number): string => b.constant(DataType.FLOAT, [], [v]);

/** What every layer needs: the root builder (initializers go there) and the weights' generator. */
export interface Weights {
  root: GraphBuilder;
  rng: Rng;
}

/** A [in, out] projection weight (transposed relative to torch's nn.Linear [out, in]) and its MatMul. */
export function linear(w: Weights, b: GraphBuilder, x: string, weight: string, inF: number, outF: number, std = INIT_STD): string {
  w.root.initializer(weight, DataType.FLOAT, [inF, outF], w.rng.normals(inF * outF, std));
  return b.op('MatMul', [x, weight]);
}

/** A bias vector (zeros) added after a projection, as torch exports nn.Linear with bias: Add(bias, x). */
export function addBias(w: Weights, b: GraphBuilder, x: string, bias: string, n: number): string {
  w.root.initializer(bias, DataType.FLOAT, [n], new Float32Array(n));
  return b.op('Add', [bias, x]);
}

/** [batch, seq, heads*head_dim] -> [batch, heads, seq, head_dim]. */
export function splitHeads(b: GraphBuilder, x: string, heads: number, hd: number): string {
  return b.op('Transpose', [b.op('Reshape', [x, int64(b, [0, 0, heads, hd])])], { perm: [0, 2, 1, 3] });
}

/** past ++ new along the sequence axis, produced under the present.* output name the next step gets back. */
export function appendToCache(b: GraphBuilder, layer: number, kind: 'key' | 'value', current: string): string {
  return b.node('Concat', [`past_key_values.${layer}.${kind}`, current], [`present.${layer}.${kind}`], { axis: 2 })[0];
}

/**
 * Scaled dot-product attention of q [batch, heads, seq, hd] over keys/values [batch, heads, total, hd] with the
 * additive mask, merged back to [batch, seq, heads*hd].
 */
export function attend(b: GraphBuilder, q: string, keys: string, values: string, mask: string, hd: number, width: number): string {
  const scores = b.op('MatMul', [q, b.op('Transpose', [keys], { perm: [0, 1, 3, 2] })]);
  const scaled = b.op('Mul', [scores, scalarF(b, 1 / Math.sqrt(hd))]);
  const probs = b.op('Softmax', [b.op('Add', [scaled, mask])], { axis: -1 });
  const context = b.op('Transpose', [b.op('MatMul', [probs, values])], { perm: [0, 2, 1, 3] });
  return b.op('Reshape', [context, int64(b, [0, 0, width])]);
}

/**
 * The additive mask [batch, 1, seq, past + seq]. Query i sits at absolute position past + i and may see key j
 * when j <= past + i (causal) and attention_mask[j] is 1 (padding). The past length is read from the inputs'
 * shapes, so the same graph serves an empty cache and a filled one.
 */
export function attentionMask(b: GraphBuilder, inputIds: string, attentionMaskInput: string): string {
  const dim1 = (x: string): string => b.op('Gather', [b.op('Shape', [x]), b.constant(DataType.INT64, [], [1n])], { axis: 0 });
  const seq = dim1(inputIds);
  const total = dim1(attentionMaskInput);
  const past = b.op('Sub', [total, seq]);
  const one = b.constant(DataType.INT64, [], [1n]);
  const keyPos = b.op('Range', [b.constant(DataType.INT64, [], [0n]), total, one]);
  const queryPos = b.op('Range', [past, total, one]);
  const causal = b.op('LessOrEqual', [b.op('Unsqueeze', [keyPos, int64(b, [0])]), b.op('Unsqueeze', [queryPos, int64(b, [1])])]);
  const notPadding = b.op('Unsqueeze', [b.op('Cast', [attentionMaskInput], { to: DataType.BOOL }), int64(b, [1, 2])]);
  const allowed = b.op('And', [causal, notPadding]);
  return b.op('Where', [allowed, scalarF(b, 0), scalarF(b, MASK_MIN)]);
}

export interface DecoderIo {
  inputIds: string;
  attentionMask: string;
  positionIds: string;
}

/**
 * Declares the optimum decoder signature: input_ids, attention_mask, position_ids, past_key_values.{i}.key/value
 * -> logits, present.{i}.key/value (cache [batch, kvHeads, past, headDim]).
 */
export function declareDecoderIo(root: GraphBuilder, layers: number, kvHeads: number, hd: number, vocab: number): DecoderIo {
  const batch = 'batch_size';
  const seq = 'sequence_length';
  const past = 'past_sequence_length';
  const total = 'past_sequence_length + sequence_length';
  const inputIds = root.input('input_ids', DataType.INT64, [batch, seq]);
  const attentionMaskInput = root.input('attention_mask', DataType.INT64, [batch, total]);
  const positionIds = root.input('position_ids', DataType.INT64, [batch, seq]);
  for (let i = 0; i < layers; i++) {
    for (const kind of ['key', 'value']) root.input(`past_key_values.${i}.${kind}`, DataType.FLOAT, [batch, kvHeads, past, hd]);
  }
  root.output('logits', DataType.FLOAT, [batch, seq, vocab]);
  for (let i = 0; i < layers; i++) {
    for (const kind of ['key', 'value']) root.output(`present.${i}.${kind}`, DataType.FLOAT, [batch, kvHeads, total, hd]);
  }
  return { inputIds, attentionMask: attentionMaskInput, positionIds };
}

/** Where a sample model folder keeps its model: a Hugging Face folder's `onnx/model.onnx`, which transformers.js loads. */
export const SAMPLE_MODEL_FILE = 'onnx/model.onnx';

/**
 * Writes a sample model as a Hugging Face folder into `dir`: onnx/model.onnx, config.json, generation_config.json,
 * tokenizer.json, tokenizer_config.json (byte-level, byte-tokenizer.ts) and MODEL_CARD.md, all renamed into place
 * together.
 */
export function writeModelFiles(dir: string, model: ModelProto, config: Record<string, unknown>, card: (fileBytes: number) => string, extra: Record<string, string> = {}): number {
  const bytes = encodeModel(model);
  const files = new AtomicFiles();
  try {
    const put = (name: string, data: Uint8Array | string): void => {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      const fd = files.open(join(dir, name));
      for (let done = 0; done < buf.length; ) done += writeSync(fd, buf, done, buf.length - done);
    };
    const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
    put(SAMPLE_MODEL_FILE, bytes);
    put('config.json', json(config));
    put('generation_config.json', json(generationConfig()));
    put('tokenizer.json', json(byteTokenizerJson()));
    put('tokenizer_config.json', json(byteTokenizerConfig(maxPositionsOf(config))));
    for (const [name, text] of Object.entries(extra)) put(name, text);
    put('MODEL_CARD.md', card(bytes.length));
    files.commit();
  } catch (e) {
    files.abort();
    throw e;
  }
  return bytes.length;
}

function maxPositionsOf(config: Record<string, unknown>): number {
  const n = config.max_position_embeddings ?? config.n_positions;
  if (typeof n !== 'number') throw new Error('sample config.json without max_position_embeddings / n_positions');
  return n;
}

/**
 * The finished sample model: opset imports, provenance in the doc string, and the trained weights when given
 * (the graph is always the seeded builder's, so a trained file is graph + weights).
 */
export function sampleModel(graph: GraphProto, name: string, script: string, seed: number, weights?: ReadonlyMap<string, Float32Array>): ModelProto {
  const model = modelFrom(graph, {
    opsets: { '': OPSET },
    producerName: `onnx-compress ${script}`,
    docString: weights
      ? `${name}: graph built by ${script} (seed ${seed}), weights trained by scripts/train-sample.ts (see MODEL_CARD.md)`
      : `${name} with RANDOM weights (seed ${seed}); a placeholder, not a trained model`,
  });
  return weights ? withWeights(model, weights) : model;
}
