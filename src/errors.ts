// The one root of every error onnx-compress throws on purpose. Each has a stable `code` naming its kind, so a
// script (or the CLI's --json error line) can tell bad input from a runtime failure without parsing messages.
// Messages are one printable line that names the file, tensor, node, option or line at fault.

/** The kinds of failure, stable across versions. */
export type ErrorCode =
  /** The model file or graph is unreadable, invalid or not what the operation needs. */
  | 'bad-model'
  /** Calibration or evaluation data, a statistics file or a report file is unreadable or does not fit the model. */
  | 'bad-data'
  /** An option, flag, plan or recipe is invalid or contradicts another. */
  | 'bad-option'
  /** ONNX Runtime or TensorFlow.js failed to load or run a graph that passed our checks. */
  | 'runtime'
  /** A written model was produced but did not meet the quality it was asked to keep; nothing was written. */
  | 'quality-gate'
  /** The output could not be written (permissions, disk, a path that clashes with an input). */
  | 'io';

export class OnnxCompressError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad options, flags, plans and recipes. */
export class OptionError extends OnnxCompressError {
  constructor(message: string) {
    super('bad-option', message);
  }
}

/** An output that cannot be written. */
export class OutputError extends OnnxCompressError {
  constructor(message: string) {
    super('io', message);
  }
}

export function isOnnxCompressError(e: unknown): e is OnnxCompressError {
  return e instanceof OnnxCompressError;
}
