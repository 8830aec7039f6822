// What verification measures on healthy and on collapsed models, to choose the quality gate's defaults
// (src/quantization/verify.ts DEFAULT_GATE; docs/quality-gate.md).
//
// Every shipped scheme x activation clipping method (minmax, percentile, entropy: static schemes only) on the sample
// decoders (models/tiny-llama, models/tiny-gpt2; ranges from the prose calibration split, 128 windows of 128
// tokens, collected once per model into a statistics file) and on the conformance CNNs/MLPs (Debian's
// libonnx-testdata: every model of node, pytorch-converted and simple with a Conv, Gemm or MatMul whose weight is
// computed from constants; its test_data_set inputs are both the calibration and the verification data). Each is
// quantized through the library with the gate off, so every figure is recorded:
//   - the verification report's: worst output cosine (and which output), top-1 agreement, KL mean and perplexity
//     on the batch for decoders (what the gate sees by default: one calibration batch);
//   - decoders, wider: the same comparison on 16 held-out windows of the prose evaluation split;
//   - other models: argmax agreement over axis 1 (the class or channel axis) of every output, over the batch,
//     which is a classifier's top-1 analogue.
// Beside them, deliberately broken models: 2-bit weights (w4-qdq, and w8a8 per channel), 3-bit weights (a stress
// case, neither healthy nor broken by construction), and w8a8 whose writer zeroed one weight (the largest int8
// weight read by a DequantizeLinear), through the runner's `transform` hook.
//
// Prints a table and writes bench/results/quality-gate.json (machine facts included).
//
//   npx tsc -p . && node dist/bench/quality-gate.js [--threads N] [--decoders-only | --conformance-only]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { collectStatistics } from '../src/calibration/collect.js';
import { openCalibrationSet, type CalibrationOptions } from '../src/calibration/data/index.js';
import { writeStatsFile } from '../src/calibration/stats-file.js';
import { table } from '../src/cli/output.js';
import { isOnnxCompressError } from '../src/errors.js';
import { GraphEditor } from '../src/onnx/editor.js';
import { loadModel, type OnnxModel } from '../src/onnx/model.js';
import { elementCount, zeroValues } from '../src/onnx/tensor.js';
import { quantizePass, type QuantizePassOptions, type QuantizationRunReport } from '../src/quantization/pipeline.js';
import { resolveScheme, SCHEME_NAMES, type SchemeOptions } from '../src/quantization/schemes.js';
import { calibrationInputs, DEFAULT_GATE, gateFailure, verifyModel, type VerificationInputs } from '../src/quantization/verify.js';
import { fromOrtTensor } from '../src/runtime/ort-tensor.js';
import { Session } from '../src/runtime/session.js';
import { machineFacts } from './support/machine.js';
import { conformanceWeightModels, WEIGHT_OPS } from './support/weight-models.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DECODERS = ['models/tiny-llama', 'models/tiny-gpt2'];
const CONFORMANCE_SUITES = ['node', 'pytorch-converted', 'simple'];
const CLIPS = ['minmax', 'percentile', 'entropy'] as const;
// As the main job (recipes/w8a8-prose.json): the sample models were trained on 128-token windows.
const CALIBRATION: CalibrationOptions = { samples: 128, sequenceLength: 128, batchSize: 1, seed: 0 };
const HELD_OUT: CalibrationOptions = { samples: 16, sequenceLength: 128, batchSize: 16, seed: 0 };

type Health = 'healthy' | 'stress' | 'broken';

interface Variant {
  label: string;
  scheme: string;
  options: SchemeOptions;
  clip?: (typeof CLIPS)[number];
  health: Health;
  /** Zero the largest int8 weight read by a DequantizeLinear (a writer bug). */
  zeroWeight?: boolean;
}

interface Row {
  model: string;
  kind: 'decoder' | 'other';
  variant: string;
  health: Health;
  status: 'ran' | 'refused' | 'crashed';
  reason?: string;
  worstCosine?: number;
  worstOutput?: string;
  /** Decoders: the logits output's cosine (the worst output is often a KV-cache output). */
  logitsCosine?: number;
  top1?: number;
  klMean?: number;
  perplexityRatio?: number;
  /** Decoders: the same figures on held-out windows of the prose evaluation split. */
  heldOut?: { tokens: number; worstCosine: number; top1?: number; klMean?: number; perplexityRatio?: number };
  /** Other models: share of positions whose argmax over axis 1 agrees, worst output. */
  argmaxAgreement?: number;
  /** What the default gate would say (undefined: passes). */
  defaultGate?: string;
  seconds: number;
}

function variants(): Variant[] {
  const out: Variant[] = [];
  for (const scheme of SCHEME_NAMES) {
    if (resolveScheme(scheme).activations) for (const clip of CLIPS) out.push({ label: `${scheme} ${clip}`, scheme, options: {}, clip, health: 'healthy' });
    else out.push({ label: scheme, scheme, options: {}, health: 'healthy' });
  }
  out.push(
    { label: 'w4-qdq 3-bit', scheme: 'w4-qdq', options: { bits: 3 }, health: 'stress' },
    { label: 'w8a8 3-bit minmax', scheme: 'w8a8', options: { bits: 3 }, clip: 'minmax', health: 'stress' },
    { label: 'w4-qdq 2-bit', scheme: 'w4-qdq', options: { bits: 2 }, health: 'broken' },
    { label: 'w8a8 2-bit minmax', scheme: 'w8a8', options: { bits: 2 }, clip: 'minmax', health: 'broken' },
    { label: 'w8a8 minmax, one weight zeroed', scheme: 'w8a8', options: {}, clip: 'minmax', health: 'broken', zeroWeight: true },
  );
  return out;
}

/** The written model with its largest DequantizeLinear-read initializer set to zeros (symmetric int8: a zero weight). */
function zeroLargestWeight(model: OnnxModel): OnnxModel {
  const g = model.graph;
  const read = new Set(g.node.filter((n) => n.opType === 'DequantizeLinear').map((n) => n.input[0]));
  const weights = g.initializer.filter((t) => read.has(t.name ?? ''));
  if (weights.length === 0) return model;
  const largest = weights.reduce((a, t) => (elementCount(t.dims) > elementCount(a.dims) ? t : a));
  const editor = new GraphEditor(model);
  editor.replaceInitializer(largest.name!, largest.dataType!, largest.dims, zeroValues(largest.dataType!, elementCount(largest.dims)));
  return editor.finish().model;
}

async function argmaxAgreement(original: string, written: string, inputs: VerificationInputs, threads: number): Promise<number> {
  const a = await Session.create(original, { intraOpThreads: threads });
  const b = await Session.create(written, { intraOpThreads: threads });
  try {
    let worst = 1;
    for (const name of a.outputNames) {
      let agree = 0;
      let total = 0;
      for (const feeds of inputs.batches) {
        const x = fromOrtTensor((await a.run(feeds))[name]);
        const y = fromOrtTensor((await b.run(feeds))[name]);
        if (x.dims.length < 2) continue;
        const [outer, classes] = [x.dims[0], x.dims[1]];
        const inner = x.dims.slice(2).reduce((p, d) => p * d, 1);
        const xs = x.data as ArrayLike<number>;
        const ys = y.data as ArrayLike<number>;
        for (let o = 0; o < outer; o++) {
          for (let i = 0; i < inner; i++) {
            const at = (d: ArrayLike<number>, c: number) => d[(o * classes + c) * inner + i];
            let bx = 0;
            let by = 0;
            for (let c = 1; c < classes; c++) {
              if (at(xs, c) > at(xs, bx)) bx = c;
              if (at(ys, c) > at(ys, by)) by = c;
            }
            agree += bx === by ? 1 : 0;
            total++;
          }
        }
      }
      if (total) worst = Math.min(worst, agree / total);
    }
    return worst;
  } finally {
    await a.dispose();
    await b.dispose();
  }
}

async function runVariant(
  modelPath: string,
  kind: Row['kind'],
  v: Variant,
  work: string,
  common: Pick<QuantizePassOptions, 'stats' | 'calibration' | 'session'>,
  heldOut: VerificationInputs | undefined,
  threads: number,
): Promise<Row> {
  const started = performance.now();
  const name = short(modelPath);
  const out = join(work, `${name}-${v.label.replace(/[^\w.]+/g, '-')}.onnx`);
  const base = { model: modelPath.startsWith(REPO) ? modelPath.slice(REPO.length + 1) : modelPath, kind, variant: v.label, health: v.health };
  let report: QuantizationRunReport;
  try {
    const activations = resolveScheme(v.scheme, v.options).activations !== undefined;
    report = await quantizePass(modelPath, v.scheme, {
      out,
      ...v.options,
      ...(activations ? { ...(common.stats ? { stats: common.stats } : { calibration: common.calibration }) } : common.calibration ? { calibration: common.calibration } : {}),
      ...(v.clip ? { clip: { method: v.clip } } : {}),
      session: common.session,
      verify: { gate: false },
      ...(v.zeroWeight ? { transform: zeroLargestWeight } : {}),
    });
  } catch (e) {
    const seconds = (performance.now() - started) / 1000;
    if (isOnnxCompressError(e)) return { ...base, status: 'refused', reason: (e as Error).message.replace(modelPath, '').replace(/^: /, ''), seconds };
    return { ...base, status: 'crashed', reason: (e as Error).stack ?? String(e), seconds };
  }
  const ver = report.verification;
  const worst = ver.outputs.reduce((a, o) => (o.cosine < a.cosine ? o : a));
  const lm = ver.languageModel;
  const row: Row = {
    ...base,
    status: 'ran',
    worstCosine: ver.worst.cosine,
    worstOutput: worst.output,
    ...(lm
      ? {
          logitsCosine: ver.outputs.find((o) => o.output === 'logits')?.cosine,
          top1: lm.top1Agreement,
          klMean: lm.kl.mean,
          perplexityRatio: lm.perplexity.quantized / lm.perplexity.original,
        }
      : {}),
    defaultGate: gateFailure({ ...ver, thresholds: { minCosine: DEFAULT_GATE.minCosine, ...(lm ? { minTop1Agreement: DEFAULT_GATE.minTop1Agreement } : {}), defaults: ['minCosine', 'minTop1Agreement'] } }),
    seconds: 0,
  };
  if (kind === 'decoder' && heldOut) {
    const h = await verifyModel(loadModel(modelPath), out, heldOut, { gate: false, intraOpThreads: threads });
    const hl = h.languageModel;
    row.heldOut = {
      tokens: hl?.tokens ?? 0,
      worstCosine: h.worst.cosine,
      ...(hl ? { top1: hl.top1Agreement, klMean: hl.kl.mean, perplexityRatio: hl.perplexity.quantized / hl.perplexity.original } : {}),
    };
  } else if (kind === 'other') {
    const set = await openCalibrationSet(dirname(modelPath), loadModel(modelPath), {});
    row.argmaxAgreement = await argmaxAgreement(modelPath, out, await calibrationInputs(set, Number.MAX_SAFE_INTEGER), threads);
  }
  rmSync(out, { force: true });
  rmSync(`${out}_data`, { force: true });
  row.seconds = (performance.now() - started) / 1000;
  return row;
}

async function decoderRows(dir: string, work: string, threads: number): Promise<Row[]> {
  const modelPath = join(REPO, dir, 'onnx', 'model.onnx');
  const model = loadModel(modelPath);
  const data = join(REPO, 'calibration-sets/prose');
  const set = await openCalibrationSet(data, model, CALIBRATION);
  const statistics = await collectStatistics(model, set, { targets: { inputsOf: WEIGHT_OPS }, session: { intraOpThreads: threads } });
  const stats = join(work, `${dir.replace(/\W+/g, '-')}-stats.json`);
  writeStatsFile(stats, statistics, { modelPath, calibration: CALIBRATION });
  const heldOut = await calibrationInputs(await openCalibrationSet(join(data, 'evaluation.jsonl'), model, HELD_OUT), 1);
  const rows: Row[] = [];
  for (const v of variants()) {
    const row = await runVariant(modelPath, 'decoder', v, work, { stats, calibration: { data, options: CALIBRATION }, session: { intraOpThreads: threads } }, heldOut, threads);
    log(row);
    rows.push(row);
  }
  return rows;
}

async function conformanceRows(work: string, threads: number): Promise<Row[]> {
  const rows: Row[] = [];
  for (const dir of conformanceWeightModels(CONFORMANCE_SUITES)) {
    for (const v of variants()) {
      const row = await runVariant(join(dir, 'model.onnx'), 'other', v, work, { calibration: { data: dir }, session: { intraOpThreads: threads } }, undefined, threads);
      log(row);
      rows.push(row);
    }
  }
  return rows;
}

/** A model's name in tables: its folder (the sample models' folder above onnx/). */
function short(modelPath: string): string {
  return modelPath.split('/').filter((p) => p !== 'onnx').slice(-2, -1)[0];
}

function log(r: Row): void {
  const figure = r.status === 'ran' ? `cos ${r.worstCosine!.toFixed(5)}${r.top1 !== undefined ? ` top1 ${(100 * r.top1).toFixed(1)}%` : ''}${r.argmaxAgreement !== undefined ? ` argmax ${(100 * r.argmaxAgreement).toFixed(1)}%` : ''}` : `${r.status}: ${r.reason!.split('\n')[0]}`;
  process.stderr.write(`${short(r.model)} ${r.variant}: ${figure}\n`);
}

const pct = (x: number | undefined): string => (x === undefined ? '' : `${(100 * x).toFixed(2)}%`);
const fixed = (x: number | undefined, d = 5): string => (x === undefined ? '' : x.toFixed(d));

function formatRows(rows: Row[]): string {
  const ran = rows.filter((r) => r.status === 'ran');
  const out = [
    table(
      ['model', 'variant', 'health', 'worst cosine', 'worst output', 'logits cosine', 'top-1', 'KL mean', 'ppl ratio', 'held-out top-1', 'held-out KL', 'held-out cos', 'argmax agree', 'default gate'],
      ran.map((r) => [
        short(r.model),
        r.variant,
        r.health,
        fixed(r.worstCosine),
        r.worstOutput ?? '',
        fixed(r.logitsCosine),
        pct(r.top1),
        r.klMean === undefined ? '' : r.klMean.toExponential(2),
        fixed(r.perplexityRatio, 3),
        pct(r.heldOut?.top1),
        r.heldOut?.klMean === undefined ? '' : r.heldOut.klMean.toExponential(2),
        fixed(r.heldOut?.worstCosine),
        pct(r.argmaxAgreement),
        r.defaultGate ? 'FAIL' : 'pass',
      ]),
    ),
  ];
  const refused = rows.filter((r) => r.status !== 'ran');
  const byReason = new Map<string, string[]>();
  for (const r of refused) {
    const key = `${r.status}: ${r.variant.split(' ')[0]}: ${r.reason!.split('\n')[0].replace(/^\/\S+: /, '').replace(/'[^']*'/g, "'…'").slice(0, 140)}`;
    byReason.set(key, [...(byReason.get(key) ?? []), short(r.model)]);
  }
  if (refused.length) out.push('', `${refused.length} runs did not write a model:`, ...[...byReason].map(([k, ms]) => `  ${k} (${ms.length} models)`));
  // The margins: the lowest healthy and the highest broken figure of each signal.
  const span = (h: Health, f: (r: Row) => number | undefined, pick: (a: number, b: number) => number) =>
    ran.filter((r) => r.health === h).map(f).filter((x): x is number => x !== undefined).reduce<number | undefined>((a, x) => (a === undefined ? x : pick(a, x)), undefined);
  const signals: [string, (r: Row) => number | undefined][] = [
    ['worst cosine (decoders)', (r) => (r.kind === 'decoder' ? r.worstCosine : undefined)],
    ['worst cosine (other)', (r) => (r.kind === 'other' ? r.worstCosine : undefined)],
    ['top-1 (decoders)', (r) => r.top1],
    ['held-out top-1 (decoders)', (r) => r.heldOut?.top1],
    ['argmax agreement (other)', (r) => r.argmaxAgreement],
  ];
  out.push(
    '',
    table(
      ['signal', 'lowest healthy', 'lowest stress', 'highest broken'],
      signals.map(([name, f]) => [name, fixed(span('healthy', f, Math.min)), fixed(span('stress', f, Math.min)), fixed(span('broken', f, Math.max))]),
    ),
  );
  const klSignal = (r: Row) => r.klMean;
  out.push(`KL mean (decoders): highest healthy ${span('healthy', klSignal, Math.max)?.toExponential(3)}, lowest broken ${span('broken', klSignal, Math.min)?.toExponential(3)}`);
  return out.join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const threads = argv.includes('--threads') ? Number(argv[argv.indexOf('--threads') + 1]) : cpus().length;
  const decoders = !argv.includes('--conformance-only');
  const conformance = !argv.includes('--decoders-only');
  const work = mkdtempSync(join(tmpdir(), 'quality-gate-'));
  const started = performance.now();
  const loadAtStart = loadavg();
  try {
    const rows: Row[] = [];
    if (decoders) for (const dir of DECODERS) rows.push(...(await decoderRows(dir, work, threads)));
    if (conformance) rows.push(...(await conformanceRows(work, threads)));
    const seconds = (performance.now() - started) / 1000;
    const out = join(REPO, 'bench/results/quality-gate.json');
    const result = {
      bench: 'quality-gate',
      date: new Date().toISOString(),
      machine: { ...machineFacts(), loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadavg() },
      threads,
      calibration: { decoders: { set: 'calibration-sets/prose', options: CALIBRATION }, heldOut: { set: 'calibration-sets/prose/evaluation.jsonl', options: HELD_OUT }, conformance: 'each model\'s test_data_set folders' },
      defaultGate: DEFAULT_GATE,
      seconds,
      rows,
    };
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${formatRows(rows)}\n\n${rows.length} runs in ${seconds.toFixed(1)} s; wrote ${out}\n`);
    if (rows.some((r) => r.status === 'crashed')) process.exitCode = 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});
