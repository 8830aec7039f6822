// The bit-allocation solvers (src/allocation/solvers/) against brute force: every assignment of small seeded random
// programs enumerated here, one and two budgets, with infeasible and exactly-at-budget budgets, exact ties, negative
// loss deltas and single-candidate layers. The exact solvers must return brute force's answer (objective bit for bit,
// and the documented tie-break's assignment); HiGHS and javascript-lp-solver its objective to floating-point accuracy.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AllocationProblem, AllocationSolution } from '../src/allocation/problem.js';
import { ALLOCATION_SOLVERS, DEFAULT_ALLOCATION_SOLVER, solveAllocation } from '../src/allocation/solvers/index.js';
import { isOnnxCompressError } from '../src/errors.js';
import { mulberry32 } from './support/prng.js';

const EXACT = ['mckp-dp', 'branch-and-bound'];
const EXTERNAL = ['highs', 'javascript-lp-solver'];

interface Brute {
  /** Best assignment by (objective, bytes, BOPs, first differing candidate index), or null when none fits. */
  best: { choice: number[]; objective: number; bytes: number; bops: number } | null;
  /** Fewest bytes among assignments within the BOPs budget (all when there is none). */
  minimumBytes: number;
  minimumBops: number;
}

/** Enumerates every assignment; sums in layer order, as the solvers' reported objective is defined. */
function bruteForce(problem: AllocationProblem): Brute {
  const sizes = problem.layers.map((l) => l.candidates.length);
  const choice = sizes.map(() => 0);
  let best: Brute['best'] = null;
  let minimumBytes = Infinity;
  let minimumBops = Infinity;
  for (;;) {
    let objective = 0;
    let bytes = 0;
    let bops = 0;
    choice.forEach((c, l) => {
      const cand = problem.layers[l].candidates[c];
      objective += cand.deltaLoss;
      bytes += cand.bytes;
      bops += cand.bops ?? 0;
    });
    minimumBops = Math.min(minimumBops, bops);
    const bopsOk = problem.bopsBudget === undefined || bops <= problem.bopsBudget;
    if (bopsOk) minimumBytes = Math.min(minimumBytes, bytes);
    if (bopsOk && bytes <= problem.byteBudget) {
      const better =
        !best ||
        objective < best.objective ||
        (objective === best.objective && (bytes < best.bytes || (bytes === best.bytes && (bops < best.bops || (bops === best.bops && lexLess(choice, best.choice))))));
      if (better) best = { choice: [...choice], objective, bytes, bops };
    }
    let l = 0;
    while (l < sizes.length && ++choice[l] === sizes[l]) choice[l++] = 0;
    if (l === sizes.length) break;
  }
  return { best, minimumBytes, minimumBops };
}

function lexLess(a: number[], b: number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}

type Flavour = 'plain' | 'ties' | 'at-budget' | 'infeasible';

/** A random program: bytes grow with the candidate's bits, loss falls with them (not always: measured deltas are noisy). */
function randomProblem(seed: number, twoBudgets: boolean, flavour: Flavour): AllocationProblem {
  const r = mulberry32(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
  const nLayers = int(3, 7);
  const single = int(0, nLayers - 1);
  const layers = Array.from({ length: nLayers }, (_, l) => {
    const n = l === single && r() < 0.5 ? 1 : int(2, 4);
    const params = int(1, 20) * 16;
    return {
      name: `layer${l}`,
      candidates: Array.from({ length: n }, (_, c) => {
        const bits = [2, 3, 4, 8][c];
        // Ties: losses on a coarse dyadic grid (exact sums) and bytes from a few values.
        const deltaLoss = flavour === 'ties' ? int(-1, 6) / 4 : Math.exp(-bits * (0.5 + r())) * (1 + 3 * r()) - (r() < 0.15 ? 0.05 : 0);
        const bytes = flavour === 'ties' ? int(1, 3) * 8 : Math.round((params * bits) / 8 + int(0, 8));
        const bops = twoBudgets ? (flavour === 'ties' ? int(1, 3) * 64 : params * bits * [8, 16][int(0, 1)]) : undefined;
        return { label: `w${bits}`, deltaLoss, bytes, ...(bops !== undefined ? { bops } : {}) };
      }),
    };
  });
  const sum = (key: 'bytes' | 'bops', f: (...xs: number[]) => number): number => layers.reduce((s, l) => s + f(...l.candidates.map((c) => c[key] ?? 0)), 0);
  const lo = sum('bytes', Math.min);
  const hi = sum('bytes', Math.max);
  const bopsLo = sum('bops', Math.min);
  const bopsHi = sum('bops', Math.max);
  let byteBudget = Math.round(lo + r() * (hi - lo));
  let bopsBudget = twoBudgets ? Math.round(bopsLo + r() * (bopsHi - bopsLo)) : undefined;
  if (flavour === 'at-budget') {
    // The budgets are exactly some assignment's bytes and BOPs.
    const pick = layers.map((l) => int(0, l.candidates.length - 1));
    byteBudget = layers.reduce((s, l, i) => s + l.candidates[pick[i]].bytes, 0);
    if (twoBudgets) bopsBudget = layers.reduce((s, l, i) => s + l.candidates[pick[i]].bops!, 0);
  }
  if (flavour === 'infeasible') {
    if (!twoBudgets || r() < 0.4) byteBudget = lo - int(1, 5);
    else if (r() < 0.5) bopsBudget = bopsLo - int(1, 5);
    // Otherwise both budgets are each reachable alone but maybe not together: brute force decides.
    else {
      byteBudget = lo + int(0, 2);
      bopsBudget = bopsLo + int(0, 64);
    }
  }
  return { layers, byteBudget, ...(bopsBudget !== undefined ? { bopsBudget } : {}) };
}

function checkAgainstBrute(name: string, problem: AllocationProblem, got: AllocationSolution, brute: Brute, what: string): void {
  const exact = EXACT.includes(name) || got.solver === 'mckp-dp';
  if (!brute.best) {
    assert.equal(got.status, 'infeasible', what);
    if (Number.isFinite(brute.minimumBytes)) assert.equal(got.minimumBytes, brute.minimumBytes, what);
    else assert.equal(got.minimumBytes, undefined, what);
    if (problem.bopsBudget !== undefined) assert.equal(got.minimumBops, brute.minimumBops, what);
    return;
  }
  assert.equal(got.status, 'optimal', what);
  assert.equal(got.gap, 0, what);
  assert.ok(got.bytes <= problem.byteBudget, `${what}: ${got.bytes} bytes over ${problem.byteBudget}`);
  if (problem.bopsBudget !== undefined) assert.ok(got.bops! <= problem.bopsBudget, `${what}: BOPs over budget`);
  if (exact) {
    assert.equal(got.objective, brute.best.objective, what);
    assert.deepEqual(got.choice, brute.best.choice, what);
    assert.equal(got.bytes, brute.best.bytes, what);
  } else {
    assert.ok(Math.abs(got.objective - brute.best.objective) <= 1e-9 * (1 + Math.abs(brute.best.objective)), `${what}: ${got.objective} vs ${brute.best.objective}`);
  }
}

const FLAVOURS: Flavour[] = ['plain', 'ties', 'at-budget', 'infeasible'];

describe('allocation solvers against brute force', () => {
  for (const twoBudgets of [false, true]) {
    for (const name of [...EXACT, ...EXTERNAL]) {
      it(`${name}, ${twoBudgets ? 'bytes and BOPs budgets' : 'a byte budget'}`, async () => {
        const count = EXACT.includes(name) ? 60 : 24;
        const seen = { optimal: 0, infeasible: 0, ties: 0 };
        for (let i = 0; i < count; i++) {
          const flavour = FLAVOURS[i % FLAVOURS.length];
          const seed = 1000 * (twoBudgets ? 2 : 1) + i;
          const problem = randomProblem(seed, twoBudgets, flavour);
          const brute = bruteForce(problem);
          const got = await solveAllocation(problem, { solver: name, timeLimitSeconds: 30 });
          checkAgainstBrute(name, problem, got, brute, `${name} seed ${seed} (${flavour})`);
          assert.equal(got.solver, name === 'highs' && got.note ? 'mckp-dp' : name);
          assert.ok(got.seconds >= 0 && Number.isFinite(got.seconds));
          seen[got.status === 'infeasible' ? 'infeasible' : 'optimal']++;
          if (flavour === 'ties') seen.ties++;
        }
        // The instance mix really contains both outcomes.
        assert.ok(seen.optimal > count / 2 && seen.infeasible >= count / 8, JSON.stringify(seen));
      });
    }
  }

  it('ties: with every loss equal, the fewest bytes win, then the lowest candidate index', async () => {
    const problem: AllocationProblem = {
      layers: [
        { name: 'a', candidates: [{ label: 'x', deltaLoss: 1, bytes: 4 }, { label: 'y', deltaLoss: 1, bytes: 2 }, { label: 'z', deltaLoss: 1, bytes: 2 }] },
        { name: 'b', candidates: [{ label: 'x', deltaLoss: 0.5, bytes: 3 }, { label: 'y', deltaLoss: 0.5, bytes: 3 }] },
      ],
      byteBudget: 10,
    };
    for (const name of EXACT) {
      const got = await solveAllocation(problem, { solver: name });
      assert.deepEqual(got.choice, [1, 0], name);
      assert.equal(got.bytes, 5, name);
    }
  });

  it('a budget below the smallest candidates everywhere is infeasible and names the smallest size', async () => {
    const problem = randomProblem(7, false, 'plain');
    const smallest = problem.layers.reduce((s, l) => s + Math.min(...l.candidates.map((c) => c.bytes)), 0);
    for (const name of Object.keys(ALLOCATION_SOLVERS)) {
      const got = await solveAllocation({ ...problem, byteBudget: smallest - 1 }, { solver: name });
      assert.equal(got.status, 'infeasible', name);
      assert.equal(got.minimumBytes, smallest, name);
      assert.equal(got.bytes, smallest, name);
      const at = await solveAllocation({ ...problem, byteBudget: smallest }, { solver: name });
      assert.equal(at.status, 'optimal', name);
      assert.equal(at.bytes, smallest, name);
    }
  });
});

/** A program too large to enumerate (48 layers x 6 candidates, both budgets), for the time limit. */
function largeProblem(seed: number): AllocationProblem {
  const r = mulberry32(seed);
  const layers = Array.from({ length: 48 }, (_, l) => {
    const params = 4096 * (1 + Math.floor(r() * 16));
    const s = Math.exp(2 * r());
    return {
      name: `l${l}`,
      candidates: [
        [2, 16],
        [3, 16],
        [4, 16],
        [4, 8],
        [8, 8],
        [8, 16],
      ].map(([wb, ab]) => ({ label: `w${wb}a${ab}`, deltaLoss: s * (Math.exp(-wb) + (ab === 8 ? 0.002 : 0)) * (0.8 + 0.4 * r()), bytes: (params * wb) / 8 + params / 16, bops: params * wb * ab })),
    };
  });
  const params = layers.map((l) => l.candidates[0].bops! / 32);
  const total = params.reduce((a, b) => a + b, 0);
  return { layers, byteBudget: Math.round((total * 4.25) / 8 + total / 16), bopsBudget: Math.round(total * 4.25 * 11) };
}

describe('allocation solvers at their limits', () => {
  it('stopped early, a solver returns a feasible answer whose bound is below the proven optimum', async () => {
    const problem = largeProblem(3);
    const exact = await solveAllocation(problem, { solver: 'mckp-dp' });
    assert.equal(exact.status, 'optimal');
    const bb = await solveAllocation(problem, { solver: 'branch-and-bound' });
    assert.equal(bb.status, 'optimal');
    assert.ok(Math.abs(bb.objective - exact.objective) <= 1e-12 * Math.abs(exact.objective), `${bb.objective} vs ${exact.objective}`);
    for (const name of ['mckp-dp', 'branch-and-bound']) {
      // A limit already spent: the searches stop before their first layer, with the first (rounded LP) answer.
      const got = await solveAllocation(problem, { solver: name, timeLimitSeconds: 0 });
      assert.equal(got.status, 'feasible', name);
      assert.ok(got.objective >= exact.objective - 1e-12 * Math.abs(exact.objective), name);
      assert.ok(got.bound! <= exact.objective + 1e-12 * Math.abs(exact.objective), `${name}: bound ${got.bound} above the optimum ${exact.objective}`);
      if (got.status === 'feasible') assert.ok(got.gap! >= 0 && Math.abs(got.gap! - (got.objective - got.bound!) / Math.max(Math.abs(got.objective), Math.abs(got.bound!))) < 1e-12, name);
      assert.ok(got.bytes <= problem.byteBudget && got.bops! <= problem.bopsBudget!, name);
    }
    // javascript-lp-solver stopped by its limit either has an integral answer, with our LP bound, or says it has none.
    try {
      const got = await solveAllocation(problem, { solver: 'javascript-lp-solver', timeLimitSeconds: 0.2 });
      assert.ok(got.bound! <= exact.objective + 1e-12 * Math.abs(exact.objective) && got.objective >= exact.objective - 1e-12 * Math.abs(exact.objective));
    } catch (e) {
      assert.ok(isOnnxCompressError(e) && e.code === 'runtime' && /^javascript-lp-solver found no 0\/1 assignment in [\d.]+ s \(limit 0.2 s\)$/.test(e.message), String(e));
    }
  });

  it('the default solver is the exact dynamic programme, and answers repeat exactly', async () => {
    assert.equal(DEFAULT_ALLOCATION_SOLVER, 'mckp-dp');
    const problem = largeProblem(5);
    const a = await solveAllocation(problem);
    const b = await solveAllocation(structuredClone(problem));
    assert.equal(a.solver, 'mckp-dp');
    assert.deepEqual(a.choice, b.choice);
    assert.equal(a.objective, b.objective);
  });
});

describe('allocation solver input errors', () => {
  const base = (): AllocationProblem => randomProblem(11, true, 'plain');
  const rejects = async (problem: AllocationProblem, code: string, pattern: RegExp, solver?: string): Promise<void> => {
    await assert.rejects(
      () => solveAllocation(problem, solver ? { solver } : {}),
      (e) => isOnnxCompressError(e) && e.code === code && pattern.test(e.message) && !e.message.includes('\n'),
    );
  };

  it('names the layer and candidate at fault, in one line', async () => {
    const empty = base();
    empty.layers[1].candidates = [];
    await rejects(empty, 'bad-data', /layer 1 'layer1' has no candidates/);
    const nan = base();
    nan.layers[2].candidates[0].deltaLoss = NaN;
    await rejects(nan, 'bad-data', /layer 2 'layer2' candidate 0 'w2': deltaLoss NaN/);
    const noBops = base();
    delete noBops.layers[0].candidates[1].bops;
    await rejects(noBops, 'bad-data', /layer 0 'layer0' candidate 1 'w3': bops undefined .*BOPs budget/);
    const negative = base();
    negative.layers[0].candidates[0].bytes = -1;
    await rejects(negative, 'bad-data', /candidate 0 'w2': bytes -1/);
  });

  it('refuses an unknown solver and a budget that is not a number', async () => {
    await rejects(base(), 'bad-option', /no allocation solver 'cplex' \(have mckp-dp, /, 'cplex');
    await rejects({ ...base(), byteBudget: NaN }, 'bad-option', /byte budget NaN/);
  });
});
