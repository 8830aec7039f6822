// The evaluate pass: perplexity and bits per byte (KL and top-1 agreement against the input model when the run
// changed it), optional decode/prefill speed, size; output agreement for models that are not language models.
// A check: it runs on the saved result, or on the input file when the recipe writes nothing.
import { evaluateModel, type EvalOptions, type EvalReport } from '../decoding/evaluate.js';
import { StepOptions } from './options.js';
import type { Pass } from './types.js';

/** evaluateModel's options; `onProgress` (API callers only) gets its stages instead of the run's progress. */
export interface EvaluatePassOptions extends Omit<EvalOptions, 'threads' | 'reference'> {
  /** Compare against this model file; default: the input model when the run changed it, else none. */
  reference?: string;
}

export const evaluatePass: Pass<EvaluatePassOptions, EvalReport> = {
  name: 'evaluate',
  kind: 'check',
  summary: 'perplexity / bits per byte, KL and top-1 against the input model, speed and size (output agreement for other models)',
  parse(raw, where) {
    const o = new StepOptions(raw, where);
    const data = o.string('data') ?? o.fail('"data" (an evaluation set) is required');
    const reference = o.string('reference');
    const window = o.number('window', { integer: true, min: 2 });
    const stride = o.number('stride', { integer: true, min: 1 });
    const maxTokens = o.number('maxTokens', { integer: true, min: 1 });
    const speed = o.boolean('speed');
    o.done();
    return { data, ...(reference ? { reference } : {}), ...(window ? { window } : {}), ...(stride ? { stride } : {}), ...(maxTokens ? { maxTokens } : {}), ...(speed !== undefined ? { speed } : {}) };
  },
  async run(state, options, env) {
    const changed = state.file !== env.modelPath;
    // The input file is already parsed: hand it over rather than read it again.
    const input = { path: env.modelPath, model: env.original };
    const report = await evaluateModel(changed ? state.file! : input, {
      ...options,
      ...(options.reference === undefined && changed ? { reference: input } : {}),
      ...(env.session.intraOpThreads ? { threads: env.session.intraOpThreads } : {}),
      ...(!options.onProgress && env.onProgress ? { onProgress: (stage: string, done: number, total: number) => env.onProgress!(`evaluate: ${stage}`, done, total) } : {}),
    });
    return { state, report };
  },
};
