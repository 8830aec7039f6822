// The one error type calibration data loading throws for bad input. Its message is a single line that names the
// file and the line (JSONL) or tensor (tensor sets), so the CLI can print it as it is.

import { OnnxCompressError } from '../../errors.js';

export class CalibrationDataError extends OnnxCompressError {
  constructor(message: string) {
    super('bad-data', message);
  }
}
