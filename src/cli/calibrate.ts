// `onnx-compress calibrate MODEL --data SET --out STATS`: runs a calibration set through the model and saves
// the activation statistics the quantizer reads (see src/calibration/stats-file.ts for the files).
import type { Command } from 'commander';
import type { CollectProgress } from '../calibration/collect.js';
import type { CalibrationOptions } from '../calibration/data/index.js';
import type { CalibrationReport } from '../calibration/summary.js';
import { TARGET_SETS, type TargetSet } from '../calibration/targets.js';
import { OptionError } from '../errors.js';
import { calibratePass, type CalibratePassOptions } from '../passes/calibrate.js';
import { runPass } from '../passes/runner.js';
import { checkWritable } from '../util/atomic.js';
import { positiveWholeNumber, wholeNumber } from './options.js';
import { EXAMPLES_DIR, examplesText, SAMPLE_LLAMA } from './examples.js';
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
  observe?: string;
  json?: boolean;
}

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
    .option('--observe <what>', "'full': every statistic (default); 'ranges': min, max and channel |x| maxima, computed inside ONNX Runtime; 'minmax': min and max only (enough for quantize --clip minmax)")
    .option('--workers <n>', 'threads computing the statistics while ONNX Runtime runs the next batch; 0: the main thread (default: cores - 1, at most 4)')
    .option('--json', 'print the report as JSON (no progress bar)')
    .addHelpText(
      'after',
      examplesText([
        `calibrate ${SAMPLE_LLAMA} --data calibration-sets/prose --out ${EXAMPLES_DIR}/stats.json --samples 32 --seq-len 128 --batch 4`,
        `calibrate ${SAMPLE_LLAMA} --data calibration-sets/code/calibration.jsonl --out ${EXAMPLES_DIR}/stats-mlp.json --samples 8 --targets all --include "mlp" --json`,
      ]),
    )
    .action(async (modelPath: string, flags: CalibrateFlags) => {
      const calibration: CalibrationOptions = {
        ...(flags.samples !== undefined ? { samples: positiveWholeNumber(flags.samples, '--samples') } : {}),
        ...(flags.seqLen !== undefined ? { sequenceLength: positiveWholeNumber(flags.seqLen, '--seq-len') } : {}),
        ...(flags.batch !== undefined ? { batchSize: positiveWholeNumber(flags.batch, '--batch') } : {}),
        ...(flags.seed !== undefined ? { seed: wholeNumber(flags.seed, '--seed') } : {}),
      };
      const observe = flags.observe ?? 'full';
      if (observe !== 'full' && observe !== 'ranges' && observe !== 'minmax') throw new OptionError(`--observe takes full, ranges or minmax, got '${observe}'`);
      let progress: Progress | undefined;
      const options: CalibratePassOptions = {
        data: flags.data,
        calibration,
        targets: targetSet(flags.targets),
        ...(flags.include === undefined ? {} : { include: pattern(flags.include) }),
        observe,
        ...(flags.workers === undefined ? {} : { workers: wholeNumber(flags.workers, '--workers') }),
        save: flags.out,
        ...(flags.json
          ? {}
          : {
              onProgress: (p: CollectProgress) => {
                progress ??= new Progress({ label: 'calibrating', total: p.totalSamples, unit: 'samples' });
                progress.update(p.samples, p.tokens > 0 ? `${Math.round(p.tokens / p.seconds).toLocaleString('en-US')} tokens/s` : '');
              },
            }),
      };
      let report: CalibrationReport;
      try {
        checkWritable(flags.out); // before the model loads; the pass locks its save file for the run
        report = await runPass(modelPath, calibratePass, options);
        progress?.finish();
      } catch (e) {
        progress?.abandon();
        throw e;
      }
      emit(report, flags, formatReport);
    });
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

/** Four significant digits; exponent form for very large or small magnitudes. */
function num(x: number | null | undefined): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '-';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e5 || a < 1e-3 ? x.toExponential(2) : String(Number(x.toPrecision(4)));
}

function formatReport(r: CalibrationReport): string {
  const count = (n: number) => n.toLocaleString('en-US');
  const out = [
    `calibrated ${r.model} on ${r.data.source} (${r.data.kind})`,
    `  ${count(r.tensors)} tensors${r.skipped ? ` (${r.skipped} skipped)` : ''}, ${count(r.samples)} samples, ${count(r.tokens)} tokens`,
    `  ${r.batches} batches in ${r.timing.streamSeconds.toFixed(1)} s${r.tokens ? ` (${count(Math.round(r.tokensPerSecond))} tokens/s)` : ''}, ` +
      `statistics finalised in ${r.timing.finalizeSeconds.toFixed(1)} s, ${r.seconds.toFixed(1)} s in all ` +
      `(${r.observerWorkers ? `${r.observerWorkers} statistics worker thread${r.observerWorkers > 1 ? 's' : ''}` : 'statistics on the main thread'})`,
    ...(r.statistics ? [`  wrote ${r.statistics.json} and ${r.statistics.binary} (${formatBytes(r.statistics.bytes)})`] : []),
    ...(r.maskTensors.length
      ? [`  ${r.maskTensors.length} tensors hold the float32 limit (attention-mask fill values) and are not ranked below`]
      : []),
    '',
    'largest ranges:',
    table(
      ['tensor', 'op', 'min', 'max', '|x| p99.99', 'entropy range'],
      r.largestRanges.map((t) => [t.name, t.op, num(t.min), num(t.max), num(t.p9999), t.entropy ? `${num(t.entropy[0])} .. ${num(t.entropy[1])}` : '-']),
    ),
  ];
  if (r.observe !== 'full') {
    out.push('', `(observe ${r.observe}: ranges only, computed inside ONNX Runtime; no percentiles, entropy thresholds or outlier counts)`);
  } else {
    out.push(
      '',
      `most outliers (|x| >= ${r.outlierMagnitude}, beyond ${r.outlierSigmas} sigma):`,
      table(
        ['tensor', 'op', `|x|>=${r.outlierMagnitude}`, `>${r.outlierSigmas} sigma`, 'kurtosis'],
        r.mostOutliers.map((t) => [
          t.name,
          t.op,
          t.atLeastMagnitude ?? '-',
          !t.beyondSigmas ? '-' : t.beyondSigmas[0] === t.beyondSigmas[1] ? String(t.beyondSigmas[0]) : `${t.beyondSigmas[0]}-${t.beyondSigmas[1]}`,
          num(t.kurtosis),
        ]),
      ),
    );
  }
  return out.join('\n');
}
