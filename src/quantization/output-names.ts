// Where a quantized model goes. A model inside a Hugging Face folder (`<folder>/onnx/model.onnx`, config.json
// beside `onnx/` or in it) quantized into a folder gets the file name transformers.js looks for, so the folder
// loads with `dtype: 'q4'` (etc.) unchanged:
//   w8   dynamic int8, 8 bits                     -> <stem>_quantized.onnx   (dtype 'q8')
//   w4   MatMulNBits 4 bits, block 32, symmetric  -> <stem>_q4.onnx          (dtype 'q4')
//   w8a8 static QDQ, 8 bits                       -> <stem>_int8.onnx / <stem>_uint8.onnx by activation type
//   anything else                                 -> <stem>_<scheme>.onnx
// `<stem>` is the input's name without `.onnx` (model, decoder_model_merged...). Only the model (and its
// `_data` file) is written: config.json, tokenizer files and other variants are left where they are. Given a
// Hugging Face root folder as the output (one holding `onnx/`), the file goes into its `onnx/`.
// Anything else: `out` is the output file's path.
import { statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { huggingFaceLayout, type HuggingFaceLayout } from '../onnx/model-folder.js';
import { QuantizationError, type QuantParams } from './schemes.js';

/** The folder holding config.json and onnx/, the onnx/ folder and its config.json (src/onnx/model-folder.ts). */
export type HuggingFaceFolder = HuggingFaceLayout;

export interface OutputTarget {
  /** The .onnx file to write. */
  path: string;
  /** 'transformers.js': the name was chosen by the rules above; 'path': `out` was the file path. */
  naming: 'transformers.js' | 'path';
}

/** The Hugging Face folder a model file sits in, or null when it is not laid out as one. */
export function huggingFaceFolder(modelPath: string): HuggingFaceFolder | null {
  return huggingFaceLayout(modelPath);
}

/** The suffix transformers.js gives a model quantized with these parameters ('q4', 'quantized', ...). */
export function transformersJsSuffix(params: QuantParams): string {
  const w = params.weights;
  if (params.scheme === 'w8' && params.writer === 'dynamic' && w.bits === 8) return 'quantized';
  if (params.scheme === 'w4' && params.writer === 'matmulnbits' && w.bits === 4 && w.blockSize === 32 && w.symmetric) return 'q4';
  if (params.scheme === 'w8a8' && params.activations && w.bits === 8) return params.activations.signed ? 'int8' : 'uint8';
  return params.scheme;
}

/** `model.onnx` -> `model_q4.onnx` (for w4), keeping any other stem. */
export function transformersJsFileName(modelPath: string, params: QuantParams): string {
  const stem = basename(modelPath).replace(/\.onnx$/i, '');
  return `${stem}_${transformersJsSuffix(params)}.onnx`;
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The output file for `out`: a folder (existing, or a path ending in '/') takes the transformers.js name when
 * the model is in a Hugging Face folder, and is refused otherwise (no name to choose); any other `out` is the file.
 */
export function resolveOutput(modelPath: string, out: string, params: QuantParams): OutputTarget {
  if (out === '') throw new QuantizationError('--out: an output path is required');
  const folder = isFolder(out) || /[\\/]$/.test(out);
  if (!folder) {
    if (!/\.onnx$/i.test(out)) {
      throw new QuantizationError(`--out ${out}: not a folder, and a model file should end in .onnx`);
    }
    return { path: out, naming: 'path' };
  }
  if (!huggingFaceFolder(modelPath)) {
    throw new QuantizationError(
      `--out ${out}: is a folder, but ${modelPath} is not in a Hugging Face model folder (<folder>/onnx/model.onnx with config.json), so there is no transformers.js name to use; give the output file's path`,
    );
  }
  const dir = isFolder(join(out, 'onnx')) ? join(out, 'onnx') : out;
  return { path: join(dir, transformersJsFileName(modelPath, params)), naming: 'transformers.js' };
}
