// Structured pruning figures (issue 14): perplexity on the prose, code and email evaluation splits at 20/40/50%
// sparsity of the attention + MLP parameters for every method (nirvana, magnitude, wanda-sp, flap, taylor) on
// tiny-llama and, when present, the PyTorch-exported byte-llama-12m; KL-selected calibration against the median
// and worst seeded random draw; achieved parameters; ONNX Runtime prefill/decode tokens/s pruned vs dense; the
// saliency run's time and peak memory. Each method scores once per model (calibration: prose); every sparsity
// reuses the scores.
//
//   npx tsc -p . && node dist/bench/pruning.js [--max-tokens N] [--samples N] [--samples-large N] [--candidates-large N]
//     [--threads N] [--no-shared] [--no-speed] [--only tiny|large] [--methods a,b] [--score-cache DIR]
//
// --candidates-large 0 skips KL selection on byte-llama-12m. --only/--methods split the run over processes: each
// merges its rows into bench/results/pruning.json by model, sparsity and method. --score-cache reuses gradient scores
// from DIR/h13-scores-{tiny|large}-{method}-{samples}.json (and writes the ones it computes there).
//
// The gradient runs dominate: on a busy 2-core VM byte-llama-12m's saliency over 8 x 128 tokens took ~300 s, and
// KL selection runs one per candidate. Results are written after each model, so an interrupted run keeps the first.
//
// Prints tables and writes bench/results/pruning.json.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { env } from 'onnxruntime-node';
import { openCalibrationSet } from '../src/calibration/data/index.js';
import { table } from '../src/cli/output.js';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { perplexity } from '../src/decoding/perplexity.js';
import { measureSpeed } from '../src/decoding/speed.js';
import { textCodecFor } from '../src/decoding/text-codec.js';
import { readScoringSet, resolveTextSet, type ScoringSet } from '../src/decoding/text-set.js';
import { loadModel, type OnnxModel } from '../src/onnx/model.js';
import { parseCandidates, selectByKl } from '../src/pruning/kl-select.js';
import { applyScores, PRUNE_METHODS, scoreUnits, type MethodScores, type PruneMethod } from '../src/pruning/prune.js';
import { discoverDecoderStructure } from '../src/structure/discover.js';
import { machineFacts } from './support/machine.js';
import { readScoreCache, writeScoreCache } from './support/score-cache.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODELS = ['models/tiny-llama/onnx/model.onnx'];
const SHARED = '../shared/models/byte-llama-12m/onnx/model.onnx';
const DOMAINS = ['prose', 'code', 'email'] as const;
const SPARSITIES = [0.2, 0.4, 0.5];
const KL_SPARSITY = 0.4;
/** Shipped domains plus seeded draws of prose windows: the random candidates the selection is compared with. */
const CANDIDATES = ['prose', 'code', 'email', 'prose@1', 'prose@2', 'prose@3'];
const RANDOM_DRAWS = ['prose', 'prose@1', 'prose@2', 'prose@3'];
const WINDOW = 128;

interface Args {
  maxTokens: number;
  samples: number;
  samplesLarge: number;
  /** KL candidates for byte-llama-12m (the first N of CANDIDATES): each costs one saliency run. */
  candidatesLarge: number;
  threads: number;
  shared: boolean;
  speed: boolean;
  only: '' | 'tiny' | 'large';
  methods: PruneMethod[];
  scoreCache: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { maxTokens: 4096, samples: 32, samplesLarge: 8, candidatesLarge: CANDIDATES.length, threads: cpus().length, shared: true, speed: true, only: '', methods: [...PRUNE_METHODS], scoreCache: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--no-shared') {
      args.shared = false;
      continue;
    }
    if (a === '--no-speed') {
      args.speed = false;
      continue;
    }
    if (a === '--only' || a === '--methods' || a === '--score-cache') {
      const v = argv[++i] ?? '';
      if (a === '--only') {
        if (v !== 'tiny' && v !== 'large') throw new Error(`--only needs tiny or large, got ${v}`);
        args.only = v;
      } else if (a === '--score-cache') args.scoreCache = v;
      else {
        const ms = v.split(',');
        for (const m of ms) if (!PRUNE_METHODS.includes(m as PruneMethod)) throw new Error(`--methods: unknown method ${m}`);
        args.methods = ms as PruneMethod[];
      }
      continue;
    }
    const n = Number(argv[++i]);
    if (!Number.isSafeInteger(n) || n < (a === '--candidates-large' ? 0 : 1)) throw new Error(`${a} needs a whole number >= 1 (--candidates-large: >= 0)`);
    if (a === '--max-tokens') args.maxTokens = n;
    else if (a === '--samples') args.samples = n;
    else if (a === '--samples-large') args.samplesLarge = n;
    else if (a === '--candidates-large') args.candidatesLarge = n;
    else if (a === '--threads') args.threads = n;
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

function log(s: string): void {
  process.stderr.write(`${s}\n`);
}

async function scoringSets(model: OnnxModel, decoder: DecoderSession, maxTokens: number): Promise<Record<string, ScoringSet>> {
  const codec = textCodecFor(model, decoder.vocab);
  const out: Record<string, ScoringSet> = {};
  for (const d of DOMAINS) out[d] = await readScoringSet(resolveTextSet(join(REPO, 'calibration-sets', d)), codec, { bos: decoder.special.bos, maxTokens });
  return out;
}

async function perplexities(model: OnnxModel, sets: Record<string, ScoringSet>, threads: number): Promise<Record<string, number>> {
  const decoder = await DecoderSession.open(model, { intraOpThreads: threads });
  try {
    const window = Math.min(WINDOW, decoder.maxPositions ?? WINDOW);
    const out: Record<string, number> = {};
    for (const d of DOMAINS) out[d] = (await perplexity(decoder, sets[d], { window, stride: window / 2 })).perplexity;
    return out;
  } finally {
    await decoder.dispose();
  }
}

async function speed(model: OnnxModel, threads: number) {
  const decoder = await DecoderSession.open(model, { intraOpThreads: threads });
  try {
    const s = await measureSpeed(decoder, { prefillTokens: 256, decodeTokens: 128, repeats: 7 });
    return { prefill: s.prefill.tokensPerSecond, decode: s.decode.tokensPerSecond };
  } finally {
    await decoder.dispose();
  }
}

async function benchModel(path: string, args: Args) {
  const model = loadModel(path);
  const structure = discoverDecoderStructure(model);
  const large = path.includes('byte-llama');
  const samples = large ? args.samplesLarge : args.samples;
  const calibration = { samples, sequenceLength: 128, batchSize: 8 };
  const probe = await DecoderSession.open(model, { intraOpThreads: args.threads });
  const sets = await scoringSets(model, probe, args.maxTokens);
  await probe.dispose();
  const dense = await perplexities(model, sets, args.threads);
  const denseSpeed = args.speed ? await speed(model, args.threads) : undefined;
  log(`${path}: dense ${JSON.stringify(dense)}; speed ${JSON.stringify(denseSpeed)}`);
  const set = await openCalibrationSet(join(REPO, 'calibration-sets', 'prose'), model, calibration);

  const scores = new Map<PruneMethod, MethodScores>();
  const cached: PruneMethod[] = [];
  for (const method of args.methods) {
    // Only the gradient runs are worth caching; FLAP's compensation needs the channel statistics anyway.
    const file = args.scoreCache && (method === 'nirvana' || method === 'taylor') ? join(args.scoreCache, `h13-scores-${large ? 'large' : 'tiny'}-${method}-${samples}.json`) : '';
    const hit = file ? readScoreCache(file) : undefined;
    if (hit) {
      scores.set(method, { method, ...hit });
      cached.push(method);
    } else {
      const s = await scoreUnits(model, structure, method, set, { session: { intraOpThreads: args.threads } });
      if (file) writeScoreCache(file, s);
      scores.set(method, s);
    }
    log(`  ${method} scored in ${scores.get(method)!.seconds.toFixed(1)} s${hit ? ' (cached)' : ''}`);
  }
  const rows = [];
  for (const sparsity of SPARSITIES) {
    for (const method of args.methods) {
      const outcome = applyScores(model, structure, scores.get(method)!, { sparsity });
      const ppl = await perplexities(outcome.model, sets, args.threads);
      const row = {
        sparsity,
        method,
        perplexity: ppl,
        params: { total: outcome.allocation.params.total, kept: outcome.allocation.params.kept, targetKept: outcome.allocation.params.targetKept, relativeError: outcome.allocation.params.relativeError },
        attentionPruned: outcome.allocation.attention.pruned,
        neuronsPruned: outcome.allocation.mlp.pruned,
        ...(method === 'nirvana' && args.speed ? { speed: await speed(outcome.model, args.threads) } : {}),
      };
      rows.push(row);
      log(`  ${sparsity} ${method}: ${DOMAINS.map((d) => `${d} ${ppl[d].toFixed(3)}`).join(', ')}; kept ${row.params.kept} (${(100 * row.params.relativeError).toFixed(2)}%)`);
    }
  }

  // KL selection with NIRVANA at one sparsity, selection and evaluation on prose.
  const klCandidates = large ? args.candidatesLarge : CANDIDATES.length;
  const kl = args.methods.includes('nirvana') && klCandidates > 0 ? await klSelection(model, structure, calibration, large, args) : undefined;
  // Any gradient run measured here gives the interpreter's time and peak memory; a cached score has neither.
  const measured = [...scores.values()].find((s) => s.saliency);
  return {
    model: relative(REPO, path),
    calibration: { set: 'prose', ...calibration },
    dense: { perplexity: dense, ...(denseSpeed ? { speed: denseSpeed } : {}) },
    ...(measured ? { saliency: { method: measured.method, backend: measured.saliency!.backend, samples: measured.saliency!.samples, seconds: measured.saliency!.seconds, peakRssBytes: measured.saliency!.peakRss } } : {}),
    scoreSeconds: Object.fromEntries([...scores].map(([m, s]) => [m, s.seconds])),
    cachedScores: cached,
    rows,
    ...(kl ? { kl } : {}),
  };
}

async function klSelection(model: OnnxModel, structure: ReturnType<typeof discoverDecoderStructure>, calibration: { samples: number; sequenceLength: number; batchSize: number }, large: boolean, args: Args) {
  const t = performance.now();
  const kl = await selectByKl(
    model,
    parseCandidates(large ? CANDIDATES.slice(0, Math.max(2, args.candidatesLarge)) : CANDIDATES),
    async (c) => {
      const s = await openCalibrationSet(join(REPO, 'calibration-sets', c.data), model, { ...calibration, seed: c.seed });
      const scored = await scoreUnits(model, structure, 'nirvana', s);
      return applyScores(model, structure, scored, { sparsity: KL_SPARSITY });
    },
    { selection: join(REPO, 'calibration-sets', 'prose'), evaluation: join(REPO, 'calibration-sets', 'prose'), maxTokens: args.maxTokens, threads: args.threads },
  );
  const klSeconds = (performance.now() - t) / 1000;
  const random = kl.results.filter((r) => RANDOM_DRAWS.includes(r.candidate)).map((r) => r.perplexity).sort((a, b) => a - b);
  const chosen = kl.results.find((r) => r.chosen)!;
  log(`  KL selection: chose ${chosen.candidate} (ppl ${chosen.perplexity.toFixed(3)}); random draws ${random.map((p) => p.toFixed(3)).join(', ')}`);
  return {
      method: 'nirvana',
      sparsity: KL_SPARSITY,
      candidates: kl.results,
      chosen: chosen.candidate,
      chosenPerplexity: chosen.perplexity,
      randomMedian: random.length % 2 ? random[(random.length - 1) / 2] : (random[random.length / 2 - 1] + random[random.length / 2]) / 2,
      randomWorst: random[random.length - 1],
      seconds: klSeconds,
  };
}

type ModelResult = Awaited<ReturnType<typeof benchModel>>;

/** Merges one process's results into the file: rows by (sparsity, method), the rest by field, so split runs add up. */
function merge(file: string, fresh: ModelResult[], head: Record<string, unknown>): ModelResult[] {
  const old: ModelResult[] = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).models : [];
  const out = old.filter((o) => !fresh.some((f) => f.model === o.model));
  for (const f of fresh) {
    const o = old.find((x) => x.model === f.model && x.calibration.samples === f.calibration.samples);
    if (!o) {
      out.push(f);
      continue;
    }
    const key = (r: ModelResult['rows'][number]) => `${r.sparsity}/${r.method}`;
    const rows = [...o.rows.filter((r) => !f.rows.some((x) => key(x) === key(r))), ...f.rows];
    rows.sort((a, b) => a.sparsity - b.sparsity || PRUNE_METHODS.indexOf(a.method) - PRUNE_METHODS.indexOf(b.method));
    out.push({ ...o, ...f, scoreSeconds: { ...o.scoreSeconds, ...f.scoreSeconds }, cachedScores: [...new Set([...o.cachedScores.filter((m) => !(m in f.scoreSeconds)), ...f.cachedScores])], saliency: f.saliency ?? o.saliency, kl: f.kl ?? o.kl, dense: { ...o.dense, ...f.dense }, rows });
  }
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ ...head, models: out }, null, 2)}\n`);
  renameSync(tmp, file);
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  env.logLevel = 'error';
  const t = performance.now();
  const paths = args.only === 'large' ? [] : MODELS.map((m) => join(REPO, m));
  const shared = join(REPO, SHARED);
  if (args.only !== 'tiny' && args.shared && existsSync(shared)) paths.push(shared);
  const models: ModelResult[] = [];
  mkdirSync(join(REPO, 'bench', 'results'), { recursive: true });
  for (const p of paths) {
    models.push(await benchModel(p, args));
    const head = { bench: 'pruning', date: new Date().toISOString(), machine: machineFacts(), threads: args.threads, maxTokens: args.maxTokens, seconds: (performance.now() - t) / 1000 };
    merge(join(REPO, 'bench', 'results', 'pruning.json'), [models[models.length - 1]], head);
  }
  for (const m of models) {
    console.log(`\n${m.model} (dense: ${DOMAINS.map((d) => `${d} ${m.dense.perplexity[d].toFixed(3)}`).join(', ')})`);
    console.log(
      table(
        ['sparsity', 'method', ...DOMAINS, 'kept params', 'vs target', 'groups pruned', 'neurons pruned'],
        m.rows.map((r) => [r.sparsity, r.method, ...DOMAINS.map((d) => Number(r.perplexity[d].toFixed(3))), r.params.kept, `${(100 * r.params.relativeError).toFixed(2)}%`, r.attentionPruned, r.neuronsPruned]),
      ),
    );
    const dense = m.dense.speed;
    if (dense)
      console.log(
        table(
          ['', 'prefill tok/s', 'decode tok/s', 'params kept'],
          [
            ['dense', Math.round(dense.prefill), Math.round(dense.decode), 1],
            ...m.rows.filter((r) => r.speed).map((r) => [`nirvana ${r.sparsity}`, Math.round(r.speed!.prefill), Math.round(r.speed!.decode), Number((r.params.kept / r.params.total).toFixed(3))]),
          ],
        ),
      );
    if (m.kl) console.log(`KL selection (nirvana ${m.kl.sparsity}): chose ${m.kl.chosen}, prose ppl ${m.kl.chosenPerplexity.toFixed(3)}; random draws median ${m.kl.randomMedian.toFixed(3)}, worst ${m.kl.randomWorst.toFixed(3)}`);
    if (m.saliency) console.log(`saliency (${m.saliency.method}): ${m.saliency.samples} x 128 tokens on ${m.saliency.backend} in ${m.saliency.seconds.toFixed(1)} s, peak RSS ${(m.saliency.peakRssBytes / 2 ** 20).toFixed(0)} MiB`);
  }
}

await main();
