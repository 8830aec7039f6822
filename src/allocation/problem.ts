// The bit-allocation integer program (CalibTIP's IP; HAWQ-V3's ILP): choose exactly one candidate per layer,
// minimising the summed loss increase, under a byte budget and optionally a BOPs budget. Pure data: sensitivity
// measurement fills it, the solvers (solvers/) answer it, the plan writer turns the answer into a plan file.

export interface Candidate {
  /** e.g. 'w4 g32', 'w8', 'float': what the plan file writes for this layer. */
  label: string;
  /** Loss increase when only this layer is quantized this way (>= 0 in theory; measured values may be slightly negative). */
  deltaLoss: number;
  /** Exact bytes of the layer in this format (codes + scales + zero points + anything that stays float). */
  bytes: number;
  /** Bit operations (MACs x weight bits x activation bits), when a BOPs budget is used. */
  bops?: number;
}

export interface AllocationLayer {
  /** Node label (plan-file key). */
  name: string;
  candidates: Candidate[];
}

export interface AllocationProblem {
  layers: AllocationLayer[];
  /** Upper bound on the summed bytes of the chosen candidates (the part of the model outside `layers` excluded). */
  byteBudget: number;
  bopsBudget?: number;
}

export interface AllocationSolution {
  /** Per layer, the index into its candidates. */
  choice: number[];
  objective: number;
  bytes: number;
  bops?: number;
  /** 'optimal': proven; 'feasible': best found with `gap` the proven relative bound; 'infeasible': no assignment fits. */
  status: 'optimal' | 'feasible' | 'infeasible';
  gap?: number;
  /** A proven lower bound on the optimal objective ('feasible': `gap` = (objective - bound) / max(|objective|, |bound|)). */
  bound?: number;
  /**
   * 'infeasible' only: the fewest bytes of any assignment within the BOPs budget (absent when none meets it); `choice`,
   * `objective`, `bytes` and `bops` then describe that smallest assignment (or the fewest-BOPs one), which breaks a budget.
   */
  minimumBytes?: number;
  /** 'infeasible' with a BOPs budget only: the fewest BOPs of any assignment. */
  minimumBops?: number;
  /** Why the named solver did not run as asked (e.g. an optional package that is not installed), when so. */
  note?: string;
  solver: string;
  seconds: number;
}

export interface AllocationSolver {
  readonly name: string;
  solve(problem: AllocationProblem, options?: { timeLimitSeconds?: number }): AllocationSolution | Promise<AllocationSolution>;
}
