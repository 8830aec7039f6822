// The package as a user imports it: by its name (package.json "exports"), the typed entry point, and one short
// job through it — load a model, quantize it with a scheme, read the written file back, generate from it.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const dir = mkdtempSync(join(tmpdir(), 'library-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('the package imported by its name', () => {
  it('exposes the typed API and runs a quantize job through it', async () => {
    const lib = await import('onnx-compress');
    for (const name of ['loadModel', 'saveModel', 'collectStatistics', 'quantize', 'quantizeModel', 'rewriteModel', 'compress', 'parseRecipe', 'evaluateModel', 'generateText', 'GraphEditor', 'OnnxCompressError']) {
      assert.equal(typeof (lib as Record<string, unknown>)[name], 'function', `export ${name}`);
    }
    const out = join(dir, 'tiny-w4.onnx');
    const report = await lib.quantize('models/tiny-llama/onnx/model.onnx', 'w4', { out });
    assert.equal(report.verification.passed, true);
    assert.ok(report.files.ratio < 0.35, `file ratio ${report.files.ratio}`);
    const written = lib.loadModel(out);
    assert.ok(written.graph.node.some((n) => n.opType === 'MatMulNBits'));
    const text = await lib.generateText(out, 'Call me', { maxNewTokens: 4 });
    assert.equal(text.tokens.length, 4);
  });

  it("runs the README's recipe-in-code example (smaller): calibrate, a mixed plan, verify, evaluate", async () => {
    const lib = await import('onnx-compress');
    const recipe = lib.parseRecipe(
      { passes: [{ pass: 'calibrate', data: 'prose', samples: 8, seqLen: 64 }, { pass: 'quantize', plan: 'recipes/plans/mlp4-attn8.json' }, { pass: 'evaluate', data: 'prose', maxTokens: 500, window: 128 }] },
      'my recipe',
    );
    const out = join(dir, 'tiny-mixed.onnx');
    const run = await lib.compress('models/tiny-llama/onnx/model.onnx', recipe.steps, { out });
    assert.deepEqual(run.passes.map((p) => p.pass), ['calibrate', 'quantize', 'verify', 'evaluate']);
    assert.equal(run.output?.path, out);
    const formats = new Set(lib.loadModel(out).graph.node.map((n) => n.opType));
    for (const op of ['MatMulNBits', 'QuantizeLinear', 'DequantizeLinear', 'GatherBlockQuantized']) assert.ok(formats.has(op), op);
    const evaluation = run.passes[3].report as import('onnx-compress').EvalReport;
    assert.ok(evaluation.comparison && evaluation.comparison.top1Agreement > 0.9, `top-1 ${evaluation.comparison?.top1Agreement}`);
  });

  it('throws OnnxCompressError with a stable code on bad input', async () => {
    const lib = await import('onnx-compress');
    await assert.rejects(lib.quantize('models/tiny-llama/onnx/model.onnx', 'w3', { out: join(dir, 'x.onnx') }), (e: unknown) => e instanceof lib.OnnxCompressError && e.code === 'bad-option');
    assert.throws(() => lib.loadModel(join(dir, 'missing.onnx')), (e: unknown) => e instanceof lib.OnnxCompressError && e.code === 'bad-model');
  });
});
