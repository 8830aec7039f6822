// The allocate recipe pass and the size-vs-loss chart: a recipe's allocate step leaves its plan for the quantize
// step after it, which writes a verified model of exactly the allocated bytes; a quantize step with no scheme or
// plan and no allocate step before it is refused before any work; a sweep (reusing the step's sensitivity file)
// spans the real plan sizes, and `report` draws it as a chart of mixed and uniform points.
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { allocate, smallestLayerBytes, type AllocateReport } from '../src/allocation/allocate.js';
import { parseCandidates } from '../src/allocation/candidates.js';
import type { SensitivityTable } from '../src/allocation/sensitivity.js';
import { loadModel } from '../src/onnx/model.js';
import { parseRecipe } from '../src/passes/recipe.js';
import { runSteps, type CompressReport } from '../src/passes/runner.js';
import { tensorBytes } from '../src/quantization/writers/common.js';
import { documentFromJson } from '../src/report/from-json.js';
import { renderReport } from '../src/report/html.js';
import type { LineSection } from '../src/report/types.js';

const MODEL = 'models/tiny-llama/onnx/model.onnx';
const SELECTION = { data: 'prose', samples: 2, seqLen: 32, workers: 1 };

describe('allocation: the allocate recipe pass', () => {
  let dir: string;
  let run: CompressReport;
  let out: string;
  let sensitivity: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'alloc-pass-'));
    out = join(dir, 'mixed.onnx');
    sensitivity = join(dir, 'sens.json');
    const recipe = parseRecipe(
      { passes: [{ pass: 'allocate', ...SELECTION, candidates: '2,4,8', budget: '4.5bits', sensitivity, save: join(dir, 'plan.json') }, { pass: 'quantize' }] },
      'test recipe',
    );
    run = await runSteps(MODEL, recipe.steps, { out });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('quantize writes the plan allocate left: a verified model of exactly the allocated bytes, within the budget', () => {
    const a = (run.passes.find((p) => p.pass === 'allocate')!.report as AllocateReport).allocation!;
    assert.equal(a.status, 'optimal');
    assert.ok(a.totalBytes <= a.totalBudgetBytes, `${a.totalBytes} > ${a.totalBudgetBytes}`);
    assert.equal(run.verification?.passed, true);
    const written = loadModel(out).graph.initializer.reduce((s, t) => s + tensorBytes(t), 0);
    assert.equal(written, a.totalBytes);
    // The plan is mixed: a budget between the uniform widths is met by more than one width.
    const plan = JSON.parse(readFileSync(join(dir, 'plan.json'), 'utf8')) as { nodes: { bits?: number }[] };
    assert.ok(new Set(plan.nodes.map((n) => n.bits)).size > 1, 'one width everywhere');
    const quantize = run.passes.find((p) => p.pass === 'quantize')!.report as { plan: { rows: unknown[] } };
    assert.equal(quantize.plan.rows.length, plan.nodes.length);
  });

  it('draws the run, the allocate step included', async () => {
    const { kind, document } = documentFromJson(JSON.parse(JSON.stringify(run)));
    assert.equal(kind, 'compress');
    assert.ok(document.sections.some((s) => s.title === 'Allocation'));
  });

  it('refuses a quantize step with no scheme, no plan and no allocate step before it, before any work', async () => {
    const recipe = parseRecipe({ passes: [{ pass: 'quantize' }] }, 'bare');
    const target = join(dir, 'never.onnx');
    await assert.rejects(runSteps(MODEL, recipe.steps, { out: target }), /bare: passes\[0\] \(quantize\): quantize with these options takes what the allocate pass leaves, and no allocate step comes before it/);
    assert.equal(existsSync(target), false);
  });

  it('sweeps from the smallest plan to the largest quantized one, and report draws mixed and uniform points', async () => {
    const report = await allocate(MODEL, {
      candidates: parseCandidates('2,4,8'),
      data: SELECTION.data,
      samples: SELECTION.samples,
      sequenceLength: SELECTION.seqLen,
      workers: 1,
      sensitivityFile: sensitivity,
      sweep: true,
    });
    assert.equal(report.sensitivity.from, 'file');
    const table = JSON.parse(readFileSync(sensitivity, 'utf8')) as SensitivityTable;
    const sweep = report.sweep!;
    const mixed = sweep.filter((p) => p.kind === 'mixed');
    const uniform = sweep.filter((p) => p.kind === 'uniform');
    assert.equal(uniform.length, 3);
    assert.equal(new Set(mixed.map((p) => p.totalBytes)).size, mixed.length, 'two budgets solved to the same plan');
    assert.equal(Math.min(...mixed.map((p) => p.totalBytes)), table.sizes.fixedBytes + smallestLayerBytes(table));
    assert.ok(mixed.length >= 4, `${mixed.length} mixed points`);
    for (const p of sweep) assert.ok(p.measuredLoss !== undefined && p.measuredLoss > 0);
    // No uniform plan beats the front: for each, a mixed plan at no more bytes is at least as close to float.
    for (const u of uniform) assert.ok(mixed.some((m) => m.totalBytes <= u.totalBytes && m.measuredLoss! <= u.measuredLoss! * 1.05), `${u.label} beats every mixed plan at its size`);

    const { kind, document } = documentFromJson(JSON.parse(JSON.stringify(report)));
    assert.equal(kind, 'allocate');
    const chart = document.sections.find((s): s is LineSection => s.kind === 'line')!;
    assert.deepEqual(
      chart.series.map((s) => [s.name, s.points.length]),
      [
        ['mixed (integer program)', mixed.length],
        ['uniform', uniform.length],
      ],
    );
    const w8 = uniform.find((p) => p.label === 'w8 g32')!;
    assert.ok(chart.series[1].points.some(([x, y]) => x === w8.totalBytes && y === w8.measuredLoss));
    const html = await renderReport(document);
    assert.match(html, /<svg/);
    assert.match(html, /mixed \(integer program\)/);
  });
});
