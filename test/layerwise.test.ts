// The layer-wise pipeline (src/quantization/layerwise/): blocks found from the graph, one block's memory
// whatever the depth, sequential and parallel capture, the bad inputs it refuses or warns about, and the
// quantize command's --method gptq|adaquant [--sequential|--parallel] end to end on tiny-llama.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { Tensor } from 'onnxruntime-node';
import type { CalibrationSet } from '../src/calibration/data/index.js';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import { DataType } from '../src/onnx/types.js';
import { checkQuantizeOptions, quantizePass as quantizeStep } from '../src/passes/quantize.js';
import { findBlocks } from '../src/quantization/layerwise/blocks.js';
import { adaquantMethod, gptqMethod } from '../src/quantization/layerwise/methods.js';
import { solveLayerwise, type LayerwiseMode } from '../src/quantization/layerwise/run.js';
import { decoderStructure } from '../src/quantization/layerwise/structure.js';
import { formatQuantize } from '../src/cli/quantize.js';
import { quantizePass, type QuantizationRunReport } from '../src/quantization/pipeline.js';
import { planFromScheme } from '../src/quantization/plan.js';
import { resolveScheme } from '../src/quantization/schemes.js';
import { lockFileFor } from '../src/util/output-lock.js';
import { cli, cliInProcess, oneLineError } from './support/cli.js';
import { mulberry32 } from './support/prng.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TINY = join(ROOT, 'models/tiny-llama/onnx/model.onnx');
const INTERRUPT = fileURLToPath(new URL('./support/layerwise-interrupt.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'layerwise-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const WIDTH = 32;

/**
 * A residual MLP stack: x <- x + W2_i relu(W1_i x), `layers` times, width 32. `weight(i, j)` overrides the
 * values of W{j}_i.
 */
function residualStack(layers: number, weight?: (layer: number, which: 1 | 2) => Float32Array | undefined): OnnxModel {
  const b = new GraphBuilder('stack');
  const random = mulberry32(7);
  let x = b.input('x', DataType.FLOAT, ['rows', WIDTH]);
  for (let i = 0; i < layers; i++) {
    const w = (which: 1 | 2): string =>
      b.initializer(`W${which}_${i}`, DataType.FLOAT, [WIDTH, WIDTH], weight?.(i, which) ?? Float32Array.from({ length: WIDTH * WIDTH }, () => (random() - 0.5) / 4));
    const h = b.op('Relu', [b.op('MatMul', [x, w(1)], undefined, { name: `mlp${i}/up` })]);
    const y = b.op('MatMul', [h, w(2)], undefined, { name: `mlp${i}/down` });
    x = b.op('Add', [x, y], undefined, { name: `residual${i}` });
  }
  b.output('y', DataType.FLOAT, ['rows', WIDTH]);
  b.node('Identity', [x], ['y']);
  return new OnnxModel(modelFrom(b.graph, { opsets: { '': 17 } }), undefined, `stack-${layers}`);
}

/** A chain of plain MatMuls (no residual Add): one block per node. */
function matmulChain(weights: Float32Array[]): OnnxModel {
  const b = new GraphBuilder('chain');
  let x = b.input('x', DataType.FLOAT, ['rows', WIDTH]);
  weights.forEach((values, i) => {
    x = b.op('MatMul', [x, b.initializer(`W${i}`, DataType.FLOAT, [WIDTH, WIDTH], values)], undefined, { name: `mm${i}` });
  });
  b.output('y', DataType.FLOAT, ['rows', WIDTH]);
  b.node('Identity', [x], ['y']);
  return new OnnxModel(modelFrom(b.graph, { opsets: { '': 17 } }), undefined, 'chain');
}

/** An in-memory calibration set of `batches` batches of `rows` x 32 values (or given values). */
function tensorSet(batches: number, rows: number, values?: (i: number) => number): CalibrationSet {
  const random = mulberry32(11);
  const data = Array.from({ length: batches }, () => Float32Array.from({ length: rows * WIDTH }, (_, i) => values?.(i) ?? random() * 2 - 1));
  return {
    source: 'memory',
    kind: 'tensors',
    sampleCount: batches * rows,
    tokenCount: 0,
    async *batches() {
      for (const d of data) yield { x: new Tensor('float32', d, [rows, WIDTH]) };
    },
  };
}

const w4 = (model: OnnxModel) => planFromScheme(model, resolveScheme('w4', {}));

describe('blocks', () => {
  it("tiny-llama's blocks are its 4 decoder layers, then the lm_head", async () => {
    const model = loadModel(TINY);
    const plan = w4(model);
    const check = (blocks: ReturnType<typeof findBlocks>['blocks']): void => {
      assert.deepEqual(blocks.map((b) => b.name), ['layer 0', 'layer 1', 'layer 2', 'layer 3', 'lm_head']);
      blocks.slice(0, 4).forEach((b, i) => {
        // Found from the graph; the exporter's names only confirm the answer.
        assert.equal(b.nodes.length, 7, `${b.name}: q, k, v, o, gate, up, down`);
        for (const p of b.nodes) assert.ok(p.target.label.includes(`/layers.${i}/`), `${b.name} holds ${p.target.label}`);
      });
      assert.deepEqual(blocks[4].nodes.map((p) => p.target.label), ['/lm_head/MatMul']);
    };
    const fromGraph = findBlocks(model, plan);
    assert.equal(fromGraph.from, 'residual');
    check(fromGraph.blocks);
    // Where structure discovery recognises the decoder, its layers give the same blocks.
    const { structure } = await decoderStructure(model);
    if (structure) {
      const fromStructure = findBlocks(model, plan, structure);
      assert.equal(fromStructure.from, 'decoder');
      check(fromStructure.blocks);
    }
  });

  it('a residual stack gives one block per residual Add; a plain chain one block per node', () => {
    const model = residualStack(3);
    const stack = findBlocks(model, w4(model));
    assert.equal(stack.from, 'residual');
    assert.deepEqual(stack.blocks.map((b) => b.nodes.map((p) => p.target.label)), [0, 1, 2].map((i) => [`mlp${i}/up`, `mlp${i}/down`]));
    const chain = matmulChain([0, 1, 2].map(() => new Float32Array(WIDTH * WIDTH).fill(0.1)));
    const blocks = findBlocks(chain, w4(chain));
    assert.equal(blocks.from, 'nodes');
    assert.deepEqual(blocks.blocks.map((b) => b.name), ['node mm0', 'node mm1', 'node mm2']);
  });
});

describe('memory', () => {
  for (const mode of ['sequential', 'parallel'] as LayerwiseMode[]) {
    it(`${mode}: the captured-bytes high-water mark is the same for 4 and 16 layers of the same width`, async () => {
      const set = tensorSet(3, 64);
      const peak = async (layers: number, method = gptqMethod()) => {
        const model = residualStack(layers);
        const r = await solveLayerwise(model, w4(model), set, { method, mode });
        assert.equal(r.summary.blocks.length, layers);
        assert.equal(r.records.length, 2 * layers);
        return r.summary.peakCapturedBytes;
      };
      const four = await peak(4);
      assert.ok(four > 0);
      assert.equal(await peak(16), four, 'GPTQ: one block of captures whatever the depth');
      if (mode === 'sequential') {
        // AdaQuant tunes MatMul on the same XᵀX (the Gram form): no row sample, the same memory as GPTQ.
        const ada = () => adaquantMethod({ iterations: 2, batchSize: 16, evalEvery: 1 }, 96);
        const a4 = await peak(4, ada());
        assert.equal(a4, four, 'no row samples are kept for MatMul');
        assert.equal(await peak(16, ada()), a4);
      }
    });
  }
});

describe('bad input', () => {
  it('fewer calibration rows than a layer is wide: a warning with the numbers, and the Hessian damped', async () => {
    const model = residualStack(2);
    const r = await solveLayerwise(model, w4(model), tensorSet(1, 8), { method: gptqMethod(), mode: 'sequential' });
    const warned = r.notes.filter((n) => /rank-deficient/.test(n));
    assert.ok(warned.length >= 2, r.notes.join('\n'));
    assert.match(warned[0], /block 'residual block 0': input 'x' has 8 calibration tokens for 32 inputs: its Hessian is rank-deficient; damped by 0\.01/);
    for (const l of r.records) {
      assert.equal(l.solver, 'gptq');
      assert.equal(l.tokens, 8);
      assert.ok(l.percdamp! >= 0.01);
      assert.ok(l.errorAfter! <= l.errorBefore!, `${l.node}: ${l.errorAfter} vs ${l.errorBefore}`);
    }
  });

  for (const mode of ['sequential', 'parallel'] as LayerwiseMode[]) {
    it(`${mode}: an infinity in a block's output is an error naming the block and the tensor`, async () => {
      // mm1's output overflows float32: 32 inputs of 32 times 1e37.
      const model = matmulChain([new Float32Array(WIDTH * WIDTH).fill(1), new Float32Array(WIDTH * WIDTH).fill(1e37), new Float32Array(WIDTH * WIDTH).fill(1)]);
      const tensor = model.graph.node.find((n) => n.name === 'mm1')!.output[0];
      await assert.rejects(
        solveLayerwise(model, w4(model), tensorSet(2, 16, () => 1), { method: gptqMethod(), mode }),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, 'bad-data');
          assert.ok(!e.message.includes('\n'));
          assert.ok(e.message.includes(`block 'node mm1': Infinity in its output '${tensor}'`), e.message);
          assert.equal(/with its weights quantized/.test(e.message), mode === 'sequential', e.message);
          return true;
        },
      );
    });
  }

  it('a NaN in a block input names the block, the tensor and the node reading it', async () => {
    const b = new GraphBuilder('nan');
    b.input('x', DataType.FLOAT, ['rows', WIDTH]);
    const h = b.op('MatMul', ['x', b.initializer('W0', DataType.FLOAT, [WIDTH, WIDTH], new Float32Array(WIDTH * WIDTH).fill(-0.1))], undefined, { name: 'mm0' });
    const logged = b.op('Log', [h], undefined, { name: 'log' });
    b.output('y', DataType.FLOAT, ['rows', WIDTH]);
    b.node('MatMul', [logged, b.initializer('W1', DataType.FLOAT, [WIDTH, WIDTH], new Float32Array(WIDTH * WIDTH).fill(0.1))], ['y'], undefined, { name: 'mm1' });
    const model = new OnnxModel(modelFrom(b.graph, { opsets: { '': 17 } }), undefined, 'nan');
    await assert.rejects(
      solveLayerwise(model, w4(model), tensorSet(1, 4, () => 1), { method: gptqMethod(), mode: 'sequential' }),
      (e: Error) => e.message.includes(`block 'node mm1': NaN in its input '${logged}' (read by node mm1)`) || assert.fail(e.message),
    );
  });

  it('--method gptq|adaquant on a dynamic or fp16 scheme, without a calibration set, or --sequential with rtn: one-line errors', async () => {
    for (const method of ['gptq', 'adaquant'] as const) {
      assert.throws(() => checkQuantizeOptions({ scheme: 'w8', method }), (e: Error) => new RegExp(`--method ${method}: scheme w8 quantizes activations at run time \\(dynamic\\)`).test(e.message) && !e.message.includes('\n'));
      assert.throws(() => checkQuantizeOptions({ scheme: 'fp16', method }), new RegExp(`--method ${method}: scheme fp16`));
      await assert.rejects(quantizePass(TINY, 'w4', { out: join(dir, 'x.onnx'), method }), (e: Error) => new RegExp(`--method ${method} needs a calibration set`).test(e.message) && !e.message.includes('\n'));
    }
    assert.throws(() => checkQuantizeOptions({ scheme: 'w4', sequential: false }), /--parallel applies to the layer-wise methods/);
    assert.match(oneLineError(await cliInProcess('quantize', TINY, '--scheme', 'w4', '--method', 'adaquant', '--out', join(dir, 'y.onnx'))), /--method adaquant needs --calib SET/);
    assert.match(oneLineError(await cliInProcess('quantize', TINY, '--scheme', 'w8', '--calib', 'prose', '--method', 'gptq', '--out', join(dir, 'y.onnx'))), /dynamic/);
    assert.match(oneLineError(await cliInProcess('quantize', TINY, '--scheme', 'w4', '--sequential', '--out', join(dir, 'y.onnx'))), /--sequential applies to --method gptq\|adaquant/);
    assert.match(
      oneLineError(await cliInProcess('quantize', TINY, '--scheme', 'w4', '--calib', 'prose', '--method', 'gptq', '--sequential', '--parallel', '--out', join(dir, 'y.onnx'))),
      /--sequential and --parallel are alternatives/,
    );
    assert.ok(!existsSync(join(dir, 'x.onnx')) && !existsSync(join(dir, 'y.onnx')));
  });

  it('an interrupt between layers writes nothing', async () => {
    const out = join(dir, 'interrupted', 'model.onnx');
    const child = spawn(process.execPath, [INTERRUPT, TINY, out], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    for (let waited = 0; !stdout.includes('\n') && child.exitCode === null && waited < 120_000; waited += 25) await new Promise((r) => setTimeout(r, 25));
    assert.deepEqual(JSON.parse(stdout.split('\n')[0]), { block: 1 }, `the run solved its first block: ${stderr}`);
    assert.ok(existsSync(lockFileFor(out)), 'the output is claimed while the run works');
    child.kill('SIGINT');
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, s) => resolve(s)));
    assert.equal(signal, 'SIGINT', `killed between layers, not finished: ${stdout}`);
    assert.ok(!existsSync(join(dir, 'interrupted')), `nothing written, no lock, no folder: ${existsSync(join(dir, 'interrupted')) ? readdirSync(join(dir, 'interrupted')).join(', ') : ''}`);
  });
});

describe('quantize --method gptq|adaquant on tiny-llama', () => {
  const calibration = { data: 'prose', options: { samples: 8, sequenceLength: 64 } };

  it('w4 g32: sequential and parallel give verified models closer to float than RTN (ORT, held-out batch); same bytes for the same seed', async () => {
    const rtn = await quantizePass(TINY, 'w4', { out: join(dir, 'rtn.onnx'), calibration });
    const seq = await quantizePass(TINY, 'w4', { out: join(dir, 'seq.onnx'), calibration, method: 'gptq' });
    const par = await quantizePass(TINY, 'w4', { out: join(dir, 'par.onnx'), calibration, method: 'gptq', sequential: false });
    const again = await quantizePass(TINY, 'w4', { out: join(dir, 'seq-again.onnx'), calibration, method: 'gptq', sequential: true });
    const kl = (r: typeof rtn): number => r.verification.languageModel!.kl.mean;
    for (const [r, mode] of [[seq, 'sequential'], [par, 'parallel']] as const) {
      assert.equal(r.verification.gate, 'on');
      assert.equal(r.plan.layerwise!.mode, mode);
      assert.deepEqual(r.plan.layerwise!.blocks.map((b) => b.name), ['layer 0', 'layer 1', 'layer 2', 'layer 3', 'lm_head']);
      assert.ok(kl(r) < kl(rtn), `${mode}: KL ${kl(r)} vs RTN ${kl(rtn)}`);
      const layers = r.plan.layers!;
      assert.equal(layers.length, r.nodes.list.filter((n) => n.op === 'MatMul').length, 'a record per MatMul');
      for (const l of layers) {
        assert.equal(l.solver, 'gptq');
        assert.ok(l.errorAfter! < l.errorBefore!, `${mode} ${l.node}: ${l.errorAfter} vs RTN ${l.errorBefore}`);
        assert.ok(l.seconds! >= 0 && l.block.length > 0);
      }
    }
    assert.ok(readFileSync(join(dir, 'seq.onnx')).equals(readFileSync(join(dir, 'seq-again.onnx'))), 'same bytes for the same seed');
    assert.ok(!readFileSync(join(dir, 'seq.onnx')).equals(readFileSync(join(dir, 'par.onnx'))), 'sequential captures differ from parallel ones');
    const text = formatQuantize(seq);
    assert.match(text, /gptq \(sequential\) on 29 weights in 5 blocks \(from the decoder structure\)/);
    assert.match(text, /\n {4}layer 0: output MSE [\d.e+-]+ \(RTN\) -> [\d.e+-]+ over 7 weights, [\d.]+ s\n/);
  });

  it('CLI and recipe: --method adaquant --parallel end to end, with the per-layer record and the backend in the report', () => {
    const out = join(dir, 'cli-ada.onnx');
    // One weight keeps AdaQuant's cost small; the command rounds the rest to nearest as usual.
    const r = cli('quantize', TINY, '--scheme', 'w4', '--calib', 'prose', '--samples', '4', '--seq-len', '32', '--method', 'adaquant', '--parallel', '--include', 'layers\\.0/self_attn/k_proj', '--out', out, '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(out));
    const report = JSON.parse(r.stdout) as QuantizationRunReport;
    assert.equal(report.plan.solver, 'adaquant');
    assert.equal(report.plan.layerwise!.mode, 'parallel');
    const [layer] = report.plan.layers!;
    assert.equal(report.plan.layers!.length, 1);
    assert.equal(layer.solver, 'adaquant');
    assert.equal(layer.block, 'layer 0');
    assert.ok(layer.backend && report.plan.layerwise!.backend === layer.backend, 'the backend AdaQuant ran on is reported');
    assert.ok(layer.errorAfter! <= layer.errorBefore!, `${layer.errorAfter} vs ${layer.errorBefore}`);
    const step = quantizeStep.parse({ scheme: 'w4', calib: 'prose', method: 'adaquant', sequential: false }, 'quantize');
    assert.equal(step.method, 'adaquant');
    assert.equal(step.sequential, false);
    assert.throws(() => quantizeStep.parse({ scheme: 'w4', sequential: true }, 'quantize'), /sequential applies to the layer-wise methods/);
  });
});
