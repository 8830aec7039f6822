// Calibration throughput on a decoder: tokens/s of a plain ONNX Runtime forward pass against activation-statistics
// collection (collectStatistics, default targets) over the same batches, same batch size and sequence length.
// To show what limits collection it also times the forward pass with graph optimisation off (as capture runs
// it), the capture alone (every target tensor handed to JS, no statistics), and collection of only the tensors a
// quantizer needs (MatMul/Gemm/Conv inputs). Every measure gets a warm-up pass, then REPEATS rounds each run all
// of them in turn; figures are medians over rounds. Collection is timed over its batches (timing.streamSeconds);
// finalising the statistics is reported apart.
// Prints a table and writes bench/results/calibration-throughput.json.
//
//   npx tsc -p . && node dist/bench/calibration-throughput.js [--batch N] [--seq-len N] [--batches N] [--threads N] [model.onnx]
//   (default: models/tiny-llama/model.onnx, the prose calibration set, batch 4, sequence 128, 8 batches)
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { env } from 'onnxruntime-node';
import { collectStatistics, type ActivationStatistics } from '../src/calibration/collect.js';
import { openCalibrationSet, type CalibrationSet } from '../src/calibration/data/index.js';
import { DEFAULT_INPUT_OPS, type TargetOptions } from '../src/calibration/targets.js';
import { table } from '../src/cli/output.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import { withOutputs } from '../src/runtime/capture.js';
import { type Feeds, Session } from '../src/runtime/session.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const REPEATS = 5;
const TARGET_RATIO = 0.8;

interface Args {
  model: string;
  batch: number;
  sequence: number;
  batches: number;
  threads?: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { model: join(REPO, 'models/tiny-llama/model.onnx'), batch: 4, sequence: 128, batches: 8 };
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
    else args.model = flag;
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
function collectionPass(model: OnnxModel, set: CalibrationSet, targets: TargetOptions | undefined, threads: number | undefined) {
  const holder: { last?: ActivationStatistics } = {};
  const pass: Pass = async () => {
    holder.last = await collectStatistics(model, set, { ...(targets ? { targets } : {}), ...(threads ? { session: { intraOpThreads: threads } } : {}) });
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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const model = loadModel(args.model);
  const data = join(REPO, 'calibration-sets/prose');
  const set = await openCalibrationSet(data, model, { samples: args.batch * args.batches, sequenceLength: args.sequence, batchSize: args.batch });
  const batches: Feeds[] = [];
  for await (const f of set.batches()) batches.push(f);
  const memory = inMemorySet(batches, set);
  const tokens = set.tokenCount;
  const sessionOptions = args.threads ? { intraOpThreads: args.threads } : {};

  const plain = await Session.create(model, sessionOptions);
  const unoptimised = await Session.create(model, { ...sessionOptions, graphOptimization: 'disabled' });
  const full = collectionPass(model, memory, undefined, args.threads);
  const minimal = collectionPass(model, memory, { inputsOf: DEFAULT_INPUT_OPS }, args.threads);
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
    full: full.pass,
    minimal: minimal.pass,
  };
  // One warm-up pass each, then rounds that run every pass in turn, so that all see the same machine: on a
  // shared machine speed drifts, and the ratio is taken within each round.
  for (const pass of Object.values(passes)) await pass();
  const rates: Record<string, number[]> = Object.fromEntries(Object.keys(passes).map((k) => [k, []]));
  const ratios: number[] = [];
  for (let round = 0; round < REPEATS; round++) {
    for (const [key, pass] of Object.entries(passes)) rates[key].push(await pass());
    ratios.push(rates.full[round] / rates.plain[round]);
  }
  for (const s of [plain, unoptimised, capture]) await s.dispose();

  const values = (s: ActivationStatistics) => s.tensors.reduce((n, t) => n + t.stats.count, 0) / s.tokens;
  const describe = (s: ActivationStatistics) => `${s.tensors.length} tensors; finalising took ${s.timing.finalizeSeconds.toFixed(2)} s`;
  const [fullStats, minimalStats] = [full.holder.last!, minimal.holder.last!];
  const measures: Measure[] = [
    { what: 'plain forward (ORT, graph optimisation all)', tokensPerSecond: median(rates.plain) },
    { what: 'plain forward, graph optimisation off', tokensPerSecond: median(rates.unoptimised) },
    { what: 'capture only: every target to JS, no statistics', tokensPerSecond: median(rates.capture), valuesPerToken: values(fullStats) },
    { what: 'statistics collection, default targets', tokensPerSecond: median(rates.full), valuesPerToken: values(fullStats), note: describe(fullStats) },
    {
      what: 'statistics collection, MatMul/Gemm/Conv inputs only',
      tokensPerSecond: median(rates.minimal),
      valuesPerToken: values(minimalStats),
      note: describe(minimalStats),
    },
  ];
  const plainRate = measures[0].tokensPerSecond;
  const ratio = median(ratios);
  const report = {
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryBytes: totalmem(), platform: process.platform, arch: process.arch, node: process.version },
    onnxRuntime: { version: env.versions.node ?? env.versions.common, executionProvider: 'cpu', intraOpThreads: args.threads ?? `ONNX Runtime default (${cpus().length} cores)` },
    method: {
      model: args.model,
      data: set.source,
      batch: args.batch,
      sequenceLength: args.sequence,
      batches: args.batches,
      tokensPerPass: tokens,
      rounds: REPEATS,
      statistic:
        'median over rounds after one warm-up pass each; each round runs every measure once in turn; collection is timed over its batches, finalisation apart; ratio = median of per-round collection/plain',
    },
    plainTokensPerSecond: plainRate,
    collectionTokensPerSecond: measures[3].tokensPerSecond,
    ratio,
    target: TARGET_RATIO,
    meetsTarget: ratio >= TARGET_RATIO,
    measures,
    rounds: { rates, ratios },
  };
  const out = join(REPO, 'bench', 'results', 'calibration-throughput.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);

  process.stdout.write(
    `${report.machine.cpu}, ${report.machine.cores} cores; ONNX Runtime ${report.onnxRuntime.version}, threads: ${report.onnxRuntime.intraOpThreads}\n` +
      `${args.model}, batch ${args.batch} x ${args.sequence} tokens, ${args.batches} batches (${tokens} tokens) per pass, ${REPEATS} rounds\n\n` +
      table(
        ['measure', 'tokens/s', 'of plain', 'values/token', 'note'],
        measures.map((m) => [
          m.what,
          Math.round(m.tokensPerSecond),
          `${((100 * m.tokensPerSecond) / plainRate).toFixed(1)}%`,
          m.valuesPerToken === undefined ? '' : Math.round(m.valuesPerToken),
          m.note ?? '',
        ]),
      ) +
      `\n\ncollection / plain forward: ${(100 * ratio).toFixed(1)}% (median of per-round ratios; target ${100 * TARGET_RATIO}%)\nwrote ${out}\n`,
  );
}

main().catch((e: Error) => {
  process.stderr.write(`calibration-throughput: ${e.message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exitCode = 1;
});
