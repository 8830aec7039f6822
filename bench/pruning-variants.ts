// Why NIRVANA loses to FLAP on byte-llama-12m (issue 14) and what per-layer treatment of the scores changes:
// for each model, NIRVANA (max-logits), NIRVANA with the LM loss (= taylor) and FLAP are scored once on prose
// (cached in /tmp so a rerun only re-evaluates); then every variant (score normalisation none|mean|zscore, a
// per-layer floor on kept MLP width) is allocated at 20% and 40% and its prose perplexity measured in ONNX
// Runtime; the per-layer kept groups and neurons are printed so the allocations can be compared; and each attention
// group dropped alone, against the scores each method gave it.
//
//   npx tsc -p . && node dist/bench/pruning-variants.js [--max-tokens N] [--samples N] [--threads N] [--only tiny|large] [--methods nirvana,taylor,flap]
//
// Prints tables and writes bench/results/pruning-variants.json.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { env } from 'onnxruntime-node';
import { openCalibrationSet } from '../src/calibration/data/index.js';
import { table } from '../src/cli/output.js';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { perplexity } from '../src/decoding/perplexity.js';
import { textCodecFor } from '../src/decoding/text-codec.js';
import { readScoringSet, resolveTextSet } from '../src/decoding/text-set.js';
import { loadModel, type OnnxModel } from '../src/onnx/model.js';
import { normaliseScores, type ScoreNormalisation } from '../src/pruning/normalize.js';
import { applyScores, scoreUnits, type MethodScores, type PruneMethod } from '../src/pruning/prune.js';
import { pruneDecoder } from '../src/pruning/surgery.js';
import { discoverDecoderStructure } from '../src/structure/discover.js';
import { machineFacts } from './support/machine.js';
import { readScoreCache, writeScoreCache } from './support/score-cache.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODELS = { tiny: 'models/tiny-llama/onnx/model.onnx', large: '../shared/models/byte-llama-12m/onnx/model.onnx' };
const SPARSITIES = [0.2, 0.4];
const WINDOW = 128;

interface Variant {
  name: string;
  method: PruneMethod;
  normalise: ScoreNormalisation;
  minNeuronFraction?: number;
}

const VARIANTS: Variant[] = [
  { name: 'nirvana (reference: raw max-logits)', method: 'nirvana', normalise: 'none' },
  { name: 'nirvana, loss objective (= taylor)', method: 'taylor', normalise: 'none' },
  { name: 'nirvana, per-layer mean', method: 'nirvana', normalise: 'mean' },
  { name: 'nirvana, per-layer z-score', method: 'nirvana', normalise: 'zscore' },
  { name: 'nirvana, MLP floor 25%', method: 'nirvana', normalise: 'none', minNeuronFraction: 0.25 },
  { name: 'nirvana loss, per-layer mean', method: 'taylor', normalise: 'mean' },
  { name: 'flap (z-scored, compensated)', method: 'flap', normalise: 'none' },
];

function args() {
  const a = { maxTokens: 4096, samples: 8, threads: 2, only: '', methods: ['nirvana', 'taylor', 'flap'] as PruneMethod[] };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--only') a.only = argv[i + 1];
    else if (argv[i] === '--methods') a.methods = argv[i + 1].split(',') as PruneMethod[];
    else if (argv[i] === '--max-tokens') a.maxTokens = Number(argv[i + 1]);
    else if (argv[i] === '--samples') a.samples = Number(argv[i + 1]);
    else if (argv[i] === '--threads') a.threads = Number(argv[i + 1]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  return a;
}

const log = (s: string): void => void process.stderr.write(`${s}\n`);

async function prosePerplexity(model: OnnxModel, tokens: number, threads: number): Promise<number> {
  const decoder = await DecoderSession.open(model, { intraOpThreads: threads });
  try {
    const set = await readScoringSet(resolveTextSet(join(REPO, 'calibration-sets', 'prose')), textCodecFor(model, decoder.vocab), { bos: decoder.special.bos, maxTokens: tokens });
    const window = Math.min(WINDOW, decoder.maxPositions ?? WINDOW);
    return (await perplexity(decoder, set, { window, stride: window / 2 })).perplexity;
  } finally {
    await decoder.dispose();
  }
}

async function benchModel(key: 'tiny' | 'large', a: ReturnType<typeof args>) {
  const path = join(REPO, MODELS[key]);
  const model = loadModel(path);
  const structure = discoverDecoderStructure(model);
  const calibration = { samples: a.samples, sequenceLength: 128, batchSize: 8 };
  const set = await openCalibrationSet(join(REPO, 'calibration-sets', 'prose'), model, calibration);
  const scored = new Map<PruneMethod, MethodScores>();
  for (const method of a.methods) {
    const cache = `/tmp/h13-scores-${key}-${method}-${a.samples}.json`;
    const cached = readScoreCache(cache);
    if (cached && method === 'flap') {
      // FLAP's compensation needs the channel statistics: recompute them (ONNX Runtime, quick).
      scored.set(method, await scoreUnits(model, structure, method, set, { session: { intraOpThreads: a.threads } }));
    } else if (cached) scored.set(method, { method, ...cached });
    else {
      const s = await scoreUnits(model, structure, method, set, { session: { intraOpThreads: a.threads } });
      writeScoreCache(cache, s);
      scored.set(method, s);
    }
    log(`${key}: ${method} scored (${scored.get(method)!.seconds.toFixed(1)} s)`);
  }
  const dense = await prosePerplexity(model, a.maxTokens, a.threads);
  log(`${key}: dense prose ${dense.toFixed(3)}`);
  const rows = [];
  for (const sparsity of SPARSITIES) {
    for (const v of VARIANTS.filter((x) => scored.has(x.method))) {
      const base = scored.get(v.method)!;
      const outcome = applyScores(model, structure, { ...base, scores: normaliseScores(base.scores, v.normalise) }, { sparsity, ...(v.minNeuronFraction ? { minNeuronFraction: v.minNeuronFraction } : {}) });
      const ppl = await prosePerplexity(outcome.model, a.maxTokens, a.threads);
      const layers = outcome.allocation.selection.map((k, l) => `${k.groups.length}/${structure.layers[l].attention.kvHeads}:${k.neurons.length}`);
      rows.push({ sparsity, variant: v.name, prose: ppl, relativeError: outcome.allocation.params.relativeError, layers });
      log(`  ${sparsity} ${v.name}: prose ${ppl.toFixed(3)}; groups:neurons per layer ${layers.join(' ')}`);
    }
  }
  // Each attention group dropped alone (nothing else pruned): which groups the model cannot lose.
  const drops = [];
  for (const [l, layer] of structure.layers.entries()) {
    for (let g = 0; g < layer.attention.kvHeads; g++) {
      const keep = structure.layers.map((x, i) => ({
        groups: Array.from({ length: x.attention.kvHeads }, (_, j) => j).filter((j) => i !== l || j !== g),
        neurons: Array.from({ length: x.mlp.width }, (_, n) => n),
      }));
      const prose = await prosePerplexity(pruneDecoder(model, structure, keep), a.maxTokens, a.threads);
      const score = (m: PruneMethod) => scored.get(m)?.scores.attention[l][g];
      drops.push({ layer: l, group: g, prose, nirvana: score('nirvana'), taylor: score('taylor'), flap: score('flap') });
      log(`  drop layer ${l} group ${g}: prose ${prose.toFixed(3)}`);
    }
  }
  return { model: relative(REPO, path), calibration: { set: 'prose', ...calibration }, evalTokens: a.maxTokens, dense: { prose: dense }, rows, drops };
}

async function main(): Promise<void> {
  const a = args();
  env.logLevel = 'error';
  const out = join(REPO, 'bench', 'results', 'pruning-variants.json');
  mkdirSync(dirname(out), { recursive: true });
  for (const key of (a.only ? [a.only] : ['tiny', 'large']) as ('tiny' | 'large')[]) {
    const m = await benchModel(key, a);
    // Results of an earlier run for another model or calibration size stay (a run per model keeps each one short).
    const previous: { model: string; calibration: { samples: number } }[] = existsSync(out) ? JSON.parse(readFileSync(out, 'utf8')).models : [];
    const models = [...previous.filter((p) => p.model !== m.model || p.calibration.samples !== m.calibration.samples), m];
    writeFileSync(out, `${JSON.stringify({ bench: 'pruning-variants', date: new Date().toISOString(), machine: machineFacts(), models }, null, 2)}\n`);
    console.log(`\n${m.model} (dense prose ${m.dense.prose.toFixed(3)}, ${m.evalTokens} tokens; saliency ${m.calibration.samples} x 128 prose)`);
    console.log(table(['sparsity', 'variant', 'prose ppl', 'vs target', 'groups:neurons kept per layer'], m.rows.map((r) => [r.sparsity, r.variant, Number(r.prose.toFixed(3)), `${(100 * r.relativeError).toFixed(2)}%`, r.layers.join(' ')])));
    const fmt = (x: number | undefined) => (x === undefined ? '' : Number(x.toPrecision(3)));
    console.log(table(['layer', 'group', 'prose ppl, only it dropped', 'nirvana score', 'taylor score', 'flap score'], m.drops.map((d) => [d.layer, d.group, Number(d.prose.toFixed(3)), fmt(d.nirvana), fmt(d.taylor), fmt(d.flap)])));
  }
}

await main();
