// Layer-wise quantization (issue 12): round to nearest vs GPTQ vs AdaQuant (± bias tuning), each written by the
// quantize pass as `quantize --method ...` writes it (sequential blocks, the default).
//  - Decoders (tiny-llama, tiny-gpt2, ../shared/models/byte-llama-12m when present): perplexity on the prose and
//    code evaluation splits at W4 g32, W4 g128, W2 g32 (MatMulNBits), W3 g32 (blocked QDQ: ORT's CPU MatMulNBits
//    has no 3-bit kernel), and static W4A8 / W8A8 (QDQ, per-channel weights, calibrated activation ranges).
//  - A CNN (bench/support/small-cnn.ts, and the conformance suite's pytorch-converted test_Conv2d) at W4A8
//    per-channel: logit cosine and top-1 agreement with float on held-out images.
// The quality gate is off (W2 fails it), so every row's model is written and scored.
// Every quantization runs in a child process of its own, so that its peak RSS (process.resourceUsage().maxRSS)
// is that method's alone; the parent scores the written file in ONNX Runtime.
//
//   npx tsc -p . && node dist/bench/layerwise.js [--threads N] [--samples N] [--max-tokens N]
//     [--models tiny-llama,tiny-gpt2,byte-llama-12m] [--configs 'W4 g32,W3 g32'] [--methods rtn,gptq,gptq-parallel,adaquant,adaquant+bt]
//     [--no-cnn | --cnn-only] [--adaquant-iterations N] [--adaquant-rows N] [--merge] [--results PATH] [--import PATH]
//
// --adaquant-rows bounds the sampled input of the layers AdaQuant tunes on samples (grouped Convs; MatMul, Gemm and
// one-group Conv use every calibration row through XᵀX).
// --merge keeps the rows of the results file that this run does not redo (a bench run in parts); --results PATH
// writes elsewhere (parts run at the same time), and --import PATH runs nothing and merges that file's rows in.
// Prints a table and writes bench/results/layerwise.json.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { env } from 'onnxruntime-node';
import { openCalibrationSet } from '../src/calibration/data/index.js';
import { table } from '../src/cli/output.js';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { perplexity } from '../src/decoding/perplexity.js';
import { textCodecFor } from '../src/decoding/text-codec.js';
import { readScoringSet, resolveTextSet, type ScoringSet } from '../src/decoding/text-set.js';
import { loadModel } from '../src/onnx/model.js';
import { quantizePass, type QuantizeOptions, type QuantizeReport } from '../src/passes/quantize.js';
import { runPass } from '../src/passes/runner.js';
import { DEFAULT_ADAQUANT_OPTIONS, GRAM_LEARNING_RATES } from '../src/quantization/adaquant/index.js';
import { ADAQUANT_SAMPLE_ROWS } from '../src/quantization/layerwise/methods.js';
import { Session, type Feeds } from '../src/runtime/session.js';
import { writeTextAtomically } from '../src/util/atomic.js';
import { classifierAgreement } from './support/classifier-agreement.js';
import { machineFacts } from './support/machine.js';
import { writeSmallCnn } from './support/small-cnn.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = fileURLToPath(import.meta.url);
const RESULTS = join(REPO, 'bench', 'results', 'layerwise.json');
const DECODERS: Record<string, string> = {
  'tiny-llama': 'models/tiny-llama/onnx/model.onnx',
  'tiny-gpt2': 'models/tiny-gpt2/onnx/model.onnx',
  'byte-llama-12m': '../shared/models/byte-llama-12m/onnx/model.onnx',
};
const SPLITS = ['prose', 'code'] as const;
type Split = (typeof SPLITS)[number];

type SchemeChoice = Pick<QuantizeOptions, 'scheme' | 'bits' | 'blockSize' | 'perChannel'>;
const CONFIGS: { label: string; scheme: SchemeChoice; goal: boolean }[] = [
  { label: 'W4 g32', scheme: { scheme: 'w4', bits: 4, blockSize: 32 }, goal: true },
  { label: 'W4 g128', scheme: { scheme: 'w4', bits: 4, blockSize: 128 }, goal: true },
  { label: 'W3 g32', scheme: { scheme: 'w4-qdq', bits: 3, blockSize: 32 }, goal: true },
  { label: 'W2 g32', scheme: { scheme: 'w4', bits: 2, blockSize: 32 }, goal: false },
  { label: 'W4A8', scheme: { scheme: 'w8a8', bits: 4, perChannel: true }, goal: false },
  { label: 'W8A8', scheme: { scheme: 'w8a8', bits: 8, perChannel: true }, goal: false },
];
const CNN_CONFIG = { label: 'W4A8 per-channel', scheme: { scheme: 'w8a8', bits: 4, perChannel: true } as SchemeChoice };
// gptq-parallel (each block's inputs from the float model) runs only when --methods names it.
const METHODS = ['rtn', 'gptq', 'gptq-parallel', 'adaquant', 'adaquant+bt'] as const;
type Method = (typeof METHODS)[number];
const WINDOW = 128;
const CNN_CALIBRATION_IMAGES = 64;
const CNN_EVAL_IMAGES = 32;

interface Args {
  maxTokens: number;
  threads: number;
  samples: number;
  models: string[];
  configs: string[];
  methods: Method[];
  lm: boolean;
  cnn: boolean;
  merge: boolean;
  results: string;
  imports: string[];
  adaquant: { iterations: number; sampleRows: number };
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    maxTokens: 2048,
    threads: cpus().length,
    samples: 32,
    models: Object.keys(DECODERS),
    configs: CONFIGS.map((c) => c.label),
    methods: METHODS.filter((m) => m !== 'gptq-parallel'),
    lm: true,
    cnn: true,
    merge: false,
    results: RESULTS,
    imports: [],
    adaquant: { iterations: DEFAULT_ADAQUANT_OPTIONS.iterations, sampleRows: ADAQUANT_SAMPLE_ROWS },
  };
  const list = (s: string | undefined): string[] => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--no-cnn') args.cnn = false;
    else if (a === '--cnn-only') args.lm = false;
    else if (a === '--merge') args.merge = true;
    else if (a === '--results') args.results = argv[++i];
    else if (a === '--import') {
      args.imports.push(argv[++i]);
      args.lm = args.cnn = false;
      args.merge = true;
    }
    else if (a === '--models') args.models = list(argv[++i]).map((m) => known(m, Object.keys(DECODERS), a));
    else if (a === '--configs') args.configs = list(argv[++i]).map((c) => known(c, CONFIGS.map((x) => x.label), a));
    else if (a === '--methods') args.methods = list(argv[++i]).map((m) => known(m, METHODS, a) as Method);
    else {
      const n = Number(argv[++i]);
      if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${a} needs a whole number >= 1`);
      if (a === '--max-tokens') args.maxTokens = n;
      else if (a === '--threads') args.threads = n;
      else if (a === '--samples') args.samples = n;
      else if (a === '--adaquant-iterations') args.adaquant.iterations = n;
      else if (a === '--adaquant-rows') args.adaquant.sampleRows = n;
      else throw new Error(`unknown argument ${a}`);
    }
  }
  return args;
}

function known(value: string, choices: readonly string[], flag: string): string {
  if (!choices.includes(value)) throw new Error(`${flag}: '${value}' is not one of ${choices.join(', ')}`);
  return value;
}

// --- the child: one quantization, its report and its own peak RSS ---

interface ChildJob {
  model: string;
  out: string;
  options: QuantizeOptions;
  threads: number;
}

interface ChildResult {
  seconds: number;
  maxRssBytes: number;
  layerwise?: { seconds: number; peakCapturedBytes: number; backend?: string; blocks: number; grouping: string };
  /** Weights the layer-wise method solved, and those it left to round to nearest (with why). */
  solved?: number;
  roundedToNearest?: { count: number; reasons: string[] };
  biasTuning?: { kept: string; before: number; after: number; seconds: number; backend: string };
  calibrationSeconds: number;
  /** AdaQuant rows: the steps and sampled rows they ran with. */
  adaquant?: QuantizeOptions['adaquant'];
}

async function child(job: ChildJob): Promise<void> {
  env.logLevel = 'error';
  const t = performance.now();
  const r: QuantizeReport = await runPass(job.model, quantizePass, job.options, { out: job.out, session: { intraOpThreads: job.threads }, verify: { gate: false } });
  const seconds = (performance.now() - t) / 1000;
  const layers = r.plan.layers ?? [];
  const rtn = layers.filter((l) => l.solver === 'rtn');
  const run = r.plan.layerwise;
  const result: ChildResult = {
    seconds,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    ...(run ? { layerwise: { seconds: run.seconds, peakCapturedBytes: run.peakCapturedBytes, ...(run.backend ? { backend: run.backend } : {}), blocks: run.blocks.length, grouping: run.grouping } } : {}),
    ...(run ? { solved: layers.length - rtn.length, roundedToNearest: { count: rtn.length, reasons: [...new Set(rtn.map((l) => l.reason ?? ''))].filter(Boolean) } } : {}),
    ...(r.biasTuning ? { biasTuning: { kept: r.biasTuning.kept, before: r.biasTuning.selection.before, after: r.biasTuning.selection.after, seconds: r.biasTuning.seconds, backend: r.biasTuning.backend } } : {}),
    calibrationSeconds: r.timing.calibrationSeconds,
    ...(job.options.adaquant ? { adaquant: job.options.adaquant } : {}),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function quantizeInChild(job: ChildJob): ChildResult {
  const p = spawnSync(process.execPath, [SCRIPT, '--child', JSON.stringify(job)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  if (p.status !== 0) throw new Error(`quantizing ${job.model} (${JSON.stringify(job.options)}) failed with status ${p.status}`);
  return JSON.parse(p.stdout.trim().split('\n').at(-1)!) as ChildResult;
}

function methodOptions(method: Method, args: Args): Pick<QuantizeOptions, 'method' | 'sequential' | 'biasTuning' | 'adaquant'> {
  if (method === 'rtn') return {};
  if (method === 'gptq') return { method: 'gptq' };
  if (method === 'gptq-parallel') return { method: 'gptq', sequential: false };
  return { method: 'adaquant', adaquant: { ...args.adaquant }, ...(method === 'adaquant+bt' ? { biasTuning: true } : {}) };
}

// --- decoders ---

interface LmRow {
  model: string;
  config: string;
  method: Method;
  perplexity: Record<Split, number>;
  increase: Record<Split, number>;
  quantize: ChildResult;
}

interface LmModel {
  model: string;
  path: string;
  floatPerplexity: Record<Split, number>;
  tokens: Record<Split, number>;
  calibration: { samples: number; sequenceLength: number; batchSize: number; seed: number };
}

/** Scores every config and method of one decoder; `onModel` gets its float figures first, `onRow` each row as it is done. */
async function benchDecoder(name: string, args: Args, work: string, onModel: (m: LmModel) => void, onRow: (r: LmRow) => void): Promise<void> {
  const path = join(REPO, DECODERS[name]);
  const model = loadModel(path);
  const session = { intraOpThreads: args.threads };
  const reference = await DecoderSession.open(model, session);
  const window = Math.min(WINDOW, reference.maxPositions ?? WINDOW);
  const plan = { window, stride: Math.max(1, Math.floor(window / 2)) };
  const calibration = { samples: args.samples, sequenceLength: window, batchSize: 8, seed: 0 };
  const sets = {} as Record<Split, ScoringSet>;
  const floatPerplexity = {} as Record<Split, number>;
  try {
    for (const s of SPLITS) {
      sets[s] = await readScoringSet(resolveTextSet(join(REPO, 'calibration-sets', s)), textCodecFor(model, reference.vocab), { bos: reference.special.bos, maxTokens: args.maxTokens });
      floatPerplexity[s] = (await perplexity(reference, sets[s], plan)).perplexity;
    }
  } finally {
    await reference.dispose();
  }
  log(`${name}: float ppl prose ${floatPerplexity.prose.toFixed(4)}, code ${floatPerplexity.code.toFixed(4)}`);
  onModel({ model: name, path: relative(REPO, path), floatPerplexity, tokens: { prose: sets.prose.tokens, code: sets.code.tokens }, calibration });
  for (const c of CONFIGS.filter((x) => args.configs.includes(x.label))) {
    for (const method of args.methods) {
      const out = join(work, `${name}-${c.label.replace(/\W+/g, '_')}-${method}.onnx`);
      const options: QuantizeOptions = { ...c.scheme, calibration: { data: join(REPO, 'calibration-sets', 'prose'), options: calibration }, ...methodOptions(method, args) };
      const quantize = quantizeInChild({ model: path, out, options, threads: args.threads });
      const candidate = await DecoderSession.open(out, session);
      const ppl = {} as Record<Split, number>;
      try {
        for (const s of SPLITS) ppl[s] = (await perplexity(candidate, sets[s], plan)).perplexity;
      } finally {
        await candidate.dispose();
        rmSync(out, { force: true });
        rmSync(`${out}.data`, { force: true });
      }
      const increase = { prose: ppl.prose / floatPerplexity.prose - 1, code: ppl.code / floatPerplexity.code - 1 };
      onRow({ model: name, config: c.label, method, perplexity: ppl, increase, quantize });
      log(`${name} ${c.label} ${method}: ppl prose ${ppl.prose.toFixed(4)} (${signed(increase.prose)}), code ${ppl.code.toFixed(4)} (${signed(increase.code)}); ${quantize.seconds.toFixed(1)} s, ${mib(quantize.maxRssBytes)}`);
    }
  }
}

// --- CNNs ---

interface CnnRow {
  model: string;
  config: string;
  method: Method;
  cosine: number;
  top1: number;
  quantize: ChildResult;
}

/**
 * The CNNs: the generated small ResNet (held-out images), and the conformance Conv2d (its one recorded input; its
 * input has a fixed batch of 2, so its samples are not stacked: batch 1).
 */
function cnnModels(work: string): { name: string; model: string; calibration: string; evaluation: string; evaluationNote: string; batchSize: number }[] {
  const generated = writeSmallCnn(join(work, 'cnn'), CNN_CALIBRATION_IMAGES);
  const held = writeSmallCnn(join(work, 'cnn-eval'), CNN_EVAL_IMAGES, 12);
  const conv = '/usr/share/libonnx-testdata/data/pytorch-converted/test_Conv2d';
  return [
    { name: 'small-resnet', model: generated.model, calibration: generated.data, evaluation: held.data, evaluationNote: `${CNN_EVAL_IMAGES} held-out generated images`, batchSize: 16 },
    ...(existsSync(conv) ? [{ name: 'conformance test_Conv2d', model: join(conv, 'model.onnx'), calibration: conv, evaluation: conv, evaluationNote: 'its recorded input (also the calibration input)', batchSize: 1 }] : []),
  ];
}

async function benchCnns(args: Args, work: string, rows: CnnRow[], onRow: () => void): Promise<Record<string, unknown>[]> {
  const facts = [];
  for (const m of cnnModels(work)) {
    const model = loadModel(m.model);
    const output = model.graph.output[0].name!;
    const set = await openCalibrationSet(m.evaluation, model, { batchSize: m.batchSize });
    const batches: Feeds[] = [];
    for await (const b of set.batches()) batches.push(b);
    const reference = await Session.create(model, { intraOpThreads: args.threads });
    try {
      for (const method of args.methods) {
        const out = join(work, `cnn-${rows.length}.onnx`);
        const options: QuantizeOptions = { ...CNN_CONFIG.scheme, calibration: { data: m.calibration }, ...methodOptions(method, args) };
        const quantize = quantizeInChild({ model: m.model, out, options, threads: args.threads });
        const candidate = await Session.create(out, { intraOpThreads: args.threads });
        try {
          const agreement = await classifierAgreement(reference, candidate, batches, output);
          rows.push({ model: m.name, config: CNN_CONFIG.label, method, ...agreement, quantize });
          onRow();
          log(`${m.name} ${method}: cosine ${agreement.cosine.toFixed(6)}, top-1 ${(100 * agreement.top1).toFixed(1)}%; ${quantize.seconds.toFixed(1)} s, ${mib(quantize.maxRssBytes)}`);
        } finally {
          await candidate.dispose();
          rmSync(out, { force: true });
        }
      }
    } finally {
      await reference.dispose();
    }
    facts.push({ model: m.name, convs: model.graph.node.filter((n) => n.opType === 'Conv').length, evaluation: m.evaluationNote, calibration: m.name === 'small-resnet' ? `${CNN_CALIBRATION_IMAGES} generated images` : 'its recorded input' });
  }
  return facts;
}

// --- the issue's goal and the comparison, computed from the rows ---

interface Verdict {
  model: string;
  config: string;
  split: Split;
  rtn: number;
  gptq?: number;
  adaquant?: number;
  'gptq-parallel'?: number;
  'adaquant+bt'?: number;
  /**
   * Per layer-wise method: its increase over float is at most half of RTN's; 'n/a' where RTN is not above float
   * (the change is within the evaluation's noise and half of it has no meaning).
   */
  goal: Partial<Record<Method, 'holds' | 'no' | 'n/a'>>;
  /** The lower perplexity of GPTQ and AdaQuant (the better AdaQuant variant when bias tuning ran). */
  winner?: 'gptq' | 'adaquant' | 'tie';
}

function verdicts(rows: LmRow[]): Verdict[] {
  const out: Verdict[] = [];
  const keys = [...new Set(rows.map((r) => `${r.model}\u0000${r.config}`))];
  for (const key of keys) {
    const [model, config] = key.split('\u0000');
    if (!CONFIGS.find((c) => c.label === config)?.goal) continue;
    const of = (m: Method) => rows.find((r) => r.model === model && r.config === config && r.method === m);
    const rtn = of('rtn');
    if (!rtn) continue;
    for (const split of SPLITS) {
      const v: Verdict = { model, config, split, rtn: rtn.increase[split], goal: {} };
      for (const m of METHODS.slice(1)) {
        const r = of(m);
        if (!r) continue;
        v[m as 'gptq'] = r.increase[split];
        v.goal[m] = rtn.increase[split] <= 0 ? 'n/a' : r.increase[split] <= rtn.increase[split] / 2 ? 'holds' : 'no';
      }
      const ada = [v.adaquant, v['adaquant+bt']].filter((x): x is number => x !== undefined);
      if (v.gptq !== undefined && ada.length) {
        const best = Math.min(...ada);
        v.winner = best < v.gptq ? 'adaquant' : best > v.gptq ? 'gptq' : 'tie';
      }
      out.push(v);
    }
  }
  return out;
}

// --- main ---

function signed(x: number): string {
  return `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)}%`;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

function log(s: string): void {
  process.stderr.write(`${s}\n`);
}

interface Results {
  lm: { models: LmModel[]; rows: LmRow[] };
  cnn: { models: Record<string, unknown>[]; rows: CnnRow[] };
}

/** The earlier file's rows this run does not redo, for --merge. */
function previous(args: Args): Results {
  const empty: Results = { lm: { models: [], rows: [] }, cnn: { models: [], rows: [] } };
  if (!args.merge || !existsSync(args.results)) return empty;
  const old = JSON.parse(readFileSync(args.results, 'utf8')) as Partial<Results>;
  if (!old.lm || !old.cnn) return empty;
  const redone = (r: { model: string; config: string; method: Method }, lm: boolean): boolean =>
    lm ? args.lm && args.models.includes(r.model) && args.configs.includes(r.config) && args.methods.includes(r.method) : args.cnn && args.methods.includes(r.method);
  return {
    lm: { models: old.lm.models.filter((m) => !(args.lm && args.models.includes(m.model))), rows: old.lm.rows.filter((r) => !redone(r, true)) },
    cnn: { models: args.cnn ? [] : old.cnn.models, rows: old.cnn.rows.filter((r) => !redone(r, false)) },
  };
}

/** Another run's rows (--results elsewhere), replacing the same model/config/method here. */
function imported(into: Results, from: Results): void {
  const same = (a: { model: string; config: string; method: string }, b: { model: string; config: string; method: string }): boolean => a.model === b.model && a.config === b.config && a.method === b.method;
  into.lm.rows = [...into.lm.rows.filter((r) => !from.lm.rows.some((f) => same(r, f))), ...from.lm.rows];
  into.lm.models = [...into.lm.models.filter((m) => !from.lm.models.some((f) => f.model === m.model)), ...from.lm.models];
  into.cnn.rows = [...into.cnn.rows.filter((r) => !from.cnn.rows.some((f) => same(r, f))), ...from.cnn.rows];
  if (from.cnn.models.length) into.cnn.models = from.cnn.models;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') return child(JSON.parse(argv[1]) as ChildJob);
  const args = parseArgs(argv);
  env.logLevel = 'error';
  const t = performance.now();
  const results = previous(args);
  for (const file of args.imports) imported(results, JSON.parse(readFileSync(file, 'utf8')) as Results);
  // Written after every row, so that a run stopped part-way keeps what it measured.
  const save = () => {
    const rank = (r: LmRow): number[] => [Object.keys(DECODERS).indexOf(r.model), CONFIGS.findIndex((c) => c.label === r.config), METHODS.indexOf(r.method)];
    results.lm.rows.sort((a, b) => rank(a).map((x, i) => x - rank(b)[i]).find((d) => d !== 0) ?? 0);
    results.cnn.rows.sort((a, b) => (a.model === b.model ? METHODS.indexOf(a.method) - METHODS.indexOf(b.method) : 0));
    const goal = verdicts(results.lm.rows);
    const result = {
      bench: 'layerwise',
      date: new Date().toISOString(),
      machine: machineFacts(),
      loadAverage1m: load,
      threads: args.threads,
      evaluation: { maxTokensPerSplit: args.maxTokens, window: WINDOW, stride: WINDOW / 2, splits: SPLITS.map((s) => `calibration-sets/${s}/evaluation.jsonl`) },
      // MatMul/Gemm run the Gram form (its own learning rates, every calibration row); Conv the row form on
      // sampleRows-bounded samples with the default rates.
      adaquant: { ...DEFAULT_ADAQUANT_OPTIONS, gramLearningRates: GRAM_LEARNING_RATES, ...args.adaquant, mode: 'sequential' },
      seconds: (performance.now() - t) / 1000,
      lm: results.lm,
      goal,
      cnn: results.cnn,
    };
    writeTextAtomically(args.results, `${JSON.stringify(result, null, 2)}\n`);
    return { result, goal };
  };
  const work = mkdtempSync(join(tmpdir(), 'layerwise-bench-'));
  const load = [loadavg()[0]];
  try {
    if (args.lm) {
      for (const m of args.models) {
        if (!existsSync(join(REPO, DECODERS[m]))) {
          log(`${m}: ${DECODERS[m]} not found, skipped`);
          continue;
        }
        await benchDecoder(
          m,
          args,
          work,
          (facts) => (results.lm.models = [...results.lm.models.filter((x) => x.model !== m), facts]),
          (row) => {
            results.lm.rows.push(row);
            save();
          },
        );
        load.push(loadavg()[0]);
      }
    }
    if (args.cnn) {
      results.cnn.models = await benchCnns(args, work, results.cnn.rows, save);
      load.push(loadavg()[0]);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const { goal } = save();
  const floatOf = (m: string) => results.lm.models.find((x) => x.model === m)!.floatPerplexity;
  process.stdout.write(
    `${table(
      ['model', 'config', 'method', 'prose ppl', 'vs float', 'code ppl', 'vs float', 'seconds', 'layer-wise s', 'peak RSS', 'backend'],
      results.lm.rows.map((r) => [
        r.model,
        r.config,
        r.method,
        `${r.perplexity.prose.toFixed(4)} (float ${floatOf(r.model).prose.toFixed(4)})`,
        signed(r.increase.prose),
        `${r.perplexity.code.toFixed(4)} (float ${floatOf(r.model).code.toFixed(4)})`,
        signed(r.increase.code),
        r.quantize.seconds.toFixed(1),
        r.quantize.layerwise ? r.quantize.layerwise.seconds.toFixed(1) : '',
        mib(r.quantize.maxRssBytes),
        r.quantize.layerwise?.backend ?? '',
      ]),
    )}\n\n${table(
      ['model', 'config', 'split', 'RTN', 'GPTQ', 'AdaQuant', 'AdaQuant+BT', 'goal GPTQ', 'goal AdaQuant', 'goal AdaQuant+BT', 'winner'],
      goal.map((v) => [v.model, v.config, v.split, signed(v.rtn), opt(v.gptq), opt(v.adaquant), opt(v['adaquant+bt']), yes(v.goal.gptq), yes(v.goal.adaquant), yes(v.goal['adaquant+bt']), v.winner ?? '']),
    )}\n\n${table(
      ['model', 'config', 'method', 'logit cosine', 'top-1', 'seconds', 'peak RSS', 'solved / RTN fallback'],
      results.cnn.rows.map((r) => [r.model, r.config, r.method, r.cosine.toFixed(6), `${(100 * r.top1).toFixed(1)}%`, r.quantize.seconds.toFixed(1), mib(r.quantize.maxRssBytes), r.quantize.solved !== undefined ? `${r.quantize.solved} / ${r.quantize.roundedToNearest!.count}` : '']),
    )}\n`,
  );
}

function opt(x: number | undefined): string {
  return x === undefined ? '' : signed(x);
}

function yes(x: string | undefined): string {
  return x ?? '';
}

await main();
