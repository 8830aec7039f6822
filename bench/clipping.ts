// Activation clipping compared on w8a8 (static QDQ, per-channel int8 weights, uint8 activations): minmax, the
// |x| percentiles 99.9 / 99.99 / 99.999, entropy, and auto (per tensor, the candidate that least changes the
// output of the node reading it; src/quantization/clip-auto.ts). Not a timed test: it measures how far each
// written model's outputs move from the float model's, to choose the w8a8 default.
//
//   decoders     models/tiny-llama and models/tiny-gpt2; calibrated on the prose `calibration` split (64 samples x
//                128 tokens, seed 0), scored on the held-out `evaluation` split (windows of 128, stride 64, the
//                first --max-tokens tokens): top-1 agreement with the float model, KL(float || quantized),
//                perplexity change; and the cosine of the logits on 16 evaluation windows.
//   conformance  every model of Debian's libonnx-testdata pytorch-converted / pytorch-operator folders that w8a8
//                quantizes (single Conv / Gemm / MatMul layers; the suite ships no multi-layer CNN, its `real`
//                models are download pointers). Each has one test_data_set, so it is calibrated and evaluated on
//                the same input: output cosine and argmax agreement over the channel axis (axis 1).
//
// Statistics (full: percentiles and entropy) and the activation samples auto clipping needs are collected once
// per model; each method then only computes ranges and rewrites. Prints a table and writes
// bench/results/clipping.json.
//
//   npx tsc -p . && node dist/bench/clipping.js [--max-tokens N (default 8192; the figures in docs/figures.md used 16384)] [--threads N]
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { env } from 'onnxruntime-node';
import { ActivationSampler } from '../src/calibration/activation-samples.js';
import { collectStatistics, type ActivationStatistics } from '../src/calibration/collect.js';
import { openCalibrationSet, type CalibrationOptions, type CalibrationSet } from '../src/calibration/data/index.js';
import { table } from '../src/cli/output.js';
import { compareDecoders } from '../src/decoding/compare.js';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { outputAgreement } from '../src/decoding/output-agreement.js';
import { textCodecFor } from '../src/decoding/text-codec.js';
import { readScoringSet, resolveTextSet, type ScoringSet } from '../src/decoding/text-set.js';
import { loadModel, type OnnxModel } from '../src/onnx/model.js';
import { autoActivationRanges, autoSampleRequests, type AutoChoice, type AutoRangeSet } from '../src/quantization/clip-auto.js';
import { planFromScheme, plannedActivations, type QuantPlan } from '../src/quantization/plan.js';
import { activationRanges, STANDARD_PERCENTILES, type ClipChoice } from '../src/quantization/ranges.js';
import { resolveScheme } from '../src/quantization/schemes.js';
import { rewriteModel } from '../src/quantization/writers/index.js';
import { fromOrtTensor } from '../src/runtime/ort-tensor.js';
import { Session, type Feeds } from '../src/runtime/session.js';
import { conformanceModels, TESTDATA_ROOT as TESTDATA } from '../test/support/testdata.js';
import { machineFacts } from './support/machine.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DECODERS = ['models/tiny-llama/onnx/model.onnx', 'models/tiny-gpt2/onnx/model.onnx'];
const CONFORMANCE_FOLDERS = ['pytorch-converted', 'pytorch-operator'];
const CALIBRATION: CalibrationOptions = { samples: 64, sequenceLength: 128, batchSize: 8, seed: 0 };
const WINDOW = 128;
const COSINE_WINDOWS: CalibrationOptions = { samples: 16, sequenceLength: 128, batchSize: 4, seed: 1, split: 'evaluation' };

const METHODS: { label: string; clip: ClipChoice }[] = [
  { label: 'minmax', clip: { method: 'minmax' } },
  ...STANDARD_PERCENTILES.map((p) => ({ label: `percentile ${p}`, clip: { method: 'percentile', percentile: p } as ClipChoice })),
  { label: 'entropy', clip: { method: 'entropy' } },
  { label: 'auto', clip: { method: 'auto' } },
];

interface Args {
  maxTokens: number;
  threads: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { maxTokens: 8192, threads: cpus().length };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const n = Number(argv[i + 1]);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${a} needs a whole number >= 1`);
    if (a === '--max-tokens') args.maxTokens = n;
    else if (a === '--threads') args.threads = n;
    else throw new Error(`unknown argument ${a}`);
    i++;
  }
  return args;
}

interface Calibrated {
  plan: QuantPlan;
  statistics: ActivationStatistics;
  sampler: ActivationSampler;
  seconds: number;
}

/** Full statistics of the w8a8 plan's activations, with the samples auto clipping runs its candidates on. */
async function calibrate(model: OnnxModel, set: CalibrationSet, threads: number): Promise<Calibrated> {
  const plan = planFromScheme(model, resolveScheme('w8a8'));
  const sampler = new ActivationSampler(autoSampleRequests(plan), { seed: 0 });
  const t = performance.now();
  const statistics = await collectStatistics(model, set, { targets: { names: plannedActivations(plan) }, accumulators: [sampler], session: { intraOpThreads: threads } });
  return { plan, statistics, sampler, seconds: (performance.now() - t) / 1000 };
}

/** The w8a8 model with one clipping method, and what auto chose. */
async function quantizeWith(model: OnnxModel, c: Calibrated, clip: ClipChoice, threads: number): Promise<{ model: OnnxModel; choices?: AutoChoice[]; rangesSeconds: number }> {
  const t = performance.now();
  const ranges =
    clip.method === 'auto'
      ? await autoActivationRanges(model, c.plan, c.statistics, c.sampler.samples(), { session: { intraOpThreads: threads } })
      : activationRanges(c.statistics, clip, plannedActivations(c.plan));
  const rangesSeconds = (performance.now() - t) / 1000;
  const written = rewriteModel(model, c.plan, { activationRanges: ranges.ranges });
  return { model: written.model, ...(ranges.method === 'auto' ? { choices: (ranges as AutoRangeSet).choices } : {}), rangesSeconds };
}

function chosenCounts(choices: readonly AutoChoice[] | undefined): Record<string, number> | undefined {
  if (!choices) return undefined;
  const out: Record<string, number> = {};
  for (const ch of choices) out[ch.chosen] = (out[ch.chosen] ?? 0) + 1;
  return out;
}

interface DecoderRow {
  method: string;
  top1Agreement: number;
  klMean: number;
  perplexity: number;
  perplexityChange: number;
  logitsCosine: number;
  chosen?: Record<string, number>;
  rangesSeconds: number;
}

async function benchDecoder(path: string, args: Args) {
  const model = loadModel(join(REPO, path));
  const set = await openCalibrationSet(join(REPO, 'calibration-sets/prose'), model, CALIBRATION);
  const c = await calibrate(model, set, args.threads);
  log(`${path}: calibrated on ${c.statistics.samples} samples (${c.statistics.tokens} tokens) in ${c.seconds.toFixed(1)} s`);
  const session = { intraOpThreads: args.threads };
  const reference = await DecoderSession.open(model, session);
  const window = Math.min(WINDOW, reference.maxPositions ?? WINDOW);
  const windows = { window, stride: Math.max(1, Math.floor(window / 2)) };
  const scoring: ScoringSet = await readScoringSet(resolveTextSet(join(REPO, 'calibration-sets', 'prose')), textCodecFor(model, reference.vocab), {
    bos: reference.special.bos,
    maxTokens: args.maxTokens,
  });
  const cosineSet = await openCalibrationSet(join(REPO, 'calibration-sets/prose'), model, { ...COSINE_WINDOWS, sequenceLength: window });
  const referenceRun = await Session.create(model, session);
  const rows: DecoderRow[] = [];
  let autoChoices: AutoChoice[] | undefined;
  try {
    for (const m of METHODS) {
      const q = await quantizeWith(model, c, m.clip, args.threads);
      const candidate = await DecoderSession.open(q.model, session);
      const candidateRun = await Session.create(q.model, session);
      try {
        const cmp = await compareDecoders(reference, candidate, scoring, windows);
        const agreement = await outputAgreement(referenceRun, candidateRun, cosineSet.batches());
        const logits = agreement.outputs.find((o) => o.output === 'logits') ?? agreement.outputs[0];
        rows.push({
          method: m.label,
          top1Agreement: cmp.top1Agreement,
          klMean: cmp.kl.mean,
          perplexity: cmp.candidate.perplexity,
          perplexityChange: cmp.candidate.perplexity / cmp.reference.perplexity - 1,
          logitsCosine: logits.cosine,
          ...(q.choices ? { chosen: chosenCounts(q.choices) } : {}),
          rangesSeconds: q.rangesSeconds,
        });
        if (q.choices) autoChoices = q.choices;
        const r = rows.at(-1)!;
        log(`  ${m.label}: top-1 ${pct(r.top1Agreement)}, ppl ${signed(r.perplexityChange)}, logits cosine ${r.logitsCosine.toFixed(6)}`);
      } finally {
        await candidate.dispose();
        await candidateRun.dispose();
      }
    }
  } finally {
    await reference.dispose();
    await referenceRun.dispose();
  }
  const referencePerplexity = rows.length ? rows[0].perplexity / (1 + rows[0].perplexityChange) : NaN;
  return {
    model: path,
    calibration: { set: 'calibration-sets/prose (calibration split)', options: CALIBRATION, samples: c.statistics.samples, tokens: c.statistics.tokens, seconds: c.seconds },
    scoring: { set: 'calibration-sets/prose (evaluation split)', ...windows, tokens: scoring.tokens, referencePerplexity, cosineWindows: COSINE_WINDOWS },
    rows,
    auto: autoChoices?.map((ch) => ({ tensor: ch.tensor, chosen: ch.chosen, units: ch.units, errors: Object.fromEntries(ch.candidates.map((x) => [x.label, x.error])) })),
  };
}

interface ConformanceRow {
  method: string;
  cosine: number;
  argmaxAgreement: number;
  maxAbsDiff: number;
}

/** The conformance models w8a8 quantizes (it plans at least one activation), as folders relative to TESTDATA. */
function w8a8ConformanceModels(): string[] {
  return conformanceModels(CONFORMANCE_FOLDERS)
    .filter((file) => plannedActivations(planFromScheme(loadModel(file), resolveScheme('w8a8'))).length > 0)
    .map((file) => relative(TESTDATA, dirname(file)));
}

async function benchConformance(dir: string, args: Args) {
  const model = loadModel(join(TESTDATA, dir, 'model.onnx'));
  const set = await openCalibrationSet(join(TESTDATA, dir), model, {});
  const c = await calibrate(model, set, args.threads);
  const session = { intraOpThreads: args.threads };
  const reference = await Session.create(model, session);
  const rows: ConformanceRow[] = [];
  let autoChoices: AutoChoice[] | undefined;
  try {
    for (const m of METHODS) {
      const q = await quantizeWith(model, c, m.clip, args.threads);
      const candidate = await Session.create(q.model, session);
      try {
        const agreement = await outputAgreement(reference, candidate, set.batches());
        const argmax = await argmaxAgreement(reference, candidate, set);
        rows.push({ method: m.label, cosine: Math.min(...agreement.outputs.map((o) => o.cosine)), argmaxAgreement: argmax, maxAbsDiff: Math.max(...agreement.outputs.map((o) => o.maxAbsDiff)) });
        if (q.choices) autoChoices = q.choices;
      } finally {
        await candidate.dispose();
      }
    }
  } finally {
    await reference.dispose();
  }
  return { model: dir, samples: c.statistics.samples, rows, auto: autoChoices?.map((ch) => ({ tensor: ch.tensor, chosen: ch.chosen, units: ch.units, errors: Object.fromEntries(ch.candidates.map((x) => [x.label, x.error])) })) };
}

/** Share of positions whose largest value over axis 1 (the channels; the features of a 2-D output) is the same channel. */
async function argmaxAgreement(reference: Session, candidate: Session, set: CalibrationSet): Promise<number> {
  let same = 0;
  let total = 0;
  for await (const feeds of set.batches() as AsyncIterable<Feeds>) {
    const r = await reference.run(feeds);
    const q = await candidate.run(feeds);
    for (const name of reference.outputNames) {
      const a = fromOrtTensor(r[name]);
      const b = fromOrtTensor(q[name]);
      const dims = a.dims;
      if (dims.length < 2) continue;
      const channels = dims[1];
      const inner = dims.slice(2).reduce((x, y) => x * y, 1);
      const x = a.data as Float32Array;
      const y = b.data as Float32Array;
      for (let n = 0; n < dims[0]; n++) {
        for (let i = 0; i < inner; i++) {
          let ba = 0;
          let bb = 0;
          for (let ch = 1; ch < channels; ch++) {
            const at = (n * channels + ch) * inner + i;
            if (x[at] > x[(n * channels + ba) * inner + i]) ba = ch;
            if (y[at] > y[(n * channels + bb) * inner + i]) bb = ch;
          }
          if (ba === bb) same++;
          total++;
        }
      }
    }
  }
  return total ? same / total : NaN;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = new Date();
  const loadAtStart = loadavg();
  const t0 = performance.now();
  const decoders = [];
  for (const path of DECODERS) decoders.push(await benchDecoder(path, args));
  const conformance: Awaited<ReturnType<typeof benchConformance>>[] = [];
  const refused: { model: string; reason: string }[] = [];
  for (const dir of w8a8ConformanceModels()) {
    try {
      conformance.push(await benchConformance(dir, args));
    } catch (e) {
      // A model ONNX Runtime cannot run in float (an opset it has no kernel for) has nothing to compare with.
      refused.push({ model: dir, reason: (e as Error).message });
      log(`${dir}: ${(e as Error).message}`);
      continue;
    }
    log(`${dir}: ${conformance.at(-1)!.rows.map((r) => `${r.method} ${r.cosine.toFixed(5)}`).join(', ')}`);
  }
  // Per method over the conformance models: the worst and the mean cosine, and the mean argmax agreement.
  const conformanceSummary = METHODS.map((m) => {
    const rows = conformance.map((c) => c.rows.find((r) => r.method === m.label)!);
    return {
      method: m.label,
      models: rows.length,
      worstCosine: Math.min(...rows.map((r) => r.cosine)),
      meanCosine: rows.reduce((a, r) => a + r.cosine, 0) / rows.length,
      meanArgmaxAgreement: rows.reduce((a, r) => a + r.argmaxAgreement, 0) / rows.length,
      best: conformance.filter((c) => {
        const mine = c.rows.find((r) => r.method === m.label)!.cosine;
        return c.rows.every((r) => r.cosine <= mine + 1e-9);
      }).length,
    };
  });
  const result = {
    date: started.toISOString(),
    machine: { ...machineFacts(), loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadavg() },
    onnxRuntime: { version: env.versions.node ?? env.versions.common, executionProvider: 'cpu', intraOpThreads: args.threads },
    scheme: 'w8a8 (QDQ, int8 per-channel symmetric weights, uint8 per-tensor activations), round-to-nearest',
    seconds: (performance.now() - t0) / 1000,
    decoders,
    conformance: { note: 'one test_data_set per model: calibrated and evaluated on the same input', summary: conformanceSummary, models: conformance, refused },
  };
  const out = join(REPO, 'bench', 'results', 'clipping.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  const lines = [
    `${result.machine.cpu}, ${result.machine.cores} cores, Node ${process.version}; ONNX Runtime ${result.onnxRuntime.version} (cpu), ${args.threads} threads; ${result.seconds.toFixed(0)} s`,
  ];
  for (const d of decoders) {
    lines.push(
      `${d.model}: prose evaluation split, ${d.scoring.tokens} tokens (float perplexity ${d.scoring.referencePerplexity.toFixed(4)}); calibrated on ${d.calibration.samples} x ${CALIBRATION.sequenceLength} tokens`,
      table(
        ['clipping', 'top-1 agreement', 'KL mean (nats)', 'perplexity', 'vs float', 'logits cosine', 'auto chose'],
        d.rows.map((r) => [
          r.method,
          pct(r.top1Agreement),
          r.klMean.toExponential(3),
          r.perplexity.toFixed(4),
          signed(r.perplexityChange),
          r.logitsCosine.toFixed(6),
          r.chosen ? Object.entries(r.chosen).map(([k, n]) => `${k} x${n}`).join(', ') : '',
        ]),
      ),
    );
  }
  lines.push(
    `conformance models (${conformance.length}, each calibrated and evaluated on its one input; ${refused.length} not run: ${refused.map((r) => r.model).join(', ') || 'none'}):`,
    table(
      ['clipping', 'worst cosine', 'mean cosine', 'mean argmax agreement', 'best or tied on'],
      conformanceSummary.map((s) => [s.method, s.worstCosine.toFixed(6), s.meanCosine.toFixed(6), pct(s.meanArgmaxAgreement), `${s.best}/${s.models}`]),
    ),
    `wrote ${out}`,
    '',
  );
  process.stdout.write(lines.join('\n'));
}

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
const signed = (x: number): string => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)}%`;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`clipping: ${e.stack ?? e.message}\n`);
  process.exitCode = 1;
});
