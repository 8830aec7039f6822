// The calibrate pass: streams a calibration set through the current model in ONNX Runtime and leaves the
// activation statistics for the passes after it (quantize takes its ranges from them), optionally saving them
// as a statistics file. Its report is the calibrate command's: sizes, throughput, largest ranges, outliers.
import { collectStatistics, OBSERVE_MODES, type ObserveMode } from '../calibration/collect.js';
import { openCalibrationSet, type CalibrationOptions } from '../calibration/data/index.js';
import { TARGET_SETS, type TargetSet } from '../calibration/targets.js';
import { StepOptions } from './options.js';
import type { Pass } from './types.js';

export interface CalibratePassOptions {
  data: string;
  calibration: CalibrationOptions;
  /** 'inputs' (what a quantizer reads, default) or 'all' node outputs. */
  targets: TargetSet;
  include?: RegExp;
  /** 'full' (default) or 'ranges' (min/max/channel maxima only, computed inside ONNX Runtime). */
  observe: ObserveMode;
  workers?: number;
}

export interface CalibratePassReport {
  data: { source: string; kind: string; sampleCount: number; tokenCount: number };
  observe: ObserveMode;
  targets: TargetSet;
  tensors: number;
  skipped: number;
  samples: number;
  tokens: number;
  batches: number;
  seconds: number;
  tokensPerSecond: number;
}

export const calibratePass: Pass<CalibratePassOptions, CalibratePassReport> = {
  name: 'calibrate',
  kind: 'analysis',
  summary: 'run a calibration set through the model and keep activation statistics for the passes after it',
  parse(raw, where) {
    const o = new StepOptions(raw, where);
    const data = o.string('data') ?? o.fail('"data" (a calibration set) is required');
    const samples = o.number('samples', { integer: true, min: 1 });
    const sequenceLength = o.number('seqLen', { integer: true, min: 1 });
    const batchSize = o.number('batch', { integer: true, min: 1 });
    const seed = o.number('seed', { integer: true, min: 0 });
    const targets = o.oneOf('targets', TARGET_SETS) ?? 'inputs';
    const include = o.pattern('include');
    const observe = o.oneOf('observe', OBSERVE_MODES.filter((m) => m !== 'none')) ?? 'full';
    const workers = o.number('workers', { integer: true, min: 0 });
    o.done();
    return {
      data,
      calibration: { ...(samples ? { samples } : {}), ...(sequenceLength ? { sequenceLength } : {}), ...(batchSize ? { batchSize } : {}), ...(seed !== undefined ? { seed } : {}) },
      targets,
      ...(include ? { include } : {}),
      observe,
      ...(workers !== undefined ? { workers } : {}),
    };
  },
  async run(state, options, env) {
    const set = await openCalibrationSet(options.data, state.model, options.calibration);
    const statistics = await collectStatistics(state.model, set, {
      targets: { set: options.targets, ...(options.include ? { include: options.include } : {}) },
      observe: options.observe,
      ...(options.workers !== undefined ? { workers: options.workers } : {}),
      session: env.session,
      ...(env.onProgress ? { onProgress: (p) => env.onProgress!('calibration', p.samples, p.totalSamples) } : {}),
    });
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
    return {
      state: { ...state, statistics: { statistics, summary }, verificationSet: set },
      report: {
        data: statistics.data,
        observe: options.observe,
        targets: options.targets,
        tensors: statistics.tensors.length,
        skipped: statistics.skipped.length,
        samples: statistics.samples,
        tokens: statistics.tokens,
        batches: statistics.batches,
        seconds: statistics.seconds,
        tokensPerSecond: statistics.tokens / Math.max(1e-9, statistics.timing.streamSeconds),
      },
    };
  },
};
