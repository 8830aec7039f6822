// The verify pass: the saved result opened in ONNX Runtime and run beside the input model on a calibration batch
// (from an earlier pass's set) or on inputs generated from the signature. Below the quality gate's thresholds
// (the step's minCosine / minTop1, else verify.ts's DEFAULT_GATE) it fails the run, unless the step says
// `gate: false`. The runner verifies every model it writes, with this pass's defaults when a recipe does not list it.
import { calibrationInputs, generatedInputs, verifyModel, type VerificationInputs, type VerificationReport } from '../quantization/verify.js';
import { StepOptions } from './options.js';
import type { Pass } from './types.js';

export interface VerifyPassOptions {
  /** Fail when any output's cosine similarity with the original's is below this. */
  minCosine?: number;
  /** Language models: fail when top-1 agreement with the original is below this (0-1). */
  minTop1Agreement?: number;
  /** Calibration batches to verify on (default 1). */
  batches?: number;
  /** false: accept any result that loads and runs (the report says what it missed). */
  gate?: boolean;
}

export const verifyPass: Pass<VerifyPassOptions, VerificationReport> = {
  name: 'verify',
  kind: 'check',
  summary: 'run the written model beside the original in ONNX Runtime: outputs, top-1 agreement, KL; fail below the quality gate',
  parse(raw, where) {
    const o = new StepOptions(raw, where);
    const minCosine = o.number('minCosine', { min: -1, max: 1 });
    const minTop1Agreement = o.number('minTop1', { min: 0, max: 1 });
    const batches = o.number('batches', { integer: true, min: 1 });
    const gate = o.boolean('gate');
    o.done();
    return {
      ...(minCosine !== undefined ? { minCosine } : {}),
      ...(minTop1Agreement !== undefined ? { minTop1Agreement } : {}),
      ...(batches ? { batches } : {}),
      ...(gate !== undefined ? { gate } : {}),
    };
  },
  async run(state, options, env) {
    const held = state.verificationSet && state.verificationSet !== state.calibrationSet && state.calibrationSet !== undefined;
    const inputs: VerificationInputs = state.verificationSet
      ? await calibrationInputs(state.verificationSet, options.batches ?? 1, held ? 'held-out' : 'calibration')
      : generatedInputs(env.original);
    const report = await verifyModel(env.original, state.file!, inputs, {
      ...env.session,
      ...(options.minCosine !== undefined ? { minCosine: options.minCosine } : {}),
      ...(options.minTop1Agreement !== undefined ? { minTop1Agreement: options.minTop1Agreement } : {}),
      ...(options.gate !== undefined ? { gate: options.gate } : {}),
    });
    return { state, report };
  },
};
