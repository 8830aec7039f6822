// The one error type calibration data loading throws for bad input. Its message is a single line that names the
// file and the line (JSONL) or tensor (tensor sets), so the CLI can print it as it is.

export class CalibrationDataError extends Error {
  override name = 'CalibrationDataError';
}
