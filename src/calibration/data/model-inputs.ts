// The inputs a model needs fed, with their declared element type and shape, and how to name them in messages.
import { dtypeName } from '../../onnx/dtypes.js';
import type { OnnxModel } from '../../onnx/model.js';
import { CalibrationDataError } from './errors.js';

/** One declared dimension: a fixed size, or null for a symbolic or unknown one. */
export type DeclaredDim = number | null;

export interface ModelInput {
  name: string;
  /** ONNX element type code. */
  dtype: number;
  /** Declared dimensions (a label for each symbolic one in `dimLabels`); undefined when the rank is unknown. */
  dims?: DeclaredDim[];
  dimLabels?: string[];
}

/**
 * Graph inputs that have no initializer: the ones a run must feed (older IRs list initializers as inputs too,
 * as overridable defaults). Non-tensor inputs are refused: calibration feeds tensors only.
 */
export function requiredInputs(model: OnnxModel): ModelInput[] {
  const initialized = new Set(model.graph.initializer.map((t) => t.name));
  return model.graph.input
    .filter((v) => !initialized.has(v.name))
    .map((v) => {
      const name = v.name ?? '';
      const tensor = v.type?.tensorType;
      if (tensor?.elemType === undefined) {
        throw new CalibrationDataError(`${model.source}: input '${name}' is not a tensor input; calibration sets feed tensors only`);
      }
      const dim = tensor.shape?.dim;
      return {
        name,
        dtype: tensor.elemType,
        ...(dim
          ? { dims: dim.map((d) => d.dimValue ?? null), dimLabels: dim.map((d) => (d.dimValue !== undefined ? String(d.dimValue) : d.dimParam || '?')) }
          : {}),
      };
    });
}

/** `float32 [batch,3]` for messages. */
export function describeInput(input: ModelInput): string {
  return `${dtypeName(input.dtype)} ${input.dimLabels ? `[${input.dimLabels.join(',')}]` : '(any shape)'}`;
}

/** Whether concrete dims fit a declared shape: same rank, fixed sizes equal. */
export function fitsShape(input: ModelInput, dims: readonly number[]): boolean {
  if (!input.dims) return true;
  return input.dims.length === dims.length && input.dims.every((d, i) => d === null || d === dims[i]);
}
