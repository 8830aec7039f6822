// Text -> token ids for a language model. Two tokenizers, chosen per model in `chooseTokenizer`:
//   - byte-level: the UTF-8 bytes of the text are the ids (0-255), after an optional BOS from config.json's
//     `bos_token_id` (the project's sample models: 256 byte ids + BOS/EOS/PAD);
//   - Hugging Face: `tokenizer.json` (+ `tokenizer_config.json`) beside the model or one folder up, run offline
//     by @huggingface/tokenizers, which adds BOS or other special tokens as the tokenizer's post-processor says.
import { modelFolder } from '../../onnx/model-folder.js';
import type { OnnxModel } from '../../onnx/model.js';

export interface TextTokenizer {
  /** 'bytes', or the tokenizer.json path: for messages. */
  readonly description: string;
  /** One document's ids, with the special tokens this tokenizer puts around a document. */
  encode(text: string): number[];
}

export interface TokenizerChoice {
  /** Absent when the model has neither a tokenizer.json nor a byte-level vocabulary. */
  tokenizer?: TextTokenizer;
  /** End-of-sequence id that marks document boundaries in windowed token streams; absent if the model has none. */
  eosId?: number;
}

// A byte-level vocabulary is the 256 byte values followed by a few special ids. Bigger vocabularies are
// subword tokenizers that happen to lack a tokenizer.json, where feeding bytes would be silently wrong.
const BYTE_VOCAB_MIN = 256;
const BYTE_VOCAB_MAX_SPECIALS = 16;
const SPECIAL_ID_KEYS = ['bos_token_id', 'eos_token_id', 'pad_token_id', 'unk_token_id'];

/**
 * Whether a model's text is tokenised as raw bytes. The one place that decides it:
 *   1. config.json `"tokenizer": "bytes"` says so outright;
 *   2. otherwise a tokenizer.json beside the model wins (the caller checks it first);
 *   3. otherwise a vocabulary of 256..272 ids whose special ids in config.json (bos/eos/pad/unk) are all >= 256,
 *      so that ids 0-255 are free to mean bytes.
 */
export function isByteLevel(config: Record<string, unknown>, vocab: number | null, hasTokenizerJson: boolean): boolean {
  if (config.tokenizer === 'bytes') return true;
  if (hasTokenizerJson || vocab === null) return false;
  if (vocab < BYTE_VOCAB_MIN || vocab > BYTE_VOCAB_MIN + BYTE_VOCAB_MAX_SPECIALS) return false;
  return SPECIAL_ID_KEYS.flatMap((k) => configIds(config[k])).every((id) => id >= BYTE_VOCAB_MIN);
}

/** Picks the model's tokenizer and end-of-sequence id. `vocab` is the model's vocabulary size, when known. */
export function chooseTokenizer(model: OnnxModel, vocab: number | null): TokenizerChoice {
  const folder = modelFolder(model);
  const config = folder.config ?? {};
  const configEos = configIds(config.eos_token_id)[0];
  if (isByteLevel(config, vocab, folder.tokenizerPath !== undefined)) {
    return { tokenizer: byteTokenizer(configIds(config.bos_token_id)[0]), eosId: configEos };
  }
  if (folder.tokenizerPath) {
    // Built once per model by the model folder; a tokenizer.json it cannot load is a ModelError naming the file.
    const hf = folder.tokenizer!;
    const eosToken = tokenText(folder.tokenizerConfig?.eos_token);
    const eosId = eosToken === undefined ? undefined : hf.token_to_id(eosToken);
    return { tokenizer: { description: folder.tokenizerPath, encode: (text) => hf.encode(text).ids }, eosId: configEos ?? eosId };
  }
  return { eosId: configEos };
}

function byteTokenizer(bosId: number | undefined): TextTokenizer {
  const encoder = new TextEncoder();
  return {
    description: 'bytes',
    encode(text) {
      const bytes = encoder.encode(text);
      const ids = new Array<number>(bytes.length + (bosId === undefined ? 0 : 1));
      let at = 0;
      if (bosId !== undefined) ids[at++] = bosId;
      for (const b of bytes) ids[at++] = b;
      return ids;
    },
  };
}

/** config.json ids are a number or, in newer configs (e.g. eos_token_id), a list of numbers. */
function configIds(value: unknown): number[] {
  const list = Array.isArray(value) ? value : [value];
  return list.filter((v): v is number => Number.isSafeInteger(v));
}

/** tokenizer_config.json writes special tokens as a string or as an AddedToken object with `content`. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}
