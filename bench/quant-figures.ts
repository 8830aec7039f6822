// Quantization figures (not a timed test). Two parts:
//
// Quality, on the sample decoders (models/tiny-llama and, when present, models/tiny-gpt2): perplexity and bits
// per byte on the prose and code `evaluation` splits for fp32, W8A8 static QDQ with each activation clipping
// method (minmax, percentile 99.9 / 99.99 / 99.999, entropy) and per-channel or per-tensor weights, and W4
// block-32 round-to-nearest (the baseline a layer-wise method has to beat). Calibration: the prose
// `calibration` split, collected once per model and saved as a statistics file that every W8A8 variant reloads
// (`quantize --stats`). Every quantized model goes through the quantize pipeline, so its verification figures
// (KL, top-1 agreement on a calibration batch) come along.
//
// Speed and size, on a larger random-weight decoder built on the fly into a temporary folder with the project's
// builder (scripts/build-large-decoder.ts: TinyLlama-1.1B's shape with 4 layers): decode tokens/s at batch 1 with
// the KV cache (src/decoding/speed.ts) for fp32, int8 (w8 dynamic, w8a8 static) and q4 (w4, and w4a8 = q4 with
// MatMulNBits accuracy_level 4), and file sizes. The machine is shared with other jobs, so every model is
// measured in several interleaved rounds (each round: a warm-up, then the median of REPEATS runs) and the best
// and the median round are reported; the load average at the start and end is recorded.
//
// Prints tables and writes bench/results/quant-figures.json.
//
//   npx tsc -p . && node dist/bench/quant-figures.js [--quality-only | --speed-only] [--max-tokens N (default 50000; 0: all)] [--rounds N]
//        [--threads N] [--layers N] [--hidden N] [--intermediate N] [--keep DIR]
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { env } from 'onnxruntime-node';
import { collectStatistics } from '../src/calibration/collect.js';
import { openCalibrationSet, type CalibrationOptions } from '../src/calibration/data/index.js';
import { fingerprint, writeStatsFile } from '../src/calibration/stats-file.js';
import { formatBytes, table } from '../src/cli/output.js';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { perplexity } from '../src/decoding/perplexity.js';
import { measureSpeed } from '../src/decoding/speed.js';
import { textCodecFor } from '../src/decoding/text-codec.js';
import { readScoringSet, resolveTextSet } from '../src/decoding/text-set.js';
import { loadModel } from '../src/onnx/model.js';
import { quantizePass, type QuantizePassOptions, type QuantizationRunReport } from '../src/quantization/pipeline.js';
import { buildLargeDecoder, LARGE_DECODER } from '../scripts/build-large-decoder.js';
import { machineFacts } from './support/machine.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SAMPLE_MODELS = ['models/tiny-llama', 'models/tiny-gpt2'];
const SPLITS = ['prose', 'code'] as const;
// The sample models were trained on 128-token windows; longer windows would measure position extrapolation,
// not quantization.
const CALIBRATION: CalibrationOptions = { samples: 128, sequenceLength: 128, batchSize: 8, seed: 0 };
const WINDOW = 128;
const PREFILL_TOKENS = 64;
const DECODE_TOKENS = 32;
const REPEATS = 3;

type Split = (typeof SPLITS)[number];

interface Args {
  quality: boolean;
  speed: boolean;
  maxTokens?: number;
  rounds: number;
  threads: number;
  layers: number;
  hidden: number;
  intermediate: number;
  keep?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quality: true, speed: true, maxTokens: 50_000, rounds: 5, threads: cpus().length, layers: LARGE_DECODER.numHiddenLayers, hidden: LARGE_DECODER.hiddenSize, intermediate: LARGE_DECODER.intermediateSize };
  const int = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${flag} must be a whole number, got '${v}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quality-only') args.speed = false;
    else if (a === '--speed-only') args.quality = false;
    else if (a === '--max-tokens') args.maxTokens = int(a, argv[++i]) || undefined;
    else if (a === '--rounds') args.rounds = Math.max(1, int(a, argv[++i]));
    else if (a === '--threads') args.threads = Math.max(1, int(a, argv[++i]));
    else if (a === '--layers') args.layers = Math.max(1, int(a, argv[++i]));
    else if (a === '--hidden') args.hidden = Math.max(1, int(a, argv[++i]));
    else if (a === '--intermediate') args.intermediate = Math.max(1, int(a, argv[++i]));
    else if (a === '--keep') args.keep = argv[++i];
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

// --- quality ---

interface QualityVariant {
  label: string;
  /** Absent for the float model itself. */
  scheme?: string;
  options?: Partial<QuantizePassOptions>;
}

const QUALITY_VARIANTS: QualityVariant[] = [
  { label: 'fp32' },
  { label: 'W8A8 minmax', scheme: 'w8a8', options: { clip: { method: 'minmax' } } },
  { label: 'W8A8 percentile 99.9', scheme: 'w8a8', options: { clip: { method: 'percentile', percentile: 99.9 } } },
  { label: 'W8A8 percentile 99.99', scheme: 'w8a8', options: { clip: { method: 'percentile', percentile: 99.99 } } },
  { label: 'W8A8 percentile 99.999', scheme: 'w8a8', options: { clip: { method: 'percentile', percentile: 99.999 } } },
  { label: 'W8A8 entropy', scheme: 'w8a8', options: { clip: { method: 'entropy' } } },
  { label: 'W8A8 minmax, per-tensor weights', scheme: 'w8a8', options: { clip: { method: 'minmax' }, perChannel: false } },
  { label: 'W8A8 percentile 99.999, lm_head float', scheme: 'w8a8', options: { clip: { method: 'percentile', percentile: 99.999 }, select: { exclude: [/lm_head/] } } },
  { label: 'W4 block 32 RTN (q4)', scheme: 'w4' },
];

interface SplitFigures {
  tokens: number;
  bytes: number;
  perplexity: number;
  bitsPerByte: number;
  /** Perplexity / fp32 perplexity. */
  ratio: number;
}

interface QualityRow {
  label: string;
  scheme: string;
  file: string;
  fileBytes: number;
  params?: QuantizationRunReport['scheme']['params'];
  clip?: { method: string; percentile?: number };
  weightSqnrDb?: QuantizationRunReport['sqnrDb'];
  verification?: { top1Agreement?: number; klMean?: number; worstCosine: number };
  splits: Record<Split, SplitFigures>;
}

interface QualityModel {
  model: string;
  /** Of model.onnx: the sample models are retrained from time to time. */
  sha256: string;
  weights: 'trained' | 'random';
  calibration: { set: string; options: CalibrationOptions; samples: number; tokens: number; seconds: number };
  scoring: { window: number; stride: number; maxTokens: number | null };
  rows: QualityRow[];
}

async function qualityOf(dir: string, work: string, args: Args): Promise<QualityModel> {
  const modelPath = join(dir, 'model.onnx');
  const model = loadModel(modelPath);
  const name = dir.split('/').pop()!;
  const weights = existsSync(join(dir, 'training.json')) || /\*\*Trained\*\*/.test(readText(join(dir, 'MODEL_CARD.md'))) ? 'trained' : 'random';

  // Calibrate once; every W8A8 variant reloads the same statistics.
  const set = await openCalibrationSet(join(REPO, 'calibration-sets/prose'), model, CALIBRATION);
  const statistics = await collectStatistics(model, set, { targets: { inputsOf: ['MatMul', 'Gemm', 'Conv'] }, session: { intraOpThreads: args.threads } });
  const stats = join(work, `${name}-stats.json`);
  writeStatsFile(stats, statistics, { modelPath, calibration: CALIBRATION });
  log(`${name}: calibrated on ${statistics.samples} samples (${statistics.tokens} tokens) in ${statistics.seconds.toFixed(1)} s`);

  // The scoring sets, tokenised once.
  const probe = await DecoderSession.open(modelPath, { intraOpThreads: args.threads });
  const window = Math.min(WINDOW, probe.maxPositions ?? WINDOW);
  const plan = { window, stride: Math.max(1, Math.floor(window / 2)) };
  const codec = textCodecFor(model, probe.vocab);
  const sets = Object.fromEntries(
    await Promise.all(SPLITS.map(async (s) => [s, await readScoringSet(resolveTextSet(join(REPO, 'calibration-sets', s)), codec, { bos: probe.special.bos, maxTokens: args.maxTokens })])),
  );
  await probe.dispose();

  const rows: QualityRow[] = [];
  for (const v of QUALITY_VARIANTS) {
    let file = modelPath;
    let report: QuantizationRunReport | undefined;
    if (v.scheme) {
      file = join(work, `${name}-${v.label.replace(/[^\w.]+/g, '-')}.onnx`);
      report = await quantizePass(modelPath, v.scheme, { out: file, ...(v.scheme === 'w8a8' ? { stats } : {}), session: { intraOpThreads: args.threads }, ...v.options });
    }
    const decoder = await DecoderSession.open(file, { intraOpThreads: args.threads });
    const splits = {} as Record<Split, SplitFigures>;
    try {
      for (const s of SPLITS) {
        const p = await perplexity(decoder, sets[s], plan);
        splits[s] = { tokens: p.tokens, bytes: p.bytes, perplexity: p.perplexity, bitsPerByte: p.bitsPerByte, ratio: 0 };
      }
    } finally {
      await decoder.dispose();
    }
    const fp32 = rows[0]?.splits;
    for (const s of SPLITS) splits[s].ratio = fp32 ? splits[s].perplexity / fp32[s].perplexity : 1;
    const lm = report?.verification.languageModel;
    rows.push({
      label: v.label,
      scheme: v.scheme ?? 'fp32',
      file: file.startsWith(REPO) ? file.slice(REPO.length + 1) : file,
      fileBytes: report ? report.files.bytesAfter : readSize(modelPath),
      ...(report ? { params: report.scheme.params, weightSqnrDb: report.sqnrDb } : {}),
      ...(report?.activations ? { clip: { method: report.activations.method, ...(report.activations.percentile !== undefined ? { percentile: report.activations.percentile } : {}) } } : {}),
      ...(report ? { verification: { top1Agreement: lm?.top1Agreement, klMean: lm?.kl.mean, worstCosine: report.verification.worst.cosine } } : {}),
      splits,
    });
    log(`${name}: ${v.label}: ${SPLITS.map((s) => `${s} ppl ${splits[s].perplexity.toFixed(4)} (${pct(splits[s].ratio)})`).join(', ')}`);
  }
  return {
    model: `${dir}/model.onnx`,
    sha256: fingerprint(modelPath).sha256,
    weights,
    calibration: { set: 'calibration-sets/prose (calibration split)', options: CALIBRATION, samples: statistics.samples, tokens: statistics.tokens, seconds: statistics.seconds },
    scoring: { ...plan, maxTokens: args.maxTokens ?? null },
    rows,
  };
}

// --- speed ---

interface SpeedVariant {
  label: string;
  scheme?: string;
  options?: Partial<QuantizePassOptions>;
}

const SPEED_VARIANTS: SpeedVariant[] = [
  { label: 'fp32' },
  { label: 'int8 w8 (dynamic, transformers.js q8)', scheme: 'w8' },
  { label: 'int8 w8a8 (static QDQ)', scheme: 'w8a8' },
  { label: 'q4 w4 (MatMulNBits, accuracy_level 0)', scheme: 'w4' },
  { label: 'q4 w4a8 (MatMulNBits, accuracy_level 4)', scheme: 'w4a8' },
];

interface SpeedRow {
  label: string;
  scheme: string;
  fileBytes: number;
  sizeRatio: number;
  quantizeSeconds?: number;
  verification?: { worstCosine: number; top1Agreement?: number };
  /** One entry per round: the median of REPEATS timed runs after a warm-up. */
  decodeRounds: number[];
  prefillRounds: number[];
  decode: { best: number; median: number };
  prefill: { best: number; median: number };
  speedup: { best: number; median: number };
}

async function speedFigures(work: string, args: Args) {
  const config = { ...LARGE_DECODER, numHiddenLayers: args.layers, hiddenSize: args.hidden, intermediateSize: args.intermediate };
  let t = performance.now();
  const built = buildLargeDecoder(join(work, 'large'), config);
  log(`large decoder: ${built.parameters.toLocaleString('en-US')} parameters, ${formatBytes(built.saved.bytes)} in ${((performance.now() - t) / 1000).toFixed(0)} s`);

  // Token-id calibration records for w8a8: the random model has no tokenizer.
  const ids = join(work, 'large-ids.jsonl');
  writeFileSync(ids, Array.from({ length: 8 }, (_, i) => JSON.stringify({ input_ids: Array.from({ length: 160 }, (_, j) => (i * 7919 + j * 104729 + 17) % config.vocabSize) })).join('\n') + '\n');

  const files: { v: SpeedVariant; file: string; report?: QuantizationRunReport; seconds?: number }[] = [];
  for (const v of SPEED_VARIANTS) {
    if (!v.scheme) {
      files.push({ v, file: built.model });
      continue;
    }
    t = performance.now();
    const file = join(work, 'large', `model_${v.scheme}.onnx`);
    const report = await quantizePass(built.model, v.scheme, {
      out: file,
      ...(v.scheme === 'w8a8' ? { calibration: { data: ids, options: { samples: 4, sequenceLength: 128 } } } : {}),
      session: { intraOpThreads: args.threads },
      ...v.options,
    });
    const seconds = (performance.now() - t) / 1000;
    files.push({ v, file, report, seconds });
    log(`large decoder: ${v.label}: ${formatBytes(report.files.bytesAfter)} (${report.files.ratio.toFixed(3)}x) in ${seconds.toFixed(0)} s`);
  }

  const decode = new Map<string, number[]>(files.map((f) => [f.v.label, []]));
  const prefill = new Map<string, number[]>(files.map((f) => [f.v.label, []]));
  for (let round = 0; round < args.rounds; round++) {
    for (const f of files) {
      const decoder = await DecoderSession.open(f.file, { intraOpThreads: args.threads });
      try {
        const s = await measureSpeed(decoder, { prefillTokens: PREFILL_TOKENS, decodeTokens: DECODE_TOKENS, repeats: REPEATS });
        decode.get(f.v.label)!.push(s.decode.tokensPerSecond);
        prefill.get(f.v.label)!.push(s.prefill.tokensPerSecond);
        log(`round ${round + 1}/${args.rounds}: ${f.v.label}: decode ${s.decode.tokensPerSecond.toFixed(2)} tokens/s, prefill ${s.prefill.tokensPerSecond.toFixed(1)} tokens/s (load ${loadavg()[0].toFixed(2)})`);
      } finally {
        await decoder.dispose();
      }
    }
  }

  const fp32Bytes = built.saved.bytes + (built.saved.externalData?.bytes ?? 0);
  const summary = (values: number[]) => ({ best: Math.max(...values), median: median(values) });
  const base = summary(decode.get('fp32')!);
  const rows: SpeedRow[] = files.map((f) => {
    const d = summary(decode.get(f.v.label)!);
    const fileBytes = f.report ? f.report.files.bytesAfter : fp32Bytes;
    return {
      label: f.v.label,
      scheme: f.v.scheme ?? 'fp32',
      fileBytes,
      sizeRatio: fileBytes / fp32Bytes,
      ...(f.seconds !== undefined ? { quantizeSeconds: f.seconds } : {}),
      ...(f.report ? { verification: { worstCosine: f.report.verification.worst.cosine, top1Agreement: f.report.verification.languageModel?.top1Agreement } } : {}),
      decodeRounds: decode.get(f.v.label)!,
      prefillRounds: prefill.get(f.v.label)!,
      decode: d,
      prefill: summary(prefill.get(f.v.label)!),
      speedup: { best: d.best / base.best, median: d.median / base.median },
    };
  });
  return {
    model: {
      builder: 'scripts/build-large-decoder.ts (src/models/llama.ts), random weights',
      config,
      parameters: built.parameters,
      fp32Bytes,
    },
    method: {
      batch: 1,
      prefillTokens: PREFILL_TOKENS,
      decodeTokens: DECODE_TOKENS,
      decodePrompt: 16,
      repeatsPerRound: REPEATS,
      rounds: args.rounds,
      statistic: 'each round: median of the timed runs after one warm-up; reported: best and median over the rounds; rounds interleave the models',
    },
    rows,
  };
}

// --- helpers ---

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function readSize(path: string): number {
  return readFileSync(path).length;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const pct = (ratio: number): string => `${ratio >= 1 ? '+' : ''}${((ratio - 1) * 100).toFixed(2)}%`;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const loadAtStart = loadavg();
  const started = new Date();
  const work = args.keep ?? mkdtempSync(join(tmpdir(), 'quant-figures-'));
  mkdirSync(work, { recursive: true });
  try {
    const quality: QualityModel[] = [];
    if (args.quality) for (const dir of SAMPLE_MODELS) if (existsSync(join(REPO, dir, 'model.onnx'))) quality.push(await qualityOf(join(REPO, dir), work, args));
    const speed = args.speed ? await speedFigures(work, args) : null;

    // A run of one part keeps the other part's figures from the previous results file (with their date).
    const out = join(REPO, 'bench', 'results', 'quant-figures.json');
    const previous = existsSync(out) ? (JSON.parse(readFileSync(out, 'utf8')) as { date?: string; quality?: unknown; speed?: unknown; targets?: Record<string, unknown> }) : undefined;
    const carried = (part: 'quality' | 'speed') => (previous?.[part] ? { [`${part}FromRunOf`]: previous.date } : {});
    const q4 = speed?.rows.find((r) => r.scheme === 'w4');
    const report = {
      date: started.toISOString(),
      machine: {
        ...machineFacts(),
        loadAverageAtStart: loadAtStart,
        loadAverageAtEnd: loadavg(),
        shared: 'the machine runs other jobs at the same time; speed figures are the best and median of interleaved rounds',
      },
      onnxRuntime: { version: env.versions.node ?? env.versions.common, executionProvider: 'cpu', intraOpThreads: args.threads },
      ...(args.quality ? {} : carried('quality')),
      ...(args.speed ? {} : carried('speed')),
      quality: args.quality ? quality.map((m) => ({ ...m, model: m.model.slice(REPO.length + 1) })) : (previous?.quality ?? []),
      speed: args.speed ? speed : (previous?.speed ?? null),
      targets: {
        w8a8WithinOnePercentOfFp32: args.quality
          ? quality.map((m) => {
              const best = bestW8a8(m);
              return {
                model: m.model.slice(REPO.length + 1),
                best: best?.label ?? null,
                pplRatio: best ? Object.fromEntries(SPLITS.map((s) => [s, best.splits[s].ratio])) : null,
                met: best ? SPLITS.every((s) => best.splits[s].ratio <= 1.01) : false,
              };
            })
          : (previous?.targets?.w8a8WithinOnePercentOfFp32 ?? null),
        q4DecodeSpeedupAtLeast2x: args.speed ? (q4 ? { speedup: q4.speedup, met: q4.speedup.median >= 2 } : null) : (previous?.targets?.q4DecodeSpeedupAtLeast2x ?? null),
        q4FileAtMost0_3xFp32: args.speed ? (q4 ? { ratio: q4.sizeRatio, met: q4.sizeRatio <= 0.3 } : null) : (previous?.targets?.q4FileAtMost0_3xFp32 ?? null),
      },
    };
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(formatFigures(report.machine, report.onnxRuntime, quality, speed) + `\nwrote ${out}\n`);
  } finally {
    if (!args.keep) rmSync(work, { recursive: true, force: true });
  }
}

/** The W8A8 variant with the smallest worst-split perplexity ratio. */
function bestW8a8(m: QualityModel): QualityRow | undefined {
  const worst = (r: QualityRow) => Math.max(...SPLITS.map((s) => r.splits[s].ratio));
  return m.rows.filter((r) => r.scheme === 'w8a8').sort((a, b) => worst(a) - worst(b))[0];
}

function formatFigures(
  machine: { cpu: string; cores: number; loadAverageAtStart: number[]; loadAverageAtEnd: number[] },
  ort: { version: string; intraOpThreads: number },
  quality: QualityModel[],
  speed: Awaited<ReturnType<typeof speedFigures>> | null,
): string {
  const out = [
    `${machine.cpu}, ${machine.cores} cores, load average ${machine.loadAverageAtStart.map((l) => l.toFixed(2)).join(' ')} at start, ${machine.loadAverageAtEnd.map((l) => l.toFixed(2)).join(' ')} at end; ONNX Runtime ${ort.version} (cpu), ${ort.intraOpThreads} threads`,
  ];
  for (const m of quality) {
    out.push(
      '',
      `${m.model.slice(REPO.length + 1)} (${m.weights} weights): perplexity and bits per byte, window ${m.scoring.window} stride ${m.scoring.stride}${m.scoring.maxTokens ? `, first ${m.scoring.maxTokens} tokens of each split` : ''}; W8A8 calibrated on ${m.calibration.samples} x ${m.calibration.options.sequenceLength} tokens of prose`,
      table(
        ['variant', 'file', 'prose ppl', 'vs fp32', 'prose bpb', 'code ppl', 'vs fp32', 'code bpb', 'top-1 (verify)'],
        m.rows.map((r) => [
          r.label,
          formatBytes(r.fileBytes),
          r.splits.prose.perplexity.toFixed(4),
          pct(r.splits.prose.ratio),
          r.splits.prose.bitsPerByte.toFixed(4),
          r.splits.code.perplexity.toFixed(4),
          pct(r.splits.code.ratio),
          r.splits.code.bitsPerByte.toFixed(4),
          r.verification?.top1Agreement !== undefined ? `${(100 * r.verification.top1Agreement).toFixed(1)}%` : '',
        ]),
      ),
    );
  }
  if (speed) {
    const c = speed.model.config;
    out.push(
      '',
      `random-weight decoder, hidden ${c.hiddenSize}, MLP ${c.intermediateSize}, ${c.numHiddenLayers} layers, ${c.numAttentionHeads}/${c.numKeyValueHeads} heads, vocabulary ${c.vocabSize} (${speed.model.parameters.toLocaleString('en-US')} parameters): ` +
        `batch 1, decode ${speed.method.decodeTokens} tokens with KV cache, ${speed.method.rounds} rounds x median of ${speed.method.repeatsPerRound}`,
      table(
        ['variant', 'file', 'size vs fp32', 'decode tok/s best', 'median', 'speedup best', 'median', 'prefill tok/s best'],
        speed.rows.map((r) => [
          r.label,
          formatBytes(r.fileBytes),
          `${r.sizeRatio.toFixed(3)}x`,
          Number(r.decode.best.toFixed(2)),
          Number(r.decode.median.toFixed(2)),
          `${r.speedup.best.toFixed(2)}x`,
          `${r.speedup.median.toFixed(2)}x`,
          Number(r.prefill.best.toFixed(1)),
        ]),
      ),
    );
  }
  return out.join('\n');
}

main().catch((e: Error) => {
  process.stderr.write(`quant-figures: ${e.stack ?? e.message}\n`);
  process.exitCode = 1;
});
