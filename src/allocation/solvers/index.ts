// The allocation solvers by name, and the default: mckp-dp, the one that proves optimality on every program of
// bench/allocation-solvers.ts in about a second or less (docs/figures.md, "Bit-allocation solvers"). branch-and-bound is
// faster on some programs but cannot prove the 70B shape once losses tie exactly (its tree has no dominance merging);
// HiGHS is 2-10x slower, javascript-lp-solver 10-100x.
import { OptionError } from '../../errors.js';
import type { AllocationProblem, AllocationSolution, AllocationSolver } from '../problem.js';
import { branchAndBound } from './branch-and-bound.js';
import { highsSolver } from './highs.js';
import { javascriptLpSolver } from './lp-solver.js';
import { mckpDp } from './mckp-dp.js';

export const ALLOCATION_SOLVERS: Readonly<Record<string, AllocationSolver>> = {
  [mckpDp.name]: mckpDp,
  [branchAndBound.name]: branchAndBound,
  [highsSolver.name]: highsSolver,
  [javascriptLpSolver.name]: javascriptLpSolver,
};

export const DEFAULT_ALLOCATION_SOLVER = mckpDp.name;

export async function solveAllocation(problem: AllocationProblem, options: { solver?: string; timeLimitSeconds?: number } = {}): Promise<AllocationSolution> {
  const name = options.solver ?? DEFAULT_ALLOCATION_SOLVER;
  const solver = ALLOCATION_SOLVERS[name];
  if (!solver) throw new OptionError(`no allocation solver '${name}' (have ${Object.keys(ALLOCATION_SOLVERS).join(', ')})`);
  return solver.solve(problem, options);
}
