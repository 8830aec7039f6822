// `onnx-compress quantize` end to end, as a user runs it: tiny-llama (w4 without data, w8a8 calibrated in-process
// and from a `calibrate` statistics file) and a conformance CNN (test_Conv2d, static int8 calibrated on its own
// test_data_set_0), each written model then evaluated with `eval --reference`; transformers.js names in a
// Hugging Face folder; and each bad input as a one-line error naming the file or flag, with nothing written.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { OnnxModel } from '../src/onnx/model.js';
import { saveModel } from '../src/onnx/save.js';
import { DataType } from '../src/onnx/types.js';
import { BIN, cli, cliInProcess, oneLineError } from './support/cli.js';
import { mulberry32 } from './support/prng.js';
import { TESTDATA_ROOT } from './support/testdata.js';

const TINY = 'models/tiny-llama/onnx/model.onnx';
const CONV_DIR = join(TESTDATA_ROOT, 'pytorch-converted', 'test_Conv2d');
const CONV = join(CONV_DIR, 'model.onnx');
const dir = mkdtempSync(join(tmpdir(), 'quantize-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));


function json(args: string[]): Record<string, any> {
  const r = cli(...args, '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

describe('quantize: tiny-llama', () => {
  it('w4 without data: text summary, then eval against the original', () => {
    const out = join(dir, 'tiny-q4.onnx');
    const r = cli('quantize', TINY, '--scheme', 'w4', '--out', out);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^quantized models\/tiny-llama\/onnx\/model.onnx -> .*tiny-q4.onnx\n/);
    assert.match(r.stdout, /scheme w4 \(matmulnbits: 4-bit weights, block 32, symmetric, accuracy_level 0\)/);
    assert.match(r.stdout, /verified in ONNX Runtime \d+\.\d+\.\d+ \(cpu\) on a fixed English sentence/);
    assert.match(r.stdout, /top-1 agreement \d+\.\d+%, KL mean/);
    assert.match(r.stdout, /\/model\/layers.0\/mlp\/down_proj\/MatMul +MatMulNBits +4 +block 32/);
    assert.match(r.stdout, /left in float:\n.*\n\/model\/layers.0\/self_attn\/MatMul +MatMul +B .* is not a constant initializer/);
    assert.ok(existsSync(out));

    const e = json(['eval', out, '--reference', TINY, '--data', 'prose', '--max-tokens', '600', '--window', '128']);
    assert.ok(e.comparison.top1Agreement > 0 && e.comparison.top1Agreement <= 1);
    assert.ok(e.candidate.size.fileBytes < 0.35 * e.reference.size.fileBytes);
  });

  it('w8a8 calibrated in-process, --json report', () => {
    const out = join(dir, 'tiny-w8a8.onnx');
    const r = json(['quantize', TINY, '--scheme', 'w8a8', '--calib', 'calibration-sets/prose', '--samples', '4', '--seq-len', '64', '--seed', '3',
      '--clip', 'percentile', '--percentile', '99.999', '--exclude', 'lm_head', '--out', out]);
    assert.equal(r.output.path, out);
    assert.equal(r.scheme.name, 'w8a8');
    assert.equal(r.calibration.from, 'data');
    assert.deepEqual(r.calibration.options, { samples: 4, sequenceLength: 64, seed: 3 });
    assert.equal(r.activations.method, 'percentile');
    assert.equal(r.activations.percentile, 99.999);
    assert.ok(!r.nodes.list.some((n: { weight: string }) => n.weight === 'lm_head.weight'), '--exclude leaves lm_head in float');
    assert.ok(r.nodes.quantized > 0);
    assert.ok(r.verification.languageModel.top1Agreement > 0.8);
    assert.ok(r.verification.worst.cosine > 0.99);
    for (const key of ['calibrationSeconds', 'writeSeconds', 'saveSeconds', 'verifySeconds', 'totalSeconds']) assert.ok(r.timing[key] >= 0, key);
  });

  it('w8a8 from a calibrate statistics file, entropy clipping', () => {
    const stats = join(dir, 'tiny-stats.json');
    const c = cli('calibrate', TINY, '--data', 'calibration-sets/prose', '--samples', '2', '--seq-len', '64', '--out', stats, '--json');
    assert.equal(c.code, 0, c.stderr);
    const r = json(['quantize', TINY, '--scheme', 'w8a8', '--stats', stats, '--clip', 'entropy', '--activation-type', 'int8', '--out', join(dir, 'tiny-w8a8-entropy.onnx')]);
    assert.equal(r.calibration.from, 'stats');
    assert.equal(r.activations.method, 'entropy');
    assert.equal(r.scheme.params.activations.signed, true);
    assert.ok(r.verification.worst.cosine > 0.99);
  });
});

describe('quantize: conformance CNN (test_Conv2d)', () => {
  it('w8a8 calibrated on its test data, verified, then eval against the original', () => {
    const out = join(dir, 'conv-w8a8.onnx');
    const r = json(['quantize', CONV, '--scheme', 'w8a8', '--calib', CONV_DIR, '--out', out]);
    assert.equal(r.model.languageModel, false);
    assert.equal(r.nodes.quantized, 1);
    assert.equal(r.nodes.list[0].as, 'DequantizeLinear+Conv');
    assert.equal(r.verification.inputs.source, 'calibration');
    assert.equal(r.verification.languageModel, undefined);
    assert.ok(r.verification.outputs[0].cosine > 0.99);
    assert.ok(r.opsetChanges.some((c: { domain: string; from?: number; to: number }) => c.domain === '' && c.from === 6 && c.to === 13), 'opset raised for per-channel DequantizeLinear');

    const e = json(['eval', out, '--reference', CONV, '--data', CONV_DIR]);
    assert.equal(e.kind, 'tensors');
    assert.ok(e.agreement.outputs[0].cosine > 0.99);
  });

});

describe('quantize: a small MLP (Gemm + MatMul, symbolic batch)', () => {
  it('w4 without data verifies on inputs generated from the signature', () => {
    const model = join(dir, 'mlp.onnx');
    const b = new GraphBuilder('mlp');
    b.input('x', DataType.FLOAT, ['batch', 40]);
    const random = mulberry32(5);
    const weights = (n: number) => Float32Array.from({ length: n }, () => (random() - 0.5) / 4);
    const w1 = b.initializer('fc1.weight', DataType.FLOAT, [64, 40], weights(64 * 40));
    const b1 = b.initializer('fc1.bias', DataType.FLOAT, [64], weights(64));
    const w2 = b.initializer('fc2.weight', DataType.FLOAT, [64, 10], weights(640));
    const h = b.op('Relu', [b.op('Gemm', ['x', w1, b1], { transB: 1 })]);
    b.output('y', DataType.FLOAT, ['batch', 10]);
    b.node('MatMul', [h, w2], ['y']);
    saveModel(new OnnxModel(modelFrom(b.graph, { opsets: { '': 17 } }), undefined, 'mlp'), model);

    const r = json(['quantize', model, '--scheme', 'w4', '--block-size', '16', '--out', join(dir, 'mlp-q4.onnx')]);
    assert.deepEqual(r.nodes.list.map((n: { op: string; as: string }) => `${n.op}->${n.as}`), ['Gemm->MatMulNBits', 'MatMul->MatMulNBits']);
    // K = 40 input features: the writer pads the last block of 16.
    assert.ok(r.notes.some((n: string) => /padded/.test(n)));
    assert.equal(r.verification.inputs.source, 'generated');
    assert.match(r.verification.inputs.description, /seeded normal values/);
    assert.equal(r.verification.languageModel, undefined);
    assert.ok(r.verification.outputs[0].cosine > 0.95);
  });
});

describe('quantize: Hugging Face folder', () => {
  const hf = join(dir, 'hf');
  mkdirSync(join(hf, 'onnx'), { recursive: true });
  copyFileSync(TINY, join(hf, 'onnx', 'model.onnx'));
  copyFileSync('models/tiny-llama/config.json', join(hf, 'config.json'));
  const model = join(hf, 'onnx', 'model.onnx');

  it('writes transformers.js names where transformers.js has the dtype, names of ours elsewhere, and the config beside onnx/', () => {
    assert.equal(json(['quantize', model, '--scheme', 'w4', '--out', join(hf, 'onnx')]).output.path, join(hf, 'onnx', 'model_q4.onnx'));
    const w8 = json(['quantize', model, '--scheme', 'w8', '--out', hf]);
    assert.equal(w8.output.path, join(hf, 'onnx', 'model_quantized.onnx'));
    assert.equal(w8.output.naming, 'transformers.js');
    const other = join(dir, 'hf-out');
    const w4a8 = json(['quantize', model, '--scheme', 'w4a8', '--out', `${other}/`]);
    assert.deepEqual([w4a8.output.path, w4a8.output.naming], [join(other, 'onnx', 'model_w4a8.onnx'), 'onnx-compress']);
    assert.deepEqual(readdirSync(join(hf, 'onnx')).sort(), ['model.onnx', 'model_q4.onnx', 'model_quantized.onnx']);
    assert.deepEqual(readdirSync(other).sort(), ['config.json', 'onnx']);
    assert.deepEqual(readdirSync(join(other, 'onnx')), ['model_w4a8.onnx']);
    assert.deepEqual(readdirSync(hf).sort(), ['config.json', 'onnx']);
  });
});

describe('quantize: bad input', () => {
  const out = join(dir, 'never.onnx');
  // In-process through main() (what bin/onnx-compress calls), which saves a Node start per case; the first
  // case runs the real binary.
  const fails = async (args: string[], pattern: RegExp) => {
    assert.match(oneLineError(await cliInProcess('quantize', ...args)), pattern);
  };
  after(() => assert.ok(!existsSync(out), 'nothing written by a failed run'));

  it('unknown scheme, listing the known ones', () => {
    const line = oneLineError(cli('quantize', TINY, '--scheme', 'w3', '--out', out));
    assert.match(line, /^onnx-compress: --scheme: unknown quantization scheme 'w3' \(known: w8a8, w8, w4, w4a8, w4-qdq, fp16\)$/);
  });

  it('block sizes MatMulNBits cannot run', async () => {
    await fails([TINY, '--scheme', 'w4', '--block-size', '24', '--out', out], /--block-size: .*power of two from 16 to 256.*got 24/);
    await fails([TINY, '--scheme', 'w4', '--block-size', '8', '--out', out], /--block-size: .*got 8/);
    await fails([TINY, '--scheme', 'w4', '--block-size', '256', '--no-pad', '--out', out], /model.onnx: node '.*': .*not a multiple of block size 256, and padding was refused/);
  });

  it('an already-quantized model', async () => {
    await fails([join(dir, 'tiny-q4.onnx'), '--scheme', 'w8', '--out', out], /tiny-q4.onnx: the model is already quantized \(node .*(MatMulNBits|GatherBlockQuantized)\)/);
  });

  it('a static scheme without calibration', async () => {
    await fails([TINY, '--scheme', 'w8a8', '--out', out], /model.onnx: scheme w8a8 quantizes activations, which needs calibration: give --calib SET .* or --stats FILE/);
  });

  it('the output path is the input', async () => {
    await fails([TINY, '--scheme', 'w4', '--out', TINY], /--out models\/tiny-llama\/onnx\/model.onnx: is the input model .*refusing to overwrite the input/);
    await fails([TINY, '--scheme', 'w4', '--out', './models/tiny-llama/../tiny-llama/onnx/model.onnx'], /is the input model/);
  });

  it('statistics of another model', async () => {
    const stats = join(dir, 'conv-stats.json');
    assert.equal(cli('calibrate', CONV, '--data', CONV_DIR, '--out', stats, '--json').code, 0);
    await fails([TINY, '--scheme', 'w8a8', '--stats', stats, '--out', out], /conv-stats.json: collected on .*test_Conv2d\/model.onnx .*not on models\/tiny-llama\/onnx\/model.onnx/);
  });

  it('flags that do not fit', async () => {
    await fails([TINY, '--scheme', 'w4', '--clip', 'entropy', '--out', out], /--clip: scheme w4 quantizes weights only/);
    await fails([TINY, '--scheme', 'w8a8', '--calib', 'calibration-sets/prose', '--clip', 'mse', '--out', out], /--clip must be one of minmax, percentile, entropy, auto, got 'mse'/);
    await fails([TINY, '--scheme', 'w8a8', '--calib', 'calibration-sets/prose', '--percentile', '101', '--out', out], /--percentile must lie in \(0, 100\]/);
    await fails([TINY, '--scheme', 'w4', '--bits', '3', '--out', out], /--bits: scheme w4: 3-bit MatMulNBits does not run/);
    await fails([TINY, '--scheme', 'w4', '--samples', '8', '--out', out], /--samples: calibration options need --calib/);
    await fails([TINY, '--scheme', 'w8a8', '--calib', 'calibration-sets/prose', '--stats', 'x.json', '--out', out], /--calib and --stats are alternatives/);
  });
});

describe('quantize: interrupted', () => {
  it('Ctrl-C while the staged model is being verified leaves neither the output nor the staging folder', async () => {
    const out = join(mkdtempSync(join(dir, 'interrupted-')), 'q.onnx');
    const child = spawn(process.execPath, [BIN, 'quantize', TINY, '--scheme', 'w8a8', '--calib', 'prose', '--samples', '64', '--seq-len', '128', '--out', out], {
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    // The staging folder appears once calibration and writing are done; the model inside it once it is saved.
    const staged = () => readdirSync(dirname(out)).find((f) => f.startsWith('.q.onnx.onnx-compress-'));
    const deadline = Date.now() + 120_000;
    while (!staged() && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 5));
    assert.ok(staged(), 'the run reached its staging folder');
    child.kill('SIGINT');
    assert.equal(await exited, 'SIGINT');
    assert.deepEqual(readdirSync(dirname(out)), [], 'no output, no staging folder');
  });
});
