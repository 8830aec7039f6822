// Trains a sample decoder (models/tiny-llama or models/tiny-gpt2) with the project's TensorFlow.js interpreter
// and writes the trained weights into the model (same graph; only initializer values change), atomically, with
// training.json and a model card. Reproducible: the same --seed and --steps on the same backend give the same
// weights (--minutes only caps the wall time; a capped run records the steps it took).
//
//   npx tsc -p . && node dist/scripts/train-sample.js --arch llama|gpt2 --steps N [--minutes M] [--seed S]
//       [--batch B] [--seq T] [--lr PEAK] [--warmup W] [--weight-decay WD] [--clip C] [--eval-every K]
//       [--backend wasm|cpu|tensorflow] [--out DIR] [--no-write]
//   node dist/scripts/train-sample.js --arch llama --evaluate-only    # ORT evaluation + card for a trained DIR
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { encodeModel } from '../src/onnx/codec.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import type { ModelProto } from '../src/onnx/types.js';
import type { EvaluationResult, TrainingRecord } from '../src/models/training-record.js';
import { SAMPLE_MODEL_FILE } from '../src/models/parts.js';
import { selectBackend, TfModel, type BackendChoice } from '../src/runtime/tf/index.js';
import {
  byteTokens,
  readJsonlTexts,
  Trainer,
  validationBatches,
  WindowSampler,
  withWeights,
} from '../src/training/index.js';
import * as gpt2 from './build-sample-gpt2.js';
import * as llama from './build-sample-decoder.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const TRAIN_SETS = ['prose', 'code', 'email'];

interface Arch {
  dir: string;
  /** Learned absolute positions: train windows at random offsets so every position is trained. */
  maxPositions?: number;
  defaultSeed: number;
  build(seed: number): ModelProto;
  write(dir: string, seed: number, weights: Map<string, Float32Array>, training: TrainingRecord): number;
}

const ARCHS: Record<string, Arch> = {
  llama: {
    dir: 'models/tiny-llama',
    defaultSeed: llama.DEFAULT_SEED,
    build: (seed) => llama.buildSampleDecoder(llama.TINY_LLAMA, seed),
    write: (dir, seed, weights, training) => llama.writeSampleDecoder(dir, llama.TINY_LLAMA, seed, { weights, training }).bytes,
  },
  gpt2: {
    dir: 'models/tiny-gpt2',
    maxPositions: gpt2.TINY_GPT2.nPositions,
    defaultSeed: gpt2.DEFAULT_SEED,
    build: (seed) => gpt2.buildSampleGpt2(gpt2.TINY_GPT2, seed),
    write: (dir, seed, weights, training) => gpt2.writeSampleGpt2(dir, gpt2.TINY_GPT2, seed, { weights, training }).bytes,
  },
};

interface Flags {
  arch: string;
  steps: number;
  minutes: number;
  /** Stop after this many steps (the schedule still spans --steps): how a --minutes-capped run is repeated. */
  stopAt?: number;
  seed?: number;
  batch: number;
  seq: number;
  lr: number;
  floor?: number;
  warmup: number;
  weightDecay: number;
  clip: number;
  evalEvery: number;
  backend: BackendChoice;
  out?: string;
  write: boolean;
  evaluateOnly: boolean;
  /** With --evaluate-only: keep training.json's evaluation, only redo the samples and the card. */
  keepEvaluation?: boolean;
}

function parse(argv: string[]): Flags {
  const f: Flags = { arch: '', steps: 0, minutes: Infinity, batch: 16, seq: 256, lr: 2e-3, warmup: 100, weightDecay: 0.1, clip: 1, evalEvery: 100, backend: 'wasm', write: true, evaluateOnly: false };
  const num = (i: number): number => {
    const v = Number(argv[i]);
    if (!Number.isFinite(v)) throw new Error(`${argv[i - 1]} needs a number, got ${argv[i]}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--arch': f.arch = argv[++i]; break;
      case '--steps': f.steps = num(++i); break;
      case '--minutes': f.minutes = num(++i); break;
      case '--stop-at': f.stopAt = num(++i); break;
      case '--seed': f.seed = num(++i); break;
      case '--batch': f.batch = num(++i); break;
      case '--seq': f.seq = num(++i); break;
      case '--lr': f.lr = num(++i); break;
      case '--floor': f.floor = num(++i); break;
      case '--warmup': f.warmup = num(++i); break;
      case '--weight-decay': f.weightDecay = num(++i); break;
      case '--clip': f.clip = num(++i); break;
      case '--eval-every': f.evalEvery = num(++i); break;
      case '--backend': f.backend = argv[++i] as BackendChoice; break;
      case '--out': f.out = argv[++i]; break;
      case '--no-write': f.write = false; break;
      case '--evaluate-only': f.evaluateOnly = true; break;
      case '--keep-evaluation': f.keepEvaluation = true; break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  if (!ARCHS[f.arch]) throw new Error(`--arch must be one of ${Object.keys(ARCHS).join(', ')}`);
  if (!f.evaluateOnly && !(f.steps > 0)) throw new Error('--steps N is required (the schedule and reproducibility depend on it)');
  return f;
}

const log = (s: string): void => void process.stderr.write(`${s}\n`);

/** The arguments without --no-write and --minutes, plus --stop-at where the time cap stopped the run. */
function reproducible(argv: string[], cappedAt: number | undefined): string {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--no-write') continue;
    if (argv[i] === '--minutes' || (cappedAt !== undefined && argv[i] === '--stop-at')) {
      i++;
      continue;
    }
    out.push(argv[i]);
  }
  if (cappedAt !== undefined) out.push('--stop-at', String(cappedAt));
  return out.join(' ');
}

/** ONNX Runtime bits per byte on each training set's evaluation split, through `onnx-compress eval`. */
function evaluateWithOrt(modelPath: string, window: number): { command: string; results: EvaluationResult[] } {
  const bin = join(REPO, 'bin/onnx-compress');
  const stride = Math.floor(window / 2);
  const results: EvaluationResult[] = [];
  for (const set of TRAIN_SETS) {
    const args = ['eval', modelPath, '--data', set, '--window', String(window), '--stride', String(stride), '--json'];
    const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`onnx-compress ${args.join(' ')} failed: ${r.stderr}`);
    const report = JSON.parse(r.stdout);
    const p = report.candidate.perplexity;
    results.push({ set, split: 'evaluation', bitsPerByte: p.bitsPerByte, perplexity: p.perplexity, tokens: p.tokens, bytes: p.bytes });
    log(`  eval ${set}: ${p.bitsPerByte.toFixed(4)} bits per byte (${p.tokens} tokens)`);
  }
  const rel = modelPath.startsWith(REPO) ? modelPath.slice(REPO.length) : modelPath;
  return { command: `./bin/onnx-compress eval ${rel} --data {${TRAIN_SETS.join(',')}} --window ${window} --stride ${stride} --json`, results };
}

const SAMPLE_PROMPTS = ['The whale ', 'interface ', 'Subject: '];
const SAMPLE_BYTES = 120;

/** Greedy continuations of a few prompts through ONNX Runtime, with the KV cache, for the card. */
async function greedySamples(modelPath: string): Promise<{ prompt: string; greedy: string }[]> {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1 });
  const model = loadModel(modelPath);
  const { names, kvHeads, headDim } = (await import('../src/training/loop.js')).cacheLayout(model);
  const out: { prompt: string; greedy: string }[] = [];
  for (const prompt of SAMPLE_PROMPTS) {
    const ids = [256, ...Buffer.from(prompt)];
    const past: Record<string, InstanceType<typeof ort.Tensor>> = {};
    for (const n of names) past[n] = new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, headDim]);
    let feedIds = ids;
    let done = 0;
    const generated: number[] = [];
    while (generated.length < SAMPLE_BYTES) {
      const total = done + feedIds.length;
      const r = await session.run({
        input_ids: new ort.Tensor('int64', BigInt64Array.from(feedIds.map(BigInt)), [1, feedIds.length]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
        position_ids: new ort.Tensor('int64', BigInt64Array.from(feedIds.map((_, j) => BigInt(done + j))), [1, feedIds.length]),
        ...past,
      });
      for (const n of names) past[n] = r[n.replace('past_key_values', 'present')];
      const logits = r.logits.data as Float32Array;
      const vocab = r.logits.dims[2];
      const at = (feedIds.length - 1) * vocab;
      let best = 0;
      for (let k = 1; k < vocab; k++) if (logits[at + k] > logits[at + best]) best = k;
      if (best >= 256) break;
      generated.push(best);
      done = total;
      feedIds = [best];
    }
    out.push({ prompt, greedy: Buffer.from(generated).toString('utf8') });
  }
  await session.release();
  return out;
}

async function main(argv: string[]): Promise<void> {
  const f = parse(argv);
  const arch = ARCHS[f.arch];
  const out = resolve(f.out ?? join(REPO, arch.dir));

  if (f.evaluateOnly) {
    const record = JSON.parse(readFileSync(join(out, 'training.json'), 'utf8')) as TrainingRecord;
    const model = loadModel(join(out, SAMPLE_MODEL_FILE));
    const { floatInitializers } = await import('../src/training/checkpoint.js');
    const { tensorValues } = await import('../src/onnx/tensor.js');
    const weights = floatInitializers(model.proto, (t) => tensorValues(t, model.rawBytes(t)).data as Float32Array);
    if (!f.keepEvaluation || !record.evaluation) record.evaluation = evaluateWithOrt(join(out, SAMPLE_MODEL_FILE), record.sequence);
    record.samples = await greedySamples(join(out, SAMPLE_MODEL_FILE));
    const bytes = arch.write(out, record.seed, weights, record);
    log(`rewrote ${out} (${SAMPLE_MODEL_FILE} ${bytes} bytes) with the evaluation`);
    return;
  }

  const seed = f.seed ?? arch.defaultSeed;
  const backend = await selectBackend(f.backend);
  log(`arch ${f.arch}, backend ${backend}, seed ${seed}, ${f.steps} steps of ${f.batch} x ${f.seq}`);
  const initial = arch.build(seed);
  const onnx = new OnnxModel(initial, undefined, `${f.arch} (seed ${seed})`);
  const tf = TfModel.compile(onnx);
  const floor = f.floor ?? f.lr / 10;
  const trainer = new Trainer(tf, onnx, {
    schedule: { peak: f.lr, warmup: f.warmup, total: f.steps, floor },
    optimizer: { weightDecay: f.weightDecay },
    clipNorm: f.clip,
  });
  const params = [...trainer.params.values()].reduce((a, p) => a + p.data.length, 0);
  log(`${trainer.params.size} trainable tensors, ${params} parameters`);

  const sets = TRAIN_SETS.map((name) => ({ name, documents: readJsonlTexts(join(REPO, 'calibration-sets', name, 'train.jsonl')).map(byteTokens) }));
  const sampler = new WindowSampler(sets, f.seq, seed, arch.maxPositions);
  const validation = TRAIN_SETS.map((name) => ({
    name,
    batches: validationBatches(readJsonlTexts(join(REPO, 'calibration-sets', name, 'selection.jsonl')).map(byteTokens), f.seq, 8, 16),
  }));
  const validate = (): Record<string, number> => Object.fromEntries(validation.map((v) => [v.name, trainer.evaluate(v.batches).bitsPerToken]));

  const work = join('/tmp', `train-sample-${f.arch}`);
  mkdirSync(work, { recursive: true });
  const started = Date.now();
  const history: TrainingRecord['history'] = [];
  const recent: number[] = [];
  let window = 0;
  let windowCount = 0;
  let lastLog = started;
  const last = Math.min(f.steps, f.stopAt ?? Infinity);
  let cappedAt: number | undefined;
  for (let s = 0; s < last; s++) {
    if ((Date.now() - started) / 60000 > f.minutes) {
      log(`stopping after step ${s}: --minutes ${f.minutes} reached (repeat with --stop-at ${s})`);
      cappedAt = s;
      break;
    }
    const r = trainer.train(sampler.next(f.batch));
    const bits = r.loss / Math.LN2;
    recent.push(bits);
    if (recent.length > 50) recent.shift();
    window += bits;
    windowCount++;
    const now = Date.now();
    if (s % 10 === 9 || s === 0) {
      const tps = (windowCount * f.batch * f.seq * 1000) / Math.max(1, now - lastLog);
      log(`step ${s + 1}/${f.steps} loss ${(window / windowCount).toFixed(3)} bits, |g| ${r.gradNorm.toFixed(2)}, lr ${r.lr.toExponential(2)}, ${tps.toFixed(0)} tok/s, ${((now - started) / 1000).toFixed(0)} s`);
      window = 0;
      windowCount = 0;
      lastLog = now;
    }
    if ((s + 1) % f.evalEvery === 0 || s + 1 === last) {
      const v = validate();
      history.push({ step: s + 1, seconds: (Date.now() - started) / 1000, trainBits: recent.reduce((a, b) => a + b, 0) / recent.length, validation: v });
      log(`  validation @${s + 1}: ${Object.entries(v).map(([k, x]) => `${k} ${x.toFixed(3)}`).join(', ')} bits per byte`);
      writeFileSync(join(work, 'checkpoint.onnx'), encodeModel(withWeights(initial, trainer.weights())));
      writeFileSync(join(work, 'history.json'), JSON.stringify(history, null, 1));
    }
  }
  const wallSeconds = (Date.now() - started) / 1000;
  const latest = history[history.length - 1];
  const finalValidation = latest && latest.step === trainer.step ? latest.validation : validate();
  if (finalValidation !== latest?.validation) history.push({ step: trainer.step, seconds: (Date.now() - started) / 1000, trainBits: recent.reduce((a, b) => a + b, 0) / recent.length, validation: finalValidation });
  const o = trainer.optimizer;
  const record: TrainingRecord = {
    arch: f.arch,
    seed,
    steps: trainer.step,
    batch: f.batch,
    sequence: f.seq,
    tokens: trainer.tokensSeen,
    trainSets: TRAIN_SETS,
    optimizer: { name: 'AdamW', peakLr: f.lr, floorLr: floor, warmup: f.warmup, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, clipNorm: f.clip },
    backend,
    versions: {
      node: process.version,
      '@tensorflow/tfjs-core': JSON.parse(readFileSync(join(REPO, 'node_modules/@tensorflow/tfjs-core/package.json'), 'utf8')).version,
      [`@tensorflow/tfjs-backend-${backend === 'tensorflow' ? 'node' : backend}`]: backend === 'tensorflow' ? 'native' : JSON.parse(readFileSync(join(REPO, `node_modules/@tensorflow/tfjs-backend-${backend}/package.json`), 'utf8')).version,
    },
    machine: `${cpus().length} x ${cpus()[0]?.model ?? 'CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, shared with other jobs`,
    wallSeconds,
    finalLossBits: recent.reduce((a, b) => a + b, 0) / recent.length,
    validation: finalValidation,
    history,
    // The command that repeats this run: --minutes only capped it, --stop-at says where it stopped.
    command: `node dist/scripts/train-sample.js ${reproducible(argv, cappedAt)}`,
  };
  log(`trained ${record.steps} steps, ${record.tokens} tokens in ${(wallSeconds / 60).toFixed(1)} min; final loss ${record.finalLossBits.toFixed(3)} bits; validation ${JSON.stringify(finalValidation)}`);
  const weights = trainer.weights();
  writeFileSync(join(work, 'training.json'), JSON.stringify(record, null, 1));
  writeFileSync(join(work, 'checkpoint.onnx'), encodeModel(withWeights(initial, weights)));
  if (!f.write) return;
  mkdirSync(out, { recursive: true });
  arch.write(out, seed, weights, record);
  log(`wrote ${out}; evaluating with ONNX Runtime`);
  record.evaluation = evaluateWithOrt(join(out, SAMPLE_MODEL_FILE), f.seq);
  record.samples = await greedySamples(join(out, SAMPLE_MODEL_FILE));
  const bytes = arch.write(out, seed, weights, record);
  log(`wrote ${out}: ${SAMPLE_MODEL_FILE} ${bytes} bytes`);
  tf.dispose();
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(`train-sample: ${(e as Error).stack ?? e}`);
    process.exitCode = 1;
  });
}
