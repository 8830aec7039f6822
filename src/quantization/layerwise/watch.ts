// Watches what a block's capture run hands over, batch by batch: refuses a NaN or infinity at once, naming the
// block and the tensor (a solver fed one would only produce garbage codes), and measures the largest batch of
// captured values, which with the solver's accumulators is the pipeline's memory for activations.
import type { ActivationAccumulator } from '../../calibration/collect.js';
import { firstNonFinite } from '../../calibration/observers/chunk.js';
import { QuantizationError } from '../schemes.js';

export class CaptureWatch implements ActivationAccumulator {
  readonly targets: readonly string[];
  /** Bytes of the largest batch of captured values (float32 as handed over). */
  peakBatchBytes = 0;
  private batchBytes = 0;

  /** `describe(tensor, value)` says where a bad value is, for the one-line error. */
  constructor(
    targets: readonly string[],
    private readonly describe: (tensor: string, value: string) => string,
  ) {
    this.targets = [...new Set(targets)];
  }

  add(name: string, values: Float32Array): void {
    // The collector hands every target once per batch, in target order.
    if (name === this.targets[0]) this.batchBytes = 0;
    this.batchBytes += values.byteLength;
    if (this.batchBytes > this.peakBatchBytes) this.peakBatchBytes = this.batchBytes;
    const at = firstNonFinite(values);
    if (at >= 0) throw new QuantizationError(this.describe(name, String(values[at])), 'bad-data');
  }

  finish(): void {}
}
