// GPTQ against round to nearest on the sample decoders (and the PyTorch-exported byte-level LLaMA in
// ../shared/models when present): perplexity on the prose evaluation split for the float model, RTN and GPTQ at
// W4 g32 (scheme w4), W3 g32 (w4-qdq --bits 3), W4 g128 and W2 g32, with the time each solver took. The goal: the
// increase over float with GPTQ is at most half of RTN's at W4 and W3.
//
//   npx tsc -p . && node dist/bench/gptq.js [--max-tokens N] [--threads N] [--samples N] [--no-shared]
//
// Prints a table and writes bench/results/gptq.json.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { env } from 'onnxruntime-node';
import { collectStatistics } from '../src/calibration/collect.js';
import { openCalibrationSet, type CalibrationOptions } from '../src/calibration/data/index.js';
import { HessianAccumulator } from '../src/calibration/hessian.js';
import { table } from '../src/cli/output.js';
import { compareDecoders } from '../src/decoding/compare.js';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { textCodecFor } from '../src/decoding/text-codec.js';
import { readScoringSet, resolveTextSet } from '../src/decoding/text-set.js';
import { loadModel } from '../src/onnx/model.js';
import { sampleUnitOf } from '../src/quantization/clip-auto.js';
import { gptqSolver } from '../src/quantization/gptq.js';
import { planFromScheme } from '../src/quantization/plan.js';
import { resolveScheme } from '../src/quantization/schemes.js';
import { roundToNearest, type WeightSolver } from '../src/quantization/solvers.js';
import { rewriteModel } from '../src/quantization/writers/index.js';
import { machineFacts } from './support/machine.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODELS = ['models/tiny-llama/onnx/model.onnx', 'models/tiny-gpt2/onnx/model.onnx'];
const SHARED = '../shared/models/byte-llama-12m';
// 3-bit MatMulNBits does not run in ONNX Runtime's CPU kernels, so W3 is written as blocked QDQ (w4-qdq, bits 3).
const CONFIGS = [
  { label: 'W4 g32', scheme: 'w4', bits: 4, blockSize: 32 },
  { label: 'W3 g32', scheme: 'w4-qdq', bits: 3, blockSize: 32 },
  { label: 'W4 g128', scheme: 'w4', bits: 4, blockSize: 128 },
  { label: 'W2 g32', scheme: 'w4', bits: 2, blockSize: 32 },
];
const WINDOW = 128;

interface Args {
  maxTokens: number;
  threads: number;
  samples: number;
  shared: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { maxTokens: 8192, threads: cpus().length, samples: 64, shared: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--no-shared') {
      args.shared = false;
      continue;
    }
    const n = Number(argv[++i]);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${a} needs a whole number >= 1`);
    if (a === '--max-tokens') args.maxTokens = n;
    else if (a === '--threads') args.threads = n;
    else if (a === '--samples') args.samples = n;
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

interface Row {
  model: string;
  config: string;
  method: 'rtn' | 'gptq';
  perplexity: number;
  increase: number;
  seconds: number;
}

async function benchModel(path: string, args: Args, rows: Row[]): Promise<{ model: string; floatPerplexity: number; tokens: number; hessianSeconds: number; calibration: CalibrationOptions }> {
  const model = loadModel(path);
  const session = { intraOpThreads: args.threads };
  const reference = await DecoderSession.open(model, session);
  const window = Math.min(WINDOW, reference.maxPositions ?? WINDOW);
  const calibration: CalibrationOptions = { samples: args.samples, sequenceLength: window, batchSize: 8, seed: 0 };
  const scoring = await readScoringSet(resolveTextSet(join(REPO, 'calibration-sets', 'prose')), textCodecFor(model, reference.vocab), { bos: reference.special.bos, maxTokens: args.maxTokens });
  // The Hessians depend on the float inputs only, so one run serves every configuration.
  const plan0 = planFromScheme(model, resolveScheme('w4'));
  const acc = new HessianAccumulator(plan0.nodes.filter((p) => p.target.op === 'MatMul' || p.target.op === 'Gemm').map((p) => ({ tensor: p.target.activation, unit: sampleUnitOf(p.target.node) === 'columns' ? 'columns' : 'rows' })));
  let t = performance.now();
  await collectStatistics(model, await openCalibrationSet(join(REPO, 'calibration-sets/prose'), model, calibration), { observe: 'none', accumulators: [acc], session });
  acc.finish();
  const hessianSeconds = (performance.now() - t) / 1000;
  let floatPerplexity = NaN;
  try {
    for (const c of CONFIGS) {
      const plan = planFromScheme(model, resolveScheme(c.scheme, { bits: c.bits, blockSize: c.blockSize }));
      const solvers: [Row['method'], WeightSolver][] = [
        ['rtn', roundToNearest],
        ['gptq', gptqSolver((a) => acc.get(a) ?? acc.get(a, 'columns'))],
      ];
      for (const [method, solver] of solvers) {
        t = performance.now();
        const written = rewriteModel(model, plan, { solver });
        const seconds = (performance.now() - t) / 1000 + (method === 'gptq' ? hessianSeconds : 0);
        const candidate = await DecoderSession.open(written.model, session);
        try {
          const cmp = await compareDecoders(reference, candidate, scoring, { window, stride: Math.max(1, Math.floor(window / 2)) });
          floatPerplexity = cmp.reference.perplexity;
          rows.push({ model: path, config: c.label, method, perplexity: cmp.candidate.perplexity, increase: cmp.candidate.perplexity / cmp.reference.perplexity - 1, seconds });
          log(`${path} ${c.label} ${method}: ppl ${cmp.candidate.perplexity.toFixed(4)} (${signed(rows.at(-1)!.increase)}), ${seconds.toFixed(2)} s`);
        } finally {
          await candidate.dispose();
        }
      }
    }
  } finally {
    await reference.dispose();
  }
  return { model: path, floatPerplexity, tokens: scoring.tokens, hessianSeconds, calibration };
}

function signed(x: number): string {
  return `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)}%`;
}

function log(s: string): void {
  process.stderr.write(`${s}\n`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  env.logLevel = 'error';
  const t = performance.now();
  const paths = MODELS.map((m) => join(REPO, m));
  const shared = join(REPO, SHARED, 'onnx', 'model.onnx');
  if (args.shared && existsSync(shared)) paths.push(shared);
  const rows: Row[] = [];
  const models: Awaited<ReturnType<typeof benchModel>>[] = [];
  for (const p of paths) models.push(await benchModel(p, args, rows));
  const rel = (p: string): string => relative(REPO, p);
  const goal = CONFIGS.filter((c) => c.label === 'W4 g32' || c.label === 'W3 g32').flatMap((c) =>
    models.map((m) => {
      const r = rows.find((x) => x.model === m.model && x.config === c.label && x.method === 'rtn')!;
      const g = rows.find((x) => x.model === m.model && x.config === c.label && x.method === 'gptq')!;
      return { model: rel(m.model), config: c.label, rtn: r.increase, gptq: g.increase, holds: g.increase <= r.increase / 2 };
    }),
  );
  const result = {
    bench: 'gptq',
    date: new Date().toISOString(),
    machine: machineFacts(),
    threads: args.threads,
    seconds: (performance.now() - t) / 1000,
    models: models.map((m) => ({ ...m, model: rel(m.model) })),
    rows: rows.map((r) => ({ ...r, model: rel(r.model) })),
    goal,
  };
  mkdirSync(join(REPO, 'bench', 'results'), { recursive: true });
  writeFileSync(join(REPO, 'bench', 'results', 'gptq.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(
    table(
      ['model', 'config', 'float ppl', 'RTN ppl', 'RTN vs float', 'GPTQ ppl', 'GPTQ vs float', 'RTN s', 'GPTQ s', 'goal (GPTQ <= RTN/2)'],
      models.flatMap((m) =>
        CONFIGS.map((c) => {
          const r = rows.find((x) => x.model === m.model && x.config === c.label && x.method === 'rtn')!;
          const g = rows.find((x) => x.model === m.model && x.config === c.label && x.method === 'gptq')!;
          return [rel(m.model), c.label, m.floatPerplexity.toFixed(4), r.perplexity.toFixed(4), signed(r.increase), g.perplexity.toFixed(4), signed(g.increase), r.seconds.toFixed(2), g.seconds.toFixed(2), g.increase <= r.increase / 2 ? 'holds' : 'no'];
        }),
      ),
    ),
  );
}

await main();
