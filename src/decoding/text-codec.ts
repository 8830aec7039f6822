// Text <-> token ids for the decoders. The tokenizer is chosen per model as src/calibration/data chooses it
// (byte-level for the sample models, tokenizer.json for user models), so that calibration, scoring and generation
// read text the same way. A tokenizer.json is loaded once per model by src/onnx/model-folder.ts and both encodes
// and decodes here; bytes decode as UTF-8.
import { chooseTokenizer, isByteLevel } from '../calibration/data/tokenizers.js';
import { ModelError, type OnnxModel } from '../onnx/model.js';
import { modelFolder } from '../onnx/model-folder.js';

export interface TextCodec {
  /** 'bytes', or the tokenizer.json path: for messages and reports. */
  readonly description: string;
  /** A text's ids, with the special tokens the tokenizer puts around a document (BOS...). */
  encode(text: string): number[];
  /** Ids back to text, special tokens left out; an incomplete UTF-8 sequence at the end shows as U+FFFD. */
  decode(ids: readonly number[]): string;
  /** UTF-8 bytes the ids stand for: exact for byte-level vocabularies, the decoded text's length otherwise. */
  byteLength(ids: readonly number[]): number;
}

/** The model's text codec; fails with a one-line ModelError when the model has no tokenizer the project can use. */
export function textCodecFor(model: OnnxModel, vocab: number): TextCodec {
  const folder = modelFolder(model);
  // chooseTokenizer's rule: config.json's "tokenizer": "bytes" first, then a tokenizer.json, then a byte vocabulary.
  const tokenizerPath = folder.tokenizerPath;
  if (tokenizerPath !== undefined && !isByteLevel(folder.config ?? {}, vocab, true)) {
    const hf = folder.tokenizer!;
    const decode = (ids: readonly number[]) => hf.decode([...ids], { skip_special_tokens: true });
    return {
      description: tokenizerPath,
      encode: (text) => hf.encode(text).ids,
      decode,
      byteLength: (ids) => Buffer.byteLength(decode(ids)),
    };
  }
  const { tokenizer } = chooseTokenizer(model, vocab);
  if (!tokenizer || tokenizer.description !== 'bytes') {
    throw new ModelError(`${model.source}: no tokenizer.json beside the model (or one folder up), and a vocabulary of ${vocab} is not byte-level`);
  }
  return {
    description: tokenizer.description,
    encode: (text) => tokenizer.encode(text),
    decode: decodeBytes,
    byteLength: (ids) => ids.filter(isByte).length,
  };
}

/** A prompt's ids as a decoder reads them: the tokenizer's, with the model's BOS put in front where the tokenizer left it out. */
export function promptIds(codec: Pick<TextCodec, 'encode'>, text: string, bos: number | null): number[] {
  const ids = codec.encode(text);
  return bos !== null && ids[0] !== bos ? [bos, ...ids] : ids;
}

const isByte = (id: number): boolean => id >= 0 && id < 256;

function decodeBytes(ids: readonly number[]): string {
  return Buffer.from(ids.filter(isByte)).toString('utf8');
}
