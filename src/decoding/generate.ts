// Text generation with the KV cache: the prompts run once, then one token per row per step until every row has
// produced an end-of-sequence token, reached the token limit, or filled the model's positions.
import type { DecoderSession } from './decoder-session.js';
import { tokenChooser, type SamplingOptions } from './sampling.js';
import { OptionError } from '../errors.js';

export interface GenerateOptions extends SamplingOptions {
  /** At most this many new tokens per row. */
  maxNewTokens: number;
  /** Tokens that end a row; the model's end-of-sequence ids when absent. */
  stopTokens?: readonly number[];
  /** Called for each new token as soon as it is chosen (row: its prompt's index). */
  onToken?: (token: number, row: number) => void;
}

export type StopReason = 'eos' | 'max-new-tokens' | 'max-positions';

export interface GenerateResult {
  /** The new tokens of each row, the stop token included when a row stopped at one. */
  tokens: number[][];
  stopReasons: StopReason[];
  /** Seconds spent on the prompts (prefill) and on the token-by-token steps (decode). */
  prefillSeconds: number;
  decodeSeconds: number;
}

/** Generates a continuation of each prompt (token ids); several prompts run as one left-padded batch. */
export async function generate(decoder: DecoderSession, prompts: readonly (readonly number[])[], options: GenerateOptions): Promise<GenerateResult> {
  const { maxNewTokens, onToken } = options;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new OptionError(`max new tokens must be a whole number >= 0, got ${maxNewTokens}`);
  const stop = new Set(options.stopTokens ?? decoder.special.eos);
  const choose = tokenChooser(options);
  const tokens: number[][] = prompts.map(() => []);
  const reasons: (StopReason | null)[] = prompts.map(() => (maxNewTokens === 0 ? 'max-new-tokens' : null));
  const longest = Math.max(...prompts.map((p) => p.length));
  // The n-th new token comes from a run over longest + n - 1 positions.
  const room = decoder.maxPositions === null ? Infinity : decoder.maxPositions - longest + 1;
  if (room < 1) throw new OptionError(`${decoder.source}: a prompt of ${longest} tokens is longer than the model's ${decoder.maxPositions} positions`);

  let started = performance.now();
  let step = await decoder.forward(prompts);
  const prefillSeconds = (performance.now() - started) / 1000;
  started = performance.now();
  for (let n = 1; reasons.includes(null); n++) {
    const next = prompts.map((_, row) => {
      // A finished row keeps stepping with the pad token (the batch moves together); its tokens are not kept.
      if (reasons[row] !== null) return decoder.special.pad;
      const token = choose(step.logits.last(row));
      tokens[row].push(token);
      onToken?.(token, row);
      if (stop.has(token)) reasons[row] = 'eos';
      else if (n >= maxNewTokens) reasons[row] = 'max-new-tokens';
      else if (n >= room) reasons[row] = 'max-positions';
      return token;
    });
    if (reasons.includes(null)) step = await decoder.forward(next.map((t) => [t]), step.state);
  }
  return { tokens, stopReasons: reasons as StopReason[], prefillSeconds, decodeSeconds: (performance.now() - started) / 1000 };
}
