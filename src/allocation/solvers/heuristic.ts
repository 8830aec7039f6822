// A good first answer for the exact searches to prune against: the LP optimum rounded down, pushed under the BOPs
// budget by the cheapest BOPs-saving swaps, then improved by single-layer swaps while any lowers the loss. Positions are
// into the reduced layers (instance.ts).
import type { Prepared } from './instance.js';
import type { LinearSolution } from './relaxation.js';

export interface Positions {
  pos: Int32Array;
  objective: number;
  bytes: number;
  bops: number;
}

export function roundedAssignment(p: Prepared, lp: LinearSolution): Positions | null {
  if (lp.bound === Infinity) return null;
  const pos = Int32Array.from(lp.rounded);
  let bytes = 0;
  let bops = 0;
  p.layers.forEach((layer, l) => {
    bytes += layer.bytes[pos[l]];
    bops += layer.bops[pos[l]];
  });
  // Over the BOPs budget: take the swap that saves BOPs for the least loss per BOP saved, until it fits.
  while (p.hasBops && bops > p.bopsBudget) {
    let best = -1;
    let bestTo = -1;
    let bestRate = Infinity;
    p.layers.forEach((layer, l) => {
      const from = pos[l];
      for (let to = 0; to < layer.loss.length; to++) {
        const saved = layer.bops[from] - layer.bops[to];
        if (saved <= 0 || bytes - layer.bytes[from] + layer.bytes[to] > p.byteBudget) continue;
        const rate = (layer.loss[to] - layer.loss[from]) / saved;
        if (rate < bestRate) {
          bestRate = rate;
          best = l;
          bestTo = to;
        }
      }
    });
    if (best < 0) return null;
    const layer = p.layers[best];
    bytes += layer.bytes[bestTo] - layer.bytes[pos[best]];
    bops += layer.bops[bestTo] - layer.bops[pos[best]];
    pos[best] = bestTo;
  }
  // Spend what is left of the budgets on the swap that lowers the loss most, while one does.
  for (;;) {
    let best = -1;
    let bestTo = -1;
    let bestGain = 0;
    p.layers.forEach((layer, l) => {
      const from = pos[l];
      for (let to = 0; to < layer.loss.length; to++) {
        const gain = layer.loss[from] - layer.loss[to];
        if (gain <= bestGain) continue;
        if (bytes - layer.bytes[from] + layer.bytes[to] > p.byteBudget) continue;
        if (p.hasBops && bops - layer.bops[from] + layer.bops[to] > p.bopsBudget) continue;
        bestGain = gain;
        best = l;
        bestTo = to;
      }
    });
    if (best < 0) break;
    const layer = p.layers[best];
    bytes += layer.bytes[bestTo] - layer.bytes[pos[best]];
    bops += layer.bops[bestTo] - layer.bops[pos[best]];
    pos[best] = bestTo;
  }
  return scorePositions(p, pos);
}

/** The score of positions summed in layer order (as instance.ts's `score`), or null when a budget is broken. */
export function scorePositions(p: Prepared, pos: Int32Array): Positions | null {
  let objective = 0;
  let bytes = 0;
  let bops = 0;
  p.layers.forEach((layer, l) => {
    objective += layer.loss[pos[l]];
    bytes += layer.bytes[pos[l]];
    bops += layer.bops[pos[l]];
  });
  if (bytes > p.byteBudget || (p.hasBops && bops > p.bopsBudget)) return null;
  return { pos, objective, bytes, bops };
}
