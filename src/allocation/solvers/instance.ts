// What every allocation solver shares: checking a problem once, the reduced per-layer candidate lists the exact
// solvers search, the one way an assignment is scored, and the fixed tie-break that makes answers repeatable.
import { OnnxCompressError, OptionError } from '../../errors.js';
import type { AllocationProblem } from '../problem.js';

/** A problem the solvers cannot read (a layer with no candidates, a non-finite loss, negative bytes). */
export class AllocationProblemError extends OnnxCompressError {
  constructor(message: string) {
    super('bad-data', message);
  }
}

/** One layer's candidates that can be part of a best answer, in ascending bytes (then BOPs, loss, index). */
export interface ReducedLayer {
  /** Index into the problem's candidate list. */
  readonly index: Int32Array;
  readonly bytes: Float64Array;
  readonly bops: Float64Array;
  readonly loss: Float64Array;
}

export interface Prepared {
  readonly problem: AllocationProblem;
  readonly layers: ReducedLayer[];
  readonly byteBudget: number;
  /** Infinity without a BOPs budget. */
  readonly bopsBudget: number;
  readonly hasBops: boolean;
}

export interface Score {
  objective: number;
  bytes: number;
  bops: number;
}

/** Validates the problem (one line naming the layer and candidate at fault) and drops dominated candidates. */
export function prepare(problem: AllocationProblem): Prepared {
  const { byteBudget, bopsBudget } = problem;
  if (typeof byteBudget !== 'number' || Number.isNaN(byteBudget)) throw new OptionError(`allocation byte budget ${byteBudget} is not a number`);
  if (bopsBudget !== undefined && (typeof bopsBudget !== 'number' || Number.isNaN(bopsBudget))) throw new OptionError(`allocation BOPs budget ${bopsBudget} is not a number`);
  const hasBops = bopsBudget !== undefined;
  const layers = problem.layers.map((layer, l) => {
    const name = `layer ${l} '${layer.name}'`;
    if (layer.candidates.length === 0) throw new AllocationProblemError(`${name} has no candidates`);
    layer.candidates.forEach((c, i) => {
      const what = `${name} candidate ${i} '${c.label}'`;
      if (!Number.isFinite(c.deltaLoss)) throw new AllocationProblemError(`${what}: deltaLoss ${c.deltaLoss} is not finite`);
      if (!Number.isFinite(c.bytes) || c.bytes < 0) throw new AllocationProblemError(`${what}: bytes ${c.bytes} is not a finite number >= 0`);
      if (hasBops && (c.bops === undefined || !Number.isFinite(c.bops) || c.bops < 0)) throw new AllocationProblemError(`${what}: bops ${c.bops} is not a finite number >= 0, and the problem has a BOPs budget`);
    });
    return reduceLayer(problem, l, hasBops);
  });
  return { problem, layers, byteBudget, bopsBudget: hasBops ? bopsBudget! : Infinity, hasBops };
}

/**
 * Keeps the candidates no other candidate of the layer beats or equals in loss, bytes and BOPs at once (an equal one
 * with a lower index wins), since swapping a beaten candidate for its better never loses under the tie-break.
 */
function reduceLayer(problem: AllocationProblem, l: number, hasBops: boolean): ReducedLayer {
  const cs = problem.layers[l].candidates;
  const bops = (i: number): number => (hasBops ? cs[i].bops! : 0);
  const kept: number[] = [];
  for (let i = 0; i < cs.length; i++) {
    const beaten = cs.some((o, j) => {
      if (j === i || o.deltaLoss > cs[i].deltaLoss || o.bytes > cs[i].bytes || bops(j) > bops(i)) return false;
      const equal = o.deltaLoss === cs[i].deltaLoss && o.bytes === cs[i].bytes && bops(j) === bops(i);
      return !equal || j < i;
    });
    if (!beaten) kept.push(i);
  }
  kept.sort((a, b) => cs[a].bytes - cs[b].bytes || bops(a) - bops(b) || cs[a].deltaLoss - cs[b].deltaLoss || a - b);
  return {
    index: Int32Array.from(kept),
    bytes: Float64Array.from(kept, (i) => cs[i].bytes),
    bops: Float64Array.from(kept, bops),
    loss: Float64Array.from(kept, (i) => cs[i].deltaLoss),
  };
}

/** The score of an assignment, summed in layer order: the one objective every solver and test compares. */
export function score(problem: AllocationProblem, choice: readonly number[]): Score {
  let objective = 0;
  let bytes = 0;
  let bops = 0;
  problem.layers.forEach((layer, l) => {
    const c = layer.candidates[choice[l]];
    objective += c.deltaLoss;
    bytes += c.bytes;
    bops += c.bops ?? 0;
  });
  return { objective, bytes, bops };
}

export function withinBudgets(p: Prepared, s: Score): boolean {
  return s.bytes <= p.byteBudget && (!p.hasBops || s.bops <= p.bopsBudget);
}

/**
 * The tie-break: lower objective, then fewer bytes, then fewer BOPs, then the lower candidate index at the first layer
 * where the assignments differ. Negative when `a` is better.
 */
export function compareAssignments(a: Score & { choice: readonly number[] }, b: Score & { choice: readonly number[] }): number {
  if (a.objective !== b.objective) return a.objective < b.objective ? -1 : 1;
  if (a.bytes !== b.bytes) return a.bytes < b.bytes ? -1 : 1;
  if (a.bops !== b.bops) return a.bops < b.bops ? -1 : 1;
  for (let l = 0; l < a.choice.length; l++) if (a.choice[l] !== b.choice[l]) return a.choice[l] - b.choice[l];
  return 0;
}

/** (objective - bound) relative to the larger magnitude, 0 when both are 0, Infinity without a bound. */
export function relativeGap(objective: number, bound: number): number {
  if (!Number.isFinite(bound)) return Infinity;
  const scale = Math.max(Math.abs(objective), Math.abs(bound));
  return scale === 0 ? 0 : Math.max(0, objective - bound) / scale;
}
