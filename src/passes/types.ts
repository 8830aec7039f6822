// The pass protocol. A pass takes the current model (and what earlier passes left: statistics, a calibration set
// for verification), typed options and the run's environment, and returns the next state and its report section
// (plain JSON). Recipes chain passes; the runner (runner.ts) loads the model once, runs them, and alone saves
// the result under a staging name, verifies it and renames it into place.
import type { AnyActivationStatistics } from '../calibration/collect.js';
import type { CalibrationSet } from '../calibration/data/index.js';
import type { OnnxModel } from '../onnx/model.js';
import type { PlanFile } from '../quantization/plan-file.js';
import type { QuantParams } from '../quantization/schemes.js';
import type { ExecutionProvider } from '../runtime/session.js';

/**
 * 'analysis' reads the model and changes nothing; 'transform' returns a changed model (in memory); 'check' runs
 * on the saved result (or, when nothing is written, on the input file) and may fail the run.
 */
export type PassKind = 'analysis' | 'transform' | 'check';

export interface SessionChoice {
  intraOpThreads?: number;
  executionProvider?: ExecutionProvider;
}

/** What every pass of one run shares. */
export interface PassEnv {
  /** The input model file, and the model as loaded from it (the reference for verification and evaluation). */
  modelPath: string;
  original: OnnxModel;
  session: SessionChoice;
  /** Progress of long steps, for one progress display. */
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** Statistics from calibration, with where they came from. */
export interface CalibrationSummary {
  /** 'data': collected in this run; 'stats': read from a statistics file. */
  from: 'data' | 'stats';
  /** The set, or the statistics file. */
  path: string;
  data: AnyActivationStatistics['data'];
  samples: number;
  tokens: number;
  batches: number;
  /** Collection time in this run (0 for statistics read from a file). */
  seconds: number;
  options?: Record<string, unknown>;
}

export interface PassState {
  model: OnnxModel;
  /** The latest statistics a pass collected or read, for the passes after it. */
  statistics?: { statistics: AnyActivationStatistics; summary: CalibrationSummary };
  /** The calibration set the statistics came from (auto clipping samples its first batches). */
  calibrationSet?: CalibrationSet;
  /**
   * Data verification runs on instead of generated inputs: held out from calibration where the set has an
   * evaluation split (openHeldOutSet), else the calibration set itself.
   */
  verificationSet?: CalibrationSet;
  /** A plan an earlier pass chose (allocate), which a quantize step given no scheme and no plan file writes. */
  plan?: { file: PlanFile; source: string };
  /** The named scheme the model was quantized with, which gives a transformers.js file name. */
  scheme?: QuantParams;
  /** Check passes: the file they check (the staged output, or the input when nothing is written). */
  file?: string;
  notes: string[];
}

export interface PassOutcome<R = unknown> {
  state: PassState;
  report: R;
}

export interface Pass<O = unknown, R = unknown> {
  readonly name: string;
  readonly kind: PassKind;
  /** One line for `compress --help` and recipe errors. */
  readonly summary: string;
  /** The pass reads the input model file rather than the current model, so it must run before any transform. */
  readonly readsInputFile?: boolean;
  /** Transforms that write a named scheme: its parameters, which give the output its transformers.js name. */
  outputScheme?(options: O): QuantParams | undefined;
  /** The pass an earlier step must be for this step to run with these options (quantize without a plan: allocate). */
  requires?(options: O): string | undefined;
  /** Checks the options against the input model before any pass runs (passes up to the first transform only). */
  precheck?(options: O, model: OnnxModel): void;
  /** Options from a recipe step (JSON) checked and typed; throws an OptionError that starts with `where`. */
  parse(raw: Record<string, unknown>, where: string): O;
  run(state: PassState, options: O, env: PassEnv): Promise<PassOutcome<R>>;
}

/** A pass with its options parsed: one step of a run. */
export interface Step {
  pass: Pass<any, any>;
  options: unknown;
  /** Where it came from, for messages: 'recipe r.json: passes[1] (quantize)'. */
  where: string;
}
