// The quality gate: verification fails by default below DEFAULT_GATE (every output's cosine with the original's;
// top-1 agreement for language models), writes nothing, exits with its own status and says in one line which
// output missed by how much and how to accept it anyway; --min-cosine / --min-top1 move the thresholds, --no-gate
// (recipes: verify gate false) accepts anything and the report says what it let through. Collapse is made
// deterministic with 2-bit weights or with the runner's `transform` hook zeroing the largest weight.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { exitCode, QUALITY_GATE_EXIT } from '../src/cli/main.js';
import { OnnxCompressError, OptionError } from '../src/errors.js';
import { GraphEditor } from '../src/onnx/editor.js';
import type { OnnxModel } from '../src/onnx/model.js';
import { elementCount, zeroValues } from '../src/onnx/tensor.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { DEFAULT_GATE, VerificationError, type VerificationReport } from '../src/quantization/verify.js';
import { cli, cliInProcess, oneLineError } from './support/cli.js';
import { TESTDATA_ROOT } from './support/testdata.js';

const MODELS = ['models/tiny-llama/onnx/model.onnx', 'models/tiny-gpt2/onnx/model.onnx'];
const TINY = MODELS[0];
const CONV_DIR = join(TESTDATA_ROOT, 'pytorch-converted', 'test_Conv2d');
const CONV = join(CONV_DIR, 'model.onnx');
// Static QDQ with 2-bit per-channel weights: measured far below the default thresholds (bench/quality-gate.ts).
const COLLAPSED = ['--scheme', 'w8a8', '--bits', '2', '--calib', 'calibration-sets/prose', '--samples', '4', '--seq-len', '64'];
const dir = mkdtempSync(join(tmpdir(), 'quality-gate-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const leftovers = (): string[] => readdirSync(dir).filter((f) => f.includes('.onnx-compress-'));

function json(args: string[]): Record<string, any> {
  const r = cli(...args, '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** The written model with its largest DequantizeLinear-read initializer zeroed: a writer that lost a weight. */
function zeroLargestWeight(model: OnnxModel): OnnxModel {
  const read = new Set(model.graph.node.filter((n) => n.opType === 'DequantizeLinear').map((n) => n.input[0]));
  const weights = model.graph.initializer.filter((t) => read.has(t.name ?? ''));
  assert.ok(weights.length > 0, 'the written model has a quantized weight');
  const largest = weights.reduce((a, t) => (elementCount(t.dims) > elementCount(a.dims) ? t : a));
  const editor = new GraphEditor(model);
  editor.replaceInitializer(largest.name!, largest.dataType!, largest.dims, zeroValues(largest.dataType!, elementCount(largest.dims)));
  return editor.finish().model;
}

/** The output with the smallest cosine, and that cosine. */
function worst(v: VerificationReport): { output: string; cosine: number } {
  return v.outputs.reduce((a, o) => (o.cosine < a.cosine ? o : a));
}

describe('quality gate: defaults', () => {
  it('the defaults are real thresholds (a cosine and a top-1 share in (0, 1))', () => {
    assert.ok(DEFAULT_GATE.minCosine > 0 && DEFAULT_GATE.minCosine < 1);
    assert.ok(DEFAULT_GATE.minTop1Agreement > 0 && DEFAULT_GATE.minTop1Agreement < 1);
  });

  for (const model of MODELS) {
    for (const scheme of ['w8', 'w4']) {
      it(`${scheme} on ${model} passes with the default thresholds, which the report names as defaults`, async () => {
        const out = join(dir, `${scheme}-${model.split('/')[1]}.onnx`);
        const v = (await quantizePass(model, scheme, { out })).verification;
        assert.equal(v.gate, 'on');
        assert.deepEqual(v.thresholds, { minCosine: DEFAULT_GATE.minCosine, minTop1Agreement: DEFAULT_GATE.minTop1Agreement, defaults: ['minCosine', 'minTop1Agreement'] });
        assert.ok(v.worst.cosine >= DEFAULT_GATE.minCosine && v.languageModel!.top1Agreement >= DEFAULT_GATE.minTop1Agreement);
        assert.equal(v.waived, undefined);
        assert.ok(existsSync(out));
      });
    }
  }

  it('a model that is not a language model is gated on cosine only (no top-1 threshold)', async () => {
    const out = join(dir, 'conv-w8a8.onnx');
    const r = await quantizePass(CONV, 'w8a8', { out, calibration: { data: CONV_DIR } });
    assert.equal(r.verification.languageModel, undefined);
    assert.deepEqual(r.verification.thresholds, { minCosine: DEFAULT_GATE.minCosine, defaults: ['minCosine'] });
    assert.ok(existsSync(out));
  });
});

describe('quality gate: a collapsed model', () => {
  it('quantize: refused by default with its own exit status, one line naming the worst output, nothing written', async () => {
    const out = join(dir, 'collapsed.onnx');
    const r = await cliInProcess('quantize', TINY, ...COLLAPSED, '--out', out);
    assert.equal(r.code, QUALITY_GATE_EXIT);
    assert.notEqual(QUALITY_GATE_EXIT, 1, 'distinct from the status of other errors');
    const line = oneLineError(r);
    assert.match(
      line,
      new RegExp(
        `^onnx-compress: ${escape(out)}: failed verification against ${escape(TINY)}: output '[^']+' has cosine similarity -?0\\.\\d{6} with the original's, below the default minimum ${DEFAULT_GATE.minCosine}.*; nothing was written; to accept it, .*--min-cosine.*--no-gate`,
      ),
    );
    assert.ok(!existsSync(out));
    assert.deepEqual(leftovers(), []);
    const j = await cliInProcess('quantize', TINY, ...COLLAPSED, '--out', out, '--json');
    assert.equal(j.code, QUALITY_GATE_EXIT);
    assert.equal(JSON.parse(j.stderr).error.code, 'quality-gate');
  });

  it('--no-gate writes it; the report says the gate was off and what the model missed', () => {
    const out = join(dir, 'collapsed-accepted.onnx');
    const r = json(['quantize', TINY, ...COLLAPSED, '--out', out, '--no-gate']);
    const v = r.verification as VerificationReport;
    assert.ok(existsSync(out));
    assert.equal(v.gate, 'off');
    const w = worst(v);
    assert.ok(w.cosine < DEFAULT_GATE.minCosine, `worst cosine ${w.cosine}`);
    assert.match(v.waived!, new RegExp(`^output '${escape(w.output)}' has cosine similarity ${escape(w.cosine.toFixed(6))} with the original's, below the default minimum ${DEFAULT_GATE.minCosine}`));
    const text = cli('quantize', TINY, ...COLLAPSED, '--out', join(dir, 'collapsed-text.onnx'), '--no-gate');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /\n {2}quality gate off: accepted although output '[^']+' has cosine similarity/);
  });

  it('--min-cosine and --min-top1 move the thresholds both ways around the measured figures', async () => {
    const measured = (await quantizePass(TINY, 'w8', { out: join(dir, 'w8-measured.onnx'), verify: { gate: false } })).verification;
    const { cosine, output } = worst(measured);
    const top1 = measured.languageModel!.top1Agreement;
    assert.ok(cosine < 1 && top1 > 0 && top1 < 1, `cosine ${cosine}, top-1 ${top1}: the thresholds below must lie above them`);

    // Raised just above what the model measures: refused, naming the same output and the caller's threshold.
    const out = join(dir, 'w8-raised.onnx');
    const above = Math.min(1, cosine + 1e-6);
    const raised = await cliInProcess('quantize', TINY, '--scheme', 'w8', '--out', out, '--min-cosine', String(above));
    assert.equal(raised.code, QUALITY_GATE_EXIT);
    assert.match(oneLineError(raised), new RegExp(`output '${escape(output)}' has cosine similarity ${escape(cosine.toFixed(6))} with the original's, below the minimum ${escape(String(above))}[;,]`));
    assert.ok(!existsSync(out));
    const top1Raised = await cliInProcess('quantize', TINY, '--scheme', 'w8', '--out', out, '--min-cosine', '0', '--min-top1', String(Math.min(1, top1 + 1e-3)));
    assert.equal(top1Raised.code, QUALITY_GATE_EXIT);
    assert.match(oneLineError(top1Raised), /: top-1 agreement \d+\.\d\d% is below the minimum \d+\.\d\d%; nothing was written/);

    // Lowered below a collapsed model's figures: accepted, and the report says the thresholds were the caller's.
    const collapsed = json(['quantize', TINY, ...COLLAPSED, '--out', join(dir, 'collapsed-lowered.onnx'), '--min-cosine', '0', '--min-top1', '0']).verification as VerificationReport;
    assert.equal(collapsed.gate, 'on');
    assert.deepEqual(collapsed.thresholds, { minCosine: 0, minTop1Agreement: 0, defaults: [] });
    assert.ok(worst(collapsed).cosine < DEFAULT_GATE.minCosine, 'the default would have refused it');
  });

  it('the library: a writer that zeroes a weight is refused (VerificationError with the figures) unless verify.gate is false', async () => {
    for (const [model, calibration] of [
      [TINY, { data: 'calibration-sets/prose', options: { samples: 4, sequenceLength: 64 } }],
      [CONV, { data: CONV_DIR }],
    ] as const) {
      const out = join(dir, 'zeroed.onnx');
      await assert.rejects(
        quantizePass(model, 'w8a8', { out, calibration, transform: zeroLargestWeight }),
        (e) =>
          e instanceof VerificationError &&
          e.code === 'quality-gate' &&
          e.figures !== undefined &&
          e.figures.worst.cosine < DEFAULT_GATE.minCosine &&
          e.message.includes(`output '${worst(e.figures).output}' has cosine similarity ${worst(e.figures).cosine.toFixed(6)}`),
      );
      assert.ok(!existsSync(out));
      const r = await quantizePass(model, 'w8a8', { out, calibration, transform: zeroLargestWeight, verify: { gate: false } });
      assert.equal(r.verification.gate, 'off');
      assert.match(r.verification.waived!, /below the default minimum/);
      assert.ok(existsSync(out));
      rmSync(out);
    }
    assert.deepEqual(leftovers(), []);
  });
});

describe('quality gate: recipes and compress', () => {
  const recipe = (name: string, verify: Record<string, unknown> | null): string => {
    const path = join(dir, `${name}.json`);
    const passes = [{ pass: 'calibrate', data: 'prose', samples: 4, seqLen: 64 }, { pass: 'quantize', scheme: 'w8a8', bits: 2 }, ...(verify ? [{ pass: 'verify', ...verify }] : [])];
    writeFileSync(path, JSON.stringify({ format: 'onnx-compress.recipe', version: 1, passes }));
    return path;
  };

  it('a recipe that lists no verify pass is gated by the implicit verification', async () => {
    const out = join(dir, 'recipe-implicit.onnx');
    const r = await cliInProcess('compress', TINY, '--recipe', recipe('implicit', null), '--out', out);
    assert.equal(r.code, QUALITY_GATE_EXIT);
    assert.match(oneLineError(r), /below the default minimum .*; nothing was written; to accept it/);
    assert.ok(!existsSync(out));
  });

  it('verify gate: false writes it; --no-gate on compress does the same over a recipe that keeps the gate', () => {
    for (const [name, path, flags] of [
      ['recipe', recipe('gate-false', { gate: false }), []],
      ['flag', recipe('gate-default', {}), ['--no-gate']],
    ] as const) {
      const out = join(dir, `compress-${name}.onnx`);
      const r = json(['compress', TINY, '--recipe', path, '--out', out, ...flags]);
      assert.equal(r.verification.gate, 'off', name);
      assert.match(r.verification.waived, /below the default minimum/, name);
      assert.ok(existsSync(out), name);
    }
  });

  it('a recipe minCosine the model misses names the threshold as the recipe\'s; --min-cosine on compress overrides it', async () => {
    const path = recipe('min-cosine', { minCosine: 0.999999 });
    const out = join(dir, 'compress-min.onnx');
    const r = await cliInProcess('compress', TINY, '--recipe', path, '--out', out);
    assert.equal(r.code, QUALITY_GATE_EXIT);
    assert.match(oneLineError(r), /passes\[2\] \(verify\): .* below the minimum 0\.999999[;,]/);
    const lowered = json(['compress', TINY, '--recipe', path, '--out', out, '--min-cosine', '0', '--min-top1', '0']);
    assert.equal(lowered.verification.gate, 'on');
    assert.equal(lowered.verification.thresholds.minCosine, 0);
    assert.ok(existsSync(out));
  });

  it('gate must be true or false in a recipe', async () => {
    const r = await cliInProcess('compress', TINY, '--recipe', recipe('gate-bad', { gate: 'no' }), '--out', join(dir, 'never.onnx'));
    assert.equal(r.code, 1);
    assert.match(oneLineError(r), /passes\[2\] \(verify\).*"gate" must be true or false, got "no"/);
  });
});

describe('quality gate: exit status', () => {
  it('only quality-gate failures exit with QUALITY_GATE_EXIT', () => {
    assert.equal(exitCode(new VerificationError('m')), QUALITY_GATE_EXIT);
    assert.equal(exitCode(new VerificationError('m', undefined, 'runtime')), 1);
    assert.equal(exitCode(new OptionError('m')), 1);
    assert.equal(exitCode(new OnnxCompressError('quality-gate', 'm')), QUALITY_GATE_EXIT);
    assert.equal(exitCode(new Error('m')), 1);
  });
});
