// tiny-gpt2: a small GPT-2-architecture decoder in the Hugging Face optimum export layout: learned absolute
// positions, pre-LayerNorm blocks, fused QKV projection (one MatMul to 3 x hidden, then Split), multi-head
// attention with a KV cache, GELU MLP (tanh approximation, Hugging Face's "gelu_new", as GPT-2 uses) and the
// lm_head tied to the token embedding (MatMul with Transpose(transformer.wte.weight): one initializer).
// Initializers are named as in Hugging Face's GPT2LMHeadModel; its Conv1D weights are already [in, out], which
// is how MatMul reads them. Graph pieces shared with tiny-llama are in parts.ts.
import { GraphBuilder } from '../onnx/builder.js';
import { DataType, type ModelProto } from '../onnx/types.js';
import {
  addBias,
  appendToCache,
  attend,
  attentionMask,
  BYTE_VOCAB_SIZE,
  declareDecoderIo,
  INIT_STD,
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

export interface Gpt2Config {
  vocabSize: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nPositions: number;
  /** MLP width (Hugging Face's n_inner; default 4 x n_embd). */
  nInner: number;
  layerNormEpsilon: number;
}

export const TINY_GPT2: Gpt2Config = {
  vocabSize: BYTE_VOCAB_SIZE,
  nEmbd: 128,
  nLayer: 4,
  nHead: 4,
  nPositions: 256,
  nInner: 512,
  layerNormEpsilon: 1e-5,
};

export const GPT2_DEFAULT_SEED = 20240602;

export function gpt2HeadDim(c: Gpt2Config): number {
  return c.nEmbd / c.nHead;
}

/** Parameters as Hugging Face counts them (the tied lm_head once). */
export function gpt2ParameterCount(c: Gpt2Config): number {
  const h = c.nEmbd;
  const layer = 2 * 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + (h * c.nInner + c.nInner) + (c.nInner * h + h);
  return c.vocabSize * h + c.nPositions * h + c.nLayer * layer + 2 * h;
}

interface Context extends Weights {
  c: Gpt2Config;
  mask: string;
}

/** nn.LayerNorm as torch exports it at opset 17: one LayerNormalization node (scale 1, bias 0 at init). */
function layerNorm(ctx: Context, b: GraphBuilder, x: string, prefix: string): string {
  const n = ctx.c.nEmbd;
  const scale = ctx.root.initializer(`${prefix}.weight`, DataType.FLOAT, [n], new Float32Array(n).fill(1));
  const bias = ctx.root.initializer(`${prefix}.bias`, DataType.FLOAT, [n], new Float32Array(n));
  return b.op('LayerNormalization', [x, scale, bias], { axis: -1, epsilon: ctx.c.layerNormEpsilon });
}

/** Hugging Face's Conv1D: x @ weight [in, out] + bias. */
function conv1d(ctx: Context, b: GraphBuilder, x: string, prefix: string, inF: number, outF: number, std = INIT_STD): string {
  return addBias(ctx, b, linear(ctx, b, x, `${prefix}.weight`, inF, outF, std), `${prefix}.bias`, outF);
}

/** GPT-2's residual projections are initialised with std 0.02 / sqrt(2 n_layer) (the GPT-2 paper's scaling). */
const residualStd = (c: Gpt2Config): number => INIT_STD / Math.sqrt(2 * c.nLayer);

function attention(ctx: Context, b: GraphBuilder, x: string, layer: number): string {
  const { c } = ctx;
  const hd = gpt2HeadDim(c);
  const prefix = `transformer.h.${layer}.attn`;
  const qkv = conv1d(ctx, b.scoped('c_attn'), x, `${prefix}.c_attn`, c.nEmbd, 3 * c.nEmbd);
  const [q, k, v] = b.node('Split', [qkv, int64(b, [c.nEmbd, c.nEmbd, c.nEmbd])], 3, { axis: 2 });
  const keys = appendToCache(b, layer, 'key', splitHeads(b, k, c.nHead, hd));
  const values = appendToCache(b, layer, 'value', splitHeads(b, v, c.nHead, hd));
  const merged = attend(b, splitHeads(b, q, c.nHead, hd), keys, values, ctx.mask, hd, c.nEmbd);
  return conv1d(ctx, b.scoped('c_proj'), merged, `${prefix}.c_proj`, c.nEmbd, c.nEmbd, residualStd(c));
}

/** gelu_new: 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))). */
function geluTanh(b: GraphBuilder, x: string): string {
  const cube = b.op('Mul', [b.op('Pow', [x, scalarF(b, 3)]), scalarF(b, 0.044715)]);
  const inner = b.op('Mul', [b.op('Add', [x, cube]), scalarF(b, Math.sqrt(2 / Math.PI))]);
  const gate = b.op('Add', [scalarF(b, 1), b.op('Tanh', [inner])]);
  return b.op('Mul', [b.op('Mul', [x, scalarF(b, 0.5)]), gate]);
}

function mlp(ctx: Context, b: GraphBuilder, x: string, layer: number): string {
  const { c } = ctx;
  const prefix = `transformer.h.${layer}.mlp`;
  const up = conv1d(ctx, b.scoped('c_fc'), x, `${prefix}.c_fc`, c.nEmbd, c.nInner);
  return conv1d(ctx, b.scoped('c_proj'), geluTanh(b.scoped('act'), up), `${prefix}.c_proj`, c.nInner, c.nEmbd, residualStd(c));
}

function block(ctx: Context, hidden: string, layer: number): string {
  const b = ctx.root.scoped('transformer').scoped(`h.${layer}`);
  const prefix = `transformer.h.${layer}`;
  const attended = b.op('Add', [hidden, attention(ctx, b.scoped('attn'), layerNorm(ctx, b.scoped('ln_1'), hidden, `${prefix}.ln_1`), layer)]);
  return b.op('Add', [attended, mlp(ctx, b.scoped('mlp'), layerNorm(ctx, b.scoped('ln_2'), attended, `${prefix}.ln_2`), layer)]);
}

export interface Gpt2BuildOptions {
  /** Trained values for (some of) the float initializers; the graph is unchanged. */
  weights?: ReadonlyMap<string, Float32Array>;
}

export function buildGpt2(c: Gpt2Config = TINY_GPT2, seed = GPT2_DEFAULT_SEED, options: Gpt2BuildOptions = {}): ModelProto {
  if (c.nEmbd % c.nHead) throw new RangeError('n_embd must split into n_head heads');
  const root = new GraphBuilder('main_graph');
  const rng = new Rng(seed);
  const io = declareDecoderIo(root, c.nLayer, c.nHead, gpt2HeadDim(c), c.vocabSize);
  const t = root.scoped('transformer');
  const wte = root.initializer('transformer.wte.weight', DataType.FLOAT, [c.vocabSize, c.nEmbd], rng.normals(c.vocabSize * c.nEmbd, INIT_STD));
  const wpe = root.initializer('transformer.wpe.weight', DataType.FLOAT, [c.nPositions, c.nEmbd], rng.normals(c.nPositions * c.nEmbd, 0.01));
  const tokens = t.scoped('wte').op('Gather', [wte, io.inputIds], { axis: 0 });
  const positions = t.scoped('wpe').op('Gather', [wpe, io.positionIds], { axis: 0 });
  let hidden = t.op('Add', [tokens, positions]);
  const ctx: Context = { c, rng, root, mask: attentionMask(t, io.inputIds, io.attentionMask) };
  for (let i = 0; i < c.nLayer; i++) hidden = block(ctx, hidden, i);
  const normed = layerNorm(ctx, t.scoped('ln_f'), hidden, 'transformer.ln_f');
  // Tied lm_head: logits = h @ wte^T, reading the one embedding initializer.
  const lmHead = root.scoped('lm_head');
  lmHead.node('MatMul', [normed, lmHead.op('Transpose', [wte], { perm: [1, 0] })], ['logits']);

  return sampleModel(root.graph, 'tiny-gpt2', 'scripts/build-sample-gpt2', seed, options.weights);
}

/** config.json in Hugging Face's GPT2Config spelling. */
export function gpt2Config(c: Gpt2Config): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    n_embd: c.nEmbd,
    n_layer: c.nLayer,
    n_head: c.nHead,
    n_inner: c.nInner,
    n_positions: c.nPositions,
    n_ctx: c.nPositions,
    vocab_size: c.vocabSize,
    activation_function: 'gelu_new',
    layer_norm_epsilon: c.layerNormEpsilon,
    initializer_range: INIT_STD,
    tie_word_embeddings: true,
    scale_attn_weights: true,
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

export function gpt2Card(c: Gpt2Config, seed: number, fileBytes: number, training?: TrainingRecord): string {
  const params = gpt2ParameterCount(c);
  const hd = gpt2HeadDim(c);
  const status = training
    ? `**Trained** (small, briefly: a byte-level model of ${params.toLocaleString('en-US')} parameters trained for
${(training.wallSeconds / 60).toFixed(0)} minutes on a shared 2-core machine). It has learned byte statistics and frequent words of its training
text (see the bits per byte and samples below) but it is not a useful language model; it exists so that compression passes, decoding and tests work on a real trained
GPT-2-architecture decoder (LayerNorm, fused QKV, learned positions, tied embeddings).`
    : `**The weights are RANDOM (untrained)**, drawn from a seeded generator; the model's outputs mean nothing.`;
  return `# tiny-gpt2 (sample decoder)

${status}

| | |
|---|---|
| architecture | GPT-2 (GPT2LMHeadModel): pre-LayerNorm blocks, learned absolute positions, fused QKV projection (MatMul to 3 x ${c.nEmbd}, then Split), multi-head attention, GELU MLP (tanh approximation, \`gelu_new\`), lm_head tied to the token embedding |
| layers | ${c.nLayer} |
| hidden size (n_embd) | ${c.nEmbd} |
| attention heads / head dim | ${c.nHead} / ${hd} (key/value heads = heads: no GQA) |
| MLP inner size | ${c.nInner} |
| vocabulary | ${c.vocabSize}: ids 0-255 are raw bytes, ${SPECIAL_TOKENS.bos} = BOS, ${SPECIAL_TOKENS.eos} = EOS, ${SPECIAL_TOKENS.pad} = PAD (as tiny-llama) |
| max positions (n_positions) | ${c.nPositions}${training ? ` (trained on windows of ${training.sequence} placed at random offsets, so every position is trained)` : ''} |
| parameters | ${params.toLocaleString('en-US')} (tied lm_head counted once) |
| file | onnx/model.onnx, ${fileBytes.toLocaleString('en-US')} bytes, float32, weights inline |
| ONNX | opset ${OPSET}, plain ops only (LayerNormalization, no contrib ops, no fused attention) |
| initialisation seed | ${seed} (normal std ${INIT_STD}; positions std 0.01; residual projections std ${INIT_STD}/sqrt(2 x ${c.nLayer}); biases 0; LayerNorm 1 / 0) |

${folderCardSection('tiny-gpt2')}
## Inputs and outputs (Hugging Face optimum decoder layout)

- \`input_ids\` int64 [batch_size, sequence_length]
- \`attention_mask\` int64 [batch_size, past_sequence_length + sequence_length] (1 = token, 0 = padding)
- \`position_ids\` int64 [batch_size, sequence_length] (0 ... ${c.nPositions - 1})
- \`past_key_values.{i}.key\` / \`.value\` float32 [batch_size, ${c.nHead}, past_sequence_length, ${hd}], i = 0..${c.nLayer - 1}
- outputs \`logits\` float32 [batch_size, sequence_length, ${c.vocabSize}] and \`present.{i}.key\` / \`.value\`
  [batch_size, ${c.nHead}, past_sequence_length + sequence_length, ${hd}]

## Weight layout

Initializers are named as in Hugging Face's GPT2LMHeadModel (\`transformer.wte.weight\` [${c.vocabSize}, ${c.nEmbd}],
\`transformer.wpe.weight\` [${c.nPositions}, ${c.nEmbd}], \`transformer.h.0.ln_1.weight\`, \`transformer.h.0.attn.c_attn.weight\`
[${c.nEmbd}, ${3 * c.nEmbd}] (query, key, value columns in that order), \`transformer.h.0.attn.c_proj.weight\`,
\`transformer.h.0.mlp.c_fc.weight\`, \`transformer.h.0.mlp.c_proj.weight\`, \`transformer.ln_f.weight\`, and a \`.bias\` for each):
Hugging Face's Conv1D weights are [in, out], which is what MatMul multiplies, so they are stored as in the
checkpoint. There is no \`lm_head.weight\`: \`/lm_head/MatMul\` multiplies by \`/lm_head/Transpose\` of
\`transformer.wte.weight\`, so the embedding is tied in the file.

${training ? trainingSection(training, TRAINING_DATA_LICENCES) : ''}
## Regenerating

\`\`\`
npx tsc -p . && node dist/scripts/build-sample-gpt2.js            # graph + the committed (trained) weights
npx tsc -p . && node dist/scripts/build-sample-gpt2.js --random   # graph + seeded RANDOM weights
\`\`\`

The builder is deterministic: the same seed gives byte-identical random-weight files, and the graph with the
committed weights gives the committed onnx/model.onnx byte for byte.
`;
}
