// The design card's solver: javascript-lp-solver's branch and cut on the 0/1 program (one binary per layer and kept
// candidate, one equality per layer, the budget rows). It reports neither a proof nor a bound, so an answer counts as
// proven only when the search ended before the time limit, and a stopped one gets its gap from our LP bound.
import lpSolverModule, { type Model as LpModel, type SolveResult } from 'javascript-lp-solver';
import { OnnxCompressError } from '../../errors.js';
import type { AllocationSolver } from '../problem.js';
import type { Prepared } from './instance.js';
import { bestMultiplier } from './relaxation.js';
import { runSolver, type Outcome } from './run.js';

// Its types describe the CommonJS build (default export under `.default`); Node's import gives the ESM build's default.
const lpSolver = ((lpSolverModule as unknown as { default?: unknown }).default ?? lpSolverModule) as { Solve(model: LpModel): SolveResult };

/** Without a time limit it could run for hours on a 7B-sized program (issue 13's measurement): 60 s unless told. */
export const DEFAULT_LP_SOLVER_SECONDS = 60;

/** A power of two near `x`: scaling a budget row by it is exact, so the solver's comparison stays the true one. */
function powerOfTwoNear(x: number): number {
  return x > 0 && Number.isFinite(x) ? 2 ** Math.round(Math.log2(x)) : 1;
}

function solve(p: Prepared, seconds: number): Outcome {
  const byteScale = powerOfTwoNear(p.byteBudget);
  const bopsScale = powerOfTwoNear(p.bopsBudget);
  const constraints: Record<string, { max?: number; equal?: number }> = {};
  const variables: Record<string, Record<string, number>> = {};
  const binaries: Record<string, 1> = {};
  if (Number.isFinite(p.byteBudget)) constraints.bytes = { max: p.byteBudget / byteScale };
  if (p.hasBops) constraints.bops = { max: p.bopsBudget / bopsScale };
  p.layers.forEach((layer, l) => {
    constraints[`l${l}`] = { equal: 1 };
    for (let j = 0; j < layer.loss.length; j++) {
      const name = `x${l}_${j}`;
      const column: Record<string, number> = { loss: layer.loss[j], [`l${l}`]: 1 };
      if (constraints.bytes) column.bytes = layer.bytes[j] / byteScale;
      if (p.hasBops) column.bops = layer.bops[j] / bopsScale;
      variables[name] = column;
      binaries[name] = 1;
    }
  });
  const timeoutMs = Math.max(1, Math.round(seconds * 1000));
  const t = performance.now();
  const result = lpSolver.Solve({ optimize: 'loss', opType: 'min', constraints, variables, binaries, options: { timeout: timeoutMs, tolerance: 0 } });
  const elapsed = performance.now() - t;
  const choice = p.layers.map((layer, l) => {
    const picked = Array.from(layer.index).findIndex((_, j) => Number(result[`x${l}_${j}`] ?? 0) > 0.5);
    return picked < 0 ? -1 : layer.index[picked];
  });
  // Stopped before any integral node, it leaves a fractional relaxation in place: no answer.
  if (result.feasible !== true || result.isIntegral !== true || choice.includes(-1)) {
    throw new OnnxCompressError('runtime', `javascript-lp-solver found no 0/1 assignment in ${(elapsed / 1000).toFixed(1)} s (limit ${seconds} s)`);
  }
  // Its search loop checks the clock between nodes: finishing clearly inside the limit means the tree was exhausted.
  const proven = elapsed < 0.95 * timeoutMs;
  return proven ? { choice, proven } : { choice, proven, bound: bestMultiplier(p).bound };
}

export const javascriptLpSolver: AllocationSolver = {
  name: 'javascript-lp-solver',
  solve(problem, options = {}) {
    return runSolver(this.name, problem, (p) => (p.layers.length === 0 ? { choice: [], proven: true } : solve(p, options.timeLimitSeconds ?? DEFAULT_LP_SOLVER_SECONDS)));
  },
};
