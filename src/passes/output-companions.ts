// What travels with a written model: the input's config.json, generation_config.json and tokenizer files
// (src/onnx/model-folder.ts finds them: embedded, beside the input, or in its Hugging Face folder), so that every
// command reads a compressed copy exactly as it reads the original (special tokens, tokenizer, maximum positions).
//   - A folder output gets them as the standard files in its root, beside `onnx/`.
//   - A plain .onnx output cannot carry a sidecar anywhere it is copied, so they go into its metadata_props
//     (`onnx_compress.config.json`...), which model-folder.ts reads back first.
// The runner stages them with the model (the checks read the staged copy as users will read the result) and moves
// them into place just before the model, in the same synchronous step.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OutputError } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { embedCompanions, modelFolder, stripCompanions, type CompanionFile } from '../onnx/model-folder.js';
import type { OutputTarget } from '../quantization/output-names.js';
import { moveIntoPlace, writeError } from '../util/atomic.js';

/** A companion file written into the staging folder, and where it goes. */
export interface StagedCompanion {
  name: string;
  staged: string;
  final: string;
}

/**
 * Before any work: a folder output whose root already holds a companion file that differs from the input's is
 * refused (the folder belongs to another model, and its other files would no longer match their config).
 */
export function checkFolderOutput(target: OutputTarget, original: OnnxModel): void {
  if (!target.folder) return;
  for (const f of modelFolder(original).files()) {
    const there = join(target.folder.root, f.name);
    if (existsSync(there) && !sameBytes(there, f.bytes())) {
      throw new OutputError(`--out ${target.folder.root}: its ${f.name} differs from the input's (${f.path}); a folder holds one model's files, choose another folder or remove it`);
    }
  }
}

/** The model as it is saved: companions embedded for a plain file; none embedded in a folder, whose files are beside it. */
export function withCompanionsFor(target: OutputTarget, model: OnnxModel, original: OnnxModel): OnnxModel {
  if (target.folder) return stripCompanions(model);
  const files = companionsOf(original, model);
  return files.length ? embedCompanions(model, files) : stripCompanions(model);
}

/** Writes a folder output's companion files into the staging folder, beside the staged model; none for a file. */
export function stageCompanions(target: OutputTarget, original: OnnxModel, staging: string, result?: OnnxModel): StagedCompanion[] {
  if (!target.folder) return [];
  const root = target.folder.root;
  return companionsOf(original, result).map((f) => {
    const staged = join(staging, f.name);
    try {
      writeFileSync(staged, f.bytes());
    } catch (e) {
      throw writeError(join(root, f.name), e);
    }
    return { name: f.name, staged, final: join(root, f.name) };
  });
}

/**
 * The input's companion files, except those the result embeds itself: a pass that changes what a file describes
 * (pruning's config.json with per-layer sizes) embeds the new version in the model it returns.
 */
function companionsOf(original: OnnxModel, result?: OnnxModel): CompanionFile[] {
  const own = result && result !== original ? modelFolder(result).files().filter((f) => f.embedded) : [];
  const theirs = modelFolder(original).files();
  return [...theirs.map((f) => own.find((o) => o.name === f.name) ?? f), ...own.filter((o) => !theirs.some((f) => f.name === o.name))];
}

/** Moves the staged companion files into the folder's root; an identical file already there is left as it is. */
export function placeCompanions(staged: readonly StagedCompanion[]): void {
  for (const c of staged) {
    if (existsSync(c.final) && sameBytes(c.final, readFileSync(c.staged))) continue;
    moveIntoPlace(c.staged, c.final);
  }
}

function sameBytes(path: string, bytes: Buffer): boolean {
  try {
    return readFileSync(path).equals(bytes);
  } catch {
    return false;
  }
}
