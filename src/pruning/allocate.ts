// NIRVANA's adaptive sparsity allocation: how many attention groups and MLP neurons go, from the target sparsity s
// (a fraction of the attention + MLP parameters) and gamma (MLP pruned fraction = gamma x attention pruned
// fraction), then which ones by global ranking: every layer's group scores in one list, every neuron score in
// another, attention never ranked against MLP. Per-layer sparsity falls out of the ranking. Each layer keeps at
// least one group and a multiple of 8 neurons (at least 8); the neuron count is chosen so that the parameters
// removed land as close to the target as those steps allow (within 1% of the kept target on the sample models).
import { OptionError } from '../errors.js';
import type { PruneSelection } from './selection.js';
import type { LayerUnits, UnitScores } from './units.js';

/** The reference's gamma for Llama-3.1-8B; 3.0 is its Llama-3.2-3B value. */
export const DEFAULT_GAMMA = 3.36;
/** Kept MLP neurons per layer are a multiple of this (and at least this many). */
export const NEURON_MULTIPLE = 8;

export interface AllocateOptions {
  sparsity: number;
  gamma?: number;
  /**
   * Smallest fraction of each layer's MLP neurons kept (rounded up to a multiple of 8). The reference has none
   * (default 0: only the 8-neuron floor); a floor stops the global ranking from emptying one layer's MLP.
   */
  minNeuronFraction?: number;
}

export interface Allocation {
  selection: PruneSelection;
  /** Attention + MLP parameters before pruning, the number the target removes, and what was removed. */
  params: { total: number; targetRemoved: number; removed: number; targetKept: number; kept: number; relativeError: number };
  attention: { formula: number; pruned: number; total: number };
  mlp: { formula: number; pruned: number; total: number };
  gamma: number;
}

export function checkSparsity(s: number, what = 'sparsity'): void {
  if (!(Number.isFinite(s) && s >= 0 && s < 1)) throw new OptionError(`${what} must be in [0, 1), got ${s}`);
}

/** Ascending scores first; ties by layer then index, so the same scores always give the same order. */
function ranked(perLayer: readonly Float64Array[]): { layer: number; index: number; score: number }[] {
  const all = perLayer.flatMap((scores, layer) => Array.from(scores, (score, index) => ({ layer, index, score })));
  return all.sort((a, b) => a.score - b.score || a.layer - b.layer || a.index - b.index);
}

export function allocate(units: readonly LayerUnits[], scores: UnitScores, options: AllocateOptions): Allocation {
  const s = options.sparsity;
  checkSparsity(s);
  const gamma = options.gamma ?? DEFAULT_GAMMA;
  if (!(Number.isFinite(gamma) && gamma >= 0)) throw new OptionError(`gamma must be a number >= 0, got ${gamma}`);
  const minFraction = options.minNeuronFraction ?? 0;
  if (!(Number.isFinite(minFraction) && minFraction >= 0 && minFraction <= 1)) throw new OptionError(`minimum kept MLP fraction must be in [0, 1], got ${minFraction}`);
  if (units.length === 0) throw new OptionError('nothing to prune: the model has no decoder layers');
  units.forEach((u, l) => {
    if (scores.attention[l]?.length !== u.groups || scores.mlp[l]?.length !== u.neurons) {
      throw new OptionError(`layer ${l}: scores for ${scores.attention[l]?.length} groups and ${scores.mlp[l]?.length} neurons, the layer has ${u.groups} and ${u.neurons}`);
    }
  });
  const groupsTotal = units.reduce((a, u) => a + u.groups, 0);
  const neuronsTotal = units.reduce((a, u) => a + u.neurons, 0);
  const total = units.reduce((a, u) => a + u.groups * u.groupParams + u.neurons * u.neuronParams, 0);
  // Mean cost per unit: equal in every layer of an unpruned model (hidden size is never pruned).
  const groupCost = units.reduce((a, u) => a + u.groups * u.groupParams, 0) / groupsTotal;
  const neuronCost = units.reduce((a, u) => a + u.neurons * u.neuronParams, 0) / neuronsTotal;
  const targetRemoved = s * total;
  // N_attn * a + N_mlp * m = s * total with N_mlp / I = gamma * N_attn / H (the reference's formula, any layout).
  const attnFormula = targetRemoved / (groupCost + (neuronCost * gamma * neuronsTotal) / groupsTotal);
  const mlpFormula = (attnFormula * gamma * neuronsTotal) / groupsTotal;
  const attnRoom = units.reduce((a, u) => a + u.groups - 1, 0);
  const floor = units.map((u) => Math.min(u.neurons, Math.max(NEURON_MULTIPLE, Math.ceil((minFraction * u.neurons) / NEURON_MULTIPLE) * NEURON_MULTIPLE)));
  const mlpRoom = units.reduce((a, u, l) => a + u.neurons - floor[l], 0);
  const attnPruned = Math.min(Math.round(attnFormula), groupsTotal);
  if (attnPruned > attnRoom) {
    throw new OptionError(
      `gamma ${gamma} at sparsity ${s} prunes ${attnPruned} of ${groupsTotal} attention groups, which leaves a layer without attention (at most ${attnRoom} can go with one kept per layer); raise gamma`,
    );
  }
  if (mlpFormula > mlpRoom) {
    throw new OptionError(`gamma ${gamma} at sparsity ${s} prunes ${Math.round(mlpFormula)} of ${neuronsTotal} MLP neurons, more than the ${mlpRoom} that can go with each layer's floor kept; lower gamma, the sparsity or the kept MLP floor`);
  }

  const groupsPruned = units.map(() => new Set<number>());
  let groupsRemoved = 0;
  for (const u of ranked(scores.attention)) {
    if (groupsRemoved === attnPruned) break;
    if (groupsPruned[u.layer].size === units[u.layer].groups - 1) continue; // its last group stays
    groupsPruned[u.layer].add(u.index);
    groupsRemoved++;
  }
  const attnRemovedParams = groupsPruned.reduce((a, g, l) => a + g.size * units[l].groupParams, 0);
  const neuronCounts = chooseNeuronCounts(units, scores.mlp, floor, Math.max(0, targetRemoved - attnRemovedParams));

  const selection: PruneSelection = units.map((u, l) => {
    const lowest = Array.from(scores.mlp[l], (score, index) => ({ score, index }))
      .sort((a, b) => a.score - b.score || a.index - b.index)
      .slice(0, neuronCounts[l]);
    const neuronsOut = new Set(lowest.map((n) => n.index));
    return {
      groups: range(u.groups).filter((g) => !groupsPruned[l].has(g)),
      neurons: range(u.neurons).filter((n) => !neuronsOut.has(n)),
    };
  });
  const removed = attnRemovedParams + neuronCounts.reduce((a, c, l) => a + c * units[l].neuronParams, 0);
  const targetKept = total - targetRemoved;
  const kept = total - removed;
  return {
    selection,
    params: { total, targetRemoved, removed, targetKept, kept, relativeError: targetKept > 0 ? (kept - targetKept) / targetKept : 0 },
    attention: { formula: attnFormula, pruned: groupsRemoved, total: groupsTotal },
    mlp: { formula: mlpFormula, pruned: neuronCounts.reduce((a, b) => a + b, 0), total: neuronsTotal },
    gamma,
  };
}

/**
 * Neurons pruned per layer: walk the global ranking (lowest first, skipping layers down to their floor), each
 * layer's count rounded so that what it keeps is a multiple of 8, never below its floor; of all walk lengths, the one whose removed
 * parameters come closest to `budget`. Removal only grows along the walk, so the walk stops once past it.
 */
function chooseNeuronCounts(units: readonly LayerUnits[], scores: readonly Float64Array[], floor: readonly number[], budget: number): number[] {
  const walked = units.map(() => 0);
  const rounded = (l: number): number => {
    const n = units[l].neurons;
    const kept = Math.min(n, Math.max(floor[l], Math.ceil((n - walked[l]) / NEURON_MULTIPLE) * NEURON_MULTIPLE));
    return n - kept;
  };
  let removed = 0;
  let best = { error: budget, counts: units.map(() => 0) };
  for (const u of ranked(scores)) {
    if (removed > budget) break;
    if (units[u.layer].neurons - walked[u.layer] <= floor[u.layer]) continue;
    const before = rounded(u.layer);
    walked[u.layer]++;
    const after = rounded(u.layer);
    if (after === before) continue;
    removed += (after - before) * units[u.layer].neuronParams;
    const error = Math.abs(removed - budget);
    if (error < best.error) best = { error, counts: units.map((_, l) => rounded(l)) };
  }
  return best.counts;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
