// Branch and bound: depth-first over the layers, children in order of their LP bound (the loss so far plus the
// relaxation of the open layers, relaxation.ts; a BOPs budget through its Lagrangian multiplier), a branch dropped when
// its bound exceeds the best answer found. Candidates whose reduced cost rules them out against the first answer (the
// rounded LP optimum) are dropped before branching (reduce.ts). Proves the optimum when the tree is exhausted; at the
// time limit it returns the best answer with the gap to the least bound still open.
import { OnnxCompressError } from '../../errors.js';
import type { AllocationSolver } from '../problem.js';
import { roundedAssignment } from './heuristic.js';
import { compareAssignments, score, type Prepared, type Score } from './instance.js';
import { dualsOf, expand, restrict } from './reduce.js';
import { bestMultiplier, SuffixBounds } from './relaxation.js';
import { deadlineOf, runSolver, type Outcome } from './run.js';

interface Best extends Score {
  choice: number[];
}

interface Frame {
  /** Candidate positions still to try, best bound first, with their bounds. */
  pos: number[];
  bound: number[];
  next: number;
}

function search(full: Prepared, deadline: number): Outcome {
  const lp = bestMultiplier(full);
  const first = roundedAssignment(full, lp);
  const duals = dualsOf(full, lp);
  const tol = 1e-10 * duals.scale + Number.MIN_VALUE;
  const firstChoice = first ? Array.from(first.pos, (j, l) => full.layers[l].index[j]) : null;
  // Candidates that cannot be part of an answer better than the first one go, before branching.
  const r = restrict(full, duals, firstChoice ? score(full.problem, firstChoice).objective - duals.bound + tol : Infinity);
  if (!r) return { choice: firstChoice!, proven: true, bound: score(full.problem, firstChoice!).objective };
  const p = r.sub;
  let best: Best | null = null;
  if (firstChoice) {
    const choice = r.free.map((l) => firstChoice[l]);
    best = { ...score(p.problem, choice), choice };
  }
  const n = p.layers.length;
  const order = Int32Array.from(p.layers, (_, l) => l);
  const bounds = new SuffixBounds(p, order, lp.mu);
  const w = new Float64Array(n + 1);
  const v = new Float64Array(n + 1);
  const d = new Float64Array(n + 1);
  const path = new Int32Array(n);
  const frames: Frame[] = [];
  const done = (proven: boolean, bound: number): Outcome => ({ choice: expand(r, best!.choice), proven, bound: bound + r.fixedLoss });

  // A branch with this lower bound and these bytes so far cannot beat `best` (an equal loss must save bytes).
  const hopeless = (lower: number, k: number, bytes: number): boolean => {
    if (!best) return false;
    if (lower > best.objective + tol) return true;
    return lower - tol >= best.objective && bytes + bounds.minimumBytes(k) > best.bytes;
  };
  const expandFrame = (k: number): Frame => {
    const layer = p.layers[order[k]];
    const kids: { pos: number; bound: number }[] = [];
    for (let j = 0; j < layer.loss.length; j++) {
      const nw = w[k] + layer.bytes[j];
      const rest = bounds.bound(k + 1, p.byteBudget - nw, p.bopsBudget - v[k] - layer.bops[j]);
      if (rest === Infinity) continue;
      const lower = d[k] + layer.loss[j] + rest;
      if (!hopeless(lower, k + 1, nw)) kids.push({ pos: j, bound: lower });
    }
    kids.sort((a, b) => a.bound - b.bound || layer.index[a.pos] - layer.index[b.pos]);
    return { pos: kids.map((c) => c.pos), bound: kids.map((c) => c.bound), next: 0 };
  };

  if (n > 0) frames.push(expandFrame(0));
  else best = { ...score(p.problem, []), choice: [] };
  let nodes = 0;
  while (frames.length > 0) {
    if ((nodes++ & 1023) === 0 && performance.now() > deadline) {
      let open = best ? best.objective : Infinity;
      for (const f of frames) for (let i = f.next; i < f.bound.length; i++) open = Math.min(open, f.bound[i]);
      if (!best) throw new OnnxCompressError('runtime', `branch-and-bound found no assignment before its time limit`);
      return done(false, open);
    }
    const k = frames.length - 1;
    const f = frames[k];
    const layer = p.layers[order[k]];
    let j = -1;
    while (f.next < f.pos.length) {
      const c = f.next++;
      if (!hopeless(f.bound[c], k + 1, w[k] + layer.bytes[f.pos[c]])) {
        j = f.pos[c];
        break;
      }
    }
    if (j < 0) {
      frames.pop();
      continue;
    }
    path[order[k]] = j;
    w[k + 1] = w[k] + layer.bytes[j];
    v[k + 1] = v[k] + layer.bops[j];
    d[k + 1] = d[k] + layer.loss[j];
    if (k + 1 < n) {
      frames.push(expandFrame(k + 1));
      continue;
    }
    const choice = Array.from(path, (pos, l) => p.layers[l].index[pos]);
    const s = { ...score(p.problem, choice), choice };
    if (s.bytes <= p.byteBudget && (!p.hasBops || s.bops <= p.bopsBudget) && (!best || compareAssignments(s, best) < 0)) best = s;
  }
  if (!best) throw new OnnxCompressError('runtime', 'branch-and-bound found no assignment, though the budgets admit one');
  return done(true, best.objective);
}

export const branchAndBound: AllocationSolver = {
  name: 'branch-and-bound',
  solve(problem, options = {}) {
    return runSolver(this.name, problem, (p, start) => search(p, deadlineOf(options.timeLimitSeconds, start)));
  },
};
