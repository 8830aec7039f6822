// The quantization pass end to end, as the `quantize` command runs it:
//   1. check everything that can be checked before work starts: the scheme and its options, the model (not
//      already quantized), calibration present for static schemes, the output path (never the input);
//   2. calibrate if needed: statistics collected in-process from a calibration set, or reloaded from a file that
//      `calibrate` wrote (checked against the model's sha256);
//   3. activation ranges from the statistics with a clipping method (ranges.ts);
//   4. write: quantizeModel (writers/) on the model object;
//   5. save into a fresh temporary folder beside the output (saveModel: external data as the input had it, or
//      when the output would pass 2 GiB), then verify the saved files (verify.ts): ONNX Runtime loads them,
//      runs a sample batch, and the outputs are compared with the original's;
//   6. only a model that passed is renamed into place (its external data first); a model that failed is
//      deleted with its folder, so nothing is left at the output path.
// Returns a typed report (QuantizationRunReport): what the HTML report and `quantize --json` show.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, realpathSync, renameSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { collectStatistics, type ActivationStatistics } from '../calibration/collect.js';
import { openCalibrationSet, type CalibrationOptions, type CalibrationSet } from '../calibration/data/index.js';
import { findModelFile } from '../calibration/data/model-files.js';
import { checkModelMatches, readStatsFile } from '../calibration/stats-file.js';
import { modelSize } from '../decoding/model-size.js';
import { describeDecoder } from '../onnx/decoder-info.js';
import { loadModel, type OnnxModel } from '../onnx/model.js';
import { saveModel } from '../onnx/save.js';
import type { ExecutionProvider } from '../runtime/session.js';
import { temporaryUntilDone } from '../util/atomic.js';
import { resolveOutput, type OutputTarget } from './output-names.js';
import { activationRanges, checkClipOptions, DEFAULT_PERCENTILE, STANDARD_PERCENTILES, type ClipOptions, type RangeEntry } from './ranges.js';
import { QuantizationError, resolveScheme, type QuantParams, type SchemeOptions } from './schemes.js';
import type { NodeSelection, SkippedNode } from './select.js';
import { refuseQuantized, type NodeReport, type OpsetChange, type WriterResult } from './writers/common.js';
import { quantizeModel } from './writers/index.js';
import { calibrationInputs, engineInfo, generatedInputs, VerificationError, verifyModel, type EngineInfo, type VerificationInputs, type VerificationReport, type VerifyOptions } from './verify.js';

export const REPORT_FORMAT = 'onnx-compress.quantization-report';
export const REPORT_VERSION = 1;

export interface QuantizePassOptions extends SchemeOptions {
  /** Output file, or a folder (transformers.js names for models in a Hugging Face folder: output-names.ts). */
  out: string;
  /** A calibration set to collect statistics from in-process (openCalibrationSet's path), with its options. */
  calibration?: { data: string; options?: CalibrationOptions };
  /** A statistics file written by `calibrate` (instead of `calibration`). */
  stats?: string;
  /** Static schemes: how activation ranges are clipped; default minmax. */
  clip?: ClipOptions;
  select?: NodeSelection;
  /** ONNX Runtime threads and execution provider for calibration and verification. */
  session?: { intraOpThreads?: number; executionProvider?: ExecutionProvider };
  /** Thresholds below which verification fails (none by default: a model fails only if it does not load/run or gives NaN). */
  verify?: Pick<VerifyOptions, 'minCosine' | 'minTop1Agreement'> & { batches?: number };
  /** Progress of the long steps (calibration batches), for a progress bar. */
  onProgress?: (stage: 'calibration', done: number, total: number) => void;
  /**
   * Applied to the written model before it is saved and verified; exists for tests (a broken writer must
   * not leave a file) and experiments, not for normal use.
   */
  transform?: (model: OnnxModel) => OnnxModel;
}

export interface CalibrationSummary {
  /** 'data': collected in this run; 'stats': read from a statistics file. */
  from: 'data' | 'stats';
  /** The set, or the statistics file. */
  path: string;
  /** The set the statistics describe. */
  data: ActivationStatistics['data'];
  samples: number;
  tokens: number;
  batches: number;
  /** Collection time in this run (0 for statistics read from a file). */
  seconds: number;
  options?: CalibrationOptions;
}

export interface FileFacts {
  path: string;
  /** The .onnx plus its external data. */
  bytes: number;
  externalData?: { path: string; bytes: number };
  irVersion?: number;
  opsets: { domain: string; version: number }[];
}

export interface QuantizationRunReport {
  format: typeof REPORT_FORMAT;
  version: typeof REPORT_VERSION;
  date: string;
  model: FileFacts & { languageModel: boolean };
  output: FileFacts & { naming: OutputTarget['naming'] };
  scheme: { name: QuantParams['scheme']; writer: QuantParams['writer']; params: QuantParams };
  engine: EngineInfo;
  calibration: CalibrationSummary | null;
  /** Static schemes: how ranges were clipped and the range of every activation that was quantized. */
  activations: { method: ClipOptions['method']; percentile?: number; ranges: RangeEntry[]; skipped: { tensor: string; reason: string }[] } | null;
  nodes: {
    quantized: number;
    skipped: number;
    /** Per rewritten node, with the weight's SQNR in dB (weights shared with an earlier node: sharedWeight). */
    list: NodeReport[];
    skippedList: SkippedNode[];
  };
  sqnrDb: { min: number; median: number; mean: number } | null;
  weights: { bytesBefore: number; bytesAfter: number; ratio: number };
  files: { bytesBefore: number; bytesAfter: number; ratio: number };
  opsetChanges: OpsetChange[];
  irVersion: { from?: number; to?: number };
  notes: string[];
  verification: VerificationReport;
  timing: { calibrationSeconds: number; rangesSeconds: number; writeSeconds: number; saveSeconds: number; verifySeconds: number; totalSeconds: number };
}

/** Runs the whole pass on a model file; see the top of the file. Throws a one-line error on bad input. */
export async function quantizePass(modelPath: string, scheme: string, options: QuantizePassOptions): Promise<QuantizationRunReport> {
  const started = performance.now();
  const { out, calibration, stats, clip, select, session = {}, verify = {}, onProgress, transform, ...schemeOptions } = options;

  // 1. Everything checkable up front, cheapest first.
  const params = resolveScheme(scheme, schemeOptions);
  const isStatic = params.activations !== undefined;
  if (calibration && stats) throw new QuantizationError('--calib and --stats are alternatives: give one');
  if (clip) {
    checkClipOptions(clip);
    if (!isStatic) throw new QuantizationError(`--clip: scheme ${params.scheme} quantizes weights only; clipping applies to activation ranges (w8a8)`);
  }
  if (isStatic && !calibration && !stats) {
    throw new QuantizationError(
      `${modelPath}: scheme ${params.scheme} quantizes activations, which needs calibration: give --calib SET (a calibration set) or --stats FILE (written by onnx-compress calibrate)`,
    );
  }
  const model = loadModel(modelPath);
  refuseQuantized(model);
  const target = resolveOutput(modelPath, out, params);
  refuseInputAsOutput(model, modelPath, target.path);
  const isDecoder = describeDecoder(model) !== null;
  const notes: string[] = [];

  // 2. Statistics.
  const clipOptions: ClipOptions = clip ?? { method: 'minmax' };
  const percentile = clipOptions.method === 'percentile' ? (clipOptions.percentile ?? DEFAULT_PERCENTILE) : undefined;
  let statistics: ActivationStatistics | undefined;
  let set: CalibrationSet | undefined;
  let calibrationSummary: CalibrationSummary | null = null;
  let calibrationSeconds = 0;
  if (stats) {
    const file = readStatsFile(stats);
    checkModelMatches(file, modelPath, stats);
    statistics = file.statistics;
    calibrationSummary = { from: 'stats', path: stats, data: statistics.data, samples: statistics.samples, tokens: statistics.tokens, batches: statistics.batches, seconds: 0, options: file.calibration };
    if (!isStatic) notes.push(`scheme ${params.scheme} quantizes weights only: the statistics in ${stats} are not used for ranges`);
    // The statistics' own data, if still there, gives the verification batch.
    set = await reopenStatsData(model, file.statistics.data.source, file.calibration, notes);
  } else if (calibration) {
    set = await openCalibrationSet(calibration.data, model, calibration.options ?? {});
    if (isStatic) {
      const t = performance.now();
      statistics = await collectStatistics(model, set, {
        targets: { inputsOf: params.opTypes },
        percentiles: percentile !== undefined && !STANDARD_PERCENTILES.includes(percentile) ? [...STANDARD_PERCENTILES, percentile] : STANDARD_PERCENTILES,
        session,
        onProgress: onProgress ? (p) => onProgress('calibration', p.samples, p.totalSamples) : undefined,
      });
      calibrationSeconds = (performance.now() - t) / 1000;
      calibrationSummary = {
        from: 'data',
        path: calibration.data,
        data: statistics.data,
        samples: statistics.samples,
        tokens: statistics.tokens,
        batches: statistics.batches,
        seconds: statistics.seconds,
        ...(calibration.options ? { options: calibration.options } : {}),
      };
    } else {
      notes.push(`scheme ${params.scheme} quantizes weights only: the calibration set is used for verification only`);
    }
  }

  // 3. Ranges.
  let t = performance.now();
  const ranges = isStatic && statistics ? activationRanges(statistics, clipOptions) : undefined;
  const rangesSeconds = (performance.now() - t) / 1000;

  // 4. Write.
  t = performance.now();
  let written: WriterResult = quantizeModel(model, params, { ...(select ? { select } : {}), ...(ranges ? { activationRanges: ranges.ranges } : {}) });
  if (transform) written = { ...written, model: transform(written.model) };
  const writeSeconds = (performance.now() - t) / 1000;
  const report = written.report;
  if (report.nodes.length === 0) {
    throw new QuantizationError(
      `${modelPath}: no node to quantize with scheme ${params.scheme} (it rewrites ${params.opTypes.join(', ')} with a constant float weight${report.skipped.length ? `; skipped: ${report.skipped.map((s) => `${s.node} (${s.reason})`).join('; ')}` : ''})`,
    );
  }

  // 5. Save beside the output, verify the saved files.
  const finalDir = dirname(resolve(target.path));
  mkdirSync(finalDir, { recursive: true });
  const staging = mkdtempSync(join(finalDir, `.${basename(target.path)}.quantize-`));
  const removeStaging = temporaryUntilDone(staging); // also on Ctrl-C while verifying
  const stagedPath = join(staging, basename(target.path));
  try {
    t = performance.now();
    const saved = saveModel(written.model, stagedPath);
    const saveSeconds = (performance.now() - t) / 1000;
    // The decoder's config.json (vocabulary, special tokens) beside the staged copy while it is verified.
    for (const name of ['config.json', 'generation_config.json']) {
      const file = findModelFile(model, name);
      if (file) copyFileSync(file, join(staging, name));
    }

    t = performance.now();
    const inputs: VerificationInputs = set ? await calibrationInputs(set, verify.batches ?? 1) : generatedInputs(model);
    const verification = await verifyModel(model, stagedPath, inputs, { ...session, ...verify });
    const verifySeconds = (performance.now() - t) / 1000;

    // 6. Into place: external data first, then the model that points at it.
    const dataPath = saved.externalData ? join(finalDir, basename(saved.externalData.path)) : undefined;
    if (saved.externalData) renameSync(saved.externalData.path, dataPath!);
    renameSync(stagedPath, target.path);
    removeStaging();

    const before = fileFacts(model, modelPath);
    const after: FileFacts = {
      path: target.path,
      bytes: saved.bytes + (saved.externalData?.bytes ?? 0),
      ...(dataPath ? { externalData: { path: dataPath, bytes: saved.externalData!.bytes } } : {}),
      ...(written.model.proto.irVersion !== undefined ? { irVersion: written.model.proto.irVersion } : {}),
      opsets: opsetsOf(written.model),
    };
    const counted = report.nodes.filter((n) => !n.sharedWeight);
    const usedActivations = new Set(report.nodes.map((n) => n.activation).filter((a): a is string => a !== undefined));
    return {
      format: REPORT_FORMAT,
      version: REPORT_VERSION,
      date: new Date().toISOString(),
      model: { ...before, languageModel: isDecoder },
      output: { ...after, naming: target.naming },
      scheme: { name: params.scheme, writer: params.writer, params },
      engine: engineInfo(session),
      calibration: calibrationSummary,
      activations: ranges
        ? {
            method: ranges.method,
            ...(ranges.percentile !== undefined ? { percentile: ranges.percentile } : {}),
            ranges: ranges.entries.filter((e) => usedActivations.has(e.tensor)),
            skipped: ranges.skipped,
          }
        : null,
      nodes: { quantized: report.nodes.length, skipped: report.skipped.length, list: report.nodes, skippedList: report.skipped },
      sqnrDb: summarizeSqnr(counted.map((n) => n.sqnrDb)),
      weights: { ...report.totals, ratio: report.totals.bytesBefore > 0 ? report.totals.bytesAfter / report.totals.bytesBefore : 1 },
      files: { bytesBefore: before.bytes, bytesAfter: after.bytes, ratio: after.bytes / before.bytes },
      opsetChanges: report.opsetChanges,
      irVersion: report.irVersion,
      notes: [...notes, ...report.notes],
      verification,
      timing: { calibrationSeconds, rangesSeconds, writeSeconds, saveSeconds, verifySeconds, totalSeconds: (performance.now() - started) / 1000 },
    };
  } catch (e) {
    removeStaging();
    // Messages name the output the user asked for, not the staging copy that was checked.
    if (e instanceof VerificationError) {
      throw new VerificationError(`${e.message.split(stagedPath).join(target.path)}; nothing was written`, e.figures);
    }
    throw e;
  }
}

/** The output (or its external data file) must not be the model or one of its files. */
function refuseInputAsOutput(model: OnnxModel, modelPath: string, out: string): void {
  const inputs = [modelPath, ...model.externalFiles().map((f) => model.externalPath(f))];
  for (const path of [out, `${out}_data`]) {
    const clash = inputs.find((i) => samePath(i, path));
    if (clash) {
      throw new QuantizationError(
        `--out ${out}: ${path === out ? 'is the input model' : `its external data file ${path} is the input's`} (${clash}); refusing to overwrite the input, choose another output`,
      );
    }
  }
}

function samePath(a: string, b: string): boolean {
  const real = (p: string): string => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  return real(a) === real(b);
}

async function reopenStatsData(model: OnnxModel, source: string, options: CalibrationOptions, notes: string[]): Promise<CalibrationSet | undefined> {
  if (!existsSync(source)) {
    notes.push(`the statistics' calibration set ${source} is not there any more: verification uses generated inputs`);
    return undefined;
  }
  try {
    return await openCalibrationSet(source, model, options);
  } catch (e) {
    notes.push(`the statistics' calibration set ${source} cannot be reopened (${(e as Error).message}): verification uses generated inputs`);
    return undefined;
  }
}

function fileFacts(model: OnnxModel, path: string): FileFacts {
  const size = modelSize(model);
  const external = model.externalFiles();
  const externalBytes = external.reduce((a, f) => a + statSync(model.externalPath(f)).size, 0);
  return {
    path,
    bytes: size.fileBytes ?? statSync(path).size,
    ...(external.length ? { externalData: { path: external.map((f) => model.externalPath(f)).join(', '), bytes: externalBytes } } : {}),
    ...(model.proto.irVersion !== undefined ? { irVersion: model.proto.irVersion } : {}),
    opsets: opsetsOf(model),
  };
}

function opsetsOf(model: Pick<OnnxModel, 'proto'>): { domain: string; version: number }[] {
  return model.proto.opsetImport.map((o) => ({ domain: o.domain || 'ai.onnx', version: o.version ?? 0 }));
}

function summarizeSqnr(values: number[]): QuantizationRunReport['sqnrDb'] {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return null;
  const mid = finite.length >> 1;
  return {
    min: finite[0],
    median: finite.length % 2 ? finite[mid] : (finite[mid - 1] + finite[mid]) / 2,
    mean: finite.reduce((a, v) => a + v, 0) / finite.length,
  };
}
