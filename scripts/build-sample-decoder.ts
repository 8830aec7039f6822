// Builds models/tiny-llama: a small LLaMA-architecture decoder in the Hugging Face optimum export layout (GQA
// attention, rotary embeddings, KV cache, SwiGLU), with plain opset-17 ops named the way torch.onnx names them.
// The graph and the seeded initialisation live in src/models/llama.ts (shared pieces in src/models/parts.ts).
//
// The committed model is this graph with weights trained by scripts/train-sample.ts. By default the script
// rebuilds the graph and takes the weights from the committed onnx/model.onnx (with its training.json for the
// card), so it regenerates the committed files byte for byte; --random writes seeded RANDOM weights instead.
//
//   npx tsc -p . && node dist/scripts/build-sample-decoder.js [out-dir] [--seed N] [--random]
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildSampleMain, type SampleArchitecture, type SampleWeights, writeSample } from '../src/models/committed.js';
import type { ModelProto } from '../src/onnx/types.js';
import { buildLlama, DEFAULT_SEED, type DecoderConfig, llamaCard, llamaConfig, parameterCount, TINY_LLAMA } from '../src/models/llama.js';
import type { TrainingRecord } from '../src/models/training-record.js';

export { type DecoderConfig, DEFAULT_SEED, headDim, parameterCount, TINY_LLAMA } from '../src/models/llama.js';
export { SPECIAL_TOKENS } from '../src/models/parts.js';
export { committedWeights, type SampleWeights } from '../src/models/committed.js';

/**
 * The graph with seeded RANDOM weights (the starting point of training), or with `weights` (e.g. the committed
 * trained ones, committedWeights(dir).weights) in place of them: that is how the committed file is made.
 */
export function buildSampleDecoder(c: DecoderConfig = TINY_LLAMA, seed = DEFAULT_SEED, weights?: ReadonlyMap<string, Float32Array>): ModelProto {
  return buildLlama(c, seed, { weights });
}

/** config.json in Hugging Face's LlamaConfig spelling. */
export const hfConfig = llamaConfig;

export function modelCard(c: DecoderConfig, seed: number, fileBytes: number, training?: TrainingRecord): string {
  return llamaCard(c, seed, fileBytes, training);
}

const LLAMA: SampleArchitecture<DecoderConfig> = {
  build: (c, seed, weights) => buildLlama(c, seed, { weights }),
  hfConfig: llamaConfig,
  card: llamaCard,
  parameters: parameterCount,
};

/** Writes the Hugging Face folder (onnx/model.onnx, config and tokenizer files), MODEL_CARD.md (and training.json when trained), renamed into place together. */
export function writeSampleDecoder(dir: string, c: DecoderConfig = TINY_LLAMA, seed = DEFAULT_SEED, trained?: SampleWeights): { bytes: number; parameters: number } {
  return writeSample(LLAMA, dir, c, seed, trained);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  buildSampleMain(LLAMA, TINY_LLAMA, process.argv.slice(2), fileURLToPath(new URL('../../models/tiny-llama', import.meta.url)), DEFAULT_SEED);
}
