// Text in, text out: a prompt continued by a decoder language model with the KV cache, greedily or by seeded
// sampling, the text handed out as it settles. What `onnx-compress generate` runs, as a library call.
import { loadModel, type OnnxModel } from '../onnx/model.js';
import { DecoderSession } from './decoder-session.js';
import { generate, type StopReason } from './generate.js';
import { textCodecFor } from './text-codec.js';
import { TextStream } from './text-stream.js';

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

export interface GenerateReport {
  model: string;
  prompt: string;
  /** Prompt ids as the model read them (BOS included). */
  promptTokens: number[];
  text: string;
  tokens: number[];
  stopReason: StopReason;
  sampling: { temperature: number; topK: number; topP: number; seed: number | null };
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
    const bos = decoder.special.bos;
    let promptTokens = codec.encode(prompt);
    if (bos !== null && promptTokens[0] !== bos) promptTokens = [bos, ...promptTokens];
    const stream = new TextStream(codec);
    const result = await generate(decoder, [promptTokens], {
      maxNewTokens,
      temperature,
      topK,
      topP,
      ...(seed !== undefined ? { seed } : {}),
      ...(onText ? { onToken: (token: number) => onText(stream.push(token)) } : {}),
    });
    if (onText) onText(stream.flush());
    const tokens = result.tokens[0];
    return {
      model: typeof model === 'string' ? model : loaded.source,
      prompt,
      promptTokens,
      text: codec.decode(tokens),
      tokens,
      stopReason: result.stopReasons[0],
      sampling: { temperature, topK, topP, seed: temperature === 0 ? null : (seed ?? null) },
      prefillSeconds: result.prefillSeconds,
      decodeSeconds: result.decodeSeconds,
      decodeTokensPerSecond: tokens.length > 1 ? (tokens.length - 1) / result.decodeSeconds : null,
    };
  } finally {
    await decoder.dispose();
  }
}
