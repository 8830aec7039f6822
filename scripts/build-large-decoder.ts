// A larger LLaMA-architecture decoder with seeded RANDOM weights, for speed and size measurements only (its
// outputs mean nothing): the project's builder (src/models/llama.ts) at a realistic width. The default shape is
// TinyLlama-1.1B's (hidden 2048, MLP 5632, 32 query / 4 key-value heads, vocabulary 32000) with 4 of its 22
// layers: 307M parameters, 1.23 GB in float32. Not committed; the figures bench builds it into a temporary folder.
//
//   npx tsc -p . && node dist/scripts/build-large-decoder.js OUT_DIR [--hidden N] [--intermediate N] [--layers N] [--vocab N] [--seed N]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildLlama, llamaConfig, parameterCount, type DecoderConfig } from '../src/models/llama.js';
import { OnnxModel } from '../src/onnx/model.js';
import { saveModel, type SaveReport } from '../src/onnx/save.js';

export const LARGE_DECODER: DecoderConfig = {
  vocabSize: 32000,
  hiddenSize: 2048,
  intermediateSize: 5632,
  numHiddenLayers: 4,
  numAttentionHeads: 32,
  numKeyValueHeads: 4,
  maxPositionEmbeddings: 2048,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
};

export const LARGE_SEED = 7;

export interface LargeDecoder {
  dir: string;
  model: string;
  config: DecoderConfig;
  parameters: number;
  saved: SaveReport;
}

/**
 * Writes `dir/model.onnx` (external data only if it would pass 2 GiB, as saveModel decides) and
 * `dir/config.json` (LlamaForCausalLM, no tokenizer: token ids only).
 */
export function buildLargeDecoder(dir: string, config: DecoderConfig = LARGE_DECODER, seed = LARGE_SEED): LargeDecoder {
  mkdirSync(dir, { recursive: true });
  const model = join(dir, 'model.onnx');
  const proto = buildLlama(config, seed);
  proto.docString = `random-weight LLaMA decoder for speed figures (seed ${seed}); outputs mean nothing`;
  const saved = saveModel(new OnnxModel(proto, dir, '<large decoder being built>'), model);
  // No BOS/EOS/PAD ids of a real vocabulary: the byte-level sample's ids (256..258) are plain tokens here.
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify(llamaConfig(config), null, 2)}\n`);
  return { dir, model, config, parameters: parameterCount(config), saved };
}

function main(argv: string[]): void {
  const out = argv.find((a, i) => !a.startsWith('--') && !argv[i - 1]?.startsWith('--'));
  if (!out) throw new Error('usage: build-large-decoder OUT_DIR [--hidden N] [--intermediate N] [--layers N] [--vocab N] [--seed N]');
  const flag = (name: string, fallback: number): number => {
    const at = argv.indexOf(name);
    if (at < 0) return fallback;
    const n = Number(argv[at + 1]);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} needs a whole number >= 1, got ${argv[at + 1]}`);
    return n;
  };
  const config: DecoderConfig = {
    ...LARGE_DECODER,
    hiddenSize: flag('--hidden', LARGE_DECODER.hiddenSize),
    intermediateSize: flag('--intermediate', LARGE_DECODER.intermediateSize),
    numHiddenLayers: flag('--layers', LARGE_DECODER.numHiddenLayers),
    vocabSize: flag('--vocab', LARGE_DECODER.vocabSize),
  };
  const built = buildLargeDecoder(resolve(out), config, flag('--seed', LARGE_SEED));
  console.log(`wrote ${built.model}: ${built.parameters.toLocaleString('en-US')} parameters, ${built.saved.bytes.toLocaleString('en-US')} bytes${built.saved.externalData ? ` + ${built.saved.externalData.bytes.toLocaleString('en-US')} external` : ''}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main(process.argv.slice(2));
