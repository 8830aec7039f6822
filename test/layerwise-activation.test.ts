// Static schemes in the layer-wise pipeline: the captures simulate the activation quantization the written QDQ
// model does (capture-model.ts), so GPTQ/AdaQuant fit XᵀX of the inputs as deployed. Oracles: the grid the
// writer's parameters define, ONNX Runtime on the written model (its DequantizeLinear outputs), and a plain
// re-implementation of QuantizeLinear/DequantizeLinear on the float model's values.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { Tensor } from 'onnxruntime-node';
import type { ActivationSample } from '../src/calibration/activation-samples.js';
import type { CalibrationSet } from '../src/calibration/data/index.js';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { OnnxModel } from '../src/onnx/model.js';
import { DataType } from '../src/onnx/types.js';
import { captureModel } from '../src/quantization/layerwise/capture-model.js';
import { gptqMethod, type LayerwiseMethod } from '../src/quantization/layerwise/methods.js';
import { solveLayerwise, type LayerwiseMode, type LayerwiseOptions } from '../src/quantization/layerwise/run.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { planFromScheme, plannedActivations, type PlannedNode, type QuantPlan } from '../src/quantization/plan.js';
import { resolveScheme } from '../src/quantization/schemes.js';
import { rewriteModel } from '../src/quantization/writers/index.js';
import { plannedActivationQuant, type ActivationQuant } from '../src/quantization/writers/qdq.js';
import { captureTensors } from '../src/runtime/capture.js';
import { mulberry32 } from './support/prng.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TINY = join(ROOT, 'models/tiny-llama/onnx/model.onnx');
const dir = mkdtempSync(join(tmpdir(), 'layerwise-activation-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const WIDTH = 16;
const ROWS = 24;
const BATCHES = 2;

/** x <- x + W2_i relu(W1_i x), `layers` times: one block per residual Add, two quantized inputs per block. */
function residualMlp(layers: number): OnnxModel {
  const b = new GraphBuilder('mlp');
  const random = mulberry32(3);
  let x = b.input('x', DataType.FLOAT, ['rows', WIDTH]);
  for (let i = 0; i < layers; i++) {
    const w = (which: number): string => b.initializer(`W${which}_${i}`, DataType.FLOAT, [WIDTH, WIDTH], Float32Array.from({ length: WIDTH * WIDTH }, () => (random() - 0.5) / 2));
    const h = b.op('Relu', [b.op('MatMul', [x, w(1)], undefined, { name: `mlp${i}/up` })]);
    x = b.op('Add', [x, b.op('MatMul', [h, w(2)], undefined, { name: `mlp${i}/down` })], undefined, { name: `residual${i}` });
  }
  b.output('y', DataType.FLOAT, ['rows', WIDTH]);
  b.node('Identity', [x], ['y']);
  return new OnnxModel(modelFrom(b.graph, { opsets: { '': 17 } }), undefined, `mlp-${layers}`);
}

const batches = (() => {
  const random = mulberry32(5);
  return Array.from({ length: BATCHES }, () => Float32Array.from({ length: ROWS * WIDTH }, () => random() * 4 - 2));
})();

const set: CalibrationSet = {
  source: 'memory',
  kind: 'tensors',
  sampleCount: BATCHES * ROWS,
  tokenCount: 0,
  async *batches() {
    for (const d of batches) yield { x: new Tensor('float32', d, [ROWS, WIDTH]) };
  },
} as CalibrationSet;

/** Ranges that clip: the tails of every input fall outside, so clamping is exercised as well as rounding. */
function ranges(plan: QuantPlan): Map<string, readonly [number, number]> {
  return new Map(plannedActivations(plan).map((a, i) => [a, [-1.5 + i * 0.1, 1.25 + i * 0.05] as const]));
}

/** GPTQ that also keeps, per block input, every captured row (in calibration order) it was given. */
function recordingGptq(activations: readonly string[], captured: Map<string, ActivationSample>): LayerwiseMethod {
  const gptq = gptqMethod();
  return {
    name: 'gptq',
    sampleRows: BATCHES * ROWS,
    async solver(data, nodes) {
      for (const a of activations) {
        const s = data.samples(a);
        if (s) captured.set(a, s);
      }
      return gptq.solver(data, nodes);
    },
  };
}
async function solve(model: OnnxModel, plan: QuantPlan, options: Partial<LayerwiseOptions> & { mode: LayerwiseMode }) {
  const captured = new Map<string, ActivationSample>();
  const activations = [...new Set(plan.nodes.map((p) => p.target.activation))];
  const result = await solveLayerwise(model, plan, set, { method: recordingGptq(activations, captured), ...options });
  const rows = (a: string): Float32Array => {
    const s = captured.get(a);
    assert.ok(s && s.units.length === BATCHES * ROWS, `every row of '${a}' captured`);
    return Float32Array.from(s.units.flatMap((u) => [...u.values]));
  };
  return { result, rows };
}

/** Straightforward QuantizeLinear (round half to even, saturate) then DequantizeLinear, per the ONNX spec. */
function fakeQuant(x: Float32Array, q: ActivationQuant): Float32Array {
  const [lo, hi] = q.type === DataType.UINT8 ? [0, 255] : [-128, 127];
  const roundEven = (v: number): number => {
    const r = Math.round(v);
    return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  };
  return x.map((v) => (Math.min(hi, Math.max(lo, roundEven(v / q.scale) + q.zeroPoint)) - q.zeroPoint) * q.scale);
}

/** Values of a batch-major feed of every calibration batch through ONNX Runtime, concatenated. */
async function runAll(model: OnnxModel, name: string): Promise<Float32Array> {
  const parts: number[] = [];
  for await (const feeds of set.batches()) parts.push(...((await captureTensors(model, [name], feeds))[name].data as Float32Array));
  return Float32Array.from(parts);
}

/** The value a node of the written model reads as its input 0, checked to be a DequantizeLinear's output. */
function dequantizedInput(written: OnnxModel, node: string): string {
  const reader = written.graph.node.find((n) => n.name === node)!;
  const dq = written.graph.node.find((n) => n.output[0] === reader.input[0]);
  assert.equal(dq?.opType, 'DequantizeLinear', `${node} reads its input through a DequantizeLinear`);
  return reader.input[0];
}

/** The written model with these nodes reading their original float weights (their DequantizeLinear left unread). */
function withFloatWeights(written: OnnxModel, nodes: readonly PlannedNode[]): OnnxModel {
  const byName = new Map(nodes.map((p) => [p.target.node.name, p.target]));
  const graph = {
    ...written.graph,
    initializer: [...written.graph.initializer, ...nodes.map((p) => p.target.weight)],
    node: written.graph.node.map((n) => {
      const t = byName.get(n.name);
      if (!t) return n;
      const input = [...n.input];
      input[t.weightInput] = t.weight.name!;
      return { ...n, input };
    }),
  };
  return new OnnxModel({ ...written.proto, graph }, undefined, 'written, block float');
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const w8a8 = (model: OnnxModel): QuantPlan => planFromScheme(model, resolveScheme('w8a8', { bits: 4 }));

describe('layer-wise captures simulate static activation quantization', () => {
  it('sequential: every captured block input is on its activation grid and equals the written QDQ model in ONNX Runtime', async () => {
    const model = residualMlp(3);
    const plan = w8a8(model);
    const activationRanges = ranges(plan);
    const activationQuant = plannedActivationQuant(plan, activationRanges);
    assert.equal(activationQuant.size, 6, 'two quantized inputs per block');
    const { result, rows } = await solve(model, plan, { mode: 'sequential', activationQuant });
    assert.deepEqual(result.summary.activations, { simulated: true, scope: 'graph', tensors: 6 });

    const written = rewriteModel(model, plan, { solver: result.solver, activationRanges }).model;
    for (let block = 0; block < 3; block++) {
      // Sequential capture computes a block's inputs with the earlier blocks solved and its own weights float (a
      // later input of the block, such as down's, depends on them): the oracle is the written model with this
      // block's weights restored to float. A block's first input (up's) does not depend on them.
      const nodes = plan.nodes.filter((p) => p.target.label.startsWith(`mlp${block}/`));
      const oracleModel = withFloatWeights(written, nodes);
      for (const p of nodes) {
        const a = p.target.activation;
        const q = activationQuant.get(a)!;
        const captured = rows(a);
        // On the grid: (code - zero point) x scale for an integer code in uint8's range.
        for (const v of captured) {
          const code = v / q.scale + q.zeroPoint;
          assert.ok(Math.abs(code - Math.round(code)) < 1e-3 && code > -1e-3 && code < 255 + 1e-3, `${a}: ${v} is not on the grid of scale ${q.scale}, zero point ${q.zeroPoint}`);
        }
        // The written model's node reads its input through DequantizeLinear: that output is the oracle.
        const dqOutput = dequantizedInput(written, p.target.node.name!);
        assert.ok(maxAbsDiff(captured, await runAll(oracleModel, dqOutput)) <= 1e-6, `${a}: capture vs written model: ${maxAbsDiff(captured, await runAll(oracleModel, dqOutput))}`);
        if (p.target.label.endsWith('/up')) assert.ok(maxAbsDiff(captured, await runAll(written, dqOutput)) <= 1e-6, `${a}: capture vs written model as written`);
      }
    }

    // The check can fail: without the simulation the last block's inputs are off the written model's values.
    const last = plan.nodes[plan.nodes.length - 1];
    const plain = await solve(model, plan, { mode: 'sequential' });
    assert.equal(plain.result.summary.activations, undefined);
    const oracle = await runAll(withFloatWeights(written, [last]), dequantizedInput(written, last.target.node.name!));
    assert.ok(maxAbsDiff(plain.rows(last.target.activation), oracle) > 1e-3);
  });

  it('parallel: the captured inputs are the float model\'s values, fake-quantized, and nothing upstream is', async () => {
    const model = residualMlp(2);
    const plan = w8a8(model);
    const activationQuant = plannedActivationQuant(plan, ranges(plan));
    const { result, rows } = await solve(model, plan, { mode: 'parallel', activationQuant });
    assert.deepEqual(result.summary.activations, { simulated: true, scope: 'inputs', tensors: 4 });
    for (const p of plan.nodes) {
      const a = p.target.activation;
      const float = await runAll(model, a);
      assert.ok(maxAbsDiff(rows(a), fakeQuant(float, activationQuant.get(a)!)) <= 1e-6, `${a}`);
    }
  });

  it('weight-only schemes and captures without activation quantization insert no Q/DQ', async () => {
    const model = residualMlp(2);
    const w4 = planFromScheme(model, resolveScheme('w4-qdq', { blockSize: 16 }));
    assert.equal(plannedActivationQuant(w4, ranges(w8a8(model))).size, 0, 'no activation is quantized by a weight-only plan');
    const { result } = await solve(model, w4, { mode: 'sequential' });
    assert.equal(result.summary.activations, undefined);
    const names = [...new Set(w4.nodes.map((p) => p.target.activation))];
    const capture = captureModel(model, names, new Map());
    assert.equal(capture.quantized, 0);
    assert.ok(!capture.model.graph.node.some((n) => n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear'));
    assert.deepEqual([...capture.captured], names.map((n) => [n, n]));
  });

  it('quantize --scheme w8a8 --method gptq on tiny-llama: the report says activation quantization was simulated', async () => {
    const calibration = { data: 'prose', options: { samples: 4, sequenceLength: 32 } };
    const r = await quantizePass(TINY, 'w8a8', { out: join(dir, 'w8a8.onnx'), calibration, method: 'gptq', clip: { method: 'minmax' } });
    const sim = r.plan.layerwise!.activations;
    assert.ok(sim?.simulated && sim.scope === 'graph', JSON.stringify(r.plan.layerwise));
    assert.equal(sim.tensors, new Set(r.activations!.ranges.map((e) => e.tensor)).size);
  });
});
