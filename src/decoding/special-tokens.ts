// The decoder's special token ids (begin, end, padding), from the Hugging Face files that travel with the model:
// config.json, and generation_config.json where it exists (it often holds the real end-of-sequence ids).
import type { OnnxModel } from '../onnx/model.js';
import { modelFolder } from '../onnx/model-folder.js';

export interface SpecialTokens {
  /** Put first before scoring or generating; null when the model has none. */
  bos: number | null;
  /** Any of these ends generation. */
  eos: number[];
  /** What left padding is filled with (masked out, so only its range matters); falls back to eos, then 0. */
  pad: number;
}

/** config.json ids are a number or, in newer configs (eos_token_id especially), a list of numbers. */
function ids(v: unknown): number[] {
  const list = Array.isArray(v) ? v : [v];
  return list.filter((x): x is number => Number.isSafeInteger(x) && (x as number) >= 0);
}

export function readSpecialTokens(model: OnnxModel): SpecialTokens {
  const folder = modelFolder(model);
  const config = folder.config ?? {};
  const generation = folder.generationConfig ?? {};
  const pick = (key: string): number[] => (ids(generation[key]).length ? ids(generation[key]) : ids(config[key]));
  const eos = pick('eos_token_id');
  return { bos: pick('bos_token_id')[0] ?? null, eos, pad: pick('pad_token_id')[0] ?? eos[0] ?? 0 };
}
