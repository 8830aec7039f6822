// Where a compressed model goes. `--out` is a model file (anything ending in .onnx) or a Hugging Face folder (an
// existing folder, or a path ending in '/'), for any input. A folder gets the standard layout transformers.js loads:
// config.json, generation_config.json and the tokenizer files in the folder, the model in `onnx/` (given
// `<folder>/onnx/` itself, the folder above it is the root). The model's file name is transformers.js's where
// transformers.js has a dtype for what the scheme writes (its DEFAULT_DTYPE_SUFFIX_MAPPING, 4.x):
//   fp16                                           -> <stem>_fp16.onnx       (dtype 'fp16')
//   w8   dynamic int8, 8 bits                      -> <stem>_quantized.onnx  (dtype 'q8')
//   w4   MatMulNBits 4 bits, block 32, symmetric   -> <stem>_q4.onnx         (dtype 'q4')
//   w8a8 static QDQ, 8 bits                        -> <stem>_int8.onnx / <stem>_uint8.onnx by activation type
// and a name of ours otherwise, which transformers.js never picks by itself: <stem>_<scheme>.onnx (w4a8, w4-qdq, w4
// with other blocks...), <stem>_compressed.onnx for a plan file's mix. `<stem>` is the input's name without
// `.onnx` when the input is in a Hugging Face folder (model, decoder_model_merged...), else `model`, the name
// transformers.js loads by default.
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { huggingFaceLayout, type HuggingFaceLayout } from '../onnx/model-folder.js';
import { QuantizationError, type QuantParams } from './schemes.js';

/** The folder holding config.json and onnx/, the onnx/ folder and its config.json (src/onnx/model-folder.ts). */
export type HuggingFaceFolder = HuggingFaceLayout;

/** transformers.js 4.x: dtype -> the suffix of the file it loads for it (`onnx/model<suffix>.onnx`). */
export const TRANSFORMERS_JS_SUFFIXES = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  bnb4: '_bnb4',
  q4f16: '_q4f16',
} as const;

export type TransformersJsDtype = keyof typeof TRANSFORMERS_JS_SUFFIXES;

/**
 * 'transformers.js': a folder output named for transformers.js's `dtype`; 'onnx-compress': a folder output with a
 * name of ours (transformers.js has no dtype for it); 'path': `--out` was the file's path.
 */
export type OutputNaming = 'transformers.js' | 'onnx-compress' | 'path';

export interface OutputTarget {
  /** The .onnx file to write. */
  path: string;
  naming: OutputNaming;
  /** transformers.js's dtype for the file, when naming is 'transformers.js'. */
  dtype?: TransformersJsDtype;
  /** A folder output: its root (config and tokenizer files) and onnx/ folder (the model); null for a file. */
  folder: { root: string; onnxDir: string } | null;
}

/** The Hugging Face folder a model file sits in, or null when it is not laid out as one. */
export function huggingFaceFolder(modelPath: string): HuggingFaceFolder | null {
  return huggingFaceLayout(modelPath);
}

/** The transformers.js dtype whose file these parameters write, or undefined when transformers.js has none. */
export function transformersJsDtype(params: QuantParams | undefined): TransformersJsDtype | undefined {
  if (!params) return undefined;
  const w = params.weights;
  if (params.scheme === 'fp16') return 'fp16';
  if (params.scheme === 'w8' && params.writer === 'dynamic' && w.bits === 8) return 'q8';
  if (params.scheme === 'w4' && params.writer === 'matmulnbits' && w.bits === 4 && w.blockSize === 32 && w.symmetric) return 'q4';
  if (params.scheme === 'w8a8' && params.activations && w.bits === 8) return params.activations.signed ? 'int8' : 'uint8';
  return undefined;
}

/** The model file's name in a folder output, and whose convention it follows. */
export function outputFileName(modelPath: string, params: QuantParams | undefined): { name: string; naming: OutputNaming; dtype?: TransformersJsDtype } {
  const stem = huggingFaceFolder(modelPath) ? basename(modelPath).replace(/\.onnx$/i, '') : 'model';
  const dtype = transformersJsDtype(params);
  if (dtype !== undefined) return { name: `${stem}${TRANSFORMERS_JS_SUFFIXES[dtype]}.onnx`, naming: 'transformers.js', dtype };
  return { name: `${stem}_${params?.scheme ?? 'compressed'}.onnx`, naming: 'onnx-compress' };
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The output for `out`: a folder (existing, or a path ending in '/') is a Hugging Face folder, named as above;
 * anything else is the model file's path and must end in .onnx. `params`: the scheme's, undefined for a plan file.
 */
export function resolveOutput(modelPath: string, out: string, params: QuantParams | undefined): OutputTarget {
  if (out === '') throw new QuantizationError('--out: an output path is required');
  if (!isFolder(out) && !/[\\/]$/.test(out)) {
    if (!/\.onnx$/i.test(out)) throw new QuantizationError(`--out ${out}: not a folder, and a model file should end in .onnx`);
    if (existsSync(out) && !statSync(out).isFile()) throw new QuantizationError(`--out ${out}: exists and is not a file`);
    return { path: out, naming: 'path', folder: null };
  }
  const given = resolve(out);
  // `<root>/onnx/` names the model's folder inside a Hugging Face folder; any other folder is the root.
  const root = basename(given) === 'onnx' ? dirname(given) : given;
  const onnxDir = join(root, 'onnx');
  const { name, naming, dtype } = outputFileName(modelPath, params);
  return { path: join(onnxDir, name), naming, ...(dtype ? { dtype } : {}), folder: { root, onnxDir } };
}
