// Calibration throughput on a decoder: tokens/s of a plain ONNX Runtime forward pass against activation-statistics
// collection (collectStatistics) over the same batches, same batch size and sequence length:
//   - range-only statistics (observe 'ranges': min, max, per-channel |x| max computed inside ORT) of the default
//     targets (the quantizer inputs: MatMul/Gemm/Conv activation inputs), with graph optimisation off (the default,
//     values exactly those of the full statistics) and with it on ('all', as the plain forward runs);
//   - full (histogram) statistics of the default targets, default statistics workers;
//   - full statistics of every node output (targets 'all', the default before issue 9).
// To show what limits collection it also times the forward pass with graph optimisation off (as capture runs it),
// the capture alone (every default target handed to JS, no statistics) and full collection with the statistics
// on the main thread (no workers). Every measure gets a warm-up pass, then ROUNDS rounds each run all of them in
// turn; figures are medians over rounds, ratios medians of per-round ratios to the plain forward. Collection is
// timed over its batches (timing.streamSeconds); finalising the statistics is reported apart.
// Prints a table and writes bench/results/calibration-throughput[-large].json.
//
//   npx tsc -p . && node dist/bench/calibration-throughput.js [--batch N] [--seq-len N] [--batches N] [--threads N] [--workers N] [--rounds N] [model.onnx]
//   (default: models/tiny-llama/onnx/model.onnx, the prose calibration set, batch 4, sequence 128, 8 batches)
//   node dist/bench/calibration-throughput.js --large [--layers N]
//   (a random-weight decoder of TinyLlama-1.1B's width, scripts/build-large-decoder.ts, 2 layers by default, built in
//   a temporary folder; token ids as data; batch 1, 4 batches)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { env } from 'onnxruntime-node';
import { collectStatistics, type AnyActivationStatistics, type CollectOptions } from '../src/calibration/collect.js';
import { defaultObserverWorkers } from '../src/calibration/observer-pool.js';
import { buildLargeDecoder, LARGE_DECODER } from '../scripts/build-large-decoder.js';
import { openCalibrationSet, type CalibrationSet } from '../src/calibration/data/index.js';
import { wholeNumber } from '../src/cli/options.js';
import { table } from '../src/cli/output.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import { withOutputs } from '../src/runtime/capture.js';
import { type Feeds, Session } from '../src/runtime/session.js';
import { machineFacts } from './support/machine.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEFAULT_ROUNDS = 5;
/** Issue 9's targets: range-only statistics on tiny-llama, histogram statistics of the quantizer inputs at 1.1B width. */
const RANGES_TARGET = 0.9;
const TARGET_RATIO = 0.8;

interface Args {
  model: string;
  batch: number;
  sequence: number;
  batches: number;
  threads?: number;
  workers: number;
  rounds: number;
  /** Build and measure the random decoder of TinyLlama's width with this many layers. */
  largeLayers?: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { model: join(REPO, 'models/tiny-llama/onnx/model.onnx'), batch: 4, sequence: 128, batches: 8, workers: defaultObserverWorkers(), rounds: DEFAULT_ROUNDS };
  if (argv.includes('--large')) Object.assign(args, { largeLayers: 2, batch: 1, batches: 4 });
  const int = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${flag} must be a whole number >= 1, got '${v}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--batch') args.batch = int(flag, argv[++i]);
    else if (flag === '--seq-len') args.sequence = int(flag, argv[++i]);
    else if (flag === '--batches') args.batches = int(flag, argv[++i]);
    else if (flag === '--threads') args.threads = int(flag, argv[++i]);
    else if (flag === '--workers') args.workers = wholeNumber(argv[++i] ?? '', flag);
    else if (flag === '--layers') args.largeLayers = int(flag, argv[++i]);
    else if (flag === '--rounds') args.rounds = int(flag, argv[++i]);
    else if (flag !== '--large') args.model = flag;
  }
  return args;
}

interface Measure {
  what: string;
  tokensPerSecond: number;
  /** Float values handed from ONNX Runtime to JS per token. */
  valuesPerToken?: number;
  note?: string;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** One timed pass over every batch; returns tokens/s. */
type Pass = () => Promise<number>;

function forwardPass(session: Session, batches: readonly Feeds[], tokens: number, fetches?: string[]): Pass {
  return async () => {
    const start = performance.now();
    for (const f of batches) await session.run(f, fetches);
    return tokens / ((performance.now() - start) / 1000);
  };
}

/** A collection pass, timed over its batches (session opening and finalisation apart); keeps the last result. */
function collectionPass(model: OnnxModel, set: CalibrationSet, options: CollectOptions, threads: number | undefined) {
  const holder: { last?: AnyActivationStatistics } = {};
  const pass: Pass = async () => {
    holder.last = await collectStatistics(model, set, { ...options, session: { ...options.session, ...(threads ? { intraOpThreads: threads } : {}) } });
    return holder.last.tokens / holder.last.timing.streamSeconds;
  };
  return { pass, holder };
}

function inMemorySet(batches: readonly Feeds[], like: CalibrationSet): CalibrationSet {
  return {
    source: like.source,
    kind: like.kind,
    sampleCount: like.sampleCount,
    tokenCount: like.tokenCount,
    async *batches() {
      yield* batches;
    },
  };
}

/** Token-id records for a model without a tokenizer (the random decoder). */
function tokenIdSet(dir: string, records: number, length: number, vocab: number): string {
  const file = join(dir, 'ids.jsonl');
  const line = (i: number) => JSON.stringify({ input_ids: Array.from({ length }, (_, j) => (i * 7919 + j * 104729 + 17) % vocab) });
  writeFileSync(file, Array.from({ length: records }, (_, i) => line(i)).join('\n') + '\n');
  return file;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const work = args.largeLayers ? mkdtempSync(join(tmpdir(), 'onnx-calibration-bench-')) : undefined;
  try {
    await measure(args, work);
  } finally {
    if (work) rmSync(work, { recursive: true, force: true });
  }
}

async function measure(args: Args, work: string | undefined): Promise<void> {
  let data = join(REPO, 'calibration-sets/prose');
  let description = args.model;
  if (work && args.largeLayers) {
    const config = { ...LARGE_DECODER, numHiddenLayers: args.largeLayers };
    const built = buildLargeDecoder(join(work, 'large'), config);
    args.model = built.model;
    data = tokenIdSet(work, args.batch * args.batches, args.sequence, config.vocabSize);
    description =
      `random-weight decoder of TinyLlama-1.1B's width (hidden ${config.hiddenSize}, MLP ${config.intermediateSize}, ` +
      `${config.numAttentionHeads}/${config.numKeyValueHeads} heads, vocabulary ${config.vocabSize}), ${config.numHiddenLayers} layers, ${built.parameters.toLocaleString('en-US')} parameters`;
  }
  const model = loadModel(args.model);
  const set = await openCalibrationSet(data, model, { samples: args.batch * args.batches, sequenceLength: args.sequence, batchSize: args.batch });
  const batches: Feeds[] = [];
  for await (const f of set.batches()) batches.push(f);
  const memory = inMemorySet(batches, set);
  const tokens = set.tokenCount;
  const sessionOptions = args.threads ? { intraOpThreads: args.threads } : {};

  const loadAtStart = loadavg()[0];
  const plain = await Session.create(model, sessionOptions);
  const unoptimised = await Session.create(model, { ...sessionOptions, graphOptimization: 'disabled' });
  const full = collectionPass(model, memory, { workers: args.workers }, args.threads);
  const inline = collectionPass(model, memory, { workers: 0 }, args.threads);
  const allOutputs = collectionPass(model, memory, { targets: 'all', workers: args.workers }, args.threads);
  const ranges = collectionPass(model, memory, { observe: 'ranges' }, args.threads);
  const minmax = collectionPass(model, memory, { observe: 'minmax' }, args.threads);
  const rangesOptimised = collectionPass(model, memory, { observe: 'ranges', session: { graphOptimization: 'all' } }, args.threads);
  await full.pass(); // also gives the target list the capture-only pass fetches
  const names = full.holder.last!.tensors.map((t) => t.name);
  const capture = await Session.create(new OnnxModel(withOutputs(model.proto, names, model.source), model.baseDir, model.source), {
    ...sessionOptions,
    graphOptimization: 'disabled',
  });
  const passes: Record<string, Pass> = {
    plain: forwardPass(plain, batches, tokens),
    unoptimised: forwardPass(unoptimised, batches, tokens),
    capture: forwardPass(capture, batches, tokens, names),
    minmax: minmax.pass,
    ranges: ranges.pass,
    rangesOptimised: rangesOptimised.pass,
    full: full.pass,
    ...(args.workers > 0 ? { inline: inline.pass } : {}),
    allOutputs: allOutputs.pass,
  };
  // One warm-up pass each, then rounds that run every pass in turn, so that all see the same machine: on a
  // shared machine speed drifts, and the ratio is taken within each round.
  for (const pass of Object.values(passes)) await pass();
  const rates: Record<string, number[]> = Object.fromEntries(Object.keys(passes).map((k) => [k, []]));
  const load: number[] = [];
  for (let round = 0; round < args.rounds; round++) {
    for (const [key, pass] of Object.entries(passes)) rates[key].push(await pass());
    load.push(loadavg()[0]);
  }
  for (const s of [plain, unoptimised, capture]) await s.dispose();
  const ratioOf = (key: string) => median(rates[key].map((r, i) => r / rates.plain[i]));

  const values = (s: AnyActivationStatistics) => s.tensors.reduce((n, t) => n + t.stats.count, 0) / s.tokens;
  const describe = (s: AnyActivationStatistics) =>
    `${s.tensors.length} tensors, ${s.observerWorkers} statistics worker${s.observerWorkers === 1 ? '' : 's'}; finalising took ${s.timing.finalizeSeconds.toFixed(2)} s`;
  const fullStats = full.holder.last!;
  const measures: (Measure & { key: string })[] = [
    { key: 'plain', what: 'plain forward (ORT, graph optimisation all)', tokensPerSecond: median(rates.plain) },
    { key: 'unoptimised', what: 'plain forward, graph optimisation off', tokensPerSecond: median(rates.unoptimised) },
    { key: 'capture', what: 'capture only: quantizer inputs to JS, no statistics', tokensPerSecond: median(rates.capture), valuesPerToken: values(fullStats) },
    {
      key: 'minmax',
      what: 'min/max only in ORT, quantizer inputs (what minmax clipping reads)',
      tokensPerSecond: median(rates.minmax),
      valuesPerToken: 0,
      note: `${minmax.holder.last!.tensors.length} tensors, whole-tensor reductions; values equal the full statistics'`,
    },
    {
      key: 'ranges',
      what: 'range-only statistics in ORT, quantizer inputs (optimisation off)',
      tokensPerSecond: median(rates.ranges),
      valuesPerToken: 0,
      note: `${ranges.holder.last!.tensors.length} tensors; values equal the full statistics'`,
    },
    {
      key: 'rangesOptimised',
      what: 'range-only statistics in ORT, quantizer inputs, optimisation all',
      tokensPerSecond: median(rates.rangesOptimised),
      valuesPerToken: 0,
      note: 'statistics of the graph as ORT fuses it',
    },
    { key: 'full', what: 'full statistics, quantizer inputs (default targets)', tokensPerSecond: median(rates.full), valuesPerToken: values(fullStats), note: describe(fullStats) },
    ...(rates.inline
      ? [{ key: 'inline', what: 'full statistics, quantizer inputs, main thread only', tokensPerSecond: median(rates.inline), valuesPerToken: values(fullStats), note: describe(inline.holder.last!) }]
      : []),
    {
      key: 'allOutputs',
      what: "full statistics, every node output (targets 'all')",
      tokensPerSecond: median(rates.allOutputs),
      valuesPerToken: values(allOutputs.holder.last!),
      note: describe(allOutputs.holder.last!),
    },
  ];
  const plainRate = measures[0].tokensPerSecond;
  const ratio = ratioOf('full');
  const rangesRatio = ratioOf('ranges');
  const minmaxRatio = ratioOf('minmax');
  const rangesOptimisedRatio = ratioOf('rangesOptimised');
  const report = {
    date: new Date().toISOString(),
    machine: {
      ...machineFacts(),
      loadAverage1m: { start: loadAtStart, perRound: load },
    },
    onnxRuntime: { version: env.versions.node ?? env.versions.common, executionProvider: 'cpu', intraOpThreads: args.threads ?? `ONNX Runtime default (${cpus().length} cores)` },
    method: {
      model: description,
      data: set.source,
      batch: args.batch,
      sequenceLength: args.sequence,
      batches: args.batches,
      tokensPerPass: tokens,
      rounds: args.rounds,
      observerWorkers: args.workers,
      statistic:
        'median over rounds after one warm-up pass each; each round runs every measure once in turn; collection is timed over its batches, finalisation apart; ratio = median of per-round collection/plain',
    },
    plainTokensPerSecond: plainRate,
    /** Full statistics of the default targets (the quantizer inputs). */
    collectionTokensPerSecond: median(rates.full),
    ratio,
    quantizerInputsRatio: ratio,
    /** observe 'minmax': per-tensor min and max, what the quantize pass collects for minmax clipping. */
    minmaxRatio,
    /** observe 'ranges': min, max and per-channel |x| maxima. */
    rangesRatio,
    rangesOptimisedRatio,
    allOutputsRatio: ratioOf('allOutputs'),
    target: TARGET_RATIO,
    meetsTarget: ratio >= TARGET_RATIO,
    rangesTarget: RANGES_TARGET,
    minmaxMeetsTarget: minmaxRatio >= RANGES_TARGET,
    rangesMeetTarget: rangesRatio >= RANGES_TARGET,
    measures: measures.map(({ key: _key, ...m }) => m),
    rounds: { rates, ratios: Object.fromEntries(Object.keys(passes).filter((k) => k !== 'plain').map((k) => [k, rates[k].map((r, i) => r / rates.plain[i])])) },
  };
  const out = join(REPO, 'bench', 'results', `calibration-throughput${args.largeLayers ? '-large' : ''}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);

  const percent = (x: number) => `${(100 * x).toFixed(1)}%`;
  process.stdout.write(
    `${report.machine.cpu}, ${report.machine.cores} cores; ONNX Runtime ${report.onnxRuntime.version}, threads: ${report.onnxRuntime.intraOpThreads}\n` +
      `${description}, batch ${args.batch} x ${args.sequence} tokens, ${args.batches} batches (${tokens} tokens) per pass, ${args.rounds} rounds\n` +
      `load average (1 min): ${loadAtStart.toFixed(2)} at start, ${load.map((l) => l.toFixed(2)).join(' ')} after each round\n\n` +
      table(
        ['measure', 'tokens/s', 'of plain', 'values/token', 'note'],
        measures.map((m) => [
          m.what,
          Math.round(m.tokensPerSecond),
          percent(m.tokensPerSecond / plainRate),
          m.valuesPerToken === undefined ? '' : Math.round(m.valuesPerToken),
          m.note ?? '',
        ]),
      ) +
      `\n\ncollection / plain forward (median of per-round ratios): min/max only ${percent(minmaxRatio)}, with channel maxima ${percent(rangesRatio)} (target ${percent(RANGES_TARGET)}), ` +
      `with optimisation ${percent(rangesOptimisedRatio)}; full statistics of the quantizer inputs ${percent(ratio)} (target ${percent(TARGET_RATIO)}); ` +
      `of every node output ${percent(report.allOutputsRatio)}\nwrote ${out}\n`,
  );
}

main().catch((e: Error) => {
  process.stderr.write(`calibration-throughput: ${e.message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exitCode = 1;
});
