// `onnx-compress compress MODEL --recipe RECIPE`, as a user runs it: every shipped recipe (recipes/*.json) on
// tiny-llama as shipped and on tiny-gpt2 with small sample counts, each report checked pass by pass (order,
// reports, formats the recipe asked for, the output loads in ONNX Runtime, verification passed); the w8a8 recipe
// writes the same bytes as the quantize command; every recipe mistake is a one-line error naming the recipe and
// the step, with nothing written; `report` draws a compress report (and Chromium opens it); an evaluate-only
// recipe writes nothing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InferenceSession } from 'onnxruntime-node';
import { PASSES, PASS_NAMES } from '../src/passes/registry.js';
import { chromiumSkipReason, dumpDom } from './support/chromium.js';
import { BIN, cli, cliInProcess, oneLineError } from './support/cli.js';

// Recipes name their files (plans, data sets) relative to the current directory, as the command line does.
const REPO = fileURLToPath(new URL('../../', import.meta.url));
process.chdir(REPO);

const TINY = 'models/tiny-llama/onnx/model.onnx';
const GPT2 = 'models/tiny-gpt2/onnx/model.onnx';
const SHIPPED = readdirSync('recipes')
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => `recipes/${f}`);
const dir = mkdtempSync(join(tmpdir(), 'compress-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Step = { pass: string } & Record<string, any>;
interface RecipeJson {
  name?: string;
  passes: Step[];
}

const readJson = (path: string): any => JSON.parse(readFileSync(path, 'utf8'));
const writesModel = (recipe: RecipeJson): boolean => recipe.passes.some((s) => PASSES[s.pass]?.kind === 'transform');
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const stem = (path: string): string => basename(path, '.json');
const modelName = (model: string): string => basename(dirname(model));

/** The shipped recipe with small sample counts (tiny-gpt2 runs every recipe; tiny-llama runs them as shipped). */
function small(recipe: RecipeJson): RecipeJson {
  const shrink: Record<string, Record<string, number>> = {
    calibrate: { samples: 8, seqLen: 64 },
    evaluate: { maxTokens: 2000 },
    'compare-calib': { samples: 4, seqLen: 64, evalTokens: 1000 },
  };
  return { ...recipe, passes: recipe.passes.map((s) => ({ ...s, ...Object.fromEntries(Object.entries(shrink[s.pass] ?? {}).filter(([k]) => k in s)) })) };
}

interface Run {
  model: string;
  recipePath: string;
  recipe: RecipeJson;
  out?: string;
  stdout: string;
  report: any;
  seconds: number;
}

/** compress --json through the real binary; the run's own folder holds its output and nothing else. */
function compress(t: TestContext, model: string, recipePath: string, extra: string[] = []): Run {
  const recipe = readJson(recipePath) as RecipeJson;
  const folder = mkdtempSync(join(dir, `${modelName(model)}-${stem(recipePath)}-`));
  const out = writesModel(recipe) ? join(folder, `${stem(recipePath)}.onnx`) : undefined;
  const started = performance.now();
  const r = cli('compress', model, '--recipe', recipePath, ...(out ? ['--out', out] : []), '--json', ...extra);
  const seconds = (performance.now() - started) / 1000;
  assert.equal(r.code, 0, r.stderr);
  t.diagnostic(`${modelName(model)} ${recipePath}: ${seconds.toFixed(1)} s`);
  return { model, recipePath, recipe, ...(out ? { out } : {}), stdout: r.stdout, report: JSON.parse(r.stdout), seconds };
}

/** Every pass in order with its report, the output in place and loadable, verification passed. */
async function checkRun(run: Run): Promise<void> {
  const { report: r, recipe, recipePath, model, out } = run;
  assert.equal(r.format, 'onnx-compress.compress-report');
  assert.equal(r.version, 1);
  assert.deepEqual(r.recipe, { ...(recipe.name ? { name: recipe.name } : {}), path: recipePath });
  assert.equal(r.model.path, model);
  assert.equal(r.model.languageModel, true);
  assert.doesNotMatch(run.stdout, /\.onnx-compress-[A-Za-z0-9]{6}/, 'the report names the output, not the staging copy');

  // Analyses and transforms in the recipe's order, then verification (added when the recipe lists none), then checks.
  const listed = recipe.passes.map((s, i) => ({ pass: s.pass, where: `recipe ${recipePath}: passes[${i}] (${s.pass})` }));
  const isCheck = (p: { pass: string }) => PASSES[p.pass].kind === 'check';
  const implicit = out && !recipe.passes.some((s) => s.pass === 'verify') ? [{ pass: 'verify', where: 'verification' }] : [];
  const expected = [...listed.filter((p) => !isCheck(p)), ...implicit, ...listed.filter(isCheck)];
  assert.deepEqual(
    r.passes.map((p: any) => ({ pass: p.pass, where: p.where })),
    expected,
  );
  for (const p of r.passes) {
    assert.equal(p.kind, PASSES[p.pass].kind, p.where);
    assert.ok(p.seconds >= 0, p.where);
    assert.ok(p.report && typeof p.report === 'object', `${p.where}: has its report`);
  }
  assert.ok(r.timing.totalSeconds > 0 && r.timing.saveSeconds >= 0);

  if (out) {
    assert.equal(r.output.path, out);
    assert.equal(r.output.naming, 'path');
    assert.deepEqual(readdirSync(dirname(out)), [basename(out)], 'the output and nothing else (no staging folder)');
    assert.equal(r.output.bytes, statSync(out).size);
    assert.ok(r.output.bytes < r.model.bytes, 'smaller than the float model');
    assert.equal(r.verification.passed, true);
    assert.deepEqual(r.passes.find((p: any) => p.pass === 'verify').report, r.verification);
    const session = await InferenceSession.create(out);
    try {
      assert.ok(session.outputNames.includes('logits'), `${out}: ${session.outputNames.join(', ')}`);
    } finally {
      await session.release();
    }
  } else {
    assert.equal(r.output, null);
    assert.equal(r.verification, null);
  }

  for (const [i, step] of recipe.passes.entries()) {
    const p = r.passes.find((x: any) => x.where === listed[i].where);
    checkPassReport(step, p.report, run);
  }
}

function checkPassReport(step: Step, report: any, run: Run): void {
  const where = `${run.recipePath} on ${run.model}: ${step.pass}`;
  switch (step.pass) {
    case 'calibrate':
      assert.equal(report.samples, step.samples, where);
      assert.equal(report.tokens, step.samples * step.seqLen, where);
      assert.equal(report.observe, step.observe ?? 'full', where);
      assert.ok(report.tensors > 0, where);
      break;
    case 'quantize':
      checkFormats(step, report, run);
      break;
    case 'verify':
      assert.equal(report.passed, true, where);
      if (step.minTop1 !== undefined) assert.equal(report.thresholds.minTop1Agreement, step.minTop1, where);
      if (step.minTop1 !== undefined) assert.ok(report.languageModel.top1Agreement >= step.minTop1, where);
      break;
    case 'evaluate': {
      const ppl = report.candidate.perplexity;
      assert.ok(Number.isFinite(ppl.perplexity) && ppl.perplexity > 1, where);
      assert.ok(ppl.tokens > 0 && ppl.tokens <= step.maxTokens, where);
      if (run.out) {
        assert.equal(report.candidate.model, run.out, where);
        assert.equal(report.reference.model, run.model, where);
        assert.ok(report.comparison.top1Agreement > 0.5 && report.comparison.top1Agreement <= 1, where);
      } else {
        assert.equal(report.candidate.model, run.model, where);
        assert.equal(report.comparison, undefined, where);
      }
      break;
    }
    case 'compare-calib':
      assert.equal(report.model, run.model, where);
      assert.equal(report.sets.length, step.sets.length, where);
      assert.equal(report.calibration.samples, step.samples, where);
      assert.ok(report.tensors.length > 0, where);
      assert.deepEqual(report.perplexity.rows, ['fp32', ...report.sets.map((s: any) => s.name)], where);
      assert.equal(report.perplexity.columns.length, step.eval.length, where);
      for (const row of report.perplexity.perplexity) for (const v of row) assert.ok(Number.isFinite(v) && v > 1, where);
      break;
    default:
      assert.fail(`${where}: a shipped recipe uses a pass this test does not check`);
  }
}

/** The quantize pass wrote the formats the recipe asked for. */
function checkFormats(step: Step, q: any, run: Run): void {
  const where = `${run.recipePath} on ${run.model}`;
  const nodes: { node: string; op: string; format: string; bits: number; weight: string }[] = q.nodes.list;
  assert.ok(nodes.length > 0, where);
  const count = (f: (n: (typeof nodes)[number]) => boolean): number => nodes.filter(f).length;
  if (step.scheme === 'w8a8') {
    assert.deepEqual(q.scheme.name, 'w8a8');
    assert.equal(count((n) => n.op === 'MatMul' && n.format === 'qdq' && n.bits === 8), nodes.length, where);
    assert.equal(q.calibration.from, 'data', where);
    assert.ok(q.activations.ranges.length > 0, where);
  } else if (step.scheme === 'w4') {
    assert.equal(q.scheme.name, 'w4');
    assert.ok(count((n) => n.op === 'MatMul') > 0 && count((n) => n.op === 'Gather') > 0, where);
    assert.equal(count((n) => (n.op === 'MatMul' && n.format === 'matmulnbits') || (n.op === 'Gather' && n.format === 'gather-block')), nodes.length, where);
    assert.equal(count((n) => n.bits === 4), nodes.length, where);
  } else if (step.plan === 'recipes/plans/mlp4-attn8.json') {
    assert.equal(q.scheme.name, 'plan');
    assert.equal(q.scheme.writer, 'mixed');
    const mlp = nodes.filter((n) => /\/mlp\//.test(n.node));
    const attention = nodes.filter((n) => /\/(self_)?attn\/[a-z_]+\/MatMul$/.test(n.node));
    const embedding = nodes.filter((n) => n.op === 'Gather');
    assert.ok(mlp.length >= 8 && attention.length >= 8 && embedding.length === 1, `${where}: ${mlp.length} MLP, ${attention.length} attention, ${embedding.length} embedding`);
    assert.equal(mlp.length + attention.length + embedding.length, nodes.length, `${where}: nothing else quantized`);
    for (const n of mlp) assert.deepEqual([n.format, n.bits], ['matmulnbits', 4], n.node);
    for (const n of attention) assert.deepEqual([n.format, n.bits], ['qdq', 8], n.node);
    for (const n of embedding) assert.deepEqual([n.format, n.bits], ['gather-block', 4], n.node);
    assert.ok(!nodes.some((n) => /lm_head/.test(n.node)), `${where}: lm_head stays float`);
    // tiny-llama's lm_head has its own weight, kept float by the plan; tiny-gpt2's reads the tied embedding through
    // a Transpose, so no format could take it and the float pattern passes over it.
    const lmHead = q.plan.rows.find((r: any) => r.node === '/lm_head/MatMul');
    assert.equal(lmHead?.format, where.includes('tiny-gpt2') ? undefined : 'float', where);
    // The plan's activations (the QDQ attention projections) took their ranges from the calibrate pass.
    assert.equal(q.calibration.from, 'data', where);
  } else {
    assert.fail(`${where}: a shipped quantize step this test does not check: ${JSON.stringify(step)}`);
  }
}

const runs = new Map<string, Run>();

describe('compress: shipped recipes', () => {
  it('ships the recipes this test knows', () => {
    assert.deepEqual(SHIPPED, ['recipes/compare-calib.json', 'recipes/mixed-mlp4-attn8.json', 'recipes/w4-eval.json', 'recipes/w8a8-prose.json']);
  });

  for (const recipePath of SHIPPED) {
    it(`${recipePath} on tiny-llama, as shipped`, async (t) => {
      const run = compress(t, TINY, recipePath);
      runs.set(`${TINY} ${recipePath}`, run);
      await checkRun(run);
    });
  }

  for (const recipePath of SHIPPED) {
    it(`${recipePath} on tiny-gpt2, with small sample counts`, async (t) => {
      const smallPath = join(dir, `small-${basename(recipePath)}`);
      writeFileSync(smallPath, JSON.stringify(small(readJson(recipePath))));
      const run = compress(t, GPT2, smallPath);
      runs.set(`${GPT2} ${recipePath}`, run);
      await checkRun(run);
    });
  }
});

describe('compress: the same model as the quantize command', () => {
  it('w8a8-prose writes the bytes of quantize --scheme w8a8 --calib prose --samples 128 --seq-len 128', (t) => {
    const recipe = runs.get(`${TINY} recipes/w8a8-prose.json`) ?? compress(t, TINY, 'recipes/w8a8-prose.json');
    const out = join(dir, 'quantize-w8a8.onnx');
    const q = cli('quantize', TINY, '--scheme', 'w8a8', '--calib', 'prose', '--samples', '128', '--seq-len', '128', '--out', out, '--json');
    assert.equal(q.code, 0, q.stderr);
    assert.ok(readFileSync(recipe.out!).equals(readFileSync(out)), `${recipe.out} and ${out} differ`);
  });
});


describe('compress: bad input, one line naming the recipe and step, nothing written', () => {
  interface Case {
    /** The recipe's JSON, or its text when not an object. */
    recipe: object | string;
    /** Pass --out (into an empty folder of its own); default true. */
    out?: boolean;
    /** The message after 'recipe PATH: ' (or the whole message when `whole`). */
    message: (recipePath: string, out: string) => RegExp;
    code: string;
  }
  let first = true;

  /** Text and --json, each checked for one line, the exit code, and an empty output folder. */
  const refused = async (name: string, c: Case): Promise<void> => {
    const recipePath = join(dir, `bad-${name}.json`);
    writeFileSync(recipePath, typeof c.recipe === 'string' ? c.recipe : JSON.stringify(c.recipe));
    const folder = join(dir, `bad-${name}-out`);
    mkdirSync(folder);
    const out = join(folder, 'model.onnx');
    const args = ['compress', TINY, '--recipe', recipePath, ...(c.out === false ? [] : ['--out', out])];
    const before = readdirSync(dirname(TINY)).sort();
    // The first case runs the real binary; the others main() in this process (what the binary calls).
    const text = first ? cli(...args) : await cliInProcess(...args);
    first = false;
    assert.notEqual(text.code, 0);
    const line = oneLineError(text);
    assert.match(line, new RegExp(`^onnx-compress: ${c.message(escape(recipePath), escape(out)).source}$`));
    const json = await cliInProcess(...args, '--json');
    assert.notEqual(json.code, 0);
    assert.equal(json.stderr.trimEnd().split('\n').length, 1, json.stderr);
    const error = JSON.parse(json.stderr).error;
    assert.equal(error.code, c.code);
    assert.equal(`onnx-compress: ${error.message}`, line);
    assert.deepEqual(readdirSync(folder), [], 'nothing at --out, no staging folder beside it');
    assert.deepEqual(readdirSync(dirname(TINY)).sort(), before, 'nothing beside the input');
  };

  const cases: [string, Case][] = [
    [
      'unknown pass',
      {
        recipe: { passes: [{ pass: 'quantize', scheme: 'w4' }, { pass: 'distill', epochs: 1 }] },
        message: (r) => new RegExp(`recipe ${r}: passes\\[1\\]: unknown pass 'distill' \\(known: ${PASS_NAMES.join(', ')}\\)`),
        code: 'bad-option',
      },
    ],
    [
      'unknown option (a typo)',
      {
        recipe: { passes: [{ pass: 'quantize', scheme: 'w4', blocksize: 32 }] },
        message: (r) => new RegExp(`recipe ${r}: passes\\[0\\] \\(quantize\\): unknown option "blocksize" \\(it takes .*"blockSize".*\\)`),
        code: 'bad-option',
      },
    ],
    [
      'quantize twice',
      {
        recipe: { passes: [{ pass: 'quantize', scheme: 'w4' }, { pass: 'quantize', scheme: 'w8' }] },
        message: (r) => new RegExp(`recipe ${r}: passes\\[1\\] \\(quantize\\): quantize again, after recipe ${r}: passes\\[0\\] \\(quantize\\): a model is quantized once .*`),
        code: 'bad-option',
      },
    ],
    [
      'a transform after a check',
      {
        recipe: { passes: [{ pass: 'verify' }, { pass: 'quantize', scheme: 'w4' }] },
        message: (r) => new RegExp(`recipe ${r}: passes\\[1\\] \\(quantize\\): quantize changes the model after recipe ${r}: passes\\[0\\] \\(verify\\) checked it; .*list them last`),
        code: 'bad-option',
      },
    ],
    [
      'compare-calib after quantize',
      {
        recipe: { passes: [{ pass: 'quantize', scheme: 'w4' }, { pass: 'compare-calib', sets: ['prose', 'code'] }] },
        message: (r) => new RegExp(`recipe ${r}: passes\\[1\\] \\(compare-calib\\): compare-calib works on the input model file, so it must come before recipe ${r}: passes\\[0\\] \\(quantize\\)`),
        code: 'bad-option',
      },
    ],
    [
      'calibrate without data',
      {
        recipe: { passes: [{ pass: 'calibrate', samples: 4 }, { pass: 'quantize', scheme: 'w8a8' }] },
        message: (r) => new RegExp(`recipe ${r}: passes\\[0\\] \\(calibrate\\): "data" \\(a calibration set\\) is required`),
        code: 'bad-option',
      },
    ],
    [
      'no --out for a recipe that changes the model',
      {
        recipe: { passes: [{ pass: 'quantize', scheme: 'w4' }, { pass: 'verify' }] },
        out: false,
        message: (r) => new RegExp(`recipe ${r}: passes\\[0\\] \\(quantize\\): quantize changes the model: give --out for the result`),
        code: 'bad-option',
      },
    ],
    [
      '--out for a recipe that changes nothing',
      {
        recipe: { passes: [{ pass: 'evaluate', data: 'prose', maxTokens: 500 }] },
        message: (r, o) => new RegExp(`--out ${o}: no pass changes the model \\(recipe ${r}: passes\\[0\\] \\(evaluate\\) checks it\\), so there is nothing to write`),
        code: 'bad-option',
      },
    ],
    [
      'a plan file naming a missing node',
      {
        recipe: { passes: [{ pass: 'quantize', plan: join(dir, 'missing-node-plan.json') }, { pass: 'verify' }] },
        message: (r) =>
          new RegExp(
            `recipe ${r}: passes\\[0\\] \\(quantize\\): plan ${escape(join(dir, 'missing-node-plan.json'))}: nodes\\[1\\]: no node named '/model/layers\\.9/mlp/down_proj/MatMul' in the main graph of ${escape(TINY)}`,
          ),
        code: 'bad-option',
      },
    ],
    [
      'not JSON',
      { recipe: '{"passes": [{"pass": "quantize",', message: (r) => new RegExp(`recipe ${r}: not JSON \\(.*\\)`), code: 'bad-option' },
    ],
    [
      'a verification threshold the model misses',
      {
        recipe: { passes: [{ pass: 'quantize', scheme: 'w4-qdq', bits: 2 }, { pass: 'verify', minCosine: 1.0 }] },
        message: (r, o) =>
          new RegExp(`recipe ${r}: passes\\[1\\] \\(verify\\): ${o}: failed verification against ${escape(TINY)}: output '[^']+' has cosine similarity 0\\.\\d+ with the original's, below the minimum 1(, and top-1 agreement [^;]+)?; nothing was written; to accept it, .*`),
        code: 'quality-gate',
      },
    ],
  ];
  writeFileSync(
    join(dir, 'missing-node-plan.json'),
    JSON.stringify({
      format: 'onnx-compress.quant-plan',
      version: 1,
      nodes: [
        { pattern: 'mlp', format: 'matmulnbits', bits: 4 },
        { node: '/model/layers.9/mlp/down_proj/MatMul', format: 'matmulnbits', bits: 4 },
      ],
    }),
  );
  for (const [name, c] of cases) it(name, () => refused(name.replace(/\W+/g, '-'), c));

  it('a recipe file that does not exist', async () => {
    const missing = join(dir, 'no-such-recipe.json');
    assert.match(oneLineError(await cliInProcess('compress', TINY, '--recipe', missing, '--out', join(dir, 'never.onnx'))), new RegExp(`^onnx-compress: --recipe ${escape(missing)}: no such file$`));
    assert.ok(!existsSync(join(dir, 'never.onnx')));
  });
});

describe('compress: report', () => {
  /** The saved --json report of a shipped run (run again when that test did not run). */
  const saved = (t: TestContext, recipePath: string): { json: string; run: Run } => {
    const run = runs.get(`${TINY} ${recipePath}`) ?? compress(t, TINY, recipePath);
    const json = join(dir, `${stem(recipePath)}.report.json`);
    writeFileSync(json, run.stdout);
    return { json, run };
  };
  const pages: { html: string; sections: number }[] = [];

  for (const recipePath of ['recipes/mixed-mlp4-attn8.json', 'recipes/compare-calib.json']) {
    it(`onnx-compress report draws ${recipePath}'s compress report`, (t) => {
      const { json, run } = saved(t, recipePath);
      const html = join(dir, `${stem(recipePath)}.html`);
      const r = cli('report', json, '--out', html);
      assert.equal(r.code, 0, r.stderr);
      const sections = Number(/^wrote .* \(compress report, (\d+) sections, [\d,]+ bytes\)$/m.exec(r.stdout)?.[1]);
      assert.ok(sections > run.report.passes.length, r.stdout);
      const page = readFileSync(html, 'utf8');
      assert.match(page, /<title>[^<]*Compression report/);
      if (run.recipe.name) assert.ok(page.includes(run.recipe.name.replace(/&/g, '&amp;')), 'the recipe name');
      for (const p of run.report.passes) assert.ok(page.includes(`Pass: ${p.pass}`), `a heading for ${p.pass}`);
      assert.doesNotMatch(page, /<script/i);
      assert.doesNotMatch(page, /onnx-compress-[A-Za-z0-9]{6}/, 'no staging path');
      assert.equal((page.match(/<section\b/g) ?? []).length, sections);
      pages.push({ html, sections });
    });
  }

  it('compress --html writes the page the report command draws from its JSON', (t) => {
    const recipe = join(dir, 'html-w4.json');
    writeFileSync(recipe, JSON.stringify({ name: 'w4 html', passes: [{ pass: 'quantize', scheme: 'w4' }, { pass: 'verify' }] }));
    const html = join(dir, 'compress-flag.html');
    const run = compress(t, GPT2, recipe, ['--html', html]);
    writeFileSync(join(dir, 'html-w4.report.json'), run.stdout);
    const again = join(dir, 'html-w4-again.html');
    assert.equal(cli('report', join(dir, 'html-w4.report.json'), '--out', again).code, 0);
    assert.equal(readFileSync(html, 'utf8'), readFileSync(again, 'utf8'));
  });

  const skip = chromiumSkipReason();
  it('the pages open in Chromium without script errors', { skip }, () => {
    assert.ok(pages.length > 0, 'the report tests wrote pages');
    for (const { html, sections } of pages) {
      // The page itself, with its Content-Security-Policy: the browser builds every section.
      const dom = dumpDom(html);
      assert.equal((dom.match(/<section\b/g) ?? []).length, sections, html);
      // A probe copy without the CSP (which forbids scripts): any error while the page loads is recorded.
      const page = readFileSync(html, 'utf8');
      const probe = join(dir, `probe-${basename(html)}`);
      writeFileSync(
        probe,
        page
          .replace(/<meta http-equiv="Content-Security-Policy"[^>]*>/, '')
          .replace(/<head>/, `<head><script>window.__errors = []; addEventListener('error', (e) => __errors.push(String(e.message || e.target?.outerHTML)), true);</script>`)
          .replace(
            '</body>',
            `<script>const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify({ errors: __errors, sections: document.querySelectorAll('section').length, charts: [...document.querySelectorAll('figure.chart svg')].map((s) => s.getBoundingClientRect().width) }); document.body.appendChild(pre);</script></body>`,
          ),
      );
      const found = /<pre id="probe">([^<]*)<\/pre>/.exec(dumpDom(probe))?.[1];
      assert.ok(found, `${probe}: the probe ran`);
      const result = JSON.parse(found.replace(/&quot;/g, '"').replace(/&amp;/g, '&')) as { errors: string[]; sections: number; charts: number[] };
      assert.deepEqual(result.errors, [], html);
      assert.equal(result.sections, sections, html);
      for (const width of result.charts) assert.ok(width > 60, `${html}: a chart ${width} px wide`);
    }
  });
});

describe('compress: evaluate only', () => {
  it('evaluates the input model and writes nothing', () => {
    const cwd = mkdtempSync(join(dir, 'evaluate-only-cwd-'));
    const recipe = join(dir, 'evaluate-only.json');
    writeFileSync(recipe, JSON.stringify({ name: 'evaluate only', passes: [{ pass: 'evaluate', data: 'prose', maxTokens: 2000, window: 128 }] }));
    const model = join(REPO, TINY);
    const before = readdirSync(dirname(model)).sort();
    // From an empty directory: nothing appears there, beside the model, or beside the recipe.
    const r = spawnSync(process.execPath, [BIN, 'compress', model, '--recipe', recipe, '--json'], { cwd, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.output, null);
    assert.equal(report.verification, null);
    assert.deepEqual(
      report.passes.map((p: any) => [p.pass, p.where]),
      [['evaluate', `recipe ${recipe}: passes[0] (evaluate)`]],
    );
    const e = report.passes[0].report;
    assert.equal(e.candidate.model, model);
    assert.equal(e.reference ?? null, null);
    assert.equal(e.comparison, undefined);
    assert.ok(e.candidate.perplexity.perplexity > 1 && e.candidate.perplexity.tokens <= 2000);
    assert.deepEqual(readdirSync(cwd), []);
    assert.deepEqual(readdirSync(dirname(model)).sort(), before);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('evaluate-only')).sort(), [basename(cwd), 'evaluate-only.json'].sort());
  });
});
