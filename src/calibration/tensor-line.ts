// The one-line-per-tensor view of activation statistics that the calibrate command reports and the HTML report
// draws: shared so the two cannot drift apart. Range-only statistics (observe 'ranges' or 'minmax') have the
// range alone; the other figures are then absent.

export interface TensorLine {
  name: string;
  op: string;
  min: number;
  max: number;
  absMax: number;
  /** 99.99th percentile of |x|. */
  p9999?: number;
  /** Entropy (KL-optimal) clipping range. */
  entropy?: [number, number];
  kurtosis?: number | null;
  atLeastMagnitude?: number;
  beyondSigmas?: [number, number];
}
