// Text in, text out: a prompt continued by a decoder language model with the KV cache, greedily or by seeded
// sampling, the text handed out as it settles. What `onnx-compress generate` runs, as a library call.
import { loadModel, type OnnxModel } from '../onnx/model.js';
import { DecoderSession } from './decoder-session.js';
import { generate, type StopReason } from './generate.js';
import { promptIds, textCodecFor } from './text-codec.js';
import { textHooks } from './text-stream.js';

export interface GenerateTextOptions {
  maxNewTokens: number;
  /** 0 is greedy (the default). */
  temperature?: number;
  topK?: number;
  topP?: number;
  /** The sampler's seed; the same seed gives the same text. */
  seed?: number;
  threads?: number;
  /** Text as it becomes final (never a partial character). */
  onText?: (text: string) => void;
}

/** What a prompt's continuation reports, by plain or speculative decoding. */
export interface Continuation {
  prompt: string;
  /** Prompt ids as the model read them (BOS included). */
  promptTokens: number[];
  text: string;
  tokens: number[];
  stopReason: StopReason;
  sampling: ReportedSampling;
}

/** The sampling settings as reported: the seed is null under greedy decoding, which uses none. */
export interface ReportedSampling {
  temperature: number;
  topK: number;
  topP: number;
  seed: number | null;
}

export function reportedSampling(temperature: number, topK: number, topP: number, seed: number | undefined): ReportedSampling {
  return { temperature, topK, topP, seed: temperature === 0 ? null : (seed ?? null) };
}

export interface GenerateReport extends Continuation {
  model: string;
  prefillSeconds: number;
  decodeSeconds: number;
  /** New tokens per second of the decode phase (the first new token comes from the prefill). */
  decodeTokensPerSecond: number | null;
}

/** Continues `prompt` with the model (a file or a loaded model); see GenerateTextOptions. */
export async function generateText(model: string | OnnxModel, prompt: string, options: GenerateTextOptions): Promise<GenerateReport> {
  const loaded = typeof model === 'string' ? loadModel(model) : model;
  const { maxNewTokens, temperature = 0, topK = 0, topP = 1, seed, threads, onText } = options;
  const decoder = await DecoderSession.open(loaded, { intraOpThreads: threads });
  try {
    const codec = textCodecFor(loaded, decoder.vocab);
    const promptTokens = promptIds(codec, prompt, decoder.special.bos);
    const streamed = textHooks(codec, onText);
    const result = await generate(decoder, [promptTokens], {
      maxNewTokens,
      temperature,
      topK,
      topP,
      ...(seed !== undefined ? { seed } : {}),
      ...streamed.hooks,
    });
    streamed.end();
    const tokens = result.tokens[0];
    return {
      model: typeof model === 'string' ? model : loaded.source,
      prompt,
      promptTokens,
      text: codec.decode(tokens),
      tokens,
      stopReason: result.stopReasons[0],
      sampling: reportedSampling(temperature, topK, topP, seed),
      prefillSeconds: result.prefillSeconds,
      decodeSeconds: result.decodeSeconds,
      decodeTokensPerSecond: tokens.length > 1 ? (tokens.length - 1) / result.decodeSeconds : null,
    };
  } finally {
    await decoder.dispose();
  }
}
