// Checks calibration options up front, so a typo fails before any file is read.
import type { CalibrationOptions } from './calibration-set.js';
import { CalibrationDataError } from './errors.js';

const POSITIVE_INTEGERS = ['samples', 'sequenceLength', 'stride', 'batchSize'] as const;

export function checkOptions(options: CalibrationOptions): void {
  for (const key of POSITIVE_INTEGERS) {
    const value = options[key];
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
      throw new CalibrationDataError(`calibration option ${key} must be a positive integer, not ${value}`);
    }
  }
  if (options.seed !== undefined && !Number.isSafeInteger(options.seed)) {
    throw new CalibrationDataError(`calibration option seed must be an integer, not ${options.seed}`);
  }
  if (options.windowing !== undefined && options.windowing !== 'chunk' && options.windowing !== 'sliding') {
    throw new CalibrationDataError(`calibration option windowing must be 'chunk' or 'sliding', not '${options.windowing}'`);
  }
  if (options.split !== undefined && !/^[\w.-]+$/.test(options.split)) {
    throw new CalibrationDataError(`calibration option split must be a file name without folders, not '${options.split}'`);
  }
}

