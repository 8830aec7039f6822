// `onnx-compress calibrate MODEL --data SET --out STATS`: runs a calibration set through the model and saves
// the activation statistics the quantizer reads (see src/calibration/stats-file.ts for the files).
import type { Command } from 'commander';
import type { TensorLine } from '../calibration/tensor-line.js';
import { collectStatistics, type ActivationStatistics, type TensorRecord } from '../calibration/collect.js';
import { openCalibrationSet, type CalibrationOptions } from '../calibration/data/index.js';
import { writeStatsFile, type WrittenStats } from '../calibration/stats-file.js';
import { TARGET_SETS, type TargetOptions, type TargetSet } from '../calibration/targets.js';
import { OptionError } from '../errors.js';
import { loadModel } from '../onnx/model.js';
import { wholeNumber } from './options.js';
import { emit, formatBytes, table } from './output.js';
import { Progress } from './progress.js';

interface CalibrateFlags {
  data: string;
  out: string;
  samples?: string;
  seqLen?: string;
  batch?: string;
  seed?: string;
  targets?: string;
  include?: string;
  workers?: string;
  json?: boolean;
}

/** How many tensors each table of the text summary lists. */
const LISTED = 10;

/**
 * Magnitudes from 2^127 up are the float32 limit that exporters fill attention masks with (for -inf): such
 * tensors would top every ranking without saying anything about the activations, so they are counted apart.
 */
const MASK_MAGNITUDE = 2 ** 127;

export function registerCalibrate(program: Command): void {
  program
    .command('calibrate')
    .description('run a calibration set through a model and save activation statistics (ranges, moments, outliers, percentiles, entropy thresholds, histograms)')
    .argument('<model>', '.onnx file')
    .requiredOption('--data <set>', 'calibration set: a .jsonl file, a set folder (calibration-sets/prose) or a folder of tensors')
    .requiredOption('--out <stats>', 'statistics file to write (JSON; histograms go to the .bin file beside it)')
    .option('--samples <n>', 'samples to draw from the set (default: all)')
    .option('--seq-len <n>', "tokens per sample (default: the model's fixed length, else min(512, max positions))")
    .option('--batch <n>', 'samples per ONNX Runtime run (default 1)')
    .option('--seed <n>', 'seed of the sample draw (default 0)')
    .option('--targets <set>', "'inputs': the activation inputs of MatMul/Gemm/Conv, what a quantizer reads (default); 'all': those and every node output, for analysis")
    .option('--include <regex>', 'observe only the tensors of the set whose name matches')
    .option('--workers <n>', 'threads computing the statistics while ONNX Runtime runs the next batch; 0: the main thread (default: cores - 1, at most 4)')
    .option('--json', 'print the report as JSON (no progress bar)')
    .addHelpText(
      'after',
      '\nExamples:\n  onnx-compress calibrate models/tiny-llama/model.onnx --data calibration-sets/prose --out stats.json --samples 32 --seq-len 128 --batch 4\n  onnx-compress calibrate model.onnx --data set.jsonl --out stats.json --targets all --include "mlp" --json',
    )
    .action(async (modelPath: string, flags: CalibrateFlags) => {
      const calibration: CalibrationOptions = {
        ...optionalInt('--samples', flags.samples, 'samples'),
        ...optionalInt('--seq-len', flags.seqLen, 'sequenceLength'),
        ...optionalInt('--batch', flags.batch, 'batchSize'),
        ...optionalInt('--seed', flags.seed, 'seed'),
      };
      const targets: TargetOptions = { set: targetSet(flags.targets), ...(flags.include === undefined ? {} : { include: pattern(flags.include) }) };
      const model = loadModel(modelPath);
      const set = await openCalibrationSet(flags.data, model, calibration);
      const progress = flags.json ? undefined : new Progress({ label: 'calibrating', total: set.sampleCount, unit: 'samples' });
      const statistics = await collectStatistics(model, set, {
        targets,
        ...(flags.workers === undefined ? {} : { workers: wholeNumber(flags.workers, '--workers') }),
        onProgress: (p) => progress?.update(p.samples, p.tokens > 0 ? `${Math.round(p.tokens / p.seconds).toLocaleString('en-US')} tokens/s` : ''),
      });
      progress?.finish();
      const written = writeStatsFile(flags.out, statistics, { modelPath, calibration });
      emit(report(statistics, written), flags, formatReport);
    });
}

function optionalInt<K extends keyof CalibrationOptions>(flag: string, value: string | undefined, key: K): Partial<Record<K, number>> {
  if (value === undefined) return {};
  const n = Number(value);
  const ok = Number.isSafeInteger(n) && (key === 'seed' || n > 0);
  if (!ok) throw new OptionError(`${flag} must be a ${key === 'seed' ? 'whole number' : 'positive whole number'}, got '${value}'`);
  return { [key]: n } as Partial<Record<K, number>>;
}

function targetSet(value: string | undefined): TargetSet {
  if (value === undefined) return 'inputs';
  if ((TARGET_SETS as readonly string[]).includes(value)) return value as TargetSet;
  throw new OptionError(`--targets takes ${TARGET_SETS.map((s) => `'${s}'`).join(' or ')}, got '${value}' (to pick tensors by name use --include REGEX)`);
}

function pattern(source: string): RegExp {
  try {
    return new RegExp(source);
  } catch (e) {
    throw new OptionError(`--include is not a regular expression: ${(e as Error).message}`);
  }
}

interface CalibrateReport {
  model: string;
  data: ActivationStatistics['data'];
  statistics: WrittenStats;
  tensors: number;
  skipped: number;
  samples: number;
  tokens: number;
  batches: number;
  /** Whole run: opening the model in ONNX Runtime, streaming the batches, finalising the statistics. */
  seconds: number;
  timing: ActivationStatistics['timing'];
  /** Over the streaming of the batches. */
  tokensPerSecond: number;
  /** Threads that computed the statistics beside ONNX Runtime's (0: the main thread). */
  observerWorkers: number;
  outlierMagnitude: number;
  outlierSigmas: number;
  /** Tensors holding the float32 limit (attention masks), left out of the rankings. */
  maskTensors: string[];
  largestRanges: TensorLine[];
  mostOutliers: TensorLine[];
}

function report(s: ActivationStatistics, written: WrittenStats): CalibrateReport {
  const masks = s.tensors.filter((t) => t.stats.absMax >= MASK_MAGNITUDE).map((t) => t.name);
  const lines = s.tensors.filter((t) => t.stats.absMax < MASK_MAGNITUDE).map(tensorLine);
  const byRange = [...lines].sort((a, b) => b.absMax - a.absMax);
  const byOutliers = [...lines].sort(
    (a, b) => b.atLeastMagnitude - a.atLeastMagnitude || b.beyondSigmas[0] - a.beyondSigmas[0] || (b.kurtosis ?? 0) - (a.kurtosis ?? 0),
  );
  return {
    model: s.model,
    data: s.data,
    statistics: written,
    tensors: s.tensors.length,
    skipped: s.skipped.length,
    samples: s.samples,
    tokens: s.tokens,
    batches: s.batches,
    seconds: s.seconds,
    timing: s.timing,
    tokensPerSecond: s.tokens / s.timing.streamSeconds,
    observerWorkers: s.observerWorkers,
    outlierMagnitude: s.options.stats.outlierMagnitude,
    outlierSigmas: s.options.stats.outlierSigmas,
    maskTensors: masks,
    largestRanges: byRange.slice(0, LISTED),
    mostOutliers: byOutliers.slice(0, LISTED),
  };
}

function tensorLine(t: TensorRecord): TensorLine {
  const s = t.stats;
  const p9999 = s.absPercentiles.find((p) => p.percentile === 99.99)?.value ?? NaN;
  return {
    name: t.name,
    op: t.producer?.opType ?? 'input',
    min: s.min,
    max: s.max,
    absMax: s.absMax,
    p9999,
    entropy: [s.entropy.low, s.entropy.high],
    kurtosis: Number.isNaN(s.kurtosis) ? null : s.kurtosis,
    atLeastMagnitude: s.outliers.atLeastMagnitude,
    beyondSigmas: [s.outliers.beyondSigmas.lower, s.outliers.beyondSigmas.upper],
  };
}

/** Four significant digits; exponent form for very large or small magnitudes. */
function num(x: number | null): string {
  if (x === null || Number.isNaN(x)) return '-';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e5 || a < 1e-3 ? x.toExponential(2) : String(Number(x.toPrecision(4)));
}

function formatReport(r: CalibrateReport): string {
  const count = (n: number) => n.toLocaleString('en-US');
  const out = [
    `calibrated ${r.model} on ${r.data.source} (${r.data.kind})`,
    `  ${count(r.tensors)} tensors${r.skipped ? ` (${r.skipped} skipped)` : ''}, ${count(r.samples)} samples, ${count(r.tokens)} tokens`,
    `  ${r.batches} batches in ${r.timing.streamSeconds.toFixed(1)} s${r.tokens ? ` (${count(Math.round(r.tokensPerSecond))} tokens/s)` : ''}, ` +
      `statistics finalised in ${r.timing.finalizeSeconds.toFixed(1)} s, ${r.seconds.toFixed(1)} s in all ` +
      `(${r.observerWorkers ? `${r.observerWorkers} statistics worker thread${r.observerWorkers > 1 ? 's' : ''}` : 'statistics on the main thread'})`,
    `  wrote ${r.statistics.json} and ${r.statistics.binary} (${formatBytes(r.statistics.bytes)})`,
    ...(r.maskTensors.length
      ? [`  ${r.maskTensors.length} tensors hold the float32 limit (attention-mask fill values) and are not ranked below`]
      : []),
    '',
    'largest ranges:',
    table(
      ['tensor', 'op', 'min', 'max', '|x| p99.99', 'entropy range'],
      r.largestRanges.map((t) => [t.name, t.op, num(t.min), num(t.max), num(t.p9999), `${num(t.entropy[0])} .. ${num(t.entropy[1])}`]),
    ),
    '',
    `most outliers (|x| >= ${r.outlierMagnitude}, beyond ${r.outlierSigmas} sigma):`,
    table(
      ['tensor', 'op', `|x|>=${r.outlierMagnitude}`, `>${r.outlierSigmas} sigma`, 'kurtosis'],
      r.mostOutliers.map((t) => [
        t.name,
        t.op,
        t.atLeastMagnitude,
        t.beyondSigmas[0] === t.beyondSigmas[1] ? String(t.beyondSigmas[0]) : `${t.beyondSigmas[0]}-${t.beyondSigmas[1]}`,
        num(t.kurtosis),
      ]),
    ),
  ];
  return out.join('\n');
}
