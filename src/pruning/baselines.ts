// The usual structured-pruning baselines at NIRVANA's unit structure (GQA groups, MLP neurons), scored so that
// the shared allocation (allocate.ts) can rank them: magnitude, Wanda-sp, FLAP (with its bias compensation).
// LLM-Pruner's first-order Taylor score is saliency.ts with the LM loss as objective.
import { GraphIndex } from '../onnx/graph.js';
import type { OnnxModel } from '../onnx/model.js';
import type { DecoderStructure, Projection } from '../structure/decoder-structure.js';
import { channelMean, channelNorm, channelVariance, type LayerChannelStats } from './channel-stats.js';
import { normaliseScores } from './normalize.js';
import type { PruneSelection } from './selection.js';
import { featureSums, projectionWeight, unitScores, type UnitScores } from './units.js';

/** Sum of |W| over each unit's weights. */
export function magnitudeScores(model: OnnxModel, structure: DecoderStructure): UnitScores {
  const index = new GraphIndex(model.graph);
  return unitScores(structure, (slice) => featureSums(projectionWeight(model, slice.projection, index), slice.projection, slice.axis));
}

/**
 * Wanda-sp: |W_ij| * ||X_j||_2 on the input columns of o and down (X their input over the calibration set),
 * averaged over the output rows; a group sums its heads' columns.
 */
export function wandaSpScores(model: OnnxModel, structure: DecoderStructure, stats: readonly LayerChannelStats[]): UnitScores {
  const index = new GraphIndex(model.graph);
  return unitScores(structure, (slice, _layer, l) => {
    if (slice.axis !== 'in') return null;
    const norm = channelNorm(slice.kind === 'attention' ? stats[l].attention : stats[l].mlp);
    const sums = featureSums(projectionWeight(model, slice.projection, index), slice.projection, 'in');
    return sums.map((s, j) => (s / slice.projection.outFeatures) * norm[j]);
  });
}

/**
 * FLAP: the fluctuation of each input channel of o and down (its variance over the calibration tokens) times the
 * squared norm of the weights reading it, summed per group, then standardised (z-score) within each layer and
 * unit kind, as FLAP does before its global ranking.
 */
export function flapScores(model: OnnxModel, structure: DecoderStructure, stats: readonly LayerChannelStats[]): UnitScores {
  const index = new GraphIndex(model.graph);
  const raw = unitScores(structure, (slice, _layer, l) => {
    if (slice.axis !== 'in') return null;
    const variance = channelVariance(slice.kind === 'attention' ? stats[l].attention : stats[l].mlp);
    const squares = featureSums(projectionWeight(model, slice.projection, index), slice.projection, 'in', (v) => v * v);
    return squares.map((s, j) => s * variance[j]);
  });
  return normaliseScores(raw, 'zscore');
}

/**
 * FLAP's bias compensation: what the removed input channels of o and down contributed on average,
 * sum over removed j of mean(X_j) * W[j, :], added to the projection's output; written into the selection.
 */
export function flapCompensation(model: OnnxModel, structure: DecoderStructure, stats: readonly LayerChannelStats[], selection: PruneSelection): PruneSelection {
  const index = new GraphIndex(model.graph);
  return structure.layers.map((layer, l) => {
    const keep = selection[l];
    const a = layer.attention;
    const width = (a.heads / a.kvHeads) * a.headDim;
    const keptGroups = new Set(keep.groups);
    const removedColumns = Array.from({ length: a.kvHeads }, (_, g) => g)
      .filter((g) => !keptGroups.has(g))
      .flatMap((g) => Array.from({ length: width }, (_, k) => g * width + k));
    const keptNeurons = new Set(keep.neurons);
    const removedNeurons = Array.from({ length: layer.mlp.width }, (_, j) => j).filter((j) => !keptNeurons.has(j));
    const compensation = {
      ...(removedColumns.length ? { attention: meanContribution(projectionWeight(model, a.o, index), a.o, removedColumns, channelMean(stats[l].attention)) } : {}),
      ...(removedNeurons.length ? { mlp: meanContribution(projectionWeight(model, layer.mlp.down, index), layer.mlp.down, removedNeurons, channelMean(stats[l].mlp)) } : {}),
    };
    return { ...keep, ...(Object.keys(compensation).length ? { compensation } : {}) };
  });
}

/** sum over input features j in `columns` of mean[j] * W[j, :], a vector over the output features. */
function meanContribution(w: Float32Array, p: Projection, columns: readonly number[], mean: Float64Array): Float32Array {
  const out = new Float64Array(p.outFeatures);
  for (const j of columns) {
    for (let i = 0; i < p.outFeatures; i++) out[i] += mean[j] * (p.outAxis === 1 ? w[j * p.outFeatures + i] : w[i * p.inFeatures + j]);
  }
  return Float32Array.from(out);
}
