// The trained weights of a committed sample model directory (model.onnx + training.json), so a builder can
// regenerate the committed files: same graph, these initializer values.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../onnx/model.js';
import { tensorValues } from '../onnx/tensor.js';
import { floatInitializers } from '../training/checkpoint.js';
import type { TrainingRecord } from './training-record.js';

export interface SampleWeights {
  weights: Map<string, Float32Array>;
  training: TrainingRecord;
}

/** Undefined when the directory holds no training.json (a random-weight model). */
export function committedWeights(dir: string): SampleWeights | undefined {
  const record = join(dir, 'training.json');
  if (!existsSync(record)) return undefined;
  const model = loadModel(join(dir, 'model.onnx'));
  const weights = floatInitializers(model.proto, (t) => tensorValues(t, model.rawBytes(t)).data as Float32Array);
  return { weights, training: JSON.parse(readFileSync(record, 'utf8')) as TrainingRecord };
}

/** Parses `[out-dir] [--seed N] [--random]` for the builder scripts. */
export function builderArgs(argv: string[], defaultDir: string, defaultSeed: number): { dir: string; seed: number; random: boolean } {
  const seedAt = argv.indexOf('--seed');
  const seed = seedAt >= 0 ? Number(argv[seedAt + 1]) : defaultSeed;
  if (!Number.isInteger(seed)) throw new Error(`--seed needs an integer, got ${argv[seedAt + 1]}`);
  const random = argv.includes('--random');
  const positional = argv.filter((a, i) => !(seedAt >= 0 && (i === seedAt || i === seedAt + 1)) && a !== '--random');
  return { dir: positional[0] ?? defaultDir, seed, random };
}
