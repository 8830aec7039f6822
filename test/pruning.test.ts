// Structured pruning's scoring, allocation, KL selection and the prune pass: every method on tiny-llama writes a
// smaller model that ONNX Runtime runs, with the attention + MLP parameters the target asks for; NIRVANA's
// gradient agrees with finite differences taken in ONNX Runtime (an independent engine); the gamma rule matches
// the reference's worked example; KL selection keeps the candidate closest to the dense model; bad input is one
// line and writes nothing.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openCalibrationSet } from '../src/calibration/data/index.js';
import { OnnxCompressError } from '../src/errors.js';
import { GraphEditor } from '../src/onnx/editor.js';
import { GraphIndex } from '../src/onnx/graph.js';
import { loadModel, type OnnxModel } from '../src/onnx/model.js';
import { tensorValues } from '../src/onnx/tensor.js';
import { DataType } from '../src/onnx/types.js';
import { parameterCount, prunePass, type PruneOptions, type PruneReport } from '../src/passes/prune.js';
import { runSteps } from '../src/passes/runner.js';
import { allocate, DEFAULT_GAMMA, NEURON_MULTIPLE } from '../src/pruning/allocate.js';
import { parseCandidates, selectByKl } from '../src/pruning/kl-select.js';
import { applyScores, PRUNE_METHODS, scoreUnits } from '../src/pruning/prune.js';
import { objectiveGradients, prunableWeights } from '../src/pruning/saliency.js';
import { normaliseScores } from '../src/pruning/normalize.js';
import { layerUnits, type LayerUnits, type UnitScores } from '../src/pruning/units.js';
import { fromOrtTensor } from '../src/runtime/ort-tensor.js';
import { Session, type Feeds } from '../src/runtime/session.js';
import { discoverDecoderStructure } from '../src/structure/discover.js';
import { mulberry32 } from './support/prng.js';
import { TESTDATA_ROOT } from './support/testdata.js';

const TINY = 'models/tiny-llama/onnx/model.onnx';
const dir = mkdtempSync(join(tmpdir(), 'pruning-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A small calibration batch keeps the gradient methods quick; the scores do not depend on its chunking. */
const SMALL = { samples: 8, sequenceLength: 64, batchSize: 4 };

async function prune(options: Partial<PruneOptions> & { method: PruneOptions['method'] }, out: string, gate = false) {
  const full: PruneOptions = {
    sparsity: 0.2,
    ...(options.method !== 'magnitude' && !options.candidates ? { calibration: { data: 'prose', options: SMALL } } : { calibration: { options: SMALL } as PruneOptions['calibration'] }),
    ...options,
  };
  const report = await runSteps(TINY, [{ pass: prunePass, options: full, where: 'prune' }], { out, verify: gate ? {} : { gate: false } });
  return { report, prune: report.passes.find((p) => p.pass === 'prune')!.report as PruneReport };
}

function randomScores(units: readonly LayerUnits[], seed: number): UnitScores {
  const random = mulberry32(seed);
  return {
    attention: units.map((u) => Float64Array.from({ length: u.groups }, () => random())),
    mlp: units.map((u) => Float64Array.from({ length: u.neurons }, () => random())),
  };
}

describe('every method on tiny-llama at 20%', () => {
  for (const method of PRUNE_METHODS) {
    it(`${method}: a smaller model that ONNX Runtime runs, parameters within 1% of the target`, async () => {
      const out = join(dir, `${method}.onnx`);
      const { report, prune: r } = await prune({ method }, out);
      assert.ok(existsSync(out));
      assert.ok(statSync(out).size < statSync(TINY).size, 'the file shrank');
      const written = loadModel(out);
      assert.equal(parameterCount(written), r.params.modelAfter);
      // FLAP's compensation adds a bias of hidden size where the projection had none (tiny-llama has none).
      const added = r.layers.reduce((a, l) => a + l.compensation.length, 0) * discoverDecoderStructure(loadModel(TINY)).hidden;
      assert.equal(parameterCount(loadModel(TINY)) - parameterCount(written), r.params.removed - added, 'the removed units are gone from the initializers');
      assert.ok(Math.abs(r.params.kept - 0.8 * r.params.total) / (0.8 * r.params.total) <= 0.01, `kept ${r.params.kept} of ${r.params.total}`);
      assert.ok(r.layers.every((l) => l.groups.kept.length >= 1 && l.neurons.kept % NEURON_MULTIPLE === 0));
      // Verified by the runner in ONNX Runtime on held-out text; the logits are finite and the KV cache shapes fit.
      assert.ok(report.verification!.languageModel!.tokens > 0);
      assert.ok(Number.isFinite(report.verification!.languageModel!.perplexity.quantized));
      if (method === 'flap') assert.ok(added > 0, 'FLAP compensates the removed units');
      else assert.equal(added, 0);
      if (method === 'nirvana' || method === 'taylor') assert.equal(r.interpreter!.samples, SMALL.samples);
    });
  }
});

describe('saliency gradient', () => {
  /** F of the reference, computed from ONNX Runtime's logits: mean over batch and vocabulary of the max over positions. */
  async function maxLogitsInOrt(model: OnnxModel, batches: Feeds[]): Promise<number> {
    const session = await Session.create(model);
    try {
      let total = 0;
      let rows = 0;
      for (const feeds of batches) {
        const logits = fromOrtTensor((await session.run(feeds)).logits);
        const [B, T, V] = logits.dims;
        const data = logits.data as Float32Array;
        for (let b = 0; b < B; b++) {
          for (let v = 0; v < V; v++) {
            let m = -Infinity;
            for (let t = 0; t < T; t++) m = Math.max(m, data[(b * T + t) * V + v]);
            total += m / V;
          }
        }
        rows += B;
      }
      return total / rows;
    } finally {
      await session.dispose();
    }
  }

  function perturbed(model: OnnxModel, weight: string, element: number, delta: number): OnnxModel {
    const t = new GraphIndex(model.graph).initializer(weight)!;
    const values = Float32Array.from(tensorValues(t, model.rawBytes(t)).data as Float32Array);
    values[element] += delta;
    const edit = new GraphEditor(model);
    edit.replaceInitializer(weight, DataType.FLOAT, t.dims, values);
    return edit.finish().model;
  }

  it('matches central differences of F taken in ONNX Runtime, accumulated over chunks', async () => {
    const model = loadModel(TINY);
    const structure = discoverDecoderStructure(model);
    // Two chunks of one sample: the accumulated gradient must be the whole batch's.
    const set = await openCalibrationSet('prose', model, { samples: 2, sequenceLength: 32, batchSize: 1 });
    const weights = prunableWeights(structure);
    const run = await objectiveGradients(model, set, weights);
    assert.equal(run.chunks, 2);
    const batches: Feeds[] = [];
    for await (const b of set.batches()) batches.push(b);
    const f0 = await maxLogitsInOrt(model, batches);
    assert.ok(Math.abs(f0 - run.objective) < 1e-4 * Math.max(1, Math.abs(f0)), `F ${run.objective} vs ORT ${f0}`);
    // The largest gradient entries of an MLP and an attention weight of different layers.
    for (const weight of [structure.layers[1].mlp.down.weight, structure.layers[0].attention.o.weight, structure.layers[2].attention.q!.weight]) {
      const g = run.gradients.get(weight)!;
      let i = 0;
      for (let k = 1; k < g.length; k++) if (Math.abs(g[k]) > Math.abs(g[i])) i = k;
      const eps = 1e-2;
      const fd = ((await maxLogitsInOrt(perturbed(model, weight, i, eps), batches)) - (await maxLogitsInOrt(perturbed(model, weight, i, -eps), batches))) / (2 * eps);
      assert.ok(Math.abs(fd - g[i]) <= 0.05 * Math.abs(g[i]) + 1e-5, `${weight}[${i}]: gradient ${g[i]}, finite difference ${fd}`);
    }
  });
});

describe('gamma allocation', () => {
  it("reproduces the reference's worked example (Llama-3.1-8B at 50%: 44 of 256 groups, 265,197 of 458,752 neurons)", () => {
    const hidden = 4096;
    const units: LayerUnits[] = Array.from({ length: 32 }, () => ({ groups: 8, neurons: 14336, groupParams: 2 * 128 * (4 + 1) * hidden, neuronParams: 3 * hidden }));
    const a = allocate(units, randomScores(units, 1), { sparsity: 0.5, gamma: 3.36 });
    assert.equal(a.attention.pruned, 44);
    assert.equal(Math.round(a.mlp.formula), 265197);
    assert.ok(Math.abs(a.params.relativeError) < 0.01);
  });

  it('ranks attention only against attention across layers, keeps one group and multiples of 8 neurons per layer', () => {
    const units: LayerUnits[] = Array.from({ length: 4 }, () => ({ groups: 4, neurons: 64, groupParams: 1000, neuronParams: 30 }));
    const scores = randomScores(units, 2);
    // Layer 2's groups score lowest of all: ranking alone would empty it.
    scores.attention[2] = Float64Array.from([-4, -3, -2, -1]);
    // MLP scores far below the attention scores must not pull MLP pruning into attention's count.
    scores.mlp = scores.mlp.map((m) => m.map((v) => v - 100));
    const a = allocate(units, scores, { sparsity: 0.4, gamma: 1 });
    assert.equal(a.attention.pruned, Math.round(a.attention.formula));
    assert.equal(a.selection[2].groups.length, 1, 'layer 2 keeps one group');
    assert.deepEqual(a.selection[2].groups, [3], 'its best group');
    for (const layer of a.selection) assert.equal(layer.neurons.length % NEURON_MULTIPLE, 0);
    const removed = a.selection.reduce((s, l, i) => s + (units[i].groups - l.groups.length) * 1000 + (units[i].neurons - l.neurons.length) * 30, 0);
    assert.equal(removed, a.params.removed);
    assert.ok(Math.abs(a.params.relativeError) <= 0.01, `${a.params.relativeError}`);
    // Within a layer the pruned neurons are the lowest-scoring ones.
    for (const [l, layer] of a.selection.entries()) {
      const kept = new Set(layer.neurons);
      const worstKept = Math.min(...layer.neurons.map((n) => scores.mlp[l][n]));
      for (let n = 0; n < 64; n++) if (!kept.has(n)) assert.ok(scores.mlp[l][n] <= worstKept);
    }
  });

  it('prunes nothing at sparsity 0, more attention at lower gamma, and refuses a gamma that empties a layer', () => {
    const units = layerUnits(discoverDecoderStructure(loadModel(TINY)));
    const scores = randomScores(units, 3);
    const none = allocate(units, scores, { sparsity: 0 });
    assert.equal(none.params.removed, 0);
    assert.ok(none.selection.every((l, i) => l.groups.length === units[i].groups && l.neurons.length === units[i].neurons));
    assert.equal(allocate(units, scores, { sparsity: 0.3 }).gamma, DEFAULT_GAMMA);
    assert.ok(allocate(units, scores, { sparsity: 0.3, gamma: 1 }).attention.pruned > allocate(units, scores, { sparsity: 0.3, gamma: 6 }).attention.pruned);
    assert.throws(() => allocate(units, scores, { sparsity: 0.5, gamma: 0 }), /leaves a layer without attention.*raise gamma/);
    for (const s of [1, -0.1, Number.NaN]) assert.throws(() => allocate(units, scores, { sparsity: s }), /sparsity must be in \[0, 1\)/);
  });
});

describe('per-layer score treatment (options; the reference ranks raw scores)', () => {
  // Two identical layers but for the scale of their scores: what raw saliency looks like when one layer's gradients
  // are small overall.
  const units: LayerUnits[] = Array.from({ length: 2 }, () => ({ groups: 4, neurons: 256, groupParams: 1000, neuronParams: 30 }));
  const scaled = (): UnitScores => {
    const s = randomScores(units, 4);
    s.attention[1] = s.attention[0].map((v) => v * 1000);
    s.mlp[1] = s.mlp[0].map((v) => v * 1000);
    return s;
  };
  const pruned = (a: ReturnType<typeof allocate>, l: number) => units[l].neurons - a.selection[l].neurons.length;

  it('raw ranking empties the low-scale layer; mean and z-score normalisation prune both layers alike', () => {
    const raw = allocate(units, scaled(), { sparsity: 0.4, gamma: 2 });
    assert.equal(raw.selection[0].neurons.length, NEURON_MULTIPLE, 'raw scores take layer 0 down to its floor');
    for (const how of ['mean', 'zscore'] as const) {
      const a = allocate(units, normaliseScores(scaled(), how), { sparsity: 0.4, gamma: 2 });
      assert.ok(Math.abs(pruned(a, 0) - pruned(a, 1)) <= NEURON_MULTIPLE, `${how}: ${pruned(a, 0)} vs ${pruned(a, 1)}`);
      // Same scores up to a per-layer scale: the layer keeping fewer keeps a subset of what the other keeps.
      const [fewer, more] = [...a.selection].sort((x, y) => x.neurons.length - y.neurons.length).map((l) => new Set(l.neurons));
      assert.ok([...fewer].every((n) => more.has(n)));
      assert.ok(Math.abs(a.params.relativeError) <= 0.01);
    }
    assert.equal(normaliseScores(scaled(), 'none').mlp[1][0], scaled().mlp[1][0]);
    assert.throws(() => normaliseScores(scaled(), 'rank' as never), /normalisation must be one of none, mean, zscore/);
  });

  it('a kept-MLP floor holds in every layer, the target is still met, and an impossible floor is refused', () => {
    const a = allocate(units, scaled(), { sparsity: 0.4, gamma: 2, minNeuronFraction: 0.3 });
    const floor = Math.ceil((0.3 * 256) / NEURON_MULTIPLE) * NEURON_MULTIPLE;
    assert.equal(a.selection[0].neurons.length, floor, 'the low-scale layer stops at its floor');
    assert.ok(a.selection.every((l) => l.neurons.length >= floor && l.neurons.length % NEURON_MULTIPLE === 0));
    assert.ok(Math.abs(a.params.relativeError) <= 0.01, `${a.params.relativeError}`);
    assert.throws(() => allocate(units, scaled(), { sparsity: 0.4, gamma: 2, minNeuronFraction: 0.9 }), /MLP neurons, more than the \d+ that can go with each layer's floor kept/);
    for (const f of [-0.1, 1.5, Number.NaN]) assert.throws(() => allocate(units, scaled(), { sparsity: 0.4, minNeuronFraction: f }), /minimum kept MLP fraction must be in \[0, 1\]/);
  });

  it('through the pass: the floor binds on tiny-llama, the report says so, and bad values are one line', async () => {
    const { prune: r } = await prune({ method: 'magnitude', sparsity: 0.4, minMlpKeep: 0.5, normalise: 'mean' }, join(dir, 'floor.onnx'));
    assert.ok(r.layers.every((l) => l.neurons.kept >= l.neurons.total / 2), r.layers.map((l) => l.neurons.kept).join(' '));
    assert.ok(r.layers.some((l) => l.neurons.kept === l.neurons.total / 2), 'at 40% the floor holds some layer at half its width');
    assert.ok(r.notes.some((n) => /keeps at least 50% of its MLP neurons/.test(n)) && r.notes.some((n) => /normalised per layer \(mean\)/.test(n)));
    const bad = (o: Partial<PruneOptions>, pattern: RegExp) =>
      assert.rejects(runSteps(TINY, [{ pass: prunePass, options: { sparsity: 0.2, method: 'magnitude', ...o } as PruneOptions, where: 'prune' }], { out: join(dir, 'never.onnx'), verify: { gate: false } }), pattern);
    await bad({ minMlpKeep: 2 }, /minMlpKeep must be in \[0, 1\], got 2/);
    await bad({ normalise: 'rank' as never }, /normalise must be one of none, mean, zscore/);
    assert.ok(!existsSync(join(dir, 'never.onnx')));
  });
});

describe('KL-selected calibration', () => {
  it('keeps the candidate whose pruned model is closest to the dense one', async () => {
    const model = loadModel(TINY);
    const structure = discoverDecoderStructure(model);
    const scored = await scoreUnits(model, structure, 'magnitude', undefined);
    // Candidates stand for calibration sets; what each "prunes to" is chosen so the answer is known: sparsity 0
    // reproduces the dense model (KL 0).
    const sparsityOf: Record<string, number> = { prose: 0.5, code: 0, email: 0.2 };
    const result = await selectByKl(model, parseCandidates(['prose', 'code', 'email']), async (c) => applyScores(model, structure, scored, { sparsity: sparsityOf[c.data] }), {
      selection: 'prose',
      evaluation: 'prose',
      maxTokens: 512,
    });
    assert.equal(result.results.find((r) => r.chosen)!.candidate, 'code');
    assert.equal(result.chosen.allocation.params.removed, 0);
    const kls = result.results.map((r) => r.kl.mean);
    assert.ok(kls[1] < 1e-6, `dense copy KL ${kls[1]}`);
    assert.ok(kls[0] > kls[2], 'more pruning, further from the dense model');
    assert.ok(result.results.every((r) => Number.isFinite(r.perplexity)));
  });

  it('through the pass: every candidate reported, the chosen one has the lowest KL', async () => {
    const out = join(dir, 'kl.onnx');
    const { prune: r } = await prune({ method: 'wanda-sp', candidates: ['prose', 'code', 'prose@1'], selectTokens: 512 }, out);
    assert.equal(r.candidates!.length, 3);
    const chosen = r.candidates!.find((c) => c.chosen)!;
    assert.equal(chosen.kl.mean, Math.min(...r.candidates!.map((c) => c.kl.mean)));
    assert.equal(`${r.calibration!.data}${r.calibration!.seed ? `@${r.calibration!.seed}` : ''}`, chosen.candidate);
    assert.ok(existsSync(out));
  });
});

describe('bad input: one line, nothing written', () => {
  const refused = async (options: Partial<PruneOptions> & { method: PruneOptions['method'] }, pattern: RegExp, code: string, model = TINY) => {
    const out = join(dir, `bad-${Math.random().toString(36).slice(2)}.onnx`);
    await assert.rejects(
      runSteps(model, [{ pass: prunePass, options: { sparsity: 0.2, calibration: { data: 'prose', options: SMALL }, ...options } as PruneOptions, where: 'prune' }], { out, verify: { gate: false } }),
      (e: unknown) => e instanceof OnnxCompressError && e.code === code && pattern.test(e.message) && !e.message.includes('\n'),
    );
    assert.ok(!existsSync(out));
  };

  it('sparsity outside [0, 1)', async () => {
    await refused({ method: 'magnitude', sparsity: 1 }, /sparsity must be in \[0, 1\), got 1/, 'bad-option');
    await refused({ method: 'magnitude', sparsity: -0.1 }, /sparsity must be in \[0, 1\)/, 'bad-option');
  });

  it('a model with no decoder layers', async () => {
    await refused({ method: 'magnitude' }, /.+/, 'bad-model', join(TESTDATA_ROOT, 'node', 'test_relu', 'model.onnx'));
  });

  it('a gamma that leaves a layer without attention', async () => {
    await refused({ method: 'magnitude', sparsity: 0.5, gamma: 0 }, /gamma 0 .* leaves a layer without attention/, 'bad-option');
  });

  it('calibration text shorter than the batch', async () => {
    const short = join(dir, 'short.jsonl');
    writeFileSync(short, `${JSON.stringify({ text: 'Only a few words, far fewer than thirty-two windows of sixty-four bytes each would need.' })}\n`);
    await refused({ method: 'wanda-sp', calibration: { data: short, options: { samples: 32, sequenceLength: 64 } } }, /short\.jsonl.*fewer than the 32 samples/, 'bad-data');
  });

  it('a pruned model the quality gate refuses is not written', async () => {
    const out = join(dir, 'gated.onnx');
    await assert.rejects(
      runSteps(TINY, [{ pass: prunePass, options: { sparsity: 0.5, method: 'magnitude' } as PruneOptions, where: 'prune' }], { out, verify: { minTop1Agreement: 1 } }),
      (e: unknown) => e instanceof OnnxCompressError && e.code === 'quality-gate',
    );
    assert.ok(!existsSync(out));
  });
});
