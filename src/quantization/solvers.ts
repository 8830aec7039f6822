// Weight solvers: the "solve" of plan -> solve -> rewrite. A solver turns one float weight into integer codes,
// scales and zero points for the spec its planned format needs (quantizers.ts's Quantized); the rewriters then
// store those codes as they are. Round-to-nearest is the solver every scheme uses today; layer-wise solvers
// (GPTQ, AdaQuant) take the same request plus the calibration data of the weight's layer, and their codes go
// through the same rewriters.
import { quantize, type QuantSpec, type Quantized } from './quantizers.js';

export interface SolveRequest {
  /** The node (label) whose weight this is, for messages; a weight shared by several nodes is solved once. */
  node: string;
  weight: string;
  values: Float32Array;
  dims: readonly number[];
  spec: Required<QuantSpec>;
  /** Axis the op sums over (K) and axis of output channels, in `dims`. */
  reductionAxis: number;
  channelAxis: number;
  /** The activation the weight multiplies (what layer-wise solvers key their calibration data by). */
  activation?: string;
}

export interface WeightSolver {
  /** Short name for reports ('rtn'). */
  readonly name: string;
  /** Codes of exactly `request.spec` (bits, signedness, granularity, convention): the rewriter stores them as they are. */
  solve(request: SolveRequest): Quantized;
}

/** Round to nearest with min/max ranges per group: the codes ONNX Runtime's own quantizers write. */
export const roundToNearest: WeightSolver = {
  name: 'rtn',
  solve: (r) => quantize(r.values, r.dims, r.spec),
};
