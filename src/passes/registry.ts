// Every pass a recipe can name, by name.
import { allocatePass } from './allocate.js';
import { calibratePass } from './calibrate.js';
import { compareCalibPass } from './compare-calib.js';
import { evaluatePass } from './evaluate.js';
import { optimizePass } from './optimize.js';
import { prunePass } from './prune.js';
import { quantizePass } from './quantize.js';
import type { Pass } from './types.js';
import { verifyPass } from './verify.js';

export const PASSES: Readonly<Record<string, Pass<any, any>>> = {
  calibrate: calibratePass,
  allocate: allocatePass,
  'compare-calib': compareCalibPass,
  quantize: quantizePass,
  optimize: optimizePass,
  prune: prunePass,
  verify: verifyPass,
  evaluate: evaluatePass,
};

export const PASS_NAMES: readonly string[] = Object.keys(PASSES);
