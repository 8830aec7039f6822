// `allocate` as a library call: sensitivity (measured, or read from its file) -> the integer program under the
// size (and BOPs) budget -> the solver's answer as a plan file, with a per-layer report, the loss predicted by
// the summed ΔL and, measured through the same weight-swapping sessions, the loss of the whole mixed model. With
// `sweep`, the size-vs-loss front of mixed plans over a range of average widths beside the uniform plans.
import { fingerprint } from '../calibration/stats-file.js';
import { OptionError } from '../errors.js';
import { loadModel, type OnnxModel } from '../onnx/model.js';
import type { PlanFile } from '../quantization/plan-file.js';
import { reportMeta } from '../report/meta.js';
import type { ReportMeta } from '../report/types.js';
import type { WeightSolver } from '../quantization/solvers.js';
import type { HessianAccumulator } from '../calibration/hessian.js';
import type { WeightTarget } from '../quantization/select.js';
import { budgetTotalBytes, describeBudget, type Budget, type ModelSizes } from './budget.js';
import { candidateLabel, FLOAT_LABEL, type CandidateSpec } from './candidates.js';
import { allocationPlanFile } from './plan-writer.js';
import type { AllocationProblem, AllocationSolution } from './problem.js';
import { solveAllocation } from './solvers/index.js';
import { readSensitivityFile, writeSensitivityFile } from './sensitivity-file.js';
import { SensitivityPool } from './sensitivity-pool.js';
import {
  allocationLayers,
  measureSensitivity,
  methodSolver,
  openSelection,
  quantizeCandidate,
  selectionSource,
  selectionSplit,
  DEFAULT_SELECTION_SAMPLES,
  type QuantizedCandidate,
  type SensitivityOptions,
  type SensitivityTable,
} from './sensitivity.js';

export interface AllocateOptions extends SensitivityOptions {
  budget?: Budget;
  bopsBudget?: number;
  solver?: string;
  /** Sensitivity file: read when it matches, else measured and written there. */
  sensitivityFile?: string;
  /** Also measure the loss of the allocated model (all chosen layers swapped at once). Default true. */
  measure?: boolean;
  sweep?: boolean;
}

export interface AllocatedLayer {
  node: string;
  candidate: string;
  format: 'float' | 'matmulnbits' | 'qdq';
  bits?: number;
  blockSize?: number;
  deltaLoss: number;
  bytes: number;
}

export interface AllocationSummary {
  budget: string;
  /** Weight bytes of the whole model the budget allows, and the share left to the layers. */
  totalBudgetBytes: number;
  layerBudgetBytes: number;
  status: AllocationSolution['status'] | 'float';
  solver: string;
  solverSeconds: number;
  gap?: number;
  /** Σ ΔL of the chosen candidates (what the program minimises). */
  predictedLoss: number;
  measuredLoss?: number;
  layerBytes: number;
  totalBytes: number;
  averageBits: number;
  bops?: number;
}

export interface SweepPoint {
  kind: 'mixed' | 'uniform';
  label: string;
  totalBytes: number;
  averageBits: number;
  predictedLoss: number;
  measuredLoss?: number;
  /** Not dominated (fewer or equal bytes and lower loss) by another point. */
  pareto: boolean;
}

export const ALLOCATION_REPORT_FORMAT = 'onnx-compress.allocation-report';

export interface AllocateReport {
  format: typeof ALLOCATION_REPORT_FORMAT;
  /** The run's tool version, engine, date and machine, so a page drawn later from the JSON shows them. */
  meta: ReportMeta;
  model: string;
  method: string;
  loss: SensitivityTable['loss'];
  data: SensitivityTable['data'];
  sizes: ModelSizes;
  sensitivity: { from: 'measured' | 'file'; file?: string; timing: SensitivityTable['timing']; proxies: SensitivityTable['proxies'] };
  allocation?: AllocationSummary;
  layers?: AllocatedLayer[];
  plan?: PlanFile;
  dropped: { node: string; candidate: string; reason: string }[];
  sweep?: SweepPoint[];
  notes: string[];
  seconds: number;
}

/** The integer program of a sensitivity table under a byte budget for the layers. */
export function allocationProblem(table: SensitivityTable, layerBudget: number, bopsBudget?: number): AllocationProblem {
  return {
    layers: table.layers.map((l) => ({ name: l.node, candidates: l.candidates.map((c) => ({ label: c.label, deltaLoss: c.deltaLoss, bytes: c.bytes, bops: c.bops })) })),
    byteBudget: layerBudget,
    ...(bopsBudget !== undefined ? { bopsBudget } : {}),
  };
}

/** The smallest layer bytes any assignment reaches (each layer at its smallest candidate). */
export function smallestLayerBytes(table: SensitivityTable): number {
  return table.layers.reduce((a, l) => a + Math.min(...l.candidates.map((c) => c.bytes)), 0);
}

export function averageBits(table: SensitivityTable, layerBytes: number): number {
  return (8 * layerBytes) / table.sizes.layerWeights;
}

/** Solves for one total budget; errors for a budget below the smallest model, float for one at or above the float size. */
export async function allocateFor(table: SensitivityTable, totalBudget: number, options: { budget: string; bopsBudget?: number; solver?: string }): Promise<{ summary: AllocationSummary; choice: number[] }> {
  const { fixedBytes, floatBytes } = table.sizes;
  const smallest = fixedBytes + smallestLayerBytes(table);
  if (totalBudget < smallest) {
    throw new OptionError(`--budget ${options.budget} (${totalBudget} bytes) is below the smallest feasible size, ${smallest} bytes (${averageBits(table, smallest - fixedBytes).toFixed(2)} bits per weight: every layer at its smallest candidate, the rest of the model ${fixedBytes} bytes)`);
  }
  const base = { budget: options.budget, totalBudgetBytes: totalBudget, layerBudgetBytes: totalBudget - fixedBytes };
  if (totalBudget >= floatBytes && options.bopsBudget === undefined) {
    const choice = table.layers.map((l) => l.candidates.findIndex((c) => c.label === FLOAT_LABEL));
    const layerBytes = floatBytes - fixedBytes;
    return { choice, summary: { ...base, status: 'float', solver: 'none', solverSeconds: 0, predictedLoss: 0, layerBytes, totalBytes: floatBytes, averageBits: averageBits(table, layerBytes) } };
  }
  const solution = await solveAllocation(allocationProblem(table, totalBudget - fixedBytes, options.bopsBudget), { ...(options.solver ? { solver: options.solver } : {}) });
  if (solution.status === 'infeasible') {
    throw new OptionError(`--bops ${options.bopsBudget}: no assignment fits both budgets${solution.minimumBops !== undefined ? ` (the fewest BOPs any assignment reaches: ${solution.minimumBops})` : ''}`);
  }
  const layerBytes = solution.bytes;
  return {
    choice: solution.choice,
    summary: {
      ...base,
      status: solution.status,
      solver: solution.solver,
      solverSeconds: solution.seconds,
      ...(solution.gap !== undefined ? { gap: solution.gap } : {}),
      predictedLoss: solution.objective,
      layerBytes,
      totalBytes: fixedBytes + layerBytes,
      averageBits: averageBits(table, layerBytes),
      ...(solution.bops !== undefined ? { bops: solution.bops } : {}),
    },
  };
}

/**
 * Measures the loss of whole plans (any mix of candidates per layer) in one pool of weight-swapping sessions,
 * quantizing each candidate once, when first needed.
 */
export class PlanLossMeter {
  private readonly quantized = new Map<string, QuantizedCandidate>();

  private constructor(
    private readonly model: OnnxModel,
    private readonly targets: WeightTarget[],
    private readonly nbits: boolean[],
    private readonly solver: WeightSolver,
    private readonly hessians: HessianAccumulator,
    private readonly pool: SensitivityPool,
  ) {}

  static async open(model: OnnxModel, table: SensitivityTable, options: Pick<AllocateOptions, 'data' | 'samples' | 'sequenceLength' | 'seed' | 'workers' | 'session'>): Promise<PlanLossMeter> {
    const { targets, nbits } = allocationLayers(model);
    const selection = await openSelection(model, options.data, options);
    const { solver, hessians } = await methodSolver(model, targets, nbits, selection.set, table.method, options.session);
    const pool = await SensitivityPool.open(model, [...new Set(targets.map((t) => t.weight.name!))], selection.batches, { loss: selection.loss, outputs: selection.outputs, ...(options.workers ? { workers: options.workers } : {}) });
    return new PlanLossMeter(model, targets, nbits, solver, hessians, pool);
  }

  /** Losses of plans given as a candidate label per layer, measured in parallel. */
  async measure(plans: readonly (readonly string[])[], specs: readonly CandidateSpec[]): Promise<number[]> {
    const jobs = plans.map((labels) =>
      labels.flatMap((label, l) => {
        if (label === FLOAT_LABEL) return [];
        const q = this.candidate(label, specs);
        const t = this.targets[l];
        return [{ name: t.weight.name!, dims: [...t.weight.dims], values: q.values[l] }];
      }),
    );
    return this.pool.runAll(jobs.length, (i) => jobs[i].map((w) => ({ ...w, values: w.values.slice() })));
  }

  private candidate(label: string, specs: readonly CandidateSpec[]): QuantizedCandidate {
    let q = this.quantized.get(label);
    if (!q) {
      const spec = specs.find((s) => candidateLabel(s) === label);
      if (!spec) throw new RangeError(`no candidate ${label}`);
      q = quantizeCandidate(this.model, this.targets, this.nbits, spec, this.solver, this.hessians);
      this.quantized.set(label, q);
    }
    return q;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Marks the points no other point beats on both size and loss. */
export function markPareto(points: Omit<SweepPoint, 'pareto'>[]): SweepPoint[] {
  const lossOf = (p: Omit<SweepPoint, 'pareto'>): number => p.measuredLoss ?? p.predictedLoss;
  return points.map((p) => ({
    ...p,
    pareto: !points.some((o) => o !== p && o.totalBytes <= p.totalBytes && lossOf(o) <= lossOf(p) && (o.totalBytes < p.totalBytes || lossOf(o) < lossOf(p))),
  }));
}

/** Uniform plans: every layer in one candidate (or, where a layer dropped it, its next wider one). */
export function uniformChoice(table: SensitivityTable, spec: CandidateSpec): number[] {
  return table.layers.map((l) => {
    const wider = l.candidates
      .map((c, i) => ({ c, i }))
      .filter(({ c }) => c.format === 'float' || (c.bits! >= spec.bits && (c.bits! > spec.bits || c.blockSize === spec.blockSize)))
      .sort((a, b) => (a.c.bits ?? 99) - (b.c.bits ?? 99));
    return wider[0].i;
  });
}

export async function allocate(modelPath: string, options: AllocateOptions): Promise<AllocateReport> {
  const started = performance.now();
  const model = loadModel(modelPath);
  const print = fingerprint(modelPath);
  const notes: string[] = [];
  const labels = options.candidates.map(candidateLabel);
  const method = options.method ?? 'rtn';
  let table: SensitivityTable | undefined;
  let from: 'measured' | 'file' = 'measured';
  if (options.sensitivityFile) {
    const read = readSensitivityFile(options.sensitivityFile, {
      sha256: print.sha256,
      method,
      data: { source: selectionSource(options.data), split: selectionSplit(options.data) ?? 'calibration', samples: options.samples ?? DEFAULT_SELECTION_SAMPLES, seed: options.seed ?? 0, ...(options.sequenceLength ? { sequenceLength: options.sequenceLength } : {}) },
      candidates: labels,
    });
    if (read.table) {
      table = read.table;
      from = 'file';
    } else if (read.stale) notes.push(read.stale);
  }
  if (!table) {
    table = await measureSensitivity(model, { path: modelPath, sha256: print.sha256 }, options);
    if (options.sensitivityFile) writeSensitivityFile(options.sensitivityFile, table);
  }
  notes.push(...table.notes);
  const dropped = table.layers.flatMap((l) => l.dropped.map((d) => ({ node: l.node, candidate: d.label, reason: d.reason })));
  const report: AllocateReport = {
    format: ALLOCATION_REPORT_FORMAT,
    meta: reportMeta(),
    model: modelPath,
    method: table.method,
    loss: table.loss,
    data: table.data,
    sizes: table.sizes,
    sensitivity: { from, ...(options.sensitivityFile ? { file: options.sensitivityFile } : {}), timing: table.timing, proxies: table.proxies },
    dropped,
    notes,
    seconds: 0,
  };
  // Solved before any session opens, so a budget no assignment meets fails at once.
  const solved = options.budget
    ? await allocateFor(table, budgetTotalBytes(options.budget, table.sizes), {
        budget: describeBudget(options.budget),
        ...(options.bopsBudget !== undefined ? { bopsBudget: options.bopsBudget } : {}),
        ...(options.solver ? { solver: options.solver } : {}),
      })
    : undefined;
  const measureAllocated = (options.measure ?? true) && solved !== undefined && solved.summary.status !== 'float';
  const meter = measureAllocated || options.sweep ? await PlanLossMeter.open(model, table, options) : undefined;
  try {
    if (solved) {
      const { summary, choice } = solved;
      if (summary.status === 'float') notes.push(`the budget (${summary.totalBudgetBytes} bytes) is at or above the float model's ${table.sizes.floatBytes} bytes: every layer stays float, nothing to quantize`);
      const chosen = table.layers.map((l, i) => l.candidates[choice[i]]);
      if (meter && measureAllocated) summary.measuredLoss = (await meter.measure([chosen.map((c) => c.label)], options.candidates))[0];
      report.allocation = summary;
      report.layers = table.layers.map((l, i) => {
        const c = chosen[i];
        return { node: l.node, candidate: c.label, format: c.format, ...(c.bits !== undefined ? { bits: c.bits, blockSize: c.blockSize } : {}), deltaLoss: c.deltaLoss, bytes: c.bytes };
      });
      report.plan = allocationPlanFile(table.layers, choice);
    }
    if (options.sweep && meter) report.sweep = await sweep(table, options, meter);
  } finally {
    await meter?.close();
  }
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

/** Layer bytes with every layer at its largest quantized candidate (float where a layer has none). */
export function largestQuantizedLayerBytes(table: SensitivityTable): number {
  return table.layers.reduce((a, l) => {
    const q = l.candidates.filter((c) => c.format !== 'float');
    return a + Math.max(...(q.length ? q : l.candidates).map((c) => c.bytes));
  }, 0);
}

/**
 * Mixed plans from the smallest plan any assignment reaches to the largest all-quantized one, at every half bit
 * between, and the uniform plans. The range comes from real plan sizes, not the candidates' nominal widths:
 * scales count (2-bit g32 is 3 bits per weight) and some widths are dropped for some layers, so nominal widths
 * below the smallest plan would all solve to that same plan.
 */
async function sweep(table: SensitivityTable, options: AllocateOptions, meter: PlanLossMeter): Promise<SweepPoint[]> {
  const { fixedBytes } = table.sizes;
  const points: Omit<SweepPoint, 'pareto'>[] = [];
  const plans: string[][] = [];
  for (const spec of options.candidates) {
    const choice = uniformChoice(table, spec);
    const chosen = table.layers.map((l, i) => l.candidates[choice[i]]);
    const layerBytes = chosen.reduce((a, c) => a + c.bytes, 0);
    points.push({ kind: 'uniform', label: candidateLabel(spec), totalBytes: fixedBytes + layerBytes, averageBits: averageBits(table, layerBytes), predictedLoss: chosen.reduce((a, c) => a + c.deltaLoss, 0) });
    plans.push(chosen.map((c) => c.label));
  }
  const smallest = smallestLayerBytes(table);
  const largest = largestQuantizedLayerBytes(table);
  const [lo, hi] = [averageBits(table, smallest), averageBits(table, largest)];
  const widths = [lo];
  for (let b = Math.floor(lo * 2) / 2 + 0.5; b < hi - 1e-9; b += 0.5) widths.push(b);
  if (hi > lo) widths.push(hi);
  for (const b of widths) {
    const layerBytes = b === lo ? smallest : b === hi ? largest : Math.floor((b * table.sizes.layerWeights) / 8);
    const { summary, choice } = await allocateFor(table, fixedBytes + layerBytes, { budget: `${b.toFixed(2)}bits`, ...(options.solver ? { solver: options.solver } : {}) });
    if (points.some((p) => p.kind === 'mixed' && p.totalBytes === summary.totalBytes)) continue;
    points.push({ kind: 'mixed', label: `${b.toFixed(2)} bits`, totalBytes: summary.totalBytes, averageBits: summary.averageBits, predictedLoss: summary.predictedLoss });
    plans.push(table.layers.map((l, i) => l.candidates[choice[i]].label));
  }
  const losses = await meter.measure(plans, options.candidates);
  losses.forEach((loss, i) => (points[i].measuredLoss = loss));
  return markPareto(points);
}
