// The optimize pass: a decoder's blocks onto ONNX Runtime's fused CPU kernels (src/optimize/), checked against
// the input in ONNX Runtime before it may be written. A transform; the runner saves and verifies the result.
import { optimizeDecoder, type OptimizeReport } from '../optimize/optimize.js';
import { StepOptions } from './options.js';
import type { Pass } from './types.js';

export interface OptimizePassOptions {
  /** Pack separate q/k/v projections into one product (default true). */
  packQkv?: boolean;
}

export const optimizePass: Pass<OptimizePassOptions, OptimizeReport> = {
  name: 'optimize',
  kind: 'transform',
  summary: "decoder blocks onto ONNX Runtime's fused kernels (GroupQueryAttention, Skip/SimplifiedLayerNormalization), checked against the input",
  parse(raw, where) {
    const o = new StepOptions(raw, where);
    const packQkv = o.boolean('packQkv');
    o.done();
    return packQkv === undefined ? {} : { packQkv };
  },
  async run(state, options, env) {
    const { model, report } = await optimizeDecoder(state.model, { session: env.session, ...options });
    return { state: { ...state, model, notes: [...state.notes, ...report.notes] }, report };
  },
};
