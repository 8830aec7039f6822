// `onnx-compress compare-calib MODEL --sets A B [--eval X Y]`: how much the choice of calibration set matters —
// activation ranges per set and how far apart they lie, outliers per set, and the perplexity of the model
// quantized with each set's ranges on each evaluation domain (src/calibration/compare.ts). --html writes the
// report page; `onnx-compress report` renders the --json output the same way later.
import type { Command } from 'commander';
import { COMPARE_DEFAULTS, MEASURE_LABELS, type CompareCalibReport, type CompareOptions, type CompareProgress } from '../calibration/compare.js';
import { OptionError } from '../errors.js';
import { compareCalibPass } from '../passes/compare-calib.js';
import { runPass } from '../passes/runner.js';
import { renderReport, writeReportFile } from '../report/html.js';
import { compareCalibDocument, formatPerplexity, tensorLabel } from '../report/sections/compare-calib.js';
import { CLIP_METHODS, DEFAULT_PERCENTILE, isClipMethod, type ClipOptions } from '../quantization/ranges.js';
import { percentile, positiveWholeNumber, wholeNumber } from './options.js';
import { EXAMPLES_DIR, examplesText, SAMPLE_LLAMA } from './examples.js';
import { emit, table } from './output.js';
import { Progress } from './progress.js';
import { writingTo } from '../util/output-lock.js';

interface CompareFlags {
  sets: string[];
  eval?: string[];
  samples?: string;
  seqLen?: string;
  seed?: string;
  batch?: string;
  scheme?: string;
  clip?: string;
  percentile?: string;
  evalTokens?: string;
  window?: string;
  top?: string;
  threads?: string;
  html?: string;
  json?: boolean;
}

export function registerCompareCalib(program: Command): void {
  program
    .command('compare-calib')
    .description('compare calibration sets: activation ranges and outliers per set, and the perplexity of the model quantized with each set\'s ranges per evaluation domain')
    .argument('<model>', '.onnx file (a decoder language model for perplexities)')
    .requiredOption('--sets <sets...>', 'calibration sets: shipped names (prose, code, email, nonsense, nonsense-bytes), set folders or .jsonl files')
    .option('--eval <domains...>', "evaluation domains, scored on their evaluation split: shipped names, set folders or .jsonl files (default: the sets' own)")
    .option('--samples <n>', `samples per calibration set (default ${COMPARE_DEFAULTS.samples})`)
    .option('--seq-len <n>', `tokens per sample (default ${COMPARE_DEFAULTS.sequenceLength})`)
    .option('--seed <n>', `seed of the sample draw (default ${COMPARE_DEFAULTS.seed})`)
    .option('--batch <n>', `samples per ONNX Runtime run (default ${COMPARE_DEFAULTS.batchSize})`)
    .option('--scheme <name>', `static quantization scheme whose activation ranges are compared (default ${COMPARE_DEFAULTS.scheme})`)
    .option('--clip <method>', `how each set's statistics become the quantizer's activation ranges: ${CLIP_METHODS.join(', ')} (default minmax)`)
    .option('--percentile <p>', `percentile of |x| for --clip percentile (default ${DEFAULT_PERCENTILE})`)
    .option('--eval-tokens <n>', `tokens scored per evaluation domain (default ${COMPARE_DEFAULTS.evalTokens})`)
    .option('--window <n>', `tokens per scoring window, stride half of it (default ${COMPARE_DEFAULTS.window}, or the model's max positions if fewer)`)
    .option('--top <n>', `tensors listed as moving most (default ${COMPARE_DEFAULTS.top})`)
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: one per core)')
    .option('--html <file>', 'also write the report as one self-contained HTML page with charts')
    .option('--json', 'print the report as JSON (no progress); `onnx-compress report` renders it')
    .addHelpText(
      'after',
      examplesText([
        `compare-calib ${SAMPLE_LLAMA} --sets prose code nonsense --eval prose code --html ${EXAMPLES_DIR}/calib.html`,
        `compare-calib ${SAMPLE_LLAMA} --sets prose calibration-sets/email/ --samples 64 --seq-len 128 --json > ${EXAMPLES_DIR}/calib.json`,
      ]) +
        '\n\n' +
        'Ranges: per tensor the scheme quantizes, each set gives |x| max, the 99.99th percentile of |x| and the entropy\n' +
        '(KL-optimal) threshold; spread = (largest - smallest) / largest over the sets. Tensors are ranked by the |x| max\n' +
        'spread (the default --clip minmax ranges follow it). Outliers: values with |x| >= 6 (LLM.int8()).\n' +
        'Perplexity: the fp32 model, then the model quantized with each set\'s ranges, on each domain\'s evaluation split.',
    )
    .action(async (modelPath: string, flags: CompareFlags) => {
      const positive = (value: string | undefined, flag: string): number | undefined => (value === undefined ? undefined : positiveWholeNumber(value, flag));
      const progress = flags.json ? undefined : progressReporter();
      const options: CompareOptions = {
        sets: flags.sets,
        ...(flags.eval ? { eval: flags.eval } : {}),
        samples: positive(flags.samples, '--samples'),
        sequenceLength: positive(flags.seqLen, '--seq-len'),
        seed: flags.seed === undefined ? undefined : wholeNumber(flags.seed, '--seed'),
        batchSize: positive(flags.batch, '--batch'),
        scheme: flags.scheme,
        ...(flags.clip !== undefined || flags.percentile !== undefined ? { clip: clipOptions(flags) } : {}),
        evalTokens: positive(flags.evalTokens, '--eval-tokens'),
        window: positive(flags.window, '--window'),
        top: positive(flags.top, '--top'),
        threads: positive(flags.threads, '--threads'),
        ...(progress ? { onProgress: progress.update } : {}),
      };
      await writingTo([flags.html], async () => {
        let report: CompareCalibReport;
        try {
          const { threads, ...passOptions } = options;
          report = await runPass(modelPath, compareCalibPass, passOptions, { session: threads ? { intraOpThreads: threads } : {} });
          progress?.finish();
        } catch (e) {
          progress?.abandon();
          throw e;
        }
        if (flags.html) writeReportFile(flags.html, await renderReport(compareCalibDocument(report)));
        emit(report, flags, (r) => formatCompare(r) + (flags.html ? `\n\nwrote ${flags.html}` : ''));
      });
    });
}

function clipOptions(flags: CompareFlags): ClipOptions {
  const method = flags.clip ?? (flags.percentile !== undefined ? 'percentile' : 'minmax');
  if (!isClipMethod(method)) throw new OptionError(`--clip must be one of ${CLIP_METHODS.join(', ')}, got '${method}'`);
  return { method, ...(flags.percentile !== undefined ? { percentile: percentile(flags.percentile, '--percentile') } : {}) };
}

/** One progress line per calibration set, then one for the perplexity runs; all on stderr. */
function progressReporter(): { update: (e: CompareProgress) => void; finish: () => void; abandon: () => void } {
  let current: { key: string; bar: Progress } | undefined;
  const switchTo = (key: string, make: () => Progress): Progress => {
    if (current?.key !== key) {
      current?.bar.finish();
      current = { key, bar: make() };
    }
    return current.bar;
  };
  return {
    update(e) {
      if (e.phase === 'calibrate') {
        const p = e.progress;
        const bar = switchTo(`calibrate:${e.index}`, () => new Progress({ label: `calibrating ${e.set} (${e.index + 1}/${e.sets})`, total: p.totalSamples, unit: 'samples' }));
        bar.update(p.samples, p.tokens > 0 && p.seconds > 0 ? `${Math.round(p.tokens / p.seconds).toLocaleString('en-US')} tokens/s` : '');
      } else {
        const bar = switchTo('evaluate', () => new Progress({ label: 'perplexity', total: e.total, unit: 'runs' }));
        bar.update(e.done, `${e.model} on ${e.domain}`);
      }
    },
    finish() {
      current?.bar.finish();
      current = undefined;
    },
    abandon() {
      current?.bar.abandon();
      current = undefined;
    },
  };
}

/** Four significant digits; exponent form for very large or small magnitudes. */
function num(x: number | null): string {
  if (x === null || Number.isNaN(x)) return '-';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e5 || a < 1e-3 ? x.toExponential(2) : String(Number(x.toPrecision(4)));
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const count = (n: number) => n.toLocaleString('en-US');

export function formatCompare(r: CompareCalibReport): string {
  const c = r.calibration;
  const out: string[] = [
    `compared ${r.sets.length} calibration set${r.sets.length === 1 ? '' : 's'} on ${r.model} (${r.scheme}, ${rangeMethod(r)} ranges; ` +
      `${c.samples} samples x ${c.sequenceLength} tokens, seed ${c.seed}) in ${r.seconds.toFixed(1)} s`,
    '',
    'sets:',
    table(
      ['set', 'samples', 'tokens', `|x|>=${r.sets[0]?.outliers.magnitude ?? 6}`, 'share', `>${r.sets[0]?.outliers.sigmas ?? 6} sigma`, `shift vs ${r.sets[0]?.name ?? ''} (log2 mean/max)`, 'source'],
      r.sets.map((s) => [
        s.name,
        s.samples,
        s.tokens,
        s.outliers.atLeastMagnitude,
        pct(s.outliers.fraction),
        s.outliers.beyondSigmas.lower === s.outliers.beyondSigmas.upper ? String(s.outliers.beyondSigmas.lower) : `${s.outliers.beyondSigmas.lower}-${s.outliers.beyondSigmas.upper}`,
        `${s.shiftFromFirst.mean.toFixed(3)} / ${s.shiftFromFirst.max.toFixed(3)}`,
        s.path,
      ]),
    ),
  ];
  const byName = new Map(r.tensors.map((t) => [t.tensor, t]));
  const top = r.mostMoved.map((n) => byName.get(n)!);
  out.push(
    '',
    `tensors whose range moves most across sets (of ${r.tensors.length}; spread = (largest - smallest) / largest):`,
    table(
      ['read by', ...Object.values(MEASURE_LABELS).map((m) => `${m} spread`), ...r.sets.map((s) => `${s.name} |x| max`)],
      top.map((t) => [tensorLabel(t.consumers), ...Object.keys(MEASURE_LABELS).map((m) => pct(t.spread[m as keyof typeof MEASURE_LABELS])), ...t.ranges.map((x) => num(x.absMax))]),
    ),
  );
  if (r.perplexity && r.evaluation) {
    const m = r.perplexity;
    const e = r.evaluation;
    out.push(
      '',
      `perplexity on the evaluation split (at most ${count(e.maxTokens)} tokens per domain, window ${e.window}, stride ${e.stride}); in brackets vs fp32:`,
      table(
        ['model', ...m.columns],
        m.rows.map((row, i) => [
          i === 0 ? 'fp32' : `${r.scheme} with ${row}`,
          ...m.perplexity[i].map((p, d) => (i === 0 ? formatPerplexity(p) : `${formatPerplexity(p)} (${signedPct(m.ratioToFp32[i][d] - 1)})`)),
        ]),
      ),
    );
  }
  const notes = [...r.notes, ...new Set(r.sets.flatMap((s) => s.quantization.notes))];
  if (notes.length) out.push('', 'notes:', ...notes.map((n) => `  ${n}`));
  return out.join('\n');
}

export function rangeMethod(r: Pick<CompareCalibReport, 'rangeMethod' | 'percentile'>): string {
  return r.rangeMethod === 'percentile' ? `percentile ${r.percentile}` : r.rangeMethod;
}

function signedPct(x: number): string {
  const s = (100 * x).toFixed(Math.abs(x) < 0.001 ? 3 : 2);
  return `${x >= 0 ? '+' : ''}${s}%`;
}
