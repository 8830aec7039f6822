// Decoding speed at batch 1: prefill (one run over a long prompt, tokens per second of prompt) and decode (one
// token per run with the KV cache, tokens per second of output). Token ids are seeded pseudo-random ids of the
// vocabulary: speed does not depend on which tokens run, and the figures then need no tokenizer.
import type { DecoderSession } from './decoder-session.js';
import { argmax } from './logits.js';
import { seededRandom } from '../util/prng.js';

export interface SpeedOptions {
  /** Prompt length of the prefill measurement (default 512). */
  prefillTokens?: number;
  /** New tokens of the decode measurement (default 128), after a short prompt. */
  decodeTokens?: number;
  /** Timed runs of each; the median is reported (default 3). A warm-up run comes first, untimed. */
  repeats?: number;
}

export interface Rate {
  tokens: number;
  /** Median seconds of one run. */
  seconds: number;
  tokensPerSecond: number;
}

export interface SpeedReport {
  prefill: Rate;
  decode: Rate;
}

const DECODE_PROMPT = 16;

export async function measureSpeed(decoder: DecoderSession, options: SpeedOptions = {}): Promise<SpeedReport> {
  const { repeats = 3 } = options;
  const max = decoder.maxPositions ?? Infinity;
  // Models with few positions get shorter measurements rather than a failure.
  const prefillTokens = Math.min(options.prefillTokens ?? 512, max);
  const decodeTokens = Math.min(options.decodeTokens ?? 128, max - DECODE_PROMPT);
  const random = seededRandom(1);
  const ids = (n: number) => Array.from({ length: n }, () => Math.floor(random() * decoder.vocab));
  const prompt = ids(prefillTokens);
  const shortPrompt = ids(DECODE_PROMPT);

  const prefill = () => timed(() => decoder.forward([prompt]));
  const decode = () =>
    timed(async () => {
      let step = await decoder.forward([shortPrompt]);
      const started = performance.now();
      for (let n = 0; n < decodeTokens; n++) step = await decoder.forward([[argmax(step.logits.last(0))]], step.state);
      return (performance.now() - started) / 1000;
    });
  return { prefill: await median(prefill, repeats, prefillTokens), decode: await median(decode, repeats, decodeTokens) };
}

/** Seconds a run takes; a run that measures its own part returns that instead. */
async function timed(run: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  const own = await run();
  return typeof own === 'number' ? own : (performance.now() - started) / 1000;
}

async function median(measure: () => Promise<number>, repeats: number, tokens: number): Promise<Rate> {
  await measure(); // warm-up: first runs pay for allocations and ORT's lazy initialisation
  const times: number[] = [];
  for (let i = 0; i < Math.max(1, repeats); i++) times.push(await measure());
  times.sort((a, b) => a - b);
  const seconds = times[Math.floor(times.length / 2)];
  return { tokens, seconds, tokensPerSecond: tokens / seconds };
}
