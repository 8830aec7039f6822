// Builds models/tiny-llama: a small LLaMA-architecture decoder in the Hugging Face optimum export layout, with
// RANDOM weights from a seeded generator. It gives the compression passes and the decoding code a real decoder
// graph (GQA attention, rotary embeddings, KV cache, SwiGLU) to work on until a trained model replaces it.
// The graph uses plain opset-17 ops only, named the way torch.onnx names them, so any runtime can run it and
// passes meet the same patterns they meet in exported models.
//
//   npx tsc -p . && node dist/scripts/build-sample-decoder.js [out-dir] [--seed N]
import { mkdirSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { encodeModel } from '../src/onnx/codec.js';
import { DataType, type ModelProto } from '../src/onnx/types.js';
import { AtomicFiles } from '../src/util/atomic.js';

export interface DecoderConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  ropeTheta: number;
}

/** Byte-level vocabulary: ids 0-255 are the bytes, then three special tokens. */
export const SPECIAL_TOKENS = { bos: 256, eos: 257, pad: 258 } as const;

export const TINY_LLAMA: DecoderConfig = {
  vocabSize: 259,
  hiddenSize: 128,
  intermediateSize: 384,
  numHiddenLayers: 4,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  maxPositionEmbeddings: 1024,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
};

export const DEFAULT_SEED = 20240601;
/** Standard deviation of every projection and embedding weight (Hugging Face's initializer_range). */
const INIT_STD = 0.02;
const OPSET = 17;
/** float32's lowest value, the additive mask Hugging Face uses: masked scores vanish without making NaNs. */
const MASK_MIN = -3.4028234663852886e38;

export function headDim(c: DecoderConfig): number {
  return c.hiddenSize / c.numAttentionHeads;
}

/** Trainable parameters, as Hugging Face counts them (the rotary tables are buffers, not parameters). */
export function parameterCount(c: DecoderConfig): number {
  const kv = c.numKeyValueHeads * headDim(c);
  const attention = 2 * c.hiddenSize * c.hiddenSize + 2 * c.hiddenSize * kv;
  const mlp = 3 * c.hiddenSize * c.intermediateSize;
  const layer = attention + mlp + 2 * c.hiddenSize;
  return 2 * c.vocabSize * c.hiddenSize + c.numHiddenLayers * layer + c.hiddenSize;
}

/** mulberry32 with Box-Muller on top: small, seedable, and the same sequence on every platform. */
class Rng {
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

/** Everything the layers share: the builder, the weights' generator, and the values computed once per model. */
interface Context {
  c: DecoderConfig;
  rng: Rng;
  root: GraphBuilder;
  /** Rotary cos/sin gathered at position_ids, [batch, 1, seq, head_dim]. */
  cos: string;
  sin: string;
  /** Additive attention mask, [batch, 1, seq, past + seq]: 0 where allowed, MASK_MIN elsewhere. */
  mask: string;
}

const INT64_MAX = 2n ** 63n - 1n;
const int64 = (b: GraphBuilder, values: (number | bigint)[]): string =>
  b.constant(DataType.INT64, [values.length], values.map((v) => BigInt(v)));
const scalarF = (b: GraphBuilder, v: number): string => b.constant(DataType.FLOAT, [], [v]);

/** A [in, out] projection weight (transposed relative to torch's nn.Linear [out, in]) and its MatMul. */
function linear(ctx: Context, b: GraphBuilder, x: string, weight: string, inF: number, outF: number): string {
  ctx.root.initializer(weight, DataType.FLOAT, [inF, outF], ctx.rng.normals(inF * outF, INIT_STD));
  return b.op('MatMul', [x, weight]);
}

/** LlamaRMSNorm as torch exports it: x * 1/sqrt(mean(x^2) + eps) * weight. */
function rmsNorm(ctx: Context, b: GraphBuilder, x: string, weight: string): string {
  const { c } = ctx;
  ctx.root.initializer(weight, DataType.FLOAT, [c.hiddenSize], new Float32Array(c.hiddenSize).fill(1));
  const sq = b.op('Pow', [x, scalarF(b, 2)]);
  const mean = b.op('ReduceMean', [sq], { axes: [-1], keepdims: 1 });
  const std = b.op('Sqrt', [b.op('Add', [mean, scalarF(b, c.rmsNormEps)])]);
  const inv = b.op('Div', [scalarF(b, 1), std]);
  return b.op('Mul', [weight, b.op('Mul', [x, inv])]);
}

/** [batch, seq, heads*head_dim] -> [batch, heads, seq, head_dim]. */
function splitHeads(b: GraphBuilder, x: string, heads: number, hd: number): string {
  return b.op('Transpose', [b.op('Reshape', [x, int64(b, [0, 0, heads, hd])])], { perm: [0, 2, 1, 3] });
}

/** x * cos + rotate_half(x) * sin, with rotate_half(x) = concat(-x[..., hd/2:], x[..., :hd/2]). */
function applyRotary(ctx: Context, b: GraphBuilder, x: string, hd: number): string {
  const axis = int64(b, [3]);
  const first = b.op('Slice', [x, int64(b, [0]), int64(b, [hd / 2]), axis]);
  const second = b.op('Slice', [x, int64(b, [hd / 2]), int64(b, [INT64_MAX]), axis]);
  const rotated = b.op('Concat', [b.op('Neg', [second]), first], { axis: -1 });
  return b.op('Add', [b.op('Mul', [x, ctx.cos]), b.op('Mul', [rotated, ctx.sin])]);
}

/** repeat_kv: [batch, kv, t, hd] -> [batch, kv*groups, t, hd], each KV head serving `groups` query heads. */
function repeatKv(b: GraphBuilder, x: string, groups: number, heads: number, hd: number): string {
  const wide = b.op('Expand', [b.op('Unsqueeze', [x, int64(b, [2])]), int64(b, [1, 1, groups, 1, 1])]);
  return b.op('Reshape', [wide, int64(b, [0, heads, -1, hd])]);
}

function selfAttention(ctx: Context, b: GraphBuilder, x: string, layer: number): string {
  const { c } = ctx;
  const hd = headDim(c);
  const kvWidth = c.numKeyValueHeads * hd;
  const w = (proj: string): string => `model.layers.${layer}.self_attn.${proj}.weight`;
  const q = linear(ctx, b.scoped('q_proj'), x, w('q_proj'), c.hiddenSize, c.hiddenSize);
  const k = linear(ctx, b.scoped('k_proj'), x, w('k_proj'), c.hiddenSize, kvWidth);
  const v = linear(ctx, b.scoped('v_proj'), x, w('v_proj'), c.hiddenSize, kvWidth);
  const qRot = applyRotary(ctx, b, splitHeads(b, q, c.numAttentionHeads, hd), hd);
  const kRot = applyRotary(ctx, b, splitHeads(b, k, c.numKeyValueHeads, hd), hd);
  // The cache grows along the sequence axis; the concatenation is what the next step gets back as past.
  const keys = b.node('Concat', [`past_key_values.${layer}.key`, kRot], [`present.${layer}.key`], { axis: 2 })[0];
  const values = b.node('Concat', [`past_key_values.${layer}.value`, splitHeads(b, v, c.numKeyValueHeads, hd)], [`present.${layer}.value`], { axis: 2 })[0];
  const groups = c.numAttentionHeads / c.numKeyValueHeads;
  const kAll = repeatKv(b, keys, groups, c.numAttentionHeads, hd);
  const vAll = repeatKv(b, values, groups, c.numAttentionHeads, hd);
  const scores = b.op('MatMul', [qRot, b.op('Transpose', [kAll], { perm: [0, 1, 3, 2] })]);
  const scaled = b.op('Mul', [scores, scalarF(b, 1 / Math.sqrt(hd))]);
  const probs = b.op('Softmax', [b.op('Add', [scaled, ctx.mask])], { axis: -1 });
  const context = b.op('Transpose', [b.op('MatMul', [probs, vAll])], { perm: [0, 2, 1, 3] });
  const merged = b.op('Reshape', [context, int64(b, [0, 0, c.hiddenSize])]);
  return linear(ctx, b.scoped('o_proj'), merged, w('o_proj'), c.hiddenSize, c.hiddenSize);
}

/** SwiGLU: down(silu(gate(x)) * up(x)), with SiLU written as x * sigmoid(x). */
function mlp(ctx: Context, b: GraphBuilder, x: string, layer: number): string {
  const { c } = ctx;
  const w = (proj: string): string => `model.layers.${layer}.mlp.${proj}.weight`;
  const gate = linear(ctx, b.scoped('gate_proj'), x, w('gate_proj'), c.hiddenSize, c.intermediateSize);
  const up = linear(ctx, b.scoped('up_proj'), x, w('up_proj'), c.hiddenSize, c.intermediateSize);
  const act = b.scoped('act_fn');
  const silu = act.op('Mul', [gate, act.op('Sigmoid', [gate])]);
  return linear(ctx, b.scoped('down_proj'), b.op('Mul', [silu, up]), w('down_proj'), c.intermediateSize, c.hiddenSize);
}

function decoderLayer(ctx: Context, hidden: string, layer: number): string {
  const b = ctx.root.scoped('model').scoped(`layers.${layer}`);
  const prefix = `model.layers.${layer}`;
  const normed = rmsNorm(ctx, b.scoped('input_layernorm'), hidden, `${prefix}.input_layernorm.weight`);
  const attended = b.op('Add', [hidden, selfAttention(ctx, b.scoped('self_attn'), normed, layer)]);
  const normed2 = rmsNorm(ctx, b.scoped('post_attention_layernorm'), attended, `${prefix}.post_attention_layernorm.weight`);
  return b.op('Add', [attended, mlp(ctx, b.scoped('mlp'), normed2, layer)]);
}

/** cos/sin tables [max_positions, head_dim] as Hugging Face's LlamaRotaryEmbedding computes them. */
function rotaryTables(c: DecoderConfig): { cos: Float32Array; sin: Float32Array } {
  const hd = headDim(c);
  const cos = new Float32Array(c.maxPositionEmbeddings * hd);
  const sin = new Float32Array(c.maxPositionEmbeddings * hd);
  for (let p = 0; p < c.maxPositionEmbeddings; p++) {
    for (let j = 0; j < hd / 2; j++) {
      const invFreq = Math.fround(1 / Math.pow(c.ropeTheta, (2 * j) / hd));
      const angle = Math.fround(p * invFreq);
      // emb = cat(freqs, freqs): both halves of the head see the same angles.
      for (const at of [p * hd + j, p * hd + j + hd / 2]) {
        cos[at] = Math.cos(angle);
        sin[at] = Math.sin(angle);
      }
    }
  }
  return { cos, sin };
}

/** cos and sin for each position id, shaped to broadcast over heads: [batch, 1, seq, head_dim]. */
function rotaryAt(c: DecoderConfig, root: GraphBuilder, positionIds: string): { cos: string; sin: string } {
  const b = root.scoped('model').scoped('rotary_emb');
  const tables = rotaryTables(c);
  const gather = (which: 'cos' | 'sin'): string => {
    const table = root.initializer(`model.rotary_emb.${which}_cached`, DataType.FLOAT, [c.maxPositionEmbeddings, headDim(c)], tables[which]);
    return b.op('Unsqueeze', [b.op('Gather', [table, positionIds], { axis: 0 }), int64(b, [1])]);
  };
  return { cos: gather('cos'), sin: gather('sin') };
}

/**
 * The additive mask [batch, 1, seq, past + seq]. Query i sits at absolute position past + i and may see key j
 * when j <= past + i (causal) and attention_mask[j] is 1 (padding). The past length is read from the inputs'
 * shapes, so the same graph serves an empty cache and a filled one.
 */
function attentionMask(root: GraphBuilder, inputIds: string, attentionMaskInput: string): string {
  const b = root.scoped('model');
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

export function buildSampleDecoder(c: DecoderConfig = TINY_LLAMA, seed = DEFAULT_SEED): ModelProto {
  if (c.hiddenSize % c.numAttentionHeads || c.numAttentionHeads % c.numKeyValueHeads) {
    throw new RangeError('hidden size must split into attention heads, and those into key/value groups');
  }
  const hd = headDim(c);
  const root = new GraphBuilder('main_graph');
  const rng = new Rng(seed);
  const batch = 'batch_size';
  const seq = 'sequence_length';
  const past = 'past_sequence_length';
  const total = 'past_sequence_length + sequence_length';
  const inputIds = root.input('input_ids', DataType.INT64, [batch, seq]);
  const mask = root.input('attention_mask', DataType.INT64, [batch, total]);
  const positionIds = root.input('position_ids', DataType.INT64, [batch, seq]);
  for (let i = 0; i < c.numHiddenLayers; i++) {
    for (const kind of ['key', 'value']) root.input(`past_key_values.${i}.${kind}`, DataType.FLOAT, [batch, c.numKeyValueHeads, past, hd]);
  }
  root.output('logits', DataType.FLOAT, [batch, seq, c.vocabSize]);
  for (let i = 0; i < c.numHiddenLayers; i++) {
    for (const kind of ['key', 'value']) root.output(`present.${i}.${kind}`, DataType.FLOAT, [batch, c.numKeyValueHeads, total, hd]);
  }

  const embed = root.initializer('model.embed_tokens.weight', DataType.FLOAT, [c.vocabSize, c.hiddenSize], rng.normals(c.vocabSize * c.hiddenSize, INIT_STD));
  let hidden = root.scoped('model').scoped('embed_tokens').op('Gather', [embed, inputIds], { axis: 0 });
  const ctx: Context = { c, rng, root, ...rotaryAt(c, root, positionIds), mask: attentionMask(root, inputIds, mask) };
  for (let i = 0; i < c.numHiddenLayers; i++) hidden = decoderLayer(ctx, hidden, i);
  const normed = rmsNorm(ctx, root.scoped('model').scoped('norm'), hidden, 'model.norm.weight');
  const lmHead = root.scoped('lm_head');
  root.initializer('lm_head.weight', DataType.FLOAT, [c.hiddenSize, c.vocabSize], rng.normals(c.hiddenSize * c.vocabSize, INIT_STD));
  lmHead.node('MatMul', [normed, 'lm_head.weight'], ['logits']);

  return modelFrom(root.graph, {
    opsets: { '': OPSET },
    producerName: 'onnx-compress scripts/build-sample-decoder',
    docString: `tiny-llama with RANDOM weights (seed ${seed}); a placeholder, not a trained model`,
  });
}

/** config.json in Hugging Face's LlamaConfig spelling. */
export function hfConfig(c: DecoderConfig): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numHiddenLayers,
    num_attention_heads: c.numAttentionHeads,
    num_key_value_heads: c.numKeyValueHeads,
    head_dim: headDim(c),
    hidden_act: 'silu',
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxPositionEmbeddings,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: false,
    initializer_range: INIT_STD,
    bos_token_id: SPECIAL_TOKENS.bos,
    eos_token_id: SPECIAL_TOKENS.eos,
    pad_token_id: SPECIAL_TOKENS.pad,
    torch_dtype: 'float32',
    use_cache: true,
  };
}

export function modelCard(c: DecoderConfig, seed: number, fileBytes: number): string {
  const params = parameterCount(c);
  return `# tiny-llama (sample decoder)

**The weights are RANDOM (untrained).** They are drawn from a seeded generator (normal, std ${INIT_STD}; norm
weights 1). The model's outputs mean nothing; it exists so that compression passes, decoding and tests have a
real LLaMA-architecture decoder graph to work on. It is a placeholder until the training issue replaces these
weights with trained ones.

| | |
|---|---|
| architecture | LLaMA (LlamaForCausalLM): RMSNorm, rotary embeddings, grouped-query attention, SwiGLU MLP |
| layers | ${c.numHiddenLayers} |
| hidden size | ${c.hiddenSize} |
| attention heads / key-value heads / head dim | ${c.numAttentionHeads} / ${c.numKeyValueHeads} / ${headDim(c)} |
| MLP intermediate size | ${c.intermediateSize} |
| vocabulary | ${c.vocabSize}: ids 0-255 are raw bytes, ${SPECIAL_TOKENS.bos} = BOS, ${SPECIAL_TOKENS.eos} = EOS, ${SPECIAL_TOKENS.pad} = PAD |
| max positions | ${c.maxPositionEmbeddings} (rope theta ${c.ropeTheta}) |
| parameters | ${params.toLocaleString('en-US')} (embeddings and lm_head untied; rotary tables not counted) |
| file | model.onnx, ${fileBytes.toLocaleString('en-US')} bytes, float32, weights inline |
| ONNX | opset ${OPSET}, plain ops only (no contrib ops, no fused attention) |
| seed | ${seed} |

## Inputs and outputs (Hugging Face optimum decoder layout)

- \`input_ids\` int64 [batch_size, sequence_length]
- \`attention_mask\` int64 [batch_size, past_sequence_length + sequence_length] (1 = token, 0 = padding)
- \`position_ids\` int64 [batch_size, sequence_length]
- \`past_key_values.{i}.key\` / \`.value\` float32 [batch_size, ${c.numKeyValueHeads}, past_sequence_length, ${headDim(c)}],
  i = 0..${c.numHiddenLayers - 1}; an empty cache has past_sequence_length 0
- outputs \`logits\` float32 [batch_size, sequence_length, ${c.vocabSize}] and \`present.{i}.key\` / \`.value\`
  [batch_size, ${c.numKeyValueHeads}, past_sequence_length + sequence_length, ${headDim(c)}]

The attention mask combines causality (query i at absolute position past + i sees keys up to it) with
\`attention_mask\`, so left-padded batches work; give padded rows position ids that count only real tokens.

## Weight layout

Initializers are named as in the Hugging Face checkpoint (\`model.layers.0.self_attn.q_proj.weight\`,
\`lm_head.weight\`...), and nodes as torch.onnx names them (\`/model/layers.0/self_attn/q_proj/MatMul\`).
Projection weights are stored **[in_features, out_features]**, as MatMul multiplies them: transposed relative to
torch's \`nn.Linear.weight\` [out, in]. The embedding is [vocab, hidden] as in torch. \`model.rotary_emb.cos_cached\`
and \`sin_cached\` [${c.maxPositionEmbeddings}, ${headDim(c)}] are precomputed rotary tables gathered by position_ids.

## Regenerating

\`\`\`
npx tsc -p . && node dist/scripts/build-sample-decoder.js
\`\`\`

writes model.onnx, config.json and this card. The same seed gives byte-identical files (a test checks the
committed model against a fresh build).
`;
}

/** Writes model.onnx, config.json and MODEL_CARD.md into `dir`, all renamed into place together. */
export function writeSampleDecoder(dir: string, c: DecoderConfig = TINY_LLAMA, seed = DEFAULT_SEED): { bytes: number; parameters: number } {
  mkdirSync(dir, { recursive: true });
  const model = encodeModel(buildSampleDecoder(c, seed));
  const files = new AtomicFiles();
  try {
    const put = (name: string, data: Uint8Array | string): void => {
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      const fd = files.open(join(dir, name));
      for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
    };
    put('model.onnx', model);
    put('config.json', `${JSON.stringify(hfConfig(c), null, 2)}\n`);
    put('MODEL_CARD.md', modelCard(c, seed, model.length));
    files.commit();
  } catch (e) {
    files.abort();
    throw e;
  }
  return { bytes: model.length, parameters: parameterCount(c) };
}

function main(argv: string[]): void {
  const seedAt = argv.indexOf('--seed');
  const seed = seedAt >= 0 ? Number(argv[seedAt + 1]) : DEFAULT_SEED;
  if (!Number.isInteger(seed)) throw new Error(`--seed needs an integer, got ${argv[seedAt + 1]}`);
  const positional = argv.filter((_, i) => i !== seedAt && i !== seedAt + 1);
  const dir = positional[0] ?? fileURLToPath(new URL('../../models/tiny-llama', import.meta.url));
  const { bytes, parameters } = writeSampleDecoder(resolve(dir), TINY_LLAMA, seed);
  console.log(`wrote ${dir}: ${parameters.toLocaleString('en-US')} parameters, model.onnx ${bytes.toLocaleString('en-US')} bytes`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main(process.argv.slice(2));
