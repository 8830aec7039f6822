// Mixed-format quantization plans against the uniform schemes on the trained sample decoder (not a timed test):
// file size and perplexity / bits per byte on the prose `evaluation` split for fp32, w8a8 (static QDQ, minmax
// ranges), w4, w4a8 and two plan files that mix formats per node:
//
//   A  MLP MatMulNBits 4-bit, attention projections 8-bit QDQ with uint8 activations, lm_head float,
//      embedding GatherBlockQuantized 4-bit;
//   B  everything as w4 (MatMulNBits 4-bit, embedding 4-bit) but lm_head 8-bit QDQ, weights only.
//
// Recipe-free: each model is planned (planFromScheme, or resolvePlan on the plan JSON below), rewritten with
// round-to-nearest (rewriteModel), saved to a temporary folder and scored with ONNX Runtime. Calibration and
// scoring follow bench/quant-figures.ts (its figures for fp32 / W8A8 minmax / W4 are the cross-check): the prose
// `calibration` split, 128 samples x 128 tokens, collected once, minmax ranges; scoring windows of 128 tokens
// with stride 64 over the first 50,000 tokens of the prose `evaluation` split. quant-figures.ts exports nothing
// (running it runs the whole benchmark), so the same library functions it calls are imported here.
//
// Prints a table and writes bench/results/mixed-plan.json.
//
//   npx tsc -p . && node dist/bench/mixed-plan.js [--max-tokens N (default 50000; 0: all)] [--threads N] [--keep DIR]
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { env } from 'onnxruntime-node';
import { collectStatistics } from '../src/calibration/collect.js';
import { openCalibrationSet, type CalibrationOptions } from '../src/calibration/data/index.js';
import { fingerprint } from '../src/calibration/stats-file.js';
import { formatBytes, table } from '../src/cli/output.js';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { perplexity } from '../src/decoding/perplexity.js';
import { textCodecFor } from '../src/decoding/text-codec.js';
import { readScoringSet, resolveTextSet } from '../src/decoding/text-set.js';
import { loadModel } from '../src/onnx/model.js';
import { saveModel } from '../src/onnx/save.js';
import { resolvePlan, type PlanFile } from '../src/quantization/plan-file.js';
import { planFromScheme, plannedActivations, type QuantPlan } from '../src/quantization/plan.js';
import { activationRanges } from '../src/quantization/ranges.js';
import { resolveScheme } from '../src/quantization/schemes.js';
import { rewriteModel, type WriterReport } from '../src/quantization/writers/index.js';
import { machineFacts } from './support/machine.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODEL = 'models/tiny-llama/onnx/model.onnx';
// As bench/quant-figures.ts: the sample model was trained on 128-token windows.
const CALIBRATION: CalibrationOptions = { samples: 128, sequenceLength: 128, batchSize: 8, seed: 0 };
const WINDOW = 128;

const PLAN_A: PlanFile = {
  format: 'onnx-compress.quant-plan',
  version: 1,
  nodes: [
    { pattern: '/mlp/', format: 'matmulnbits', bits: 4, blockSize: 32 },
    { pattern: '/self_attn/', format: 'qdq', bits: 8, activations: 'uint8' },
    { node: '/lm_head/MatMul', format: 'float' },
    { pattern: 'embed_tokens', format: 'gather-block', bits: 4, blockSize: 32 },
  ],
};

const PLAN_B: PlanFile = {
  format: 'onnx-compress.quant-plan',
  version: 1,
  scheme: 'w4',
  nodes: [{ node: '/lm_head/MatMul', format: 'qdq', bits: 8 }],
};

interface Variant {
  label: string;
  /** A named scheme, or a plan file's content; absent for the float model. */
  scheme?: string;
  plan?: PlanFile;
}

const VARIANTS: Variant[] = [
  { label: 'fp32' },
  { label: 'w8a8 (static QDQ, minmax)', scheme: 'w8a8' },
  { label: 'w4 (MatMulNBits)', scheme: 'w4' },
  { label: 'w4a8 (MatMulNBits, accuracy_level 4)', scheme: 'w4a8' },
  { label: 'plan A: MLP q4, attention QDQ w8a8, lm_head fp32, embedding q4', plan: PLAN_A },
  { label: 'plan B: w4, lm_head 8-bit QDQ weights-only', plan: PLAN_B },
];

interface Args {
  maxTokens?: number;
  threads: number;
  keep?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { maxTokens: 50_000, threads: cpus().length };
  const int = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${flag} must be a whole number, got '${v}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--max-tokens') args.maxTokens = int(a, argv[++i]) || undefined;
    else if (a === '--threads') args.threads = Math.max(1, int(a, argv[++i]));
    else if (a === '--keep') args.keep = argv[++i];
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

interface Row {
  label: string;
  scheme?: string;
  plan?: PlanFile;
  fileBytes: number;
  sizeRatio: number;
  /** Node count per written format ('MatMulNBits', 'DequantizeLinear+MatMul', ...), plus 'float (plan)'. */
  formats: Record<string, number>;
  weights?: WriterReport['totals'];
  minWeightSqnrDb?: number;
  activationsQuantized: number;
  prose: { tokens: number; bytes: number; perplexity: number; bitsPerByte: number; ratio: number };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = new Date();
  const loadAtStart = loadavg();
  const work = args.keep ?? mkdtempSync(join(tmpdir(), 'mixed-plan-'));
  mkdirSync(work, { recursive: true });
  try {
    const modelPath = join(REPO, MODEL);
    const model = loadModel(modelPath);

    // Calibrate once (static activations of w8a8 and plan A): minmax ranges of every quantizer input.
    const set = await openCalibrationSet(join(REPO, 'calibration-sets/prose'), model, CALIBRATION);
    const statistics = await collectStatistics(model, set, { targets: { inputsOf: ['MatMul', 'Gemm', 'Conv'] }, session: { intraOpThreads: args.threads } });
    const ranges = activationRanges(statistics, { method: 'minmax' }).ranges;
    log(`calibrated on ${statistics.samples} samples (${statistics.tokens} tokens) in ${statistics.seconds.toFixed(1)} s`);

    // The scoring set, tokenised once.
    const probe = await DecoderSession.open(modelPath, { intraOpThreads: args.threads });
    const window = Math.min(WINDOW, probe.maxPositions ?? WINDOW);
    const windows = { window, stride: Math.max(1, Math.floor(window / 2)) };
    const scoring = await readScoringSet(resolveTextSet(join(REPO, 'calibration-sets', 'prose')), textCodecFor(model, probe.vocab), { bos: probe.special.bos, maxTokens: args.maxTokens });
    await probe.dispose();

    const fp32Bytes = statSync(modelPath).size;
    const rows: Row[] = [];
    for (const v of VARIANTS) {
      let file = modelPath;
      let report: WriterReport | undefined;
      let plan: QuantPlan | undefined;
      if (v.scheme || v.plan) {
        plan = v.scheme ? planFromScheme(model, resolveScheme(v.scheme)) : resolvePlan(model, v.plan, `bench/mixed-plan.ts (${v.label.split(':')[0]})`);
        const written = rewriteModel(model, plan, plannedActivations(plan).length ? { activationRanges: ranges } : {});
        report = written.report;
        file = join(work, `${v.label.replace(/[^\w.]+/g, '-').slice(0, 40)}.onnx`);
        saveModel(written.model, file);
      }
      const decoder = await DecoderSession.open(file, { intraOpThreads: args.threads });
      let p: Awaited<ReturnType<typeof perplexity>>;
      try {
        p = await perplexity(decoder, scoring, windows);
      } finally {
        await decoder.dispose();
      }
      const fileBytes = statSync(file).size;
      const formats: Record<string, number> = {};
      for (const n of report?.nodes ?? []) formats[n.as] = (formats[n.as] ?? 0) + 1;
      if (plan?.float.length) formats['float (plan)'] = plan.float.length;
      const counted = report?.nodes.filter((n) => !n.sharedWeight) ?? [];
      rows.push({
        label: v.label,
        ...(v.scheme ? { scheme: v.scheme } : {}),
        ...(v.plan ? { plan: v.plan } : {}),
        fileBytes,
        sizeRatio: fileBytes / fp32Bytes,
        formats,
        ...(report ? { weights: report.totals, minWeightSqnrDb: Math.min(...counted.map((n) => n.sqnrDb)) } : {}),
        activationsQuantized: new Set(report?.nodes.map((n) => n.activation).filter(Boolean)).size,
        prose: { tokens: p.tokens, bytes: p.bytes, perplexity: p.perplexity, bitsPerByte: p.bitsPerByte, ratio: rows.length ? p.perplexity / rows[0].prose.perplexity : 1 },
      });
      log(`${v.label}: ${formatBytes(fileBytes)}, prose ppl ${p.perplexity.toFixed(4)} (${pct(rows.at(-1)!.prose.ratio)})`);
    }

    const result = {
      date: started.toISOString(),
      machine: {
        ...machineFacts(),
        loadAverageAtStart: loadAtStart,
        loadAverageAtEnd: loadavg(),
      },
      onnxRuntime: { version: env.versions.node ?? env.versions.common, executionProvider: 'cpu', intraOpThreads: args.threads },
      model: { path: MODEL, sha256: fingerprint(modelPath).sha256, weights: 'trained', fp32Bytes },
      calibration: { set: 'calibration-sets/prose (calibration split)', options: CALIBRATION, samples: statistics.samples, tokens: statistics.tokens, clip: 'minmax' },
      scoring: { set: 'calibration-sets/prose (evaluation split)', ...windows, maxTokens: args.maxTokens ?? null, tokens: scoring.tokens, bytes: scoring.bytes },
      solver: 'round-to-nearest',
      rows,
    };
    const out = join(REPO, 'bench', 'results', 'mixed-plan.json');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(
      [
        `${result.machine.cpu}, ${result.machine.cores} cores, Node ${process.version}; ONNX Runtime ${result.onnxRuntime.version} (cpu), ${args.threads} threads`,
        `${MODEL} (trained): prose evaluation split, ${scoring.tokens} tokens, window ${windows.window} stride ${windows.stride}; static activations calibrated on ${statistics.samples} x ${CALIBRATION.sequenceLength} tokens of prose (minmax)`,
        table(
          ['variant', 'file', 'vs fp32', 'prose ppl', 'vs fp32', 'bits/byte', 'formats'],
          rows.map((r) => [
            r.label,
            formatBytes(r.fileBytes),
            `${r.sizeRatio.toFixed(3)}x`,
            r.prose.perplexity.toFixed(4),
            pct(r.prose.ratio),
            r.prose.bitsPerByte.toFixed(4),
            Object.entries(r.formats)
              .map(([k, n]) => `${n} ${k}`)
              .join(', '),
          ]),
        ),
        `wrote ${out}`,
        '',
      ].join('\n'),
    );
  } finally {
    if (!args.keep) rmSync(work, { recursive: true, force: true });
  }
}

const pct = (ratio: number): string => `${ratio >= 1 ? '+' : ''}${((ratio - 1) * 100).toFixed(2)}%`;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`mixed-plan: ${e.stack ?? e.message}\n`);
  process.exitCode = 1;
});
