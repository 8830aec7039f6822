// HiGHS (branch and cut, compiled to WebAssembly) on the same 0/1 program, through the optional `highs` package loaded
// on first use. When it is not installed the answer comes from the exact solver instead and says so in `note`. Gap
// tolerances are set to zero, so HiGHS's 'Optimal' is a proof up to its floating-point tolerances.
import { OnnxCompressError } from '../../errors.js';
import type { AllocationSolver } from '../problem.js';
import { exactSearch } from './exact.js';
import type { Prepared } from './instance.js';
import { runSolver, type Outcome } from './run.js';

/** The part of the `highs` package used here (its own types are not needed to build without it). */
interface HighsModel {
  options: { set(values: Record<string, string | number | boolean>): unknown };
  info: { get(name: string): number | bigint };
  run(): unknown;
  getModelStatus(): number;
  getSolution(): { colValue: Float64Array };
  dispose(): void;
}
interface HighsRuntime {
  infinity: number;
  constants: { modelStatus: { optimal: number; timeLimit: number } };
  createModel(data: unknown): HighsModel;
}

let runtime: Promise<HighsRuntime | null> | undefined;

/** The loaded wasm runtime, or null when the optional package is absent. */
export function loadHighs(): Promise<HighsRuntime | null> {
  runtime ??= (async () => {
    const specifier = 'highs';
    try {
      const mod = (await import(specifier)) as { default: () => Promise<HighsRuntime> };
      return await mod.default();
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') return null;
      throw new OnnxCompressError('runtime', `the 'highs' package failed to load: ${String((e as Error).message ?? e).split('\n')[0]}`);
    }
  })();
  return runtime;
}

function solve(highs: HighsRuntime, p: Prepared, seconds: number | undefined): Outcome {
  const n = p.layers.length;
  const rows = n + 1 + (p.hasBops ? 1 : 0);
  const cost: number[] = [];
  const starts: number[] = [0];
  const indices: number[] = [];
  const values: number[] = [];
  const owner: number[] = [];
  p.layers.forEach((layer, l) => {
    for (let j = 0; j < layer.loss.length; j++) {
      cost.push(layer.loss[j]);
      owner.push(l);
      indices.push(l, n);
      values.push(1, layer.bytes[j]);
      if (p.hasBops) {
        indices.push(n + 1);
        values.push(layer.bops[j]);
      }
      starts.push(indices.length);
    }
  });
  const cols = cost.length;
  const inf = highs.infinity;
  const model = highs.createModel({
    numCols: cols,
    numRows: rows,
    colCost: cost,
    colLower: new Array(cols).fill(0),
    colUpper: new Array(cols).fill(1),
    rowLower: [...new Array(n).fill(1), -inf, ...(p.hasBops ? [-inf] : [])],
    rowUpper: [...new Array(n).fill(1), Number.isFinite(p.byteBudget) ? p.byteBudget : inf, ...(p.hasBops ? [p.bopsBudget] : [])],
    matrix: { format: 'csc', numRows: rows, numCols: cols, starts, indices, values },
    integrality: new Array(cols).fill(1),
  });
  try {
    model.options.set({ output_flag: false, mip_rel_gap: 0, mip_abs_gap: 0, random_seed: 0, ...(seconds !== undefined ? { time_limit: seconds } : {}) });
    model.run();
    const status = model.getModelStatus();
    const { optimal, timeLimit } = highs.constants.modelStatus;
    if (status !== optimal && status !== timeLimit) throw new OnnxCompressError('runtime', `HiGHS ended with model status ${status} on a feasible allocation program`);
    const x = model.getSolution().colValue;
    const choice = new Array<number>(n).fill(-1);
    let col = 0;
    p.layers.forEach((layer, l) => {
      for (let j = 0; j < layer.loss.length; j++, col++) if (x[col] > 0.5) choice[l] = layer.index[j];
    });
    if (choice.includes(-1)) throw new OnnxCompressError('runtime', `HiGHS found no 0/1 assignment in ${seconds} s`);
    if (status === optimal) return { choice, proven: true };
    return { choice, proven: false, bound: Number(model.info.get('mip_dual_bound')) };
  } finally {
    model.dispose();
  }
}

export const highsSolver: AllocationSolver = {
  name: 'highs',
  async solve(problem, options = {}) {
    const highs = await loadHighs();
    return runSolver(this.name, problem, (p, start) => {
      if (p.layers.length === 0) return { choice: [], proven: true };
      if (highs) return solve(highs, p, options.timeLimitSeconds === undefined ? undefined : Math.max(0.01, options.timeLimitSeconds - (performance.now() - start) / 1000));
      const found = exactSearch(p, { deadline: Infinity, maxStates: Infinity });
      return {
        choice: found.choice!,
        proven: found.proven,
        bound: found.bound,
        solver: 'mckp-dp',
        note: "the optional package 'highs' is not installed (npm install highs); mckp-dp answered instead",
      };
    });
  },
};
