// What a model costs on disk: its files (the .onnx and its external data) and the bytes of its parameters.
import { existsSync, statSync } from 'node:fs';
import type { OnnxModel } from '../onnx/model.js';
import { summarize } from '../onnx/summary.js';

export interface SizeReport {
  /** The .onnx file plus every external-data file it points at; null for an in-memory model. */
  fileBytes: number | null;
  parameters: { count: number; bytes: number; byDtype: { dtype: string; count: number; bytes: number }[] };
}

export function modelSize(model: OnnxModel): SizeReport {
  const { parameters } = summarize(model, 0);
  // An in-memory model's source is a label, not a file.
  if (!existsSync(model.source)) return { fileBytes: null, parameters };
  let fileBytes = statSync(model.source).size;
  for (const location of model.externalFiles()) fileBytes += statSync(model.externalPath(location)).size;
  return { fileBytes, parameters };
}
