// Reduced-cost fixing. With the LP's dual prices (lambda per byte, mu per BOP), every assignment's loss is at least
// L + the sum of its candidates' reduced costs, where L = sum over layers of min(loss + lambda bytes + mu BOPs) -
// lambda budget - mu BOPs budget and a candidate's reduced cost is its (loss + lambda bytes + mu BOPs) minus its layer's
// minimum. So an answer with loss <= limit uses only candidates whose reduced cost is <= limit - L: the others are
// dropped, layers left with one candidate are fixed, and the search runs on the layers still free.
import type { Prepared, ReducedLayer } from './instance.js';
import type { LinearSolution } from './relaxation.js';

export interface Duals {
  /** The Lagrangian bound L. */
  bound: number;
  /** Per layer and reduced-layer position, the reduced cost. */
  reduced: Float64Array[];
  /** Scale of the sums involved, for tolerances. */
  scale: number;
}

export function dualsOf(p: Prepared, lp: LinearSolution): Duals {
  const lambda = Number.isFinite(p.byteBudget) ? lp.lambda : 0;
  const mu = p.hasBops ? lp.mu : 0;
  let bound = -(lambda > 0 ? lambda * p.byteBudget : 0) - (mu > 0 ? mu * p.bopsBudget : 0);
  let scale = Math.abs(bound);
  const reduced = p.layers.map((layer) => {
    const cost = Float64Array.from(layer.loss, (d, j) => d + lambda * layer.bytes[j] + mu * layer.bops[j]);
    let least = Infinity;
    for (const c of cost) least = Math.min(least, c);
    bound += least;
    for (const c of cost) scale += Math.abs(c);
    return cost.map((c) => c - least);
  });
  return { bound, reduced, scale };
}

export interface Restricted {
  /** The free layers as their own program, budgets less what the fixed layers take. */
  sub: Prepared;
  /** Original layer index of each free layer. */
  free: number[];
  /** Candidate index per layer for the fixed layers, -1 for the free ones. */
  fixed: number[];
  fixedLoss: number;
}

/** The program restricted to candidates with reduced cost <= slack; null when some layer keeps none or nothing fits. */
export function restrict(p: Prepared, duals: Duals, slack: number): Restricted | null {
  const free: number[] = [];
  const layers: ReducedLayer[] = [];
  const fixed: number[] = [];
  let fixedLoss = 0;
  let fixedBytes = 0;
  let fixedBops = 0;
  for (let l = 0; l < p.layers.length; l++) {
    const layer = p.layers[l];
    const keep: number[] = [];
    duals.reduced[l].forEach((rc, j) => {
      if (rc <= slack) keep.push(j);
    });
    if (keep.length === 0) return null;
    if (keep.length === 1) {
      const j = keep[0];
      fixed.push(layer.index[j]);
      fixedLoss += layer.loss[j];
      fixedBytes += layer.bytes[j];
      fixedBops += layer.bops[j];
      continue;
    }
    fixed.push(-1);
    free.push(l);
    layers.push({
      index: Int32Array.from(keep, (j) => layer.index[j]),
      bytes: Float64Array.from(keep, (j) => layer.bytes[j]),
      bops: Float64Array.from(keep, (j) => layer.bops[j]),
      loss: Float64Array.from(keep, (j) => layer.loss[j]),
    });
  }
  const byteBudget = p.byteBudget - fixedBytes;
  const bopsBudget = p.bopsBudget - fixedBops;
  if (byteBudget < 0 || (p.hasBops && bopsBudget < 0)) return null;
  const problem = {
    layers: free.map((l) => p.problem.layers[l]),
    byteBudget,
    ...(p.hasBops ? { bopsBudget } : {}),
  };
  return { sub: { problem, layers, byteBudget, bopsBudget: p.hasBops ? bopsBudget : Infinity, hasBops: p.hasBops }, free, fixed, fixedLoss };
}

/** The full assignment (candidate index per layer) from a choice over the free layers. */
export function expand(r: Restricted, subChoice: readonly number[]): number[] {
  const choice = [...r.fixed];
  r.free.forEach((l, i) => (choice[l] = subChoice[i]));
  return choice;
}
