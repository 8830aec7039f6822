// The `quantize` command as a library call: a run of two passes (quantize, then verify) through the pass runner
// (src/passes/runner.ts), which checks the output before any work, saves the result under a staging name,
// verifies the saved files in ONNX Runtime against the original and only then renames them into place. The
// run's report is reshaped into the quantize command's report (QuantizationRunReport): what the HTML report and
// `quantize --json` show.
import type { CalibrationOptions } from '../calibration/data/index.js';
import type { OnnxModel } from '../onnx/model.js';
import { quantizePass as quantizeStep, type QuantizeOptions, type QuantizeReport, type QuantMethod } from '../passes/quantize.js';
import { runSteps, type FileFacts } from '../passes/runner.js';
import type { CalibrationSummary, SessionChoice } from '../passes/types.js';
import { verifyPass } from '../passes/verify.js';
import type { OutputTarget } from './output-names.js';
import type { ClipChoice } from './ranges.js';
import type { SchemeOptions } from './schemes.js';
import type { NodeSelection } from './select.js';
import type { EngineInfo, VerificationReport, VerifyOptions } from './verify.js';

export type { CalibrationSummary, FileFacts };

export const REPORT_FORMAT = 'onnx-compress.quantization-report';
export const REPORT_VERSION = 1;

export interface QuantizePassOptions extends SchemeOptions {
  /** Output file, or a folder (transformers.js names for models in a Hugging Face folder: output-names.ts). */
  out: string;
  /** A calibration set to collect statistics from in-process (openCalibrationSet's path), with its options. */
  calibration?: { data: string; options?: CalibrationOptions };
  /** A statistics file written by `calibrate` (instead of `calibration`). */
  stats?: string;
  /** Static schemes: how activation ranges are clipped (a fixed method, or 'auto': chosen per tensor); default auto. */
  clip?: ClipChoice;
  /** Weight solver: 'rtn' (default), or layer-wise 'gptq' or 'adaquant' (need `calibration`). */
  method?: QuantMethod;
  /** Layer-wise methods: inputs from the already-quantized earlier blocks (true, the default) or from the float model (false). */
  sequential?: boolean;
  /** Tune the quantized layers' biases and the norm gains against the float model (needs `calibration`). */
  biasTuning?: boolean;
  select?: NodeSelection;
  /** ONNX Runtime threads and execution provider for calibration and verification. */
  session?: SessionChoice;
  /** The quality gate: thresholds below which verification fails (default verify.ts's DEFAULT_GATE), or gate false to accept any result. */
  verify?: Pick<VerifyOptions, 'minCosine' | 'minTop1Agreement' | 'gate'> & { batches?: number };
  /**
   * Progress of the long steps, for a progress bar: 'calibration' (samples), and for layer-wise methods one stage
   * named after the method and mode, e.g. 'gptq (sequential)' (blocks).
   */
  onProgress?: (stage: string, done: number, total: number) => void;
  /**
   * Applied to the written model before it is saved and verified; exists for tests (a broken writer must
   * not leave a file) and experiments, not for normal use.
   */
  transform?: (model: OnnxModel) => OnnxModel;
}

export interface QuantizationRunReport {
  format: typeof REPORT_FORMAT;
  version: typeof REPORT_VERSION;
  date: string;
  model: FileFacts & { languageModel: boolean };
  output: FileFacts & { naming: OutputTarget['naming'] };
  /** The named scheme (with its parameters), or 'plan' for a plan file; writer 'mixed' when formats differ. */
  scheme: QuantizeReport['scheme'];
  /** Every node's format and parameters, where the plan came from and the solver that chose the codes. */
  plan: QuantizeReport['plan'];
  engine: EngineInfo;
  calibration: QuantizeReport['calibration'];
  /** Static schemes: how ranges were clipped and the range of every activation that was quantized. */
  activations: QuantizeReport['activations'];
  /** Per rewritten node, with the weight's SQNR in dB (weights shared with an earlier node: sharedWeight). */
  nodes: QuantizeReport['nodes'];
  sqnrDb: QuantizeReport['sqnrDb'];
  weights: QuantizeReport['weights'];
  /** Bias and norm tuning, when asked for and the model had something to tune. */
  biasTuning?: QuantizeReport['biasTuning'];
  files: { bytesBefore: number; bytesAfter: number; ratio: number };
  opsetChanges: QuantizeReport['opsetChanges'];
  irVersion: QuantizeReport['irVersion'];
  notes: string[];
  verification: VerificationReport;
  timing: { calibrationSeconds: number; rangesSeconds: number; writeSeconds: number; saveSeconds: number; verifySeconds: number; totalSeconds: number };
}

/**
 * Quantizes a model file with a named scheme or a plan file (`{ plan: path }`), verifies the result and renames
 * it into place. Throws a one-line error on bad input; nothing is written unless verification passed.
 */
export async function quantizePass(modelPath: string, scheme: string | { plan: string }, options: QuantizePassOptions): Promise<QuantizationRunReport> {
  const { out, calibration, stats, clip, method, sequential, biasTuning, select, session = {}, verify = {}, onProgress, transform, ...schemeOptions } = options;
  const quantizeOptions: QuantizeOptions = {
    ...(typeof scheme === 'string' ? { scheme } : { plan: scheme.plan }),
    ...schemeOptions,
    ...(calibration ? { calibration } : {}),
    ...(stats !== undefined ? { stats } : {}),
    ...(clip ? { clip } : {}),
    ...(method ? { method } : {}),
    ...(sequential !== undefined ? { sequential } : {}),
    ...(biasTuning ? { biasTuning } : {}),
    ...(select ? { select } : {}),
  };
  const { batches, ...thresholds } = verify;
  const run = await runSteps(
    modelPath,
    [
      { pass: quantizeStep, options: quantizeOptions, where: 'quantize' },
      { pass: verifyPass, options: { ...thresholds, ...(batches ? { batches } : {}) }, where: 'verify' },
    ],
    { out, session, ...(onProgress ? { onProgress } : {}), ...(transform ? { transform } : {}) },
  );
  const record = (name: string) => run.passes.find((p) => p.pass === name)!;
  const q = record('quantize').report as QuantizeReport;
  const verifySeconds = record('verify').seconds;
  const output = run.output!;
  return {
    format: REPORT_FORMAT,
    version: REPORT_VERSION,
    date: run.date,
    model: run.model,
    output,
    scheme: q.scheme,
    plan: q.plan,
    engine: run.engine,
    calibration: q.calibration,
    activations: q.activations,
    nodes: q.nodes,
    sqnrDb: q.sqnrDb,
    weights: q.weights,
    ...(q.biasTuning ? { biasTuning: q.biasTuning } : {}),
    files: { bytesBefore: run.model.bytes, bytesAfter: output.bytes, ratio: output.bytes / run.model.bytes },
    opsetChanges: q.opsetChanges,
    irVersion: q.irVersion,
    notes: [...run.notes, ...q.notes],
    verification: run.verification!,
    timing: { ...q.timing, saveSeconds: run.timing.saveSeconds, verifySeconds, totalSeconds: run.timing.totalSeconds },
  };
}
