// Builds models/tiny-gpt2: a small GPT-2-architecture decoder in the Hugging Face optimum export layout (see
// src/models/gpt2.ts; the pieces it shares with tiny-llama are in src/models/parts.ts).
//
// The committed model is this graph with weights trained by scripts/train-sample.ts. By default the script
// rebuilds the graph and takes the weights from the committed onnx/model.onnx (with its training.json for the
// card), so it regenerates the committed files byte for byte; --random writes seeded RANDOM weights instead.
//
//   npx tsc -p . && node dist/scripts/build-sample-gpt2.js [out-dir] [--seed N] [--random]
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildSampleMain, type SampleArchitecture, type SampleWeights, writeSample } from '../src/models/committed.js';
import { buildGpt2, GPT2_DEFAULT_SEED, gpt2Card, gpt2Config, gpt2ParameterCount, type Gpt2Config, TINY_GPT2 } from '../src/models/gpt2.js';
import type { ModelProto } from '../src/onnx/types.js';

export { GPT2_DEFAULT_SEED as DEFAULT_SEED, type Gpt2Config, gpt2Config, gpt2HeadDim, gpt2ParameterCount, TINY_GPT2 } from '../src/models/gpt2.js';

/** The graph with seeded RANDOM weights (the starting point of training). */
export function buildSampleGpt2(c: Gpt2Config = TINY_GPT2, seed = GPT2_DEFAULT_SEED): ModelProto {
  return buildGpt2(c, seed);
}

const GPT2: SampleArchitecture<Gpt2Config> = {
  build: (c, seed, weights) => buildGpt2(c, seed, { weights }),
  hfConfig: gpt2Config,
  card: gpt2Card,
  parameters: gpt2ParameterCount,
};

/** Writes the Hugging Face folder (onnx/model.onnx, config and tokenizer files), MODEL_CARD.md (and training.json when trained), renamed into place together. */
export function writeSampleGpt2(dir: string, c: Gpt2Config = TINY_GPT2, seed = GPT2_DEFAULT_SEED, trained?: SampleWeights): { bytes: number; parameters: number } {
  return writeSample(GPT2, dir, c, seed, trained);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  buildSampleMain(GPT2, TINY_GPT2, process.argv.slice(2), fileURLToPath(new URL('../../models/tiny-gpt2', import.meta.url)), GPT2_DEFAULT_SEED);
}
