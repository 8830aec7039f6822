// Training data for byte-level decoders: JSONL text records become token documents [BOS, bytes...], and a
// seeded sampler draws windows of sequence + 1 tokens from them (inputs = window[0..T), targets = window[1..T]).
import { readFileSync } from 'node:fs';
import { OnnxCompressError, OptionError } from '../errors.js';
import { seededRandom } from '../util/prng.js';

/** The byte-level vocabulary of the sample models: ids 0-255 are bytes, then BOS, EOS and PAD. */
export const BYTE_VOCAB = { size: 259, bos: 256, eos: 257, pad: 258 } as const;

/** The `text` of every record of a JSON Lines file (records without text are skipped). */
export function readJsonlTexts(path: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as { text?: unknown };
    if (typeof r.text === 'string') out.push(r.text);
  }
  return out;
}

/** A document as byte-level tokens: BOS, then its UTF-8 bytes, then EOS. */
export function byteTokens(text: string): Uint16Array {
  const bytes = Buffer.from(text, 'utf8');
  const out = new Uint16Array(bytes.length + 2);
  out[0] = BYTE_VOCAB.bos;
  out.set(bytes, 1);
  out[out.length - 1] = BYTE_VOCAB.eos;
  return out;
}

export interface TokenBatch {
  batch: number;
  sequence: number;
  /** [batch, sequence] inputs, row-major. */
  inputs: Int32Array;
  /** [batch, sequence] next-token targets. */
  targets: Int32Array;
  /** Per row, the position id of its first token (default 0: positions 0..sequence-1). */
  positionOffsets?: Int32Array;
}

export interface NamedDocuments {
  name: string;
  documents: Uint16Array[];
}

/**
 * Draws training batches: each row picks a set uniformly (so small sets are not drowned by large ones), a
 * document of it uniformly, and a window start uniformly among those that fit; documents shorter than a window
 * are padded with PAD, whose targets the loss ignores (-100). The same seed gives the same batches.
 */
export class WindowSampler {
  private readonly random: () => number;
  readonly drawn = new Map<string, number>();

  /**
   * `maxPositions`: when given, each row's position ids start at a random offset in [0, maxPositions -
   * sequence], so a model with learned absolute positions trains all of them on short windows.
   */
  constructor(
    private readonly sets: readonly NamedDocuments[],
    readonly sequence: number,
    seed: number,
    private readonly maxPositions?: number,
  ) {
    if (maxPositions !== undefined && maxPositions < sequence) throw new OptionError(`WindowSampler: ${maxPositions} positions cannot hold windows of ${sequence}`);
    if (sets.length === 0 || sets.some((s) => s.documents.length === 0)) throw new OnnxCompressError('bad-data', 'WindowSampler: every set needs documents');
    this.random = seededRandom(seed);
  }

  next(batch: number): TokenBatch {
    const T = this.sequence;
    const inputs = new Int32Array(batch * T);
    const targets = new Int32Array(batch * T);
    const offsets = this.maxPositions === undefined ? undefined : new Int32Array(batch);
    for (let r = 0; r < batch; r++) {
      const set = this.sets[Math.floor(this.random() * this.sets.length)];
      const doc = set.documents[Math.floor(this.random() * set.documents.length)];
      const starts = Math.max(1, doc.length - T);
      const start = Math.floor(this.random() * starts);
      for (let j = 0; j < T; j++) {
        const a = start + j;
        inputs[r * T + j] = a < doc.length ? doc[a] : BYTE_VOCAB.pad;
        targets[r * T + j] = a + 1 < doc.length ? doc[a + 1] : -100;
      }
      if (offsets) offsets[r] = Math.floor(this.random() * (this.maxPositions! - T + 1));
      this.drawn.set(set.name, (this.drawn.get(set.name) ?? 0) + 1);
    }
    return { batch, sequence: T, inputs, targets, ...(offsets ? { positionOffsets: offsets } : {}) };
  }
}

/**
 * Fixed validation windows: the first `perSet` documents' leading windows (BOS first, as evaluation scores a
 * document), so the same text is scored at every check.
 */
export function validationBatches(docs: readonly Uint16Array[], sequence: number, perBatch: number, count: number): TokenBatch[] {
  const rows = docs.slice(0, count);
  const out: TokenBatch[] = [];
  for (let at = 0; at < rows.length; at += perBatch) {
    const chunk = rows.slice(at, at + perBatch);
    const inputs = new Int32Array(chunk.length * sequence);
    const targets = new Int32Array(chunk.length * sequence);
    chunk.forEach((doc, r) => {
      for (let j = 0; j < sequence; j++) {
        inputs[r * sequence + j] = j < doc.length ? doc[j] : BYTE_VOCAB.pad;
        // EOS is not a byte: it is not scored, so the loss per target is bits per byte.
        targets[r * sequence + j] = j + 1 < doc.length && doc[j + 1] < 256 ? doc[j + 1] : -100;
      }
    });
    out.push({ batch: chunk.length, sequence, inputs, targets });
  }
  return out;
}
