// NIRVANA saliency: S = |W ⊙ ∂F/∂W| per weight, summed (L1) over the weights each unit owns. F is the model's
// output, as the reference computes it: the mean over batch and vocabulary of the max over positions of the
// logits; the LM loss (mean next-token cross-entropy) is the alternative, which makes the score LLM-Pruner's
// first-order Taylor. One forward and one backward with the TensorFlow.js interpreter over the calibration batch,
// run in chunks (the set's batches) whose gradients are summed with their share of the batch as weight: F and the
// loss are means over samples, so the chunked gradient equals the whole batch's. No KV cache: the set feeds empty pasts.
import type { CalibrationSet } from '../calibration/data/index.js';
import { OptionError } from '../errors.js';
import { GraphIndex } from '../onnx/graph.js';
import type { OnnxModel } from '../onnx/model.js';
import { DataType } from '../onnx/types.js';
import { fromOrtTensor } from '../runtime/ort-tensor.js';
import { type BackendChoice, type BackendName, crossEntropy, IGNORE_INDEX, type Objective, selectBackend, type TensorInput, TfModel } from '../runtime/tf/index.js';
import type { DecoderStructure } from '../structure/decoder-structure.js';
import { featureSums, ownedSlices, projectionWeight, unitScores, type UnitScores } from './units.js';

export const SALIENCY_OBJECTIVES = ['max-logits', 'loss'] as const;
export type SaliencyObjective = (typeof SALIENCY_OBJECTIVES)[number];

export interface SaliencyOptions {
  objective?: SaliencyObjective;
  backend?: BackendChoice;
  /** Called after each chunk: samples done of the set's total. */
  onChunk?: (done: number, total: number) => void;
}

export interface GradientRun {
  /** d objective / d weight over the whole set, by weight name (shaped like the stored weight). */
  gradients: Map<string, Float32Array>;
  /** The objective over the whole set. */
  objective: number;
  backend: BackendName;
  samples: number;
  chunks: number;
  seconds: number;
  /** Highest resident set size seen between chunks, bytes. */
  peakRss: number;
}

export interface SaliencyResult extends Omit<GradientRun, 'gradients'> {
  scores: UnitScores;
  objectiveKind: SaliencyObjective;
}

const LOGITS = 'logits';

/** The weights units own, by name: every attention and MLP projection of every layer. */
export function prunableWeights(structure: DecoderStructure): string[] {
  return [...new Set(structure.layers.flatMap((l) => ownedSlices(l).map((s) => s.projection.weight)))];
}

function objectiveFor(kind: SaliencyObjective, ids: TensorInput): Objective {
  if (kind === 'loss') return crossEntropy(shiftedTargets(ids), LOGITS);
  return (outputs, ops) => ops.mean(ops.max(outputs[LOGITS], 1));
}

/** Next-token targets for [batch, seq] ids: ids shifted left, the last position of each row not scored. */
function shiftedTargets(ids: TensorInput): TensorInput {
  const [batch, seq] = ids.dims;
  const values = Array.from(ids.data as ArrayLike<number | bigint>, Number);
  const targets = new Int32Array(batch * seq);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seq; t++) targets[b * seq + t] = t + 1 < seq ? values[b * seq + t + 1] : IGNORE_INDEX;
  }
  return { dtype: DataType.INT32, dims: [batch, seq], data: targets };
}

/** Gradients of the objective with respect to `weights`, summed over the set's batches (see the file comment). */
export async function objectiveGradients(model: OnnxModel, set: CalibrationSet, weights: readonly string[], options: SaliencyOptions = {}): Promise<GradientRun> {
  const kind = options.objective ?? 'max-logits';
  if (!SALIENCY_OBJECTIVES.includes(kind)) throw new OptionError(`saliency objective must be one of ${SALIENCY_OBJECTIVES.join(', ')}, got '${String(kind)}'`);
  const started = performance.now();
  const backend = await selectBackend(options.backend ?? 'auto');
  const tf = TfModel.compile(model);
  const gradients = new Map<string, Float32Array>();
  let objective = 0;
  let done = 0;
  let chunks = 0;
  let peakRss = process.memoryUsage().rss;
  try {
    for await (const batch of set.batches()) {
      const feeds = Object.fromEntries(Object.entries(batch).map(([name, t]) => [name, fromOrtTensor(t, name)]));
      const ids = feeds.input_ids;
      if (!ids) throw new OptionError(`${model.source}: the calibration feeds have no input_ids; saliency needs a token set`);
      const rows = ids.dims[0];
      const share = rows / set.sampleCount;
      const result = tf.gradients({ feeds, objective: objectiveFor(kind, ids), weights, fetches: [LOGITS] });
      objective += share * result.objective;
      for (const name of weights) {
        const g = result.weights[name].data as Float32Array;
        const sum = gradients.get(name);
        if (!sum) gradients.set(name, Float32Array.from(g, (v) => v * share));
        else for (let i = 0; i < g.length; i++) sum[i] += share * g[i];
      }
      done += rows;
      chunks++;
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      options.onChunk?.(done, set.sampleCount);
    }
  } finally {
    tf.dispose();
  }
  return { gradients, objective, backend, samples: done, chunks, seconds: (performance.now() - started) / 1000, peakRss };
}

/** Unit scores: the L1 norm of |W ⊙ ∂F/∂W| over each unit's weights. */
export async function saliencyScores(model: OnnxModel, structure: DecoderStructure, set: CalibrationSet, options: SaliencyOptions = {}): Promise<SaliencyResult> {
  const run = await objectiveGradients(model, set, prunableWeights(structure), options);
  const index = new GraphIndex(model.graph);
  const weights = new Map<string, Float32Array>();
  const scores = unitScores(structure, (slice) => {
    const name = slice.projection.weight;
    if (!weights.has(name)) weights.set(name, projectionWeight(model, slice.projection, index));
    const w = weights.get(name)!;
    const g = run.gradients.get(name)!;
    return featureSums(w, slice.projection, slice.axis, (v, i) => Math.abs(v * g[i]));
  });
  const { gradients: _, ...rest } = run;
  return { ...rest, scores, objectiveKind: options.objective ?? 'max-logits' };
}
