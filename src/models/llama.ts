// tiny-llama: a small LLaMA-architecture decoder in the Hugging Face optimum export layout (RMSNorm, rotary
// embeddings, grouped-query attention with a KV cache, SwiGLU). The builder draws seeded random weights; the
// committed models/tiny-llama holds this graph with weights trained by scripts/train-sample.ts, which the
// builder reproduces exactly when given them (`buildLlama(c, seed, { weights })`).
import { GraphBuilder } from '../onnx/builder.js';
import { DataType, type ModelProto } from '../onnx/types.js';
import {
  appendToCache,
  attend,
  attentionMask,
  BYTE_VOCAB_SIZE,
  declareDecoderIo,
  INIT_STD,
  INT64_MAX,
  int64,
  linear,
  OPSET,
  Rng,
  sampleModel,
  scalarF,
  SPECIAL_TOKENS,
  splitHeads,
  type Weights,
} from './parts.js';
import { folderCardSection } from './byte-tokenizer.js';
import { TRAINING_DATA_LICENCES, type TrainingRecord, trainingSection } from './training-record.js';

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

export const TINY_LLAMA: DecoderConfig = {
  vocabSize: BYTE_VOCAB_SIZE,
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

/** Everything the layers share: the builder, the weights' generator, and the values computed once per model. */
interface Context extends Weights {
  c: DecoderConfig;
  /** Rotary cos/sin gathered at position_ids, [batch, 1, seq, head_dim]. */
  cos: string;
  sin: string;
  /** Additive attention mask, [batch, 1, seq, past + seq]: 0 where allowed, MASK_MIN elsewhere. */
  mask: string;
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
  const keys = appendToCache(b, layer, 'key', kRot);
  const values = appendToCache(b, layer, 'value', splitHeads(b, v, c.numKeyValueHeads, hd));
  const groups = c.numAttentionHeads / c.numKeyValueHeads;
  const kAll = repeatKv(b, keys, groups, c.numAttentionHeads, hd);
  const vAll = repeatKv(b, values, groups, c.numAttentionHeads, hd);
  const merged = attend(b, qRot, kAll, vAll, ctx.mask, hd, c.hiddenSize);
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

export interface BuildOptions {
  /** Trained values for (some of) the float initializers; the graph is unchanged. */
  weights?: ReadonlyMap<string, Float32Array>;
}

export function buildLlama(c: DecoderConfig = TINY_LLAMA, seed = DEFAULT_SEED, options: BuildOptions = {}): ModelProto {
  if (c.hiddenSize % c.numAttentionHeads || c.numAttentionHeads % c.numKeyValueHeads) {
    throw new RangeError('hidden size must split into attention heads, and those into key/value groups');
  }
  const root = new GraphBuilder('main_graph');
  const rng = new Rng(seed);
  const io = declareDecoderIo(root, c.numHiddenLayers, c.numKeyValueHeads, headDim(c), c.vocabSize);

  const embed = root.initializer('model.embed_tokens.weight', DataType.FLOAT, [c.vocabSize, c.hiddenSize], rng.normals(c.vocabSize * c.hiddenSize, INIT_STD));
  let hidden = root.scoped('model').scoped('embed_tokens').op('Gather', [embed, io.inputIds], { axis: 0 });
  const ctx: Context = { c, rng, root, ...rotaryAt(c, root, io.positionIds), mask: attentionMask(root.scoped('model'), io.inputIds, io.attentionMask) };
  for (let i = 0; i < c.numHiddenLayers; i++) hidden = decoderLayer(ctx, hidden, i);
  const normed = rmsNorm(ctx, root.scoped('model').scoped('norm'), hidden, 'model.norm.weight');
  const lmHead = root.scoped('lm_head');
  root.initializer('lm_head.weight', DataType.FLOAT, [c.hiddenSize, c.vocabSize], rng.normals(c.hiddenSize * c.vocabSize, INIT_STD));
  lmHead.node('MatMul', [normed, 'lm_head.weight'], ['logits']);

  return sampleModel(root.graph, 'tiny-llama', 'scripts/build-sample-decoder', seed, options.weights);
}

/** config.json in Hugging Face's LlamaConfig spelling. */
export function llamaConfig(c: DecoderConfig): Record<string, unknown> {
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
    // The project's rule (src/calibration/data/tokenizers.ts): ids 0-255 are bytes. tokenizer.json says the same
    // to other loaders (byte-tokenizer.ts); this keeps the exact byte codec here.
    tokenizer: 'bytes',
  };
}

export function llamaCard(c: DecoderConfig, seed: number, fileBytes: number, training?: TrainingRecord): string {
  const params = parameterCount(c);
  const status = training
    ? `**Trained** (small, briefly: a byte-level model of ${params.toLocaleString('en-US')} parameters trained for
${(training.wallSeconds / 60).toFixed(0)} minutes on a shared 2-core machine). It has learned byte statistics and frequent words of its training
text (see the bits per byte and samples below) but it is not a useful language model; it exists so that compression passes, decoding and tests work on a real trained
LLaMA-architecture decoder whose quality loss can be measured.`
    : `**The weights are RANDOM (untrained).** They are drawn from a seeded generator (normal, std ${INIT_STD}; norm
weights 1). The model's outputs mean nothing; it exists so that compression passes, decoding and tests have a
real LLaMA-architecture decoder graph to work on.`;
  return `# tiny-llama (sample decoder)

${status}

| | |
|---|---|
| architecture | LLaMA (LlamaForCausalLM): RMSNorm, rotary embeddings, grouped-query attention, SwiGLU MLP |
| layers | ${c.numHiddenLayers} |
| hidden size | ${c.hiddenSize} |
| attention heads / key-value heads / head dim | ${c.numAttentionHeads} / ${c.numKeyValueHeads} / ${headDim(c)} |
| MLP intermediate size | ${c.intermediateSize} |
| vocabulary | ${c.vocabSize}: ids 0-255 are raw bytes, ${SPECIAL_TOKENS.bos} = BOS, ${SPECIAL_TOKENS.eos} = EOS, ${SPECIAL_TOKENS.pad} = PAD |
| max positions | ${c.maxPositionEmbeddings} (rope theta ${c.ropeTheta})${training ? `; trained on windows of ${training.sequence}` : ''} |
| parameters | ${params.toLocaleString('en-US')} (embeddings and lm_head untied; rotary tables not counted) |
| file | onnx/model.onnx, ${fileBytes.toLocaleString('en-US')} bytes, float32, weights inline |
| ONNX | opset ${OPSET}, plain ops only (no contrib ops, no fused attention) |
| initialisation seed | ${seed} (normal, std ${INIT_STD}; norm weights 1) |

${folderCardSection('tiny-llama')}
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
and \`sin_cached\` [${c.maxPositionEmbeddings}, ${headDim(c)}] are precomputed rotary tables gathered by position_ids (not trained).

${training ? trainingSection(training, TRAINING_DATA_LICENCES) : ''}
## Regenerating

\`\`\`
npx tsc -p . && node dist/scripts/build-sample-decoder.js            # graph + the committed (trained) weights
npx tsc -p . && node dist/scripts/build-sample-decoder.js --random   # graph + seeded RANDOM weights
npx tsc -p . && node dist/scripts/train-sample.js --arch llama ...   # retrain (command above)
\`\`\`

The builder is deterministic: the same seed gives byte-identical random-weight files, and the graph with the
committed weights gives the committed onnx/model.onnx byte for byte.
`;
}
