// Bias and norm tuning (src/quantization/bias-tuning.ts) after round-to-nearest on the sample decoders: the
// held-out selection loss (KL on calibration batches tuning did not read, ONNX Runtime on the written model)
// before and after, and perplexity on the prose evaluation split (read by neither calibration nor tuning) for
// float, RTN and RTN + tuning, at W4 g32 (scheme w4) and W3 g32 (w4-qdq --bits 3); then Adam's step size on
// tiny-llama W4, which chose the default.
//
//   npx tsc -p . && node dist/bench/bias-tuning.js [--max-tokens N] [--samples N] [--threads N]
//
// Prints a table and writes bench/results/bias-tuning.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { env } from 'onnxruntime-node';
import { openCalibrationSet, type CalibrationOptions } from '../src/calibration/data/index.js';
import { table } from '../src/cli/output.js';
import { compareDecoders } from '../src/decoding/compare.js';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { textCodecFor } from '../src/decoding/text-codec.js';
import { readScoringSet, resolveTextSet, type ScoringSet } from '../src/decoding/text-set.js';
import { loadModel, type OnnxModel } from '../src/onnx/model.js';
import { DEFAULT_BIAS_TUNING, tuneBiases, type BiasTuningReport } from '../src/quantization/bias-tuning.js';
import { planFromScheme } from '../src/quantization/plan.js';
import { resolveScheme } from '../src/quantization/schemes.js';
import { roundToNearest } from '../src/quantization/solvers.js';
import { rewriteModel } from '../src/quantization/writers/index.js';
import { machineFacts } from './support/machine.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODELS = ['models/tiny-llama/onnx/model.onnx', 'models/tiny-gpt2/onnx/model.onnx'];
// 3-bit MatMulNBits does not run in ONNX Runtime's CPU kernels, so W3 is written as blocked QDQ (as bench/gptq.ts).
const CONFIGS = [
  { label: 'W4 g32', scheme: 'w4', bits: 4, blockSize: 32 },
  { label: 'W3 g32', scheme: 'w4-qdq', bits: 3, blockSize: 32 },
];
const RATES = [1e-3, 3e-3, 1e-2, 3e-2];
const WINDOW = 128;

interface Args {
  maxTokens: number;
  samples: number;
  threads: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { maxTokens: 8192, samples: 32, threads: cpus().length };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const n = Number(argv[++i]);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${a} needs a whole number >= 1`);
    if (a === '--max-tokens') args.maxTokens = n;
    else if (a === '--samples') args.samples = n;
    else if (a === '--threads') args.threads = n;
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

interface Row {
  model: string;
  config: string;
  learningRate: number;
  tuned: Omit<BiasTuningReport, 'outputs'>;
  perplexity?: { float: number; rtn: number; tuned: number };
}

async function perplexityOf(reference: DecoderSession, model: OnnxModel, scoring: ScoringSet, window: number, threads: number): Promise<{ reference: number; candidate: number }> {
  const candidate = await DecoderSession.open(model, { intraOpThreads: threads });
  try {
    const c = await compareDecoders(reference, candidate, scoring, { window, stride: Math.max(1, Math.floor(window / 2)) });
    return { reference: c.reference.perplexity, candidate: c.candidate.perplexity };
  } finally {
    await candidate.dispose();
  }
}

function log(s: string): void {
  process.stderr.write(`${s}\n`);
}

const signed = (x: number): string => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)}%`;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  env.logLevel = 'error';
  const started = performance.now();
  const session = { intraOpThreads: args.threads };
  const rows: Row[] = [];
  for (const path of MODELS) {
    const model = loadModel(join(REPO, path));
    const reference = await DecoderSession.open(model, session);
    const window = Math.min(WINDOW, reference.maxPositions ?? WINDOW);
    const calibration: CalibrationOptions = { samples: args.samples, sequenceLength: 64, seed: 0 };
    const set = await openCalibrationSet(join(REPO, 'calibration-sets/prose'), model, calibration);
    const scoring = await readScoringSet(resolveTextSet(join(REPO, 'calibration-sets', 'prose')), textCodecFor(model, reference.vocab), { bos: reference.special.bos, maxTokens: args.maxTokens });
    try {
      for (const c of CONFIGS) {
        const plan = planFromScheme(model, resolveScheme(c.scheme, { bits: c.bits, blockSize: c.blockSize }));
        const written = rewriteModel(model, plan, { solver: roundToNearest }).model;
        const rates = path.includes('tiny-llama') && c.label === 'W4 g32' ? RATES : [DEFAULT_BIAS_TUNING.learningRate];
        for (const learningRate of rates) {
          const { model: tunedModel, report } = await tuneBiases({ float: model, written, plan, solver: roundToNearest, set }, { learningRate, session });
          const { outputs: _, ...tuned } = report!;
          const row: Row = { model: path, config: c.label, learningRate, tuned };
          if (learningRate === DEFAULT_BIAS_TUNING.learningRate) {
            const rtn = await perplexityOf(reference, written, scoring, window, args.threads);
            const after = await perplexityOf(reference, tunedModel, scoring, window, args.threads);
            row.perplexity = { float: rtn.reference, rtn: rtn.candidate, tuned: after.candidate };
          }
          rows.push(row);
          log(`${path} ${c.label} lr ${learningRate}: held-out KL ${tuned.selection.before.toExponential(3)} -> ${tuned.selection.after.toExponential(3)} (${tuned.kept}), ${tuned.seconds.toFixed(1)} s`);
        }
      }
    } finally {
      await reference.dispose();
    }
  }
  const result = {
    bench: 'bias-tuning',
    date: new Date().toISOString(),
    machine: machineFacts(),
    threads: args.threads,
    calibration: { set: 'calibration-sets/prose', samples: args.samples, sequenceLength: 64 },
    defaults: DEFAULT_BIAS_TUNING,
    seconds: (performance.now() - started) / 1000,
    rows,
  };
  mkdirSync(join(REPO, 'bench', 'results'), { recursive: true });
  writeFileSync(join(REPO, 'bench', 'results', 'bias-tuning.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(
    table(
      ['model', 'config', 'lr', 'tuned', 'held-out KL RTN', 'held-out KL tuned', 'kept', 'best epoch', 'float ppl', 'RTN ppl', 'tuned ppl', 'seconds', 'backend'],
      rows.map((r) => {
        const p = r.perplexity;
        const what = [r.tuned.parameters.bias && `${r.tuned.parameters.bias} biases`, r.tuned.parameters.normGain && `${r.tuned.parameters.normGain} gains`, r.tuned.parameters.normBias && `${r.tuned.parameters.normBias} norm biases`].filter(Boolean).join(', ');
        return [
          r.model.split('/')[1],
          r.config,
          r.learningRate,
          what,
          r.tuned.selection.before.toExponential(3),
          r.tuned.selection.after.toExponential(3),
          r.tuned.kept,
          `${r.tuned.bestEpoch}/${r.tuned.epochs}`,
          p ? p.float.toFixed(4) : '',
          p ? `${p.rtn.toFixed(4)} (${signed(p.rtn / p.float - 1)})` : '',
          p ? `${p.tuned.toFixed(4)} (${signed(p.tuned / p.float - 1)})` : '',
          r.tuned.seconds.toFixed(1),
          r.tuned.backend,
        ];
      }),
    ),
  );
}

await main();
