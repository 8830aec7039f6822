// Deprecated: the model's companion files (config.json, tokenizer.json...) are found and read by
// src/onnx/model-folder.ts, once per model object. These wrappers keep the old imports working until their last
// users (calibration/data/tokenizers.ts, quantization/pipeline.ts) switch to `modelFolder(model)`; they read
// through its cache, and a broken file is a ModelError naming it.
import { modelFolder, readJsonFile } from '../../onnx/model-folder.js';
import type { OnnxModel } from '../../onnx/model.js';

/** @deprecated `modelFolder(model).find(name)`. */
export function findModelFile(model: OnnxModel, name: string): string | undefined {
  return modelFolder(model).find(name);
}

/** @deprecated `modelFolder(model).json(name)` (cached) or `readJsonFile(path)`. */
export function readJsonObject(path: string): Record<string, unknown> {
  return readJsonFile(path);
}

/** @deprecated `modelFolder(model).config ?? {}`. */
export function modelConfig(model: OnnxModel): Record<string, unknown> {
  return (modelFolder(model).config ?? {}) as Record<string, unknown>;
}
