// GPTQ over Hessians collected in a calibration run of their own: the requests a plan needs (one XᵀX per input a
// planned MatMul/Gemm reads), the run that fills them, and the solver that reads them. The quantize pass solves
// layer by layer instead (src/quantization/layerwise/); sensitivity measurement quantizes a whole model per
// candidate and uses these.
import { collectStatistics, type CollectOptions } from '../calibration/collect.js';
import type { CalibrationSet } from '../calibration/data/index.js';
import { HessianAccumulator } from '../calibration/hessian.js';
import type { OnnxModel } from '../onnx/model.js';
import { sampleUnitOf } from './clip-auto.js';
import { gptqSolver, type GptqSolver } from './gptq.js';
import type { QuantPlan } from './plan.js';

/** An accumulator of XᵀX for every input a planned MatMul/Gemm reads (rows, or columns where Gemm reads A transposed). */
export function hessianAccumulator(plan: QuantPlan): HessianAccumulator {
  return new HessianAccumulator(
    plan.nodes
      .filter((p) => p.target.op === 'MatMul' || p.target.op === 'Gemm')
      .map((p) => ({ tensor: p.target.activation, unit: sampleUnitOf(p.target.node) === 'columns' ? ('columns' as const) : ('rows' as const) })),
  );
}

export interface CollectHessiansOptions {
  session?: CollectOptions['session'];
  /** Progress as the 'calibration' stage, in samples. */
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** The Hessians in a run of their own over the calibration set (no statistics are collected). */
export async function collectHessians(model: OnnxModel, acc: HessianAccumulator, set: CalibrationSet, options: CollectHessiansOptions = {}): Promise<void> {
  if (acc.targets.length === 0) return;
  const { session, onProgress } = options;
  await collectStatistics(model, set, {
    observe: 'none',
    accumulators: [acc],
    ...(session ? { session } : {}),
    onProgress: onProgress ? (p) => onProgress('calibration', p.samples, p.totalSamples) : undefined,
  });
}

/** The GPTQ solver over collected Hessians, with notes for those that are rank-deficient (fewer tokens than inputs: damping decides the rest). */
export function gptqFromHessians(acc: HessianAccumulator, notes: string[]): GptqSolver {
  acc.finish(); // idempotent; the collector has already called it when it ran
  for (const tensor of acc.targets) {
    const h = acc.get(tensor) ?? acc.get(tensor, 'columns');
    if (h && h.rows < h.k) notes.push(`GPTQ: input ${tensor} has ${h.rows} calibration tokens for ${h.k} inputs: its Hessian is rank-deficient and damping fills the rest; give more --samples`);
  }
  return gptqSolver((a) => acc.get(a) ?? acc.get(a, 'columns'));
}
