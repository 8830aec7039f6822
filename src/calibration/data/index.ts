// Calibration data: opens a set on disk as model-ready batches of feeds for a given model.
//
// Layouts (conventions in README.md beside this file):
//   - a .jsonl file, or a set folder holding `<split>.jsonl` (calibration-sets/ layout): token sets for decoder
//     language models, records {"text": ...} (tokenised) or {"input_ids": [...]} (used as they are);
//   - a folder of `input_<k>.pb` files or `test_data_set_<n>/` subfolders (ONNX test-data layout), or a folder of
//     `<input>.npy` files with samples along axis 0: tensor sets for any model.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { OnnxModel } from '../../onnx/model.js';
import { resolveSetPath, SHIPPED_SETS, shippedSetsDir } from '../shipped-sets.js';
import type { CalibrationOptions, CalibrationSet } from './calibration-set.js';
import { CalibrationDataError } from './errors.js';
import { isNpyFolder, openNpyFolder } from './npy-folder.js';
import { checkOptions } from './options.js';
import { isPbFolder, openPbFolder } from './pb-folder.js';
import { openTensorSet } from './tensor-set.js';
import { openTokenSet } from './token-set.js';

export type { CalibrationOptions, CalibrationSet } from './calibration-set.js';
export { CalibrationDataError } from './errors.js';

export async function openCalibrationSet(spec: string, model: OnnxModel, options: CalibrationOptions = {}): Promise<CalibrationSet> {
  checkOptions(options);
  const path = resolveSetPath(spec);
  if (!isDirectory(path, spec)) {
    if (/\.(npy|pb)$/.test(path)) {
      throw new CalibrationDataError(`${path}: a tensor set is a folder (of <input>.npy files, or input_<k>.pb files); give the folder`);
    }
    return openTokenSet(path, model, options);
  }
  const split = options.split ?? 'calibration';
  const entries = readdirSync(path);
  if (entries.includes(`${split}.jsonl`)) return openTokenSet(join(path, `${split}.jsonl`), model, options);
  if (isPbFolder(entries)) return openTensorSet(path, openPbFolder, model, options);
  if (isNpyFolder(entries)) return openTensorSet(path, openNpyFolder, model, options);
  const splits = entries.filter((e) => e.endsWith('.jsonl'));
  if (splits.length > 0) throw new CalibrationDataError(`${path}: no ${split}.jsonl in the set (it has ${splits.join(', ')})`);
  throw new CalibrationDataError(`${path}: empty set (no ${split}.jsonl, input_<k>.pb, test_data_set_<n>/ or <input>.npy files)`);
}

/**
 * Data held out from calibration, for verifying the written model: the evaluation split of a set folder
 * (calibration-sets/ layout) opened with the calibration's options, or null when the set has no such split (a
 * single .jsonl file, a tensor set); the caller then verifies on the calibration set and its report names it.
 */
export async function openHeldOutSet(spec: string, model: OnnxModel, options: CalibrationOptions = {}): Promise<CalibrationSet | null> {
  const split = options.split ?? 'calibration';
  if (split === HELD_OUT_SPLIT) return null;
  const path = resolveSetPath(spec);
  let entries: string[];
  try {
    entries = statSync(path).isDirectory() ? readdirSync(path) : [];
  } catch {
    return null; // opening the calibration set itself says what is wrong with the path
  }
  if (!entries.includes(`${HELD_OUT_SPLIT}.jsonl`)) return null;
  return openTokenSet(join(path, `${HELD_OUT_SPLIT}.jsonl`), model, { ...options, split: HELD_OUT_SPLIT });
}

const HELD_OUT_SPLIT = 'evaluation';

/** Whether the path is a folder; a missing path is an error here rather than a confusing one later. */
function isDirectory(path: string, spec: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      // A bare name was meant as a shipped set: answer with the names there are.
      if (/^[\w-]+$/.test(spec)) throw new CalibrationDataError(`${spec}: no such file, folder or shipped set (shipped: ${shippedSetNames().join(', ')})`);
      throw new CalibrationDataError(`${spec}: no such file or folder`);
    }
    throw new CalibrationDataError(`${path}: cannot be read (${code ?? e})`);
  }
}

/** The documented order of the shipped sets (as other messages list them); sets added later go after. */
function rank(name: string): number {
  const i = (SHIPPED_SETS as readonly string[]).indexOf(name);
  return i < 0 ? SHIPPED_SETS.length : i;
}

/** The sets shipped in calibration-sets/ (its folders), so that a mistyped name is answered with the names there are. */
export function shippedSetNames(): string[] {
  try {
    return readdirSync(shippedSetsDir(), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  } catch {
    return [];
  }
}
