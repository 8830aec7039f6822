// The compare-calib pass: several calibration sets through the input model, their activation ranges compared
// per layer, and a sets x domains perplexity matrix of the model quantized with each set. An analysis of the
// input file, so it runs before any pass that changes the model.
import { compareCalibrationSets, type CompareCalibReport, type CompareOptions } from '../calibration/compare.js';
import { CLIP_METHODS } from '../quantization/ranges.js';
import { StepOptions } from './options.js';
import type { Pass } from './types.js';

/** The comparison's options; `onProgress` (API callers only) gets its detailed events instead of the run's progress. */
export type ComparePassOptions = Omit<CompareOptions, 'threads'>;

export const compareCalibPass: Pass<ComparePassOptions, CompareCalibReport> = {
  name: 'compare-calib',
  kind: 'analysis',
  readsInputFile: true,
  summary: 'compare calibration sets: activation-range spread per layer, outliers, perplexity of the model quantized with each set',
  parse(raw, where) {
    const o = new StepOptions(raw, where);
    const sets = o.strings('sets') ?? o.fail('"sets" (calibration sets to compare) is required');
    const evalSets = o.strings('eval');
    const samples = o.number('samples', { integer: true, min: 1 });
    const sequenceLength = o.number('seqLen', { integer: true, min: 1 });
    const seed = o.number('seed', { integer: true, min: 0 });
    const batchSize = o.number('batch', { integer: true, min: 1 });
    const scheme = o.string('scheme');
    const method = o.oneOf('clip', CLIP_METHODS);
    const percentile = o.number('percentile', { min: 0, max: 100 });
    const evalTokens = o.number('evalTokens', { integer: true, min: 1 });
    const window = o.number('window', { integer: true, min: 2 });
    const top = o.number('top', { integer: true, min: 1 });
    o.done();
    return {
      sets,
      ...(evalSets ? { eval: evalSets } : {}),
      ...(samples ? { samples } : {}),
      ...(sequenceLength ? { sequenceLength } : {}),
      ...(seed !== undefined ? { seed } : {}),
      ...(batchSize ? { batchSize } : {}),
      ...(scheme ? { scheme } : {}),
      ...(method || percentile !== undefined ? { clip: { method: method ?? 'percentile', ...(percentile !== undefined ? { percentile } : {}) } } : {}),
      ...(evalTokens ? { evalTokens } : {}),
      ...(window ? { window } : {}),
      ...(top ? { top } : {}),
    };
  },
  async run(state, options, env) {
    const report = await compareCalibrationSets(env.modelPath, {
      ...options,
      ...(env.session.intraOpThreads ? { threads: env.session.intraOpThreads } : {}),
      ...(!options.onProgress && env.onProgress
        ? { onProgress: (e) => (e.phase === 'calibrate' ? env.onProgress!(`compare-calib: ${e.set}`, e.progress.samples, e.progress.totalSamples) : undefined) }
        : {}),
    });
    return { state, report };
  },
};
