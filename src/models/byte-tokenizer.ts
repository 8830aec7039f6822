// The Hugging Face tokenizer files of the byte-level sample models (ids 0-255 are the UTF-8 bytes, then BOS, EOS,
// PAD), so that transformers.js, @huggingface/tokenizers and Python's tokenizers load them and produce the ids the
// project's byte codec produces (src/calibration/data/tokenizers.ts): BOS, then one id per byte.
//
// The model is GPT-2's byte-level BPE with no merges: the ByteLevel pre-tokenizer maps every byte to one printable
// character (GPT-2's bytes_to_unicode table) and the vocabulary gives that character the byte's value as its id;
// with no merges every character stays a token of its own. The ByteLevel decoder maps the characters back to bytes.
// The template post-processor puts BOS first, as the byte codec does.
import { SPECIAL_TOKENS } from './parts.js';

/** The special tokens' texts. Unlikely in real text: a literal occurrence would be read as the special token. */
export const SPECIAL_TOKEN_TEXT = { bos: '<|bos|>', eos: '<|eos|>', pad: '<|pad|>' } as const;

/** GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others are moved to U+0100 upwards. */
export function byteCharacters(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const chars: string[] = [];
  let moved = 0;
  for (let b = 0; b < 256; b++) chars.push(String.fromCodePoint(printable(b) ? b : 256 + moved++));
  return chars;
}

const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };

/** tokenizer.json for a byte-level vocabulary with SPECIAL_TOKENS. */
export function byteTokenizerJson(): Record<string, unknown> {
  const { bos, eos, pad } = SPECIAL_TOKEN_TEXT;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(SPECIAL_TOKENS.bos, bos), special(SPECIAL_TOKENS.eos, eos), special(SPECIAL_TOKENS.pad, pad)],
    normalizer: null,
    // GPT-2's split pattern only cuts the text into shorter words; with no merges the ids are the same either way.
    pre_tokenizer: byteLevel,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { [bos]: { id: bos, ids: [SPECIAL_TOKENS.bos], tokens: [bos] } },
    },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(byteCharacters().map((c, id) => [c, id])),
      merges: [],
    },
  };
}

/** tokenizer_config.json: the generic fast tokenizer with the special tokens by name, BOS added, no EOS. */
export function byteTokenizerConfig(maxLength: number): Record<string, unknown> {
  const { bos, eos, pad } = SPECIAL_TOKEN_TEXT;
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: bos,
    eos_token: eos,
    pad_token: pad,
    unk_token: null,
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: maxLength,
    padding_side: 'left',
  };
}

/** generation_config.json: the special ids, greedy by default. */
export function generationConfig(): Record<string, unknown> {
  return { bos_token_id: SPECIAL_TOKENS.bos, eos_token_id: SPECIAL_TOKENS.eos, pad_token_id: SPECIAL_TOKENS.pad, do_sample: false };
}

/** The model card's section on the folder's files and on loading it in transformers.js. */
export function folderCardSection(name: string): string {
  const { bos, eos, pad } = SPECIAL_TOKEN_TEXT;
  return `## Files (a Hugging Face folder)

| file | what |
|---|---|
| \`onnx/model.onnx\` | the float32 model (transformers.js's default file name) |
| \`config.json\` | Hugging Face config; \`"tokenizer": "bytes"\` tells onnx-compress to read ids 0-255 as bytes |
| \`generation_config.json\` | BOS ${SPECIAL_TOKENS.bos}, EOS ${SPECIAL_TOKENS.eos}, PAD ${SPECIAL_TOKENS.pad}; greedy |
| \`tokenizer.json\`, \`tokenizer_config.json\` | the byte-level vocabulary for other loaders: GPT-2's byte-level BPE with no merges, so every UTF-8 byte is one token whose id is the byte's value, after \`${bos}\` (${SPECIAL_TOKENS.bos}); \`${eos}\` = ${SPECIAL_TOKENS.eos}, \`${pad}\` = ${SPECIAL_TOKENS.pad}. It gives the ids onnx-compress's byte codec gives (test/transformers-js.test.ts). |

\`onnx-compress quantize models/${name}/onnx/model.onnx --scheme w4 --out FOLDER/\` writes a folder of the same
layout with \`onnx/model_q4.onnx\`, which transformers.js loads as the \`q4\` dtype:

\`\`\`js
import { env, pipeline } from '@huggingface/transformers';
env.allowRemoteModels = false;
env.localModelPath = '/path/to/parent-of-FOLDER';
const generate = await pipeline('text-generation', 'FOLDER', { dtype: 'q4' });
console.log(await generate('The whale ', { max_new_tokens: 20, do_sample: false }));
\`\`\`
`;
}
