// Files that travel with a model in a Hugging Face folder (config.json, tokenizer.json, tokenizer_config.json).
// They sit beside the .onnx file or one folder up, as in transformers.js's `onnx/model.onnx` layout; the same
// rule describeDecoder uses for config.json.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { OnnxModel } from '../../onnx/model.js';
import { CalibrationDataError } from './errors.js';

/** The path of `name` beside the model or one folder up, or undefined (also for in-memory models). */
export function findModelFile(model: OnnxModel, name: string): string | undefined {
  if (!model.baseDir) return undefined;
  for (const dir of [model.baseDir, dirname(model.baseDir)]) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** A JSON object from a file; anything else (unreadable, not JSON, not an object) is a CalibrationDataError. */
export function readJsonObject(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CalibrationDataError(`${path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new CalibrationDataError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CalibrationDataError(`${path}: expected a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** The model's config.json as an object, or an empty object when there is none. */
export function modelConfig(model: OnnxModel): Record<string, unknown> {
  const path = findModelFile(model, 'config.json');
  return path ? readJsonObject(path) : {};
}
