// The calibrate pass: streams a calibration set through the current model in ONNX Runtime and leaves the
// activation statistics for the passes after it (quantize takes its ranges from them), optionally saving them
// as a statistics file. Its report is the calibrate command's (calibration/summary.ts).
import { collectStatistics, OBSERVE_MODES, type CollectProgress, type ObserveMode } from '../calibration/collect.js';
import { openCalibrationSet, openHeldOutSet, type CalibrationOptions } from '../calibration/data/index.js';
import { binaryPathFor, writeStatsFile, type WrittenStats } from '../calibration/stats-file.js';
import { calibrationReport, type CalibrationReport } from '../calibration/summary.js';
import { TARGET_SETS, type TargetSet } from '../calibration/targets.js';
import { OptionError } from '../errors.js';
import { checkWritable } from '../util/atomic.js';
import { writingTo } from '../util/output-lock.js';
import { StepOptions } from './options.js';
import type { Pass, PassEnv, PassOutcome, PassState } from './types.js';

export interface CalibratePassOptions {
  data: string;
  calibration: CalibrationOptions;
  /** 'inputs' (what a quantizer reads, default) or 'all' node outputs. */
  targets: TargetSet;
  include?: RegExp;
  /** 'full' (default), 'ranges' (min, max, channel |x| maxima) or 'minmax' (min, max), the latter two inside ONNX Runtime. */
  observe: Exclude<ObserveMode, 'none'>;
  workers?: number;
  /** Also save the statistics as a file (JSON + binary) that `quantize --stats` reads. */
  save?: string;
  /** API callers: the collector's own progress events instead of the run's progress. */
  onProgress?: (progress: CollectProgress) => void;
}

export const calibratePass: Pass<CalibratePassOptions, CalibrationReport> = {
  name: 'calibrate',
  kind: 'analysis',
  summary: 'run a calibration set through the model and keep activation statistics for the passes after it (and in a file)',
  parse(raw, where) {
    const o = new StepOptions(raw, where);
    const data = o.string('data') ?? o.fail('"data" (a calibration set) is required');
    const samples = o.number('samples', { integer: true, min: 1 });
    const sequenceLength = o.number('seqLen', { integer: true, min: 1 });
    const batchSize = o.number('batch', { integer: true, min: 1 });
    const seed = o.number('seed', { integer: true, min: 0 });
    const targets = o.oneOf('targets', TARGET_SETS) ?? 'inputs';
    const include = o.pattern('include');
    const observe = o.oneOf('observe', ['full', 'ranges', 'minmax'] as const) ?? 'full';
    const workers = o.number('workers', { integer: true, min: 0 });
    const save = o.string('save');
    o.done();
    return {
      data,
      calibration: { ...(samples ? { samples } : {}), ...(sequenceLength ? { sequenceLength } : {}), ...(batchSize ? { batchSize } : {}), ...(seed !== undefined ? { seed } : {}) },
      targets,
      ...(include ? { include } : {}),
      observe,
      ...(workers !== undefined ? { workers } : {}),
      ...(save !== undefined ? { save } : {}),
    };
  },
  precheck(options) {
    if (!OBSERVE_MODES.includes(options.observe)) throw new OptionError(`observe must be one of full, ranges, minmax, got '${String(options.observe)}'`);
    if (options.save !== undefined) {
      checkWritable(options.save, `--out ${options.save}`);
      checkWritable(binaryPathFor(options.save), `--out ${options.save} (its binary file)`);
    }
  },
  async run(state, options, env) {
    if (options.save !== undefined && state.model !== env.original) {
      throw new OptionError(`save ${options.save}: a statistics file describes the input model file, and an earlier pass changed the model`);
    }
    // The statistics file is an output of the run like --out: claimed (folders made, locked) from here until the
    // pass ends, as the runner claims --out, so a second run saving to the same file fails before it calibrates.
    return writingTo([options.save], () => calibrate(state, options, env));
  },
};

async function calibrate(state: PassState, options: CalibratePassOptions, env: PassEnv): Promise<PassOutcome<CalibrationReport>> {
  const set = await openCalibrationSet(options.data, state.model, options.calibration);
  const statistics = await collectStatistics(state.model, set, {
    targets: { set: options.targets, ...(options.include ? { include: options.include } : {}) },
    observe: options.observe,
    ...(options.workers !== undefined ? { workers: options.workers } : {}),
    session: env.session,
    ...(options.onProgress ? { onProgress: options.onProgress } : env.onProgress ? { onProgress: (p) => env.onProgress!('calibration', p.samples, p.totalSamples) } : {}),
  });
  let written: WrittenStats | undefined;
  if (options.save !== undefined) {
    written = writeStatsFile(options.save, statistics, { modelPath: env.modelPath, calibration: options.calibration });
  }
  const summary = {
    from: 'data' as const,
    path: options.data,
    data: statistics.data,
    samples: statistics.samples,
    tokens: statistics.tokens,
    batches: statistics.batches,
    seconds: statistics.seconds,
    options: { ...options.calibration },
  };
  return { state: { ...state, statistics: { statistics, summary }, calibrationSet: set, verificationSet: (await openHeldOutSet(options.data, state.model, options.calibration)) ?? set }, report: calibrationReport(statistics, written) };
}
