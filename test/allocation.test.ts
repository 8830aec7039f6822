// Bit allocation: budgets and candidates parsed, sensitivity measured through weight swapping and checked against
// ONNX Runtime running the written single-layer model, the sensitivity file reused and refused, and the allocate
// command end to end: its plan through `quantize --plan` gives a verified model of exactly the allocated bytes.
import { strict as assert } from 'node:assert';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { budgetTotalBytes, parseBudget } from '../src/allocation/budget.js';
import { parseCandidates } from '../src/allocation/candidates.js';
import { klSum, referenceLogProbs } from '../src/allocation/loss.js';
import { allocationPlanFile } from '../src/allocation/plan-writer.js';
import { spearman } from '../src/allocation/rank.js';
import { readSensitivityFile, writeSensitivityFile } from '../src/allocation/sensitivity-file.js';
import { measureSensitivity, openSelection, type SensitivityTable } from '../src/allocation/sensitivity.js';
import { markPareto } from '../src/allocation/allocate.js';
import { loadModel } from '../src/onnx/model.js';
import { resolvePlan } from '../src/quantization/plan-file.js';
import { tensorBytes } from '../src/quantization/writers/common.js';
import { rewriteModel } from '../src/quantization/writers/index.js';
import { Session } from '../src/runtime/session.js';
import { cli, oneLineError } from './support/cli.js';

const MODEL = 'models/tiny-llama/onnx/model.onnx';
const SELECTION = { samples: 2, sequenceLength: 32 };

describe('allocation: parsing', () => {
  it('reads the three budget forms against the model sizes', () => {
    const sizes = { floatBytes: 1000, fixedBytes: 200, layerWeights: 400 };
    assert.equal(budgetTotalBytes(parseBudget('0.25x'), sizes), 250);
    assert.equal(budgetTotalBytes(parseBudget('4bits'), sizes), 200 + 200);
    assert.equal(budgetTotalBytes(parseBudget('1.5KiB'), sizes), 1536);
    assert.throws(() => parseBudget('lots'), /--budget: 'lots' is not a budget/);
  });

  it('refuses candidates no format can store, and takes block sizes per width', () => {
    assert.deepEqual(parseCandidates('2,4g64', 32), [{ bits: 2, blockSize: 32 }, { bits: 4, blockSize: 64 }]);
    assert.throws(() => parseCandidates('4,9'), /no format stores 9-bit weights/);
    assert.throws(() => parseCandidates('4g48'), /block size must be a power of two/);
  });

  it('ranks with ties and marks the Pareto points', () => {
    assert.equal(spearman([1, 2, 3, 4], [10, 20, 30, 40]), 1);
    assert.equal(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1);
    assert.ok(Number.isNaN(spearman([1, 1, 1], [1, 2, 3])));
    const pts = markPareto([
      { kind: 'uniform', label: 'a', totalBytes: 10, averageBits: 4, predictedLoss: 5 },
      { kind: 'mixed', label: 'b', totalBytes: 10, averageBits: 4, predictedLoss: 3 },
      { kind: 'mixed', label: 'c', totalBytes: 20, averageBits: 8, predictedLoss: 1 },
    ]);
    assert.deepEqual(pts.map((p) => p.pareto), [false, true, true]);
  });
});

describe('allocation: sensitivity on tiny-llama', () => {
  let table: SensitivityTable;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'alloc-'));
    table = await measureSensitivity(loadModel(MODEL), { path: MODEL, sha256: 'a'.repeat(64) }, { candidates: parseCandidates('2,8'), data: 'prose', workers: 1, ...SELECTION });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('measures every layer: 2 bits costs more loss and fewer bytes than 8 bits', () => {
    assert.equal(table.loss, 'kl');
    assert.equal(table.layers.length, 29);
    for (const l of table.layers) {
      const [f, w8, w2] = ['float', 'w8 g32', 'w2 g32'].map((label) => l.candidates.find((c) => c.label === label)!);
      assert.ok(w2.deltaLoss > w8.deltaLoss, `${l.node}: ΔL w2 ${w2.deltaLoss} <= w8 ${w8.deltaLoss}`);
      assert.ok(w2.bytes < w8.bytes && w8.bytes < f.bytes, `${l.node}: bytes ${w2.bytes} ${w8.bytes} ${f.bytes}`);
      assert.equal(f.bytes, l.weightCount * 4);
    }
    for (const p of table.proxies) assert.ok(p.spearman !== null && p.spearman > 0.5, `${p.name}: Spearman ${p.spearman}`);
  });

  it('equals ONNX Runtime running the written model with that one layer in MatMulNBits', async () => {
    const model = loadModel(MODEL);
    const layer = table.layers.find((l) => l.node.includes('layers.2/mlp/down_proj'))!;
    const w2 = layer.candidates.find((c) => c.label === 'w2 g32')!;
    const written = rewriteModel(model, resolvePlan(model, { nodes: [{ node: layer.node, format: 'matmulnbits', bits: 2, blockSize: 32 }] }, 'one layer'));
    assert.equal(written.report.nodes[0].bytesAfter, w2.bytes);
    const selection = await openSelection(model, 'prose', SELECTION);
    const [ref, cand] = await Promise.all([Session.create(model, { intraOpThreads: 1 }), Session.create(written.model, { intraOpThreads: 1 })]);
    let sum = 0;
    let count = 0;
    for (const feeds of selection.batches) {
      const r = (await ref.run(feeds, ['logits'])).logits;
      const c = (await cand.run(feeds, ['logits'])).logits;
      const vocab = r.dims[2];
      const k = klSum(referenceLogProbs(r.data as Float32Array, vocab), c.data as Float32Array, vocab);
      sum += k.sum;
      count += k.count;
    }
    await Promise.all([ref.dispose(), cand.dispose()]);
    const oracle = sum / count;
    assert.ok(Math.abs(oracle - w2.deltaLoss) <= 0.02 * oracle, `swapped-weight ΔL ${w2.deltaLoss} vs written model ${oracle}`);
  });

  it('reuses its file for the same key, refuses another model or method, re-measures other data', () => {
    const path = join(dir, 'sens.json');
    writeSensitivityFile(path, table);
    const key = { sha256: table.model.sha256, method: 'rtn', data: table.data, candidates: table.candidates };
    assert.deepEqual(readSensitivityFile(path, key).table, JSON.parse(readFileSync(path, 'utf8')));
    assert.throws(() => readSensitivityFile(path, { ...key, sha256: 'b'.repeat(64) }), /measured on models\/tiny-llama\/onnx\/model.onnx \(sha256 aaaaaaaaaaaa\.\.\.\), not on this model/);
    assert.throws(() => readSensitivityFile(path, { ...key, method: 'gptq' }), /measured with --method rtn, not gptq/);
    assert.match(readSensitivityFile(path, { ...key, data: { ...key.data, samples: 3 } }).stale ?? '', /measured on other data/);
  });

  it('writes a plan entry per layer in the measured format', () => {
    const choice = table.layers.map((l) => l.candidates.findIndex((c) => c.label === 'w2 g32'));
    choice[0] = 0;
    const plan = allocationPlanFile(table.layers, choice);
    assert.deepEqual(plan.nodes![0], { node: table.layers[0].node, format: 'float' });
    assert.deepEqual(plan.nodes![1], { node: table.layers[1].node, format: 'matmulnbits', bits: 2, blockSize: 32 });
  });
});

describe('allocation: the allocate command', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'alloc-cli-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const common = ['--calib', 'prose', '--samples', '2', '--seq-len', '32', '--workers', '1', '--candidates', '2,3,4,8'];

  it('allocates, and quantize --plan writes a verified model of exactly the allocated bytes, within the budget', () => {
    const plan = join(dir, 'plan.json');
    const sens = join(dir, 'sens.json');
    const r = cli('allocate', MODEL, ...common, '--budget', '4.25bits', '--out', plan, '--sensitivity', sens, '--json');
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    const a = report.allocation;
    assert.equal(a.status, 'optimal');
    assert.ok(a.totalBytes <= a.totalBudgetBytes);
    assert.ok(report.dropped.some((d: { candidate: string }) => d.candidate === 'w3 g32'), '3-bit QDQ is as large as 8-bit and is dropped');
    assert.ok(a.measuredLoss > 0 && a.predictedLoss > 0);
    const out = join(dir, 'mixed.onnx');
    const q = cli('quantize', MODEL, '--plan', plan, '--calib', 'prose', '--samples', '4', '--seq-len', '32', '--out', out, '--json');
    assert.equal(q.code, 0, q.stderr);
    assert.equal(JSON.parse(q.stdout).verification.passed, true);
    const written = loadModel(out).graph.initializer.reduce((s, t) => s + tensorBytes(t), 0);
    assert.equal(written, a.totalBytes);

    const again = cli('allocate', MODEL, ...common, '--budget', '0.2x', '--out', plan, '--sensitivity', sens, '--json');
    assert.equal(again.code, 0, again.stderr);
    assert.equal(JSON.parse(again.stdout).sensitivity.from, 'file');

    const other = join(dir, 'other.json');
    writeFileSync(other, readFileSync(sens, 'utf8').replace(/"sha256": "[0-9a-f]+"/, `"sha256": "${'c'.repeat(64)}"`));
    assert.match(oneLineError(cli('allocate', MODEL, ...common, '--budget', '4bits', '--out', plan, '--sensitivity', other)), /other\.json: measured on .*not on this model/);
    copyFileSync(sens, other);
    assert.match(oneLineError(cli('allocate', MODEL, ...common, '--method', 'gptq', '--budget', '4bits', '--out', plan, '--sensitivity', other)), /measured with --method rtn, not gptq/);
    assert.match(oneLineError(cli('allocate', MODEL, ...common, '--budget', '0.01x', '--out', plan, '--sensitivity', sens)), /below the smallest feasible size, \d+ bytes/);
    const float = cli('allocate', MODEL, ...common, '--budget', '2x', '--out', plan, '--sensitivity', sens, '--json');
    assert.equal(float.code, 0, float.stderr);
    const fr = JSON.parse(float.stdout);
    assert.equal(fr.allocation.status, 'float');
    assert.ok(fr.notes.some((n: string) => /at or above the float model/.test(n)));
    assert.ok(fr.plan.nodes.every((n: { format: string }) => n.format === 'float'));
    assert.match(oneLineError(cli('allocate', MODEL, ...common, '--candidates', '4,9', '--budget', '4bits', '--out', plan)), /no format stores 9-bit weights/);
  });
});
