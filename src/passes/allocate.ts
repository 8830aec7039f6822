// The allocate pass: the `allocate` command as a recipe step. It measures per-layer sensitivity on the input
// model (or reads its sensitivity file), solves the integer program under the budget and leaves the plan in the
// run's state, where the quantize step after it (given no scheme and no plan file) takes it. Its report is the
// allocate command's.
import { allocate, type AllocateOptions, type AllocateReport } from '../allocation/allocate.js';
import { parseBudget } from '../allocation/budget.js';
import { DEFAULT_CANDIDATES, parseCandidates } from '../allocation/candidates.js';
import { OptionError } from '../errors.js';
import { writeTextAtomically } from '../util/atomic.js';
import { StepOptions } from './options.js';
import { QUANT_METHODS } from './quantize.js';
import type { Pass } from './types.js';

export interface AllocatePassOptions extends Omit<AllocateOptions, 'onProgress' | 'session' | 'sweep'> {
  /** Also write the plan as a file that `quantize --plan` reads. */
  save?: string;
}

export const allocatePass: Pass<AllocatePassOptions, AllocateReport> = {
  name: 'allocate',
  kind: 'analysis',
  summary: 'choose a bit width per layer by integer programming under a size budget and leave the plan for the quantize step after it',
  // Sensitivity is measured on, and its file keyed by, the input model file.
  readsInputFile: true,
  parse(raw, where) {
    const o = new StepOptions(raw, where);
    const data = o.string('data') ?? o.fail('"data" (the calibration set the loss is measured on) is required');
    const budgetText = o.string('budget') ?? o.fail('"budget" (e.g. "0.25x", "4.25bits", "40MB") is required');
    const blockSize = o.number('blockSize', { integer: true, min: 1 });
    const candidatesText = o.strings('candidates')?.join(',') ?? DEFAULT_CANDIDATES;
    const bops = o.number('bops', { integer: true, min: 1 });
    const method = o.oneOf('method', QUANT_METHODS);
    const solver = o.string('solver');
    const sensitivityFile = o.string('sensitivity');
    const save = o.string('save');
    const samples = o.number('samples', { integer: true, min: 1 });
    const sequenceLength = o.number('seqLen', { integer: true, min: 1 });
    const seed = o.number('seed', { integer: true, min: 0 });
    const workers = o.number('workers', { integer: true, min: 1 });
    const measure = o.boolean('measure');
    o.done();
    let options: AllocatePassOptions;
    try {
      options = { data, budget: parseBudget(budgetText, '"budget"'), candidates: parseCandidates(candidatesText, blockSize, '"candidates"') };
    } catch (e) {
      if (e instanceof OptionError) o.fail(e.message);
      throw e;
    }
    return {
      ...options,
      ...(bops !== undefined ? { bopsBudget: bops } : {}),
      ...(method ? { method } : {}),
      ...(solver ? { solver } : {}),
      ...(sensitivityFile ? { sensitivityFile } : {}),
      ...(save ? { save } : {}),
      ...(samples ? { samples } : {}),
      ...(sequenceLength ? { sequenceLength } : {}),
      ...(seed !== undefined ? { seed } : {}),
      ...(workers ? { workers } : {}),
      ...(measure !== undefined ? { measure } : {}),
    };
  },
  async run(state, options, env) {
    const { save, ...rest } = options;
    const report = await allocate(env.modelPath, { ...rest, session: env.session, ...(env.onProgress ? { onProgress: env.onProgress } : {}) });
    const plan = report.plan!;
    if (save) writeTextAtomically(save, `${JSON.stringify(plan, null, 2)}\n`);
    const a = report.allocation!;
    const note = `allocate: ${a.budget} -> ${a.totalBytes} bytes of weights (${a.averageBits.toFixed(2)} bits per weight), ${a.status} by ${a.solver}`;
    return { state: { ...state, plan: { file: plan, source: save ?? 'the allocate step' }, notes: [...state.notes, note] }, report };
  },
};
