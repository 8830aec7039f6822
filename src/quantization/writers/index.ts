// One entry point over the three writers: a scheme name (or resolved parameters) picks the writer.
import type { OnnxModel } from '../../onnx/model.js';
import { resolveScheme, type QuantParams, type SchemeOptions, type WriterName } from '../schemes.js';
import type { NodeSelection } from '../select.js';
import type { ActivationRanges, WriterResult } from './common.js';
import { writeDynamic } from './dynamic.js';
import { writeMatMulNBits } from './matmulnbits.js';
import { writeQdq } from './qdq.js';

export type Writer = (model: OnnxModel, selection: NodeSelection, params: QuantParams, activationRanges?: ActivationRanges) => WriterResult;

export const WRITERS: Readonly<Record<WriterName, Writer>> = {
  qdq: writeQdq,
  matmulnbits: writeMatMulNBits,
  dynamic: writeDynamic,
};

export interface QuantizeOptions extends SchemeOptions {
  select?: NodeSelection;
  /** Tensor name -> [min, max]; required by schemes that quantize activations (w8a8). */
  activationRanges?: ActivationRanges;
}

/** Quantizes a model with a named scheme (or resolved parameters); the input model is left untouched. */
export function quantizeModel(model: OnnxModel, scheme: string | QuantParams, options: QuantizeOptions = {}): WriterResult {
  const { select, activationRanges, ...schemeOptions } = options;
  const params = typeof scheme === 'string' ? resolveScheme(scheme, schemeOptions) : scheme;
  return WRITERS[params.writer](model, select ?? {}, params, activationRanges);
}

export type { ActivationRanges, NodeReport, OpsetChange, WriterReport, WriterResult } from './common.js';
export { packMatMulNBits, type NBitsWeights } from './matmulnbits.js';
export { writeDynamic, writeMatMulNBits, writeQdq };
