// The named schemes a user types (`w8a8`, `w8`, `w4`, `w4a8`, `w4-qdq`, `fp16`) and the parameters they resolve
// to. A quantization scheme picks a weight writer and how weights (and, for static QDQ, activations) are
// quantized; options override the bits, block size and symmetry within what the writer and ONNX Runtime can
// execute. `fp16` is a conversion rather than a quantization (fp16.ts): it has no per-node plan and no options.
import { ModelError } from '../onnx/model.js';
import { MAX_BITS, MIN_BITS, type Convention } from './quantizers.js';

/**
 * Bad quantization input as one printable line: a model the writers cannot handle ('bad-model', the default),
 * or an unknown scheme, a bad option, plan or recipe entry ('bad-option').
 */
export class QuantizationError extends ModelError {}

/** An invalid scheme option, plan entry or recipe step. */
export class QuantOptionError extends QuantizationError {
  constructor(message: string) {
    super(message, 'bad-option');
  }
}

/** The weight writers: each rewrites planned nodes (writers/). */
export type WriterName = 'qdq' | 'matmulnbits' | 'dynamic';
/** What a scheme runs: a weight writer, or the float16 conversion of the whole model (fp16.ts). */
export type SchemeWriter = WriterName | 'fp16';

export interface WeightParams {
  /** Code width, 2..8. */
  bits: number;
  symmetric: boolean;
  /** Codes are int (true) or uint. */
  signed: boolean;
  /** Blocks of this many elements along the weight's reduction axis (K); absent means per-channel or per-tensor. */
  blockSize?: number;
  /** Without blocks: one scale per output channel (true) or one for the tensor. */
  perChannel: boolean;
  convention: Convention;
}

/** Activations of static QDQ: 8-bit, per tensor, from calibration ranges. */
export interface ActivationParams {
  signed: boolean;
  symmetric: boolean;
}

export interface QuantParams {
  scheme: SchemeName;
  writer: SchemeWriter;
  weights: WeightParams;
  /** Static QDQ only; present means activation ranges are required. */
  activations?: ActivationParams;
  /** MatMulNBits accuracy_level: 0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8 activations. */
  accuracyLevel: number;
  /** Op types the writer rewrites. */
  opTypes: readonly string[];
  /** K not a multiple of the block size: pad the last block (true, what ORT's quantizer does) or refuse. */
  padK: boolean;
  /** MatMulNBits schemes: also rewrite embedding Gathers (2-D float tables) as GatherBlockQuantized. */
  quantizeEmbeddings: boolean;
}

export interface SchemeOptions {
  bits?: number;
  blockSize?: number;
  symmetric?: boolean;
  /** w4/w4a8: MatMulNBits accuracy_level (0..4). */
  accuracyLevel?: number;
  /** w8a8: activation codes (default uint8, asymmetric, as ORT's default QUInt8). */
  activationType?: 'uint8' | 'int8';
  /** w8a8 / w8 without blocks: per output channel (w8a8 default) or per tensor (w8 default). */
  perChannel?: boolean;
  /** A K that the block size does not divide: 'pad' the last block (default, as ORT) or 'refuse'. */
  padding?: 'pad' | 'refuse';
  /** w4/w4a8: also quantize embedding lookups (Gather of a 2-D float table) as GatherBlockQuantized (default true). */
  quantizeEmbeddings?: boolean;
}

interface SchemeDef {
  summary: string;
  writer: SchemeWriter;
  defaults: { bits: number; symmetric: boolean; blockSize?: number; perChannel: boolean; accuracyLevel: number };
  opTypes: readonly string[];
  /** Bit widths the writer can execute in ONNX Runtime. */
  bits: readonly number[];
  blocks: 'required' | 'optional' | 'never';
  activations: boolean;
}

export const ALL_BITS: readonly number[] = [2, 3, 4, 5, 6, 7, 8];
// ONNX Runtime 1.30's CPU MatMulNBits kernel refuses other widths ("Only 2b, 4b and 8b quantization is supported").
export const NBITS_BITS: readonly number[] = [2, 4, 8];

const DEFS = {
  w8a8: {
    summary: 'static QDQ: int8 weights per channel (symmetric) + uint8/int8 activations per tensor from calibration ranges',
    writer: 'qdq',
    defaults: { bits: 8, symmetric: true, perChannel: true, accuracyLevel: 0 },
    opTypes: ['MatMul', 'Gemm', 'Conv'],
    bits: ALL_BITS,
    blocks: 'optional',
    activations: true,
  },
  w8: {
    summary: 'dynamic int8 (transformers.js "quantized"): DynamicQuantizeLinear + MatMulInteger, int8 weights per tensor',
    writer: 'dynamic',
    defaults: { bits: 8, symmetric: true, perChannel: false, accuracyLevel: 0 },
    opTypes: ['MatMul', 'Gemm'],
    bits: ALL_BITS,
    blocks: 'never',
    activations: false,
  },
  w4: {
    summary: 'MatMulNBits 4-bit weights, block 32, symmetric (transformers.js "q4")',
    writer: 'matmulnbits',
    defaults: { bits: 4, symmetric: true, blockSize: 32, perChannel: false, accuracyLevel: 0 },
    opTypes: ['MatMul', 'Gemm'],
    bits: NBITS_BITS,
    blocks: 'required',
    activations: false,
  },
  w4a8: {
    summary: 'MatMulNBits 4-bit weights, block 32, symmetric, accuracy_level 4 (int8 activations inside the kernel)',
    writer: 'matmulnbits',
    defaults: { bits: 4, symmetric: true, blockSize: 32, perChannel: false, accuracyLevel: 4 },
    opTypes: ['MatMul', 'Gemm'],
    bits: NBITS_BITS,
    blocks: 'required',
    activations: false,
  },
  'w4-qdq': {
    summary: 'blocked int4 DequantizeLinear (opset 21) before MatMul, block 32, symmetric; weights only',
    writer: 'qdq',
    defaults: { bits: 4, symmetric: true, blockSize: 32, perChannel: false, accuracyLevel: 0 },
    opTypes: ['MatMul', 'Gemm'],
    bits: ALL_BITS,
    blocks: 'required',
    activations: false,
  },
  fp16: {
    summary: 'float16 weights and activations (transformers.js "fp16"); graph inputs and outputs stay float32, float32 kept where values overflow float16',
    writer: 'fp16',
    // Not quantization: the weight fields only describe the stored width (16-bit floats, one per element).
    defaults: { bits: 16, symmetric: true, perChannel: false, accuracyLevel: 0 },
    opTypes: [],
    bits: [16],
    blocks: 'never',
    activations: false,
  },
} as const satisfies Record<string, SchemeDef>;

export type SchemeName = keyof typeof DEFS;

export const SCHEME_NAMES: readonly SchemeName[] = Object.keys(DEFS) as SchemeName[];

/** The schemes that quantize weights through a per-node plan (all but the float16 conversion). */
export const WEIGHT_SCHEME_NAMES: readonly SchemeName[] = SCHEME_NAMES.filter((n) => DEFS[n].writer !== 'fp16');

/** One line per scheme, for help texts. */
export function describeSchemes(): { name: SchemeName; summary: string }[] {
  return SCHEME_NAMES.map((name) => ({ name, summary: DEFS[name].summary }));
}

export function isSchemeName(name: string): name is SchemeName {
  return Object.hasOwn(DEFS, name);
}

export const MIN_BLOCK = 16;
export const MAX_BLOCK = 256;

/** The parameters of a named scheme with options applied; throws QuantizationError on anything invalid. */
export function resolveScheme(name: string, options: SchemeOptions = {}): QuantParams {
  if (!isSchemeName(name)) {
    throw new QuantOptionError(`unknown quantization scheme '${name}' (known: ${SCHEME_NAMES.join(', ')})`);
  }
  const def: SchemeDef = DEFS[name];
  if (def.writer === 'fp16') return float16Params(name, options);
  const bits = options.bits ?? def.defaults.bits;
  if (!Number.isInteger(bits) || bits < MIN_BITS || bits > MAX_BITS) {
    throw new QuantOptionError(`scheme ${name}: bits must be an integer from ${MIN_BITS} to ${MAX_BITS}, got ${bits}`);
  }
  if (!def.bits.includes(bits)) {
    throw new QuantOptionError(
      `scheme ${name}: ${bits}-bit MatMulNBits does not run in ONNX Runtime 1.30 (CPU runs ${def.bits.join(', ')} bits); ` +
        `use w4-qdq or w8a8 with bits=${bits} instead`,
    );
  }
  const blockSize = options.blockSize ?? def.defaults.blockSize;
  if (blockSize !== undefined) {
    if (def.blocks === 'never') throw new QuantOptionError(`scheme ${name} quantizes per tensor or per channel: it takes no block size`);
    checkBlockSize(`scheme ${name}`, blockSize);
  }
  const accuracyLevel = options.accuracyLevel ?? def.defaults.accuracyLevel;
  if (options.accuracyLevel !== undefined && def.writer !== 'matmulnbits') {
    throw new QuantOptionError(`scheme ${name}: accuracy_level applies to MatMulNBits schemes only (w4, w4a8)`);
  }
  if (!Number.isInteger(accuracyLevel) || accuracyLevel < 0 || accuracyLevel > 4) {
    throw new QuantOptionError(`scheme ${name}: accuracy_level must be 0..4, got ${accuracyLevel}`);
  }
  if (options.activationType !== undefined && !def.activations) {
    throw new QuantOptionError(`scheme ${name} quantizes weights only: it takes no activation type`);
  }
  if (options.activationType !== undefined && options.activationType !== 'uint8' && options.activationType !== 'int8') {
    throw new QuantOptionError(`scheme ${name}: activation type must be uint8 or int8, got '${options.activationType}'`);
  }
  if (options.padding !== undefined && options.padding !== 'pad' && options.padding !== 'refuse') {
    throw new QuantOptionError(`scheme ${name}: padding must be 'pad' or 'refuse', got '${options.padding}'`);
  }
  if (options.quantizeEmbeddings && def.writer !== 'matmulnbits') {
    throw new QuantOptionError(`scheme ${name}: embedding quantization (GatherBlockQuantized) applies to MatMulNBits schemes only (w4, w4a8)`);
  }
  const symmetric = options.symmetric ?? def.defaults.symmetric;
  // MatMulNBits and blocked weights follow ORT's MatMulNBits quantizer (int4 signed when symmetric, uint4 with
  // zero points otherwise); per-channel/per-tensor 8-bit follows quantize_static/quantize_dynamic (int8
  // symmetric, uint8 asymmetric).
  const convention: Convention = blockSize !== undefined ? 'mlas' : 'onnx';
  const weights: WeightParams = {
    bits,
    symmetric,
    signed: def.writer === 'matmulnbits' ? false : symmetric,
    perChannel: options.perChannel ?? def.defaults.perChannel,
    convention,
    ...(blockSize !== undefined ? { blockSize } : {}),
  };
  const params: QuantParams = {
    scheme: name,
    writer: def.writer,
    weights,
    accuracyLevel,
    opTypes: def.opTypes,
    padK: (options.padding ?? 'pad') === 'pad',
    quantizeEmbeddings: def.writer === 'matmulnbits' && (options.quantizeEmbeddings ?? true),
  };
  if (def.activations) {
    const signed = options.activationType === 'int8';
    params.activations = { signed, symmetric: false };
  }
  return params;
}

/** The fp16 conversion's parameters: it takes none of the quantization options. */
function float16Params(name: SchemeName, options: SchemeOptions): QuantParams {
  const given = Object.entries(options).filter(([, v]) => v !== undefined).map(([k]) => k);
  if (given.length) throw new QuantOptionError(`scheme ${name} converts to float16 and takes no quantization options (got ${given.join(', ')})`);
  const d = DEFS.fp16.defaults;
  return {
    scheme: name,
    writer: 'fp16',
    weights: { bits: d.bits, symmetric: d.symmetric, signed: true, perChannel: d.perChannel, convention: 'onnx' },
    accuracyLevel: d.accuracyLevel,
    opTypes: DEFS.fp16.opTypes,
    padK: false,
    quantizeEmbeddings: false,
  };
}

/** Throws unless the block size is one MatMulNBits (and blocked DequantizeLinear here) accepts; `who` starts the message. */
export function checkBlockSize(who: string, blockSize: number): void {
  const pow2 = Number.isInteger(blockSize) && blockSize > 0 && (blockSize & (blockSize - 1)) === 0;
  if (!pow2 || blockSize < MIN_BLOCK || blockSize > MAX_BLOCK) {
    throw new QuantOptionError(
      `${who}: block size must be a power of two from ${MIN_BLOCK} to ${MAX_BLOCK} (as MatMulNBits requires), got ${blockSize}`,
    );
  }
}
