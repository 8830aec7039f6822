// The trained weights of a committed sample model directory (onnx/model.onnx + training.json), so a builder can
// regenerate the committed files: same graph, these initializer values; and what both builder scripts do with
// them (scripts/build-sample-decoder.ts, scripts/build-sample-gpt2.ts).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { OptionError } from '../errors.js';
import { loadModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/types.js';
import { SAMPLE_MODEL_FILE, writeModelFiles } from './parts.js';
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
  const model = loadModel(join(dir, SAMPLE_MODEL_FILE));
  const weights = floatInitializers(model.proto, (t) => tensorValues(t, model.rawBytes(t)).data as Float32Array);
  return { weights, training: JSON.parse(readFileSync(record, 'utf8')) as TrainingRecord };
}

/** Parses `[out-dir] [--seed N] [--random]` for the builder scripts. */
export function builderArgs(argv: string[], defaultDir: string, defaultSeed: number): { dir: string; seed: number; random: boolean } {
  const seedAt = argv.indexOf('--seed');
  const seed = seedAt >= 0 ? Number(argv[seedAt + 1]) : defaultSeed;
  if (!Number.isInteger(seed)) throw new OptionError(`--seed needs an integer, got ${argv[seedAt + 1]}`);
  const random = argv.includes('--random');
  const positional = argv.filter((a, i) => !(seedAt >= 0 && (i === seedAt || i === seedAt + 1)) && a !== '--random');
  return { dir: positional[0] ?? defaultDir, seed, random };
}

/** What the builder scripts need of a sample architecture. */
export interface SampleArchitecture<C> {
  build(c: C, seed: number, weights?: ReadonlyMap<string, Float32Array>): ModelProto;
  /** config.json in Hugging Face's spelling. */
  hfConfig(c: C): Record<string, unknown>;
  card(c: C, seed: number, fileBytes: number, training?: TrainingRecord): string;
  parameters(c: C): number;
}

/**
 * Writes the Hugging Face folder (onnx/model.onnx, config.json, generation_config.json, tokenizer files),
 * MODEL_CARD.md (and training.json when trained) into `dir`, all renamed into place together.
 */
export function writeSample<C>(arch: SampleArchitecture<C>, dir: string, c: C, seed: number, trained?: SampleWeights): { bytes: number; parameters: number } {
  mkdirSync(dir, { recursive: true });
  const model = arch.build(c, seed, trained?.weights);
  const extra: Record<string, string> = trained ? { 'training.json': `${JSON.stringify(trained.training, null, 2)}\n` } : {};
  const bytes = writeModelFiles(dir, model, arch.hfConfig(c), (n) => arch.card(c, seed, n, trained?.training), extra);
  return { bytes, parameters: arch.parameters(c) };
}

/** A builder script's main: `[out-dir] [--seed N] [--random]`, the committed weights unless --random. */
export function buildSampleMain<C>(arch: SampleArchitecture<C>, c: C, argv: string[], defaultDir: string, defaultSeed: number): void {
  const args = builderArgs(argv, defaultDir, defaultSeed);
  const dir = resolve(args.dir);
  const trained = args.random ? undefined : committedWeights(dir);
  if (trained && trained.training.seed !== args.seed) throw new OptionError(`${dir} was trained from seed ${trained.training.seed}; pass --seed ${trained.training.seed} or --random`);
  const { bytes, parameters } = writeSample(arch, dir, c, args.seed, trained);
  console.log(`wrote ${dir}: ${parameters.toLocaleString('en-US')} parameters, ${SAMPLE_MODEL_FILE} ${bytes.toLocaleString('en-US')} bytes, ${trained ? 'trained' : 'RANDOM'} weights`);
}
