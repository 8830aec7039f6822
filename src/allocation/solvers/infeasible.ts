// Whether any assignment fits, and if none does, the smallest one: the fewest bytes within the BOPs budget (itself a
// knapsack, minimise bytes under BOPs, solved exactly), else the fewest BOPs. Every solver asks this first, so an
// infeasible budget reads the same whichever solver was chosen.
import type { AllocationProblem, AllocationSolution } from '../problem.js';
import { exactSearch } from './exact.js';
import { prepare, score, type Prepared } from './instance.js';

export type Infeasible = Omit<AllocationSolution, 'solver' | 'seconds'>;

export function infeasibility(p: Prepared): Infeasible | null {
  const first = p.layers.map((layer) => layer.index[0]);
  const smallest = score(p.problem, first);
  if (!p.hasBops) {
    if (smallest.bytes <= p.byteBudget) return null;
    return { choice: first, objective: smallest.objective, bytes: smallest.bytes, status: 'infeasible', minimumBytes: smallest.bytes };
  }
  if (smallest.bytes <= p.byteBudget && smallest.bops <= p.bopsBudget) return null;
  const fewestBytes = exactChoice(bytesUnderBops(p.problem, p.bopsBudget));
  if (fewestBytes) {
    const s = score(p.problem, fewestBytes);
    if (s.bytes <= p.byteBudget) return null;
    return { choice: fewestBytes, ...s, status: 'infeasible', minimumBytes: s.bytes, minimumBops: minimumBops(p) };
  }
  const choice = exactChoice(bopsOnly(p.problem))!;
  return { choice, ...score(p.problem, choice), status: 'infeasible', minimumBops: minimumBops(p) };
}

function exactChoice(problem: AllocationProblem): number[] | null {
  return exactSearch(prepare(problem), { deadline: Infinity, maxStates: Infinity }).choice;
}

function minimumBops(p: Prepared): number {
  let sum = 0;
  for (const layer of p.problem.layers) sum += Math.min(...layer.candidates.map((c) => c.bops!));
  return sum;
}

/** Minimise bytes (then BOPs) under the BOPs budget: bytes become the loss, BOPs the bytes. */
function bytesUnderBops(problem: AllocationProblem, bopsBudget: number): AllocationProblem {
  return {
    layers: problem.layers.map((layer) => ({ name: layer.name, candidates: layer.candidates.map((c) => ({ label: c.label, deltaLoss: c.bytes, bytes: c.bops! })) })),
    byteBudget: bopsBudget,
  };
}

/** Minimise BOPs (then bytes) with no budget. */
function bopsOnly(problem: AllocationProblem): AllocationProblem {
  return {
    layers: problem.layers.map((layer) => ({ name: layer.name, candidates: layer.candidates.map((c) => ({ label: c.label, deltaLoss: c.bops!, bytes: c.bytes })) })),
    byteBudget: Infinity,
  };
}
