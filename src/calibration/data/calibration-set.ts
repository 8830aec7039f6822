// The calibration-set contract the statistics collector and the CLI work against (re-exported by index.ts).
import type { Feeds } from '../../runtime/session.js';

export interface CalibrationOptions {
  /** How many samples to use, chosen by a seeded draw; default all. */
  samples?: number;
  /** Tokens per sample for token sets; default the model's fixed sequence length, else min(512, max positions). */
  sequenceLength?: number;
  /** 'chunk' (default): consecutive windows; 'sliding': a window every `stride` tokens (default when stride is set). */
  windowing?: 'chunk' | 'sliding';
  /** Distance between sliding-window starts; default half the sequence length. */
  stride?: number;
  /** Samples per batch of feeds; default 1. */
  batchSize?: number;
  /** Seed of the sample draw; default 0. */
  seed?: number;
  /** Which `<split>.jsonl` of a set folder to read; default 'calibration'. */
  split?: string;
}

export interface CalibrationSet {
  /** Path of the data, for messages and reports. */
  readonly source: string;
  /** 'text' when records were tokenised, 'tokens' when all came as input_ids, 'tensors' for tensor sets. */
  readonly kind: 'text' | 'tokens' | 'tensors';
  /** Samples after selection. */
  readonly sampleCount: number;
  /**
   * Rows along axis 0 over one pass, as the statistics collector counts samples (axis 0 of the first input that
   * has one, else 1 per batch), where that differs from sampleCount: tensor samples that hold a batch of rows.
   */
  readonly rowCount?: number;
  /** Tokens per pass over the set for language models (samples x sequence length); 0 for tensor sets. */
  readonly tokenCount: number;
  /**
   * Model-ready feeds, batchSize samples each (the last batch may be smaller). Re-iterable, same order each time;
   * reads from disk as it goes, so memory does not grow with the set.
   */
  batches(): AsyncIterable<Feeds>;
}
