// The one answer to a set that does not exist, for every command that takes one (calibration data, evaluation
// text, compare-calib's sets and domains): a bare name was meant as a shipped set, so it lists the names there are.
import { shippedSetNames } from './data/index.js';
import { CalibrationDataError } from './data/errors.js';

export function missingSetError(spec: string): CalibrationDataError {
  if (/^[\w-]+$/.test(spec)) return new CalibrationDataError(`${spec}: no such file, folder or shipped set (shipped: ${shippedSetNames().join(', ')})`);
  return new CalibrationDataError(`${spec}: no such file or folder`);
}
