// The exact search with everything it prunes by: the LP bound at its best multiplier, a rounded LP answer as the first
// incumbent, reduced-cost fixing (reduce.ts), and the Pareto search (pareto.ts) run with a loss limit that starts just
// above the LP bound and grows: a run whose best survivor has loss <= its limit has found the optimum (nothing better
// could have been pruned), and a run with no survivor under its limit proves the limit a lower bound. Small limits fix
// more layers and keep the state lists short; the last limit is the incumbent itself.
import { roundedAssignment } from './heuristic.js';
import { compareAssignments, score, type Prepared, type Score } from './instance.js';
import { paretoSearch, type SearchLimits } from './pareto.js';
import { dualsOf, expand, restrict } from './reduce.js';
import { bestMultiplier, SuffixBounds } from './relaxation.js';

export interface ExactResult {
  /** Candidate index per layer; null when nothing fits. */
  choice: number[] | null;
  proven: boolean;
  /** Proven lower bound on the optimum. */
  bound: number;
}

/** First limit above the LP bound, as a share of the incumbent's distance from it; each retry widens it this much. */
const FIRST_SHARE = 1 / 64;
const GROWTH = 4;

type Best = Score & { choice: number[] };

export function exactSearch(p: Prepared, limits: SearchLimits): ExactResult {
  const lp = bestMultiplier(p);
  if (lp.bound === Infinity) return { choice: null, proven: true, bound: Infinity };
  const duals = dualsOf(p, lp);
  const tol = 1e-10 * duals.scale + Number.MIN_VALUE;
  const scored = (choice: number[]): Best => ({ ...score(p.problem, choice), choice });
  const first = roundedAssignment(p, lp);
  let incumbent: Best | null = first ? scored(Array.from(first.pos, (j, l) => p.layers[l].index[j])) : null;
  let proved = lp.bound;
  let step = incumbent ? Math.max(tol, (incumbent.objective - proved) * FIRST_SHARE) : Infinity;
  for (;;) {
    const final = !incumbent || proved + step >= incumbent.objective;
    const limit = final ? (incumbent ? incumbent.objective : Infinity) : proved + step;
    const r = restrict(p, duals, limit - duals.bound + tol);
    let best: Best | null = null;
    if (r) {
      const order = Int32Array.from(r.sub.layers, (_, i) => i);
      const bounds = new SuffixBounds(r.sub, order, lp.mu);
      const found = paretoSearch(r.sub, order, bounds, limit - r.fixedLoss + tol, limits);
      if (found.stopped) {
        return { choice: incumbent?.choice ?? null, proven: false, bound: Math.max(proved, Math.min(found.bound + r.fixedLoss, limit, incumbent?.objective ?? Infinity)) };
      }
      if (found.best) best = scored(expand(r, found.best.choice));
    }
    if (best && (!incumbent || compareAssignments(best, incumbent) < 0)) incumbent = best;
    if (final || (best && best.objective <= limit)) return { choice: incumbent?.choice ?? null, proven: true, bound: incumbent?.objective ?? Infinity };
    proved = limit;
    step *= GROWTH;
  }
}
