// Training a decoder language model with the TensorFlow.js interpreter: next-token cross-entropy gradients
// from TfModel.gradients, global-norm clipping, AdamW in JS, and the new values assigned back to the model's
// variables. The parameters live in JS Float32Arrays (the optimizer's view); the interpreter's copies are
// refreshed after every step, so model.run always sees the current weights.
import { OnnxCompressError } from '../errors.js';
import { ModelError, type OnnxModel } from '../onnx/model.js';
import { DataType } from '../onnx/types.js';
import { crossEntropy, type Feeds, type TfModel } from '../runtime/tf/index.js';
import type { TokenBatch } from './data.js';
import { AdamW, type AdamWOptions, clipGlobalNorm, type Parameter } from './optimizer.js';
import { type CosineSchedule, cosineLearningRate } from './schedule.js';

/** The cache geometry a decoder graph declares: past_key_values.{i}.key is [batch, kvHeads, past, headDim]. */
export interface CacheLayout {
  names: string[];
  kvHeads: number;
  headDim: number;
}

export function cacheLayout(model: OnnxModel): CacheLayout {
  const past = model.graph.input.filter((v) => v.name?.startsWith('past_key_values.'));
  if (past.length === 0) return { names: [], kvHeads: 0, headDim: 0 };
  const dims = past[0].type?.tensorType?.shape?.dim ?? [];
  const fixed = (i: number): number => {
    const v = dims[i]?.dimValue;
    if (v === undefined) throw new ModelError(`${model.source}: ${past[0].name} has no fixed size on axis ${i}`);
    return Number(v);
  };
  return { names: past.map((v) => v.name!), kvHeads: fixed(1), headDim: fixed(3) };
}

/**
 * Decoder feeds for a batch with no past: ids, an all-ones mask (PAD positions only ever precede ignored
 * targets, and they sit after every real token, so causality keeps them from influencing scored positions),
 * positions 0..T-1 (plus the row's offset, when the batch has them) and empty caches.
 */
export function batchFeeds(layout: CacheLayout, b: TokenBatch): Feeds {
  const { batch, sequence: T } = b;
  const positions = new BigInt64Array(batch * T);
  for (let r = 0; r < batch; r++) {
    const offset = b.positionOffsets?.[r] ?? 0;
    for (let j = 0; j < T; j++) positions[r * T + j] = BigInt(offset + j);
  }
  const feeds: Feeds = {
    input_ids: { dtype: DataType.INT64, dims: [batch, T], data: BigInt64Array.from(b.inputs, (x) => BigInt(x)) },
    attention_mask: { dtype: DataType.INT64, dims: [batch, T], data: new BigInt64Array(batch * T).fill(1n) },
    position_ids: { dtype: DataType.INT64, dims: [batch, T], data: positions },
  };
  for (const name of layout.names) feeds[name] = { dtype: DataType.FLOAT, dims: [batch, layout.kvHeads, 0, layout.headDim], data: new Float32Array(0) };
  return feeds;
}

/** Float initializers that are parameters: everything except precomputed buffers such as rotary tables. */
export function trainableWeights(tf: TfModel): string[] {
  return tf.weightNames.filter((n) => !/(_cached|\.masked_bias|\.attn\.bias)$/.test(n));
}

export interface TrainerOptions {
  schedule: CosineSchedule;
  optimizer?: AdamWOptions;
  /** Maximum global gradient norm (default 1). */
  clipNorm?: number;
  /** Weights to train (default: trainableWeights). */
  weights?: readonly string[];
}

export interface StepReport {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
  tokens: number;
}

export class Trainer {
  readonly params = new Map<string, Parameter>();
  readonly optimizer: AdamW;
  readonly layout: CacheLayout;
  private readonly names: string[];
  private stepIndex = 0;
  tokensSeen = 0;

  constructor(
    private readonly tf: TfModel,
    model: OnnxModel,
    private readonly options: TrainerOptions,
  ) {
    this.names = [...(options.weights ?? trainableWeights(tf))];
    for (const n of this.names) {
      const w = tf.readWeight(n);
      this.params.set(n, { dims: w.dims, data: Float32Array.from(w.data as Float32Array) });
    }
    this.optimizer = new AdamW(this.params, options.optimizer);
    this.layout = cacheLayout(model);
  }

  get step(): number {
    return this.stepIndex;
  }

  /** One optimisation step on a batch; returns the loss before the update. */
  train(b: TokenBatch): StepReport {
    const { objective, weights } = this.tf.gradients({
      feeds: batchFeeds(this.layout, b),
      objective: crossEntropy({ dims: [b.batch, b.sequence], data: b.targets }),
      weights: this.names,
      fetches: ['logits'],
    });
    if (!Number.isFinite(objective)) throw new OnnxCompressError('runtime', `training step ${this.stepIndex}: loss is ${objective}`);
    const grads = new Map(this.names.map((n) => [n, weights[n].data as Float32Array]));
    const gradNorm = clipGlobalNorm(grads.values(), this.options.clipNorm ?? 1);
    const lr = cosineLearningRate(this.options.schedule, this.stepIndex);
    this.optimizer.step(grads, lr);
    for (const [n, p] of this.params) this.tf.assignWeight(n, { dtype: DataType.FLOAT, dims: [...p.dims], data: p.data });
    let scored = 0;
    for (const t of b.targets) if (t >= 0) scored++;
    this.tokensSeen += scored;
    return { step: this.stepIndex++, loss: objective, gradNorm, lr, tokens: scored };
  }

  /** Mean cross-entropy in bits per scored target over batches, forward only (byte targets: bits per byte). */
  evaluate(batches: readonly TokenBatch[]): { bitsPerToken: number; tokens: number } {
    let nll = 0;
    let count = 0;
    for (const b of batches) {
      const logits = this.tf.run(batchFeeds(this.layout, b), ['logits']).logits;
      const data = logits.data as Float32Array;
      const vocab = logits.dims[2];
      for (let i = 0; i < b.targets.length; i++) {
        const t = b.targets[i];
        if (t < 0) continue;
        nll -= logSoftmaxAt(data, i * vocab, vocab, t);
        count++;
      }
    }
    return { bitsPerToken: nll / count / Math.LN2, tokens: count };
  }

  /** The current parameter values (the optimizer's arrays: copy before changing them). */
  weights(): Map<string, Float32Array> {
    return new Map([...this.params].map(([n, p]) => [n, p.data]));
  }
}

/** log softmax(row)[target] in float64. */
export function logSoftmaxAt(data: Float32Array, offset: number, vocab: number, target: number): number {
  let max = -Infinity;
  for (let k = 0; k < vocab; k++) max = Math.max(max, data[offset + k]);
  let sum = 0;
  for (let k = 0; k < vocab; k++) sum += Math.exp(data[offset + k] - max);
  return data[offset + target] - max - Math.log(sum);
}
