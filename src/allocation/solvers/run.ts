// The frame every solver runs in: check the problem, answer an infeasible budget the same way for all, time the
// search, re-score its answer in layer order and refuse one that breaks a budget (a floating-point LP solver can).
import { OnnxCompressError } from '../../errors.js';
import type { AllocationProblem, AllocationSolution } from '../problem.js';
import { infeasibility } from './infeasible.js';
import { prepare, relativeGap, score, withinBudgets, type Prepared } from './instance.js';

export interface Outcome {
  /** Candidate index per layer. */
  choice: number[];
  proven: boolean;
  /** Proven lower bound on the optimum (the objective itself when proven). */
  bound?: number;
  /** Set when another solver answered (e.g. an optional package is missing). */
  solver?: string;
  note?: string;
}

/** Seconds left from a limit, as a performance.now() deadline. */
export function deadlineOf(timeLimitSeconds: number | undefined, start: number): number {
  return timeLimitSeconds === undefined ? Infinity : start + 1000 * timeLimitSeconds;
}

export async function runSolver(name: string, problem: AllocationProblem, body: (p: Prepared, start: number) => Outcome | Promise<Outcome>): Promise<AllocationSolution> {
  const start = performance.now();
  const p = prepare(problem);
  const seconds = (): number => (performance.now() - start) / 1000;
  const bops = (s: { bops: number }): { bops?: number } => (p.hasBops ? { bops: s.bops } : {});
  const none = infeasibility(p);
  if (none) return { ...none, solver: name, seconds: seconds() };
  const out = await body(p, start);
  if (out.choice.length !== problem.layers.length || out.choice.some((c, l) => !Number.isInteger(c) || c < 0 || c >= problem.layers[l].candidates.length)) {
    throw new OnnxCompressError('runtime', `allocation solver ${out.solver ?? name} returned no valid candidate per layer`);
  }
  const s = score(problem, out.choice);
  if (!withinBudgets(p, s)) {
    const over = s.bytes > p.byteBudget ? `${s.bytes} bytes for a budget of ${p.byteBudget}` : `${s.bops} BOPs for a budget of ${p.bopsBudget}`;
    throw new OnnxCompressError('runtime', `allocation solver ${out.solver ?? name} returned an assignment of ${over}`);
  }
  const bound = out.proven ? s.objective : Math.min(out.bound ?? -Infinity, s.objective);
  return {
    choice: out.choice,
    objective: s.objective,
    bytes: s.bytes,
    ...bops(s),
    status: out.proven ? 'optimal' : 'feasible',
    gap: out.proven ? 0 : relativeGap(s.objective, bound),
    bound,
    ...(out.note ? { note: out.note } : {}),
    solver: out.solver ?? name,
    seconds: seconds(),
  };
}
