// Bit allocation (src/allocation/) against uniform widths at equal or fewer bytes. For each decoder (tiny-llama,
// tiny-gpt2 and, when present, the PyTorch-exported byte-level LLaMA in ../shared/models): per-layer sensitivity on
// the prose selection split, then for each target average width (3, 3.5, 4.25, 6 bits per weight, scales counted)
// the uniform plan with the fewest bits per weight at or above it sets the byte budget, and the integer program
// chooses a width per layer within those bytes. Both plans are written through `quantize --plan` (quantizePass:
// saved, verified in ONNX Runtime) and scored: perplexity on the prose and code evaluation splits, and the KL to the
// float model on the selection data measured for the whole plan beside the summed per-layer ΔL the program
// minimised (how additive the deltas are). The same for a small ResNet-style CNN (bench/support/small-cnn.ts: the
// conformance suite has no multi-layer image model) on generated images, scored by logit cosine and top-1
// agreement with the float model on images the allocation did not see.
//
//   npx tsc -p . && node dist/bench/allocation.js [--max-tokens N (default 2048)] [--workers N] [--no-shared] [--only decoders|cnn]
//
// Prints a table and writes bench/results/allocation.json.
import { classifierAgreement } from './support/classifier-agreement.js';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { env } from 'onnxruntime-node';
import { allocateFor, PlanLossMeter, uniformChoice } from '../src/allocation/allocate.js';
import { parseCandidates, type CandidateSpec } from '../src/allocation/candidates.js';
import { allocationPlanFile } from '../src/allocation/plan-writer.js';
import { measureSensitivity, type SensitivityTable } from '../src/allocation/sensitivity.js';
import { fingerprint } from '../src/calibration/stats-file.js';
import { openCalibrationSet } from '../src/calibration/data/index.js';
import { table } from '../src/cli/output.js';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { perplexity } from '../src/decoding/perplexity.js';
import { textCodecFor } from '../src/decoding/text-codec.js';
import { readScoringSet, resolveTextSet, type ScoringSet } from '../src/decoding/text-set.js';
import { loadModel } from '../src/onnx/model.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { tensorBytes } from '../src/quantization/writers/common.js';
import { Session, type Feeds } from '../src/runtime/session.js';
import { machineFacts } from './support/machine.js';
import { writeSmallCnn } from './support/small-cnn.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DECODERS = ['models/tiny-llama/onnx/model.onnx', 'models/tiny-gpt2/onnx/model.onnx'];
const SHARED = '../shared/models/byte-llama-12m/onnx/model.onnx';
// Block sizes give the uniform plans bits per weight near each target (2 + 32/16 = 4.00, 4 + 32/128 = 4.25...);
// 2g128 (2.25 bits) is below every target, so that even at 3 bits the program has something to trade.
const DECODER_CANDIDATES = '2g128,2g16,2g32,4g16,4g32,4g128,8g32';
const TARGET_BITS = [3, 3.5, 4.25, 6];
const SELECTION = { samples: 4, sequenceLength: 64, seed: 0 };
const EVAL_SETS = ['prose', 'code'];
const WINDOW = 128;
// 2-bit QDQ is kept to show its drop reason: Convs have no MatMulNBits form, so 2 bits is no smaller than 8 there.
const CNN_CANDIDATES = '2g32,4g16,4g32,4g128,8g32';
const CNN_SELECTION_IMAGES = 16;
const CNN_EVAL_IMAGES = 64;

interface Args {
  maxTokens: number;
  workers: number;
  shared: boolean;
  /** Run only the decoders or only the CNN. */
  only?: 'decoders' | 'cnn';
}

function parseArgs(argv: string[]): Args {
  const args: Args = { maxTokens: 2048, workers: cpus().length, shared: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--no-shared') {
      args.shared = false;
      continue;
    }
    if (a === '--only') {
      const what = argv[++i];
      if (what !== 'decoders' && what !== 'cnn') throw new Error('--only takes decoders or cnn');
      args.only = what;
      continue;
    }
    const n = Number(argv[++i]);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${a} needs a whole number >= 1`);
    if (a === '--max-tokens') args.maxTokens = n;
    else if (a === '--workers') args.workers = n;
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

interface PlanPoint {
  kind: 'mixed' | 'uniform';
  label: string;
  choice: number[];
  totalBytes: number;
  averageBits: number;
  predictedLoss: number;
  measuredLoss?: number;
}

interface WrittenPlan {
  /** Initializer bytes of the written model: must equal the plan's bytes. */
  writtenBytes: number;
  gateMet: boolean;
  worstCosine: number;
  top1?: number;
  path: string;
}

/** Every uniform plan of the candidates, in the table's own layer formats. */
function uniformPoints(t: SensitivityTable, specs: readonly CandidateSpec[]): PlanPoint[] {
  return specs.map((spec) => {
    const choice = uniformChoice(t, spec);
    const chosen = t.layers.map((l, i) => l.candidates[choice[i]]);
    const layerBytes = chosen.reduce((a, c) => a + c.bytes, 0);
    return {
      kind: 'uniform',
      label: `w${spec.bits} g${spec.blockSize}`,
      choice,
      totalBytes: t.sizes.fixedBytes + layerBytes,
      averageBits: (8 * layerBytes) / t.sizes.layerWeights,
      predictedLoss: chosen.reduce((a, c) => a + c.deltaLoss, 0),
    };
  });
}

/** The mixed plan the integer program chooses within a uniform plan's bytes. */
async function mixedWithin(t: SensitivityTable, uniform: PlanPoint): Promise<PlanPoint & { solver: string; status: string; solverSeconds: number }> {
  const { summary, choice } = await allocateFor(t, uniform.totalBytes, { budget: `${uniform.label} (${uniform.totalBytes} bytes)` });
  return { kind: 'mixed', label: `mixed <= ${uniform.label}`, choice, totalBytes: summary.totalBytes, averageBits: summary.averageBits, predictedLoss: summary.predictedLoss, solver: summary.solver, status: summary.status, solverSeconds: summary.solverSeconds };
}

/** Writes a plan through the quantize command's pass (saved, then verified in ONNX Runtime; gate figures recorded). */
async function writePlan(modelPath: string, t: SensitivityTable, p: PlanPoint, dir: string, calib: string): Promise<WrittenPlan> {
  const name = p.label.replace(/[^a-z0-9.]+/gi, '-');
  const planPath = join(dir, `${name}.plan.json`);
  writeFileSync(planPath, JSON.stringify(allocationPlanFile(t.layers, p.choice)));
  const out = join(dir, `${name}.onnx`);
  const r = await quantizePass(modelPath, { plan: planPath }, {
    out,
    calibration: { data: calib, options: { samples: 4, ...(calib === 'prose' ? { sequenceLength: 64 } : {}), seed: 1 } },
    verify: { gate: false },
  });
  const writtenBytes = loadModel(out).graph.initializer.reduce((a, x) => a + tensorBytes(x), 0);
  const v = r.verification;
  return { writtenBytes, gateMet: v.waived === undefined, worstCosine: v.worst.cosine, ...(v.languageModel ? { top1: v.languageModel.top1Agreement } : {}), path: out };
}

function log(s: string): void {
  process.stderr.write(`${s}\n`);
}

interface BudgetRow {
  target: number;
  uniform: PlanPoint & { written: Omit<WrittenPlan, 'path'>; perplexity: Record<string, number> };
  mixed: PlanPoint & { written: Omit<WrittenPlan, 'path'>; perplexity: Record<string, number>; solver: string; status: string };
  /** Mixed perplexity below uniform's on every evaluation set, at no more bytes. */
  mixedBetter: boolean;
}

async function benchDecoder(path: string, args: Args, work: string): Promise<Record<string, unknown>> {
  const rel = relative(REPO, path);
  const started = performance.now();
  const model = loadModel(path);
  const specs = parseCandidates(DECODER_CANDIDATES);
  const sensitivity = await measureSensitivity(model, { path, sha256: fingerprint(path).sha256 }, { candidates: specs, data: 'prose', workers: args.workers, session: { intraOpThreads: 1 }, ...SELECTION });
  const uniforms = uniformPoints(sensitivity, specs).sort((a, b) => a.averageBits - b.averageBits);
  const chosen = TARGET_BITS.map((target) => ({ target, uniform: uniforms.find((u) => u.averageBits >= target - 1e-9) ?? uniforms.at(-1)! }));
  const mixed = await Promise.all(chosen.map((c) => mixedWithin(sensitivity, c.uniform)));
  const allocationSeconds = sensitivity.timing.totalSeconds + mixed.reduce((a, m) => a + m.solverSeconds, 0);
  log(`${rel}: sensitivity ${sensitivity.timing.totalSeconds.toFixed(1)} s (${sensitivity.timing.jobs} candidates), ${sensitivity.layers.length} layers`);

  const meter = await PlanLossMeter.open(model, sensitivity, { data: 'prose', workers: args.workers, ...SELECTION });
  try {
    const points = [...chosen.map((c) => c.uniform), ...mixed];
    const losses = await meter.measure(points.map((p) => p.choice.map((ci, l) => sensitivity.layers[l].candidates[ci].label)), specs);
    points.forEach((p, i) => (p.measuredLoss = losses[i]));
  } finally {
    await meter.close();
  }

  const dir = join(work, rel.replace(/[^a-z0-9]+/gi, '-'));
  mkdirSync(dir, { recursive: true });
  const reference = await DecoderSession.open(model, { intraOpThreads: args.workers });
  const window = Math.min(WINDOW, reference.maxPositions ?? WINDOW);
  const plan = { window, stride: Math.floor(window / 2) };
  const sets: [string, ScoringSet][] = [];
  for (const s of EVAL_SETS) sets.push([s, await readScoringSet(resolveTextSet(s), textCodecFor(model, reference.vocab), { bos: reference.special.bos, maxTokens: args.maxTokens })]);
  const floatPerplexity: Record<string, number> = {};
  for (const [s, set] of sets) floatPerplexity[s] = (await perplexity(reference, set, plan)).perplexity;
  await reference.dispose();

  const scored = new Map<string, { written: Omit<WrittenPlan, 'path'>; perplexity: Record<string, number> }>();
  const score = async (p: PlanPoint) => {
    const key = `${p.kind} ${p.totalBytes} ${p.choice.join(',')}`;
    let s = scored.get(key);
    if (!s) {
      const { path: out, ...written } = await writePlan(path, sensitivity, p, dir, 'prose');
      const decoder = await DecoderSession.open(out, { intraOpThreads: args.workers });
      const ppl: Record<string, number> = {};
      try {
        for (const [name, set] of sets) ppl[name] = (await perplexity(decoder, set, plan)).perplexity;
      } finally {
        await decoder.dispose();
      }
      s = { written, perplexity: ppl };
      scored.set(key, s);
    }
    return s;
  };
  const rows: BudgetRow[] = [];
  for (let i = 0; i < chosen.length; i++) {
    const u = { ...chosen[i].uniform, ...(await score(chosen[i].uniform)) };
    const m = { ...mixed[i], ...(await score(mixed[i])) };
    const mixedBetter = m.totalBytes <= u.totalBytes && EVAL_SETS.every((s) => m.perplexity[s] < u.perplexity[s]);
    rows.push({ target: chosen[i].target, uniform: u, mixed: m, mixedBetter });
    log(`${rel} ${chosen[i].target} bits: uniform ${u.label} ${u.totalBytes} B ppl ${EVAL_SETS.map((s) => u.perplexity[s].toFixed(4)).join('/')}; mixed ${m.totalBytes} B ppl ${EVAL_SETS.map((s) => m.perplexity[s].toFixed(4)).join('/')}`);
  }
  return {
    model: rel,
    layers: sensitivity.layers.length,
    sizes: sensitivity.sizes,
    candidates: sensitivity.candidates,
    dropped: sensitivity.layers.reduce((a, l) => a + l.dropped.length, 0),
    dropReasons: [...new Set(sensitivity.layers.flatMap((l) => l.dropped.map((d) => `${d.label}: ${d.reason.replace(/\d+ bytes/g, 'N bytes')}`)))],
    sensitivityTiming: sensitivity.timing,
    proxies: sensitivity.proxies,
    allocationSeconds,
    floatPerplexity,
    tokens: Object.fromEntries(sets.map(([n, s]) => [n, s.tokens])),
    rows,
    seconds: (performance.now() - started) / 1000,
  };
}


async function benchCnn(args: Args, work: string): Promise<Record<string, unknown>> {
  const started = performance.now();
  const dir = join(work, 'cnn');
  const { model: path, data } = writeSmallCnn(dir, CNN_SELECTION_IMAGES);
  const { data: evalData } = writeSmallCnn(join(dir, 'held-out'), CNN_EVAL_IMAGES, 12345);
  const model = loadModel(path);
  const specs = parseCandidates(CNN_CANDIDATES);
  const selection = { samples: CNN_SELECTION_IMAGES, seed: 0 };
  const sensitivity = await measureSensitivity(model, { path, sha256: fingerprint(path).sha256 }, { candidates: specs, data, workers: args.workers, session: { intraOpThreads: 1 }, ...selection });
  // Every uniform plan below 8 bits sets a budget. 2 bits is uniform in name only here (every Conv drops it and
  // falls back to a wider width), so only plans with the one candidate in every layer count.
  const uniforms = uniformPoints(sensitivity, specs)
    .filter((u) => u.label !== 'w8 g32' && u.choice.every((ci, l) => sensitivity.layers[l].candidates[ci].label === u.label))
    .sort((a, b) => a.averageBits - b.averageBits)
    .filter((u, i, all) => all.findIndex((o) => o.totalBytes === u.totalBytes) === i);
  const mixed = await Promise.all(uniforms.map((u) => mixedWithin(sensitivity, u)));
  const meter = await PlanLossMeter.open(model, sensitivity, { data, workers: args.workers, ...selection });
  try {
    const points = [...uniforms, ...mixed];
    const losses = await meter.measure(points.map((p) => p.choice.map((ci, l) => sensitivity.layers[l].candidates[ci].label)), specs);
    points.forEach((p, i) => (p.measuredLoss = losses[i]));
  } finally {
    await meter.close();
  }
  const evalSet = await openCalibrationSet(evalData, model, { samples: CNN_EVAL_IMAGES, batchSize: 16 });
  const batches: Feeds[] = [];
  for await (const b of evalSet.batches()) batches.push(b);
  const reference = await Session.create(model, { intraOpThreads: args.workers });
  const rows = [];
  try {
    for (let i = 0; i < uniforms.length; i++) {
      const row: Record<string, unknown> = { budget: uniforms[i].label };
      for (const p of [uniforms[i], mixed[i]]) {
        const { path: out, ...written } = await writePlan(path, sensitivity, p, dir, data);
        const candidate = await Session.create(out, { intraOpThreads: args.workers });
        try {
          row[p.kind] = { ...p, written, ...(await classifierAgreement(reference, candidate, batches, 'logits')) };
        } finally {
          await candidate.dispose();
        }
      }
      const [u, m] = [row.uniform as { cosine: number; top1: number; totalBytes: number }, row.mixed as { cosine: number; top1: number; totalBytes: number }];
      row.mixedBetter = m.totalBytes <= u.totalBytes && m.cosine > u.cosine && m.top1 >= u.top1;
      rows.push(row);
      log(`cnn ${uniforms[i].label}: uniform ${u.totalBytes} B cos ${u.cosine.toFixed(5)} top-1 ${u.top1}; mixed ${m.totalBytes} B cos ${m.cosine.toFixed(5)} top-1 ${m.top1}`);
    }
  } finally {
    await reference.dispose();
  }
  return {
    model: 'bench/support/small-cnn.ts (generated, seed 7)',
    layers: sensitivity.layers.length,
    sizes: sensitivity.sizes,
    candidates: sensitivity.candidates,
    dropReasons: [...new Set(sensitivity.layers.flatMap((l) => l.dropped.map((d) => `${d.label}: ${d.reason.replace(/\d+ bytes/g, 'N bytes')}`)))],
    sensitivityTiming: sensitivity.timing,
    selectionImages: CNN_SELECTION_IMAGES,
    evaluationImages: CNN_EVAL_IMAGES,
    rows,
    seconds: (performance.now() - started) / 1000,
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  env.logLevel = 'error';
  const started = performance.now();
  const work = mkdtempSync(join(tmpdir(), 'bench-allocation-'));
  const paths = DECODERS.map((m) => join(REPO, m));
  const shared = join(REPO, SHARED);
  if (args.shared && existsSync(shared)) paths.push(shared);
  try {
    const decoders = [];
    if (args.only !== 'cnn') for (const p of paths) decoders.push(await benchDecoder(p, args, work));
    const cnn = args.only === 'decoders' ? undefined : await benchCnn(args, work);
    const result = {
      bench: 'allocation',
      date: new Date().toISOString(),
      machine: machineFacts(),
      workers: args.workers,
      selection: { set: 'prose (selection split)', ...SELECTION },
      evaluation: { sets: EVAL_SETS.map((s) => `${s} (evaluation split)`), maxTokens: args.maxTokens, window: WINDOW, stride: WINDOW / 2 },
      budgetRule: 'for each target width, the uniform plan with the fewest bits per weight (scales counted) at or above it; the mixed plan gets at most its bytes',
      decoders,
      cnn,
      seconds: (performance.now() - started) / 1000,
    };
    mkdirSync(join(REPO, 'bench', 'results'), { recursive: true });
    writeFileSync(join(REPO, 'bench', 'results', 'allocation.json'), `${JSON.stringify(result, null, 2)}\n`);
    const f = (x: number) => x.toFixed(3);
    console.log(
      table(
        ['model', 'target', 'uniform', 'bytes', 'mixed bytes', ...EVAL_SETS.flatMap((s) => [`${s} ppl uniform`, `${s} ppl mixed`]), 'KL uniform', 'KL mixed (Σ ΔL)', 'mixed better'],
        decoders.flatMap((d) =>
          (d.rows as BudgetRow[]).map((r) => [
            d.model as string,
            r.target,
            r.uniform.label,
            r.uniform.totalBytes,
            r.mixed.totalBytes,
            ...EVAL_SETS.flatMap((s) => [f(r.uniform.perplexity[s]), f(r.mixed.perplexity[s])]),
            r.uniform.measuredLoss!.toExponential(2),
            `${r.mixed.measuredLoss!.toExponential(2)} (${r.mixed.predictedLoss.toExponential(2)})`,
            r.mixedBetter ? 'yes' : 'no',
          ]),
        ),
      ),
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
