// Every pass a recipe can name, by name.
import { calibratePass } from './calibrate.js';
import { compareCalibPass } from './compare-calib.js';
import { evaluatePass } from './evaluate.js';
import { quantizePass } from './quantize.js';
import type { Pass } from './types.js';
import { verifyPass } from './verify.js';

export const PASSES: Readonly<Record<string, Pass<any, any>>> = {
  calibrate: calibratePass,
  'compare-calib': compareCalibPass,
  quantize: quantizePass,
  verify: verifyPass,
  evaluate: evaluatePass,
};

export const PASS_NAMES: readonly string[] = Object.keys(PASSES);
