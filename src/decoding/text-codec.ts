// Text <-> token ids for the decoders. Encoding is src/calibration/data's tokenizer (the project has one, chosen
// per model there: byte-level for the sample models, tokenizer.json for user models). Calibration never turns ids
// back into text, so decoding is added here on the same choice: bytes decode as UTF-8, and a tokenizer.json is
// decoded by the same library that encodes it.
import { Tokenizer } from '@huggingface/tokenizers';
import { findModelFile, readJsonObject } from '../calibration/data/model-files.js';
import { chooseTokenizer, type TextTokenizer } from '../calibration/data/tokenizers.js';
import type { OnnxModel } from '../onnx/model.js';

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

/** The model's text codec; fails with a one-line message when the model has no tokenizer the project can use. */
export function textCodecFor(model: OnnxModel, vocab: number): TextCodec {
  const { tokenizer } = chooseTokenizer(model, vocab);
  if (!tokenizer) {
    throw new Error(`${model.source}: no tokenizer.json beside the model (or one folder up), and a vocabulary of ${vocab} is not byte-level`);
  }
  const decode = tokenizer.description === 'bytes' ? decodeBytes : huggingFaceDecoder(model, tokenizer);
  return {
    description: tokenizer.description,
    encode: (text) => tokenizer.encode(text),
    decode,
    byteLength: tokenizer.description === 'bytes' ? (ids) => ids.filter(isByte).length : (ids) => Buffer.byteLength(decode(ids)),
  };
}

const isByte = (id: number): boolean => id >= 0 && id < 256;

function decodeBytes(ids: readonly number[]): string {
  return Buffer.from(ids.filter(isByte)).toString('utf8');
}

/** Decoding for a tokenizer.json: chooseTokenizer's description is the file it loaded. */
function huggingFaceDecoder(model: OnnxModel, tokenizer: TextTokenizer): (ids: readonly number[]) => string {
  const configPath = findModelFile(model, 'tokenizer_config.json');
  const hf = new Tokenizer(readJsonObject(tokenizer.description), configPath ? readJsonObject(configPath) : {});
  return (ids) => hf.decode([...ids], { skip_special_tokens: true });
}
