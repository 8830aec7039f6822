// Exact multiple-choice knapsack by dynamic programming over exact bytes (and BOPs): Pareto lists per layer pruned by
// LP bounds (pareto.ts). Proves its optimum; stops with the best answer and its gap at the time limit or when a layer's
// list would outgrow MAX_STATES.
import { OnnxCompressError } from '../../errors.js';
import type { AllocationSolver } from '../problem.js';
import { exactSearch } from './exact.js';
import { deadlineOf, runSolver } from './run.js';

/** Partial assignments kept after one layer: expanding them takes about 32 bytes per child (x candidates). */
export const MAX_STATES = 500_000;

export const mckpDp: AllocationSolver = {
  name: 'mckp-dp',
  solve(problem, options = {}) {
    return runSolver(this.name, problem, (p, start) => {
      const found = exactSearch(p, { deadline: deadlineOf(options.timeLimitSeconds, start), maxStates: MAX_STATES });
      if (!found.choice) throw new OnnxCompressError('runtime', `mckp-dp found no assignment within its limits (${options.timeLimitSeconds ?? 'no'} s, ${MAX_STATES} states per layer)`);
      return { choice: found.choice, proven: found.proven, bound: found.bound };
    });
  },
};
