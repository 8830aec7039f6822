// Finite-difference checks of every differentiable op of the TensorFlow.js executor, on the wasm backend (the
// one that lacks kernels gradients need). Each case is a one-node model; the objective is a fixed random
// weighting of its float outputs, and the analytic gradient (with respect to graph inputs and initializers)
// is compared with central differences of forward runs. tfjs computes in float32, so steps are 1e-2 and the
// tolerance is loose enough for float32 rounding and the O(h^2) truncation, yet far below the O(1) error of a
// wrong gradient.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { floatAttr, type AttrInput } from '../src/onnx/attributes.js';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { OnnxModel } from '../src/onnx/model.js';
import { DataType } from '../src/onnx/types.js';
import { selectBackend } from '../src/runtime/tf/backend.js';
import { TfModel, type Feeds, type Outputs } from '../src/runtime/tf/interpreter.js';
import { weightedSum } from '../src/runtime/tf/objectives.js';
import { defaultRegistry } from '../src/runtime/tf/ops/index.js';
import type { OpDef } from '../src/runtime/tf/registry.js';
import { mulberry32 } from './support/prng.js';

const STEP = 1e-2;
const RTOL = 2e-2;
const ATOL = 2e-3;
/** Elements checked per differentiated tensor (all of them when fewer). */
const SAMPLES = 8;

interface Values {
  shape: number[];
  /** Values are drawn uniformly from [lo, hi] (default [-1, 1]). */
  range?: [number, number];
  /** Distinct values at least 4 steps apart (so max/min/sort-like ops keep their choice under the step). */
  distinct?: boolean;
  /** Points where the op has a kink; values closer than 3 steps are moved away. */
  kinks?: number[];
}

type InputSpec =
  | ({ kind: 'x' } & Values) // a graph input, differentiated
  | ({ kind: 'w' } & Values) // an initializer (weight), differentiated
  | { kind: 'const'; dtype: DataType; shape: number[]; values: number[] } // a fixed initializer
  | { kind: 'none' }; // an omitted optional input

interface Case {
  op: string;
  inputs: InputSpec[];
  attrs?: AttrInput;
  domain?: string;
  /** Default-domain opset (default 17). */
  opset?: number;
  /** Node outputs (default 1); all are checked through the objective. */
  outputs?: number;
  label?: string;
}

const x = (shape: number[], o: Omit<Values, 'shape'> = {}): InputSpec => ({ kind: 'x', shape, ...o });
const w = (shape: number[], o: Omit<Values, 'shape'> = {}): InputSpec => ({ kind: 'w', shape, ...o });
const i64 = (values: number[], shape = [values.length]): InputSpec => ({ kind: 'const', dtype: DataType.INT64, shape, values });
const f32 = (values: number[], shape = [values.length]): InputSpec => ({ kind: 'const', dtype: DataType.FLOAT, shape, values });
const none: InputSpec = { kind: 'none' };
const positive: Omit<Values, 'shape'> = { range: [0.5, 2] };
const unary = (op: string, o: Omit<Values, 'shape'> = {}, extra: Partial<Case> = {}): Case => ({ op, inputs: [x([2, 3], o)], ...extra });
const binary = (op: string, b: Omit<Values, 'shape'> = {}, a: Omit<Values, 'shape'> = {}): Case => ({ op, inputs: [x([2, 3], a), x([3], b)] });

const CASES: Case[] = [
  // element-wise
  unary('Abs', { kinks: [0] }),
  unary('Neg'),
  unary('Exp'),
  unary('Log', positive),
  unary('Sqrt', positive),
  unary('Reciprocal', positive),
  unary('Tanh'),
  unary('Sigmoid'),
  unary('Sin'),
  unary('Cos'),
  unary('Tan', { range: [-1, 1] }),
  unary('Asin', { range: [-0.8, 0.8] }),
  unary('Acos', { range: [-0.8, 0.8] }),
  unary('Atan'),
  unary('Sinh'),
  unary('Cosh'),
  unary('Asinh'),
  unary('Acosh', { range: [1.3, 3] }),
  unary('Atanh', { range: [-0.8, 0.8] }),
  unary('Erf'),
  unary('Relu', { kinks: [0] }),
  unary('Softplus'),
  unary('Softsign', { kinks: [0] }),
  unary('Mish', {}, { opset: 18 }),
  binary('Add'),
  binary('Sub'),
  binary('Mul'),
  binary('Div', positive),
  binary('Pow', { range: [0.5, 2] }, positive),
  binary('PRelu', {}, { kinks: [0] }),
  unary('LeakyRelu', { kinks: [0] }, { attrs: { alpha: floatAttr('alpha', 0.1) } }),
  unary('Elu', { kinks: [0] }, { attrs: { alpha: 0.7 } }),
  unary('Celu', { kinks: [0] }, { attrs: { alpha: 0.7 } }),
  unary('Selu', { kinks: [0] }),
  unary('HardSigmoid', { kinks: [-2.5, 2.5], range: [-3, 3] }),
  unary('HardSwish', { kinks: [-3, 3], range: [-4, 4] }),
  unary('ThresholdedRelu', { kinks: [0.5] }, { attrs: { alpha: 0.5 } }),
  unary('Gelu', {}, { opset: 20 }),
  unary('Gelu', {}, { opset: 20, attrs: { approximate: 'tanh' }, label: 'Gelu tanh' }),
  { op: 'Clip', inputs: [x([2, 3], { kinks: [-0.5, 0.5] })], attrs: { min: -0.5, max: 0.5 }, opset: 6 },
  { op: 'Clip', inputs: [x([2, 3], { kinks: [-0.5, 0.5] }), f32([-0.5], []), f32([0.5], [])] },
  { op: 'Max', inputs: [x([2, 3], { distinct: true }), x([3], { distinct: true, range: [-0.9, 0.9] })] },
  { op: 'Min', inputs: [x([2, 3], { distinct: true }), x([3], { distinct: true, range: [-0.9, 0.9] })] },
  { op: 'Sum', inputs: [x([2, 3]), x([3]), x([1])] },
  { op: 'Mean', inputs: [x([2, 3]), x([3])] },
  { op: 'Where', inputs: [{ kind: 'const', dtype: DataType.BOOL, shape: [3], values: [1, 0, 1] }, x([2, 3]), x([3])], opset: 16 },
  // math
  { op: 'MatMul', inputs: [x([2, 3, 4]), w([4, 5])] },
  { op: 'MatMul', inputs: [x([4]), x([2, 4, 3])], label: 'MatMul 1-D by batched' },
  { op: 'Gemm', inputs: [x([4, 3]), w([5, 4]), w([5])], attrs: { transA: 1, transB: 1, alpha: 0.5, beta: floatAttr('beta', 2) } },
  { op: 'Cast', inputs: [x([2, 3])], attrs: { to: DataType.FLOAT } },
  { op: 'CastLike', inputs: [x([2, 3]), f32([0])] },
  { op: 'Softmax', inputs: [x([2, 3, 4])], attrs: { axis: 1 } },
  { op: 'Softmax', inputs: [x([2, 3, 4])], attrs: { axis: 1 }, opset: 11 },
  { op: 'LogSoftmax', inputs: [x([2, 3, 4])], attrs: { axis: 0 } },
  { op: 'LogSoftmax', inputs: [x([2, 3, 4])], opset: 11 },
  // reductions: axes as attribute (before 13/18) and as input
  ...['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceSumSquare', 'ReduceLogSum', 'ReduceLogSumExp'].flatMap(
    (op): Case[] => {
      const values: Omit<Values, 'shape'> = op === 'ReduceLogSum' || op === 'ReduceProd' ? positive : { distinct: true, kinks: op === 'ReduceL1' ? [0] : [] };
      return [
        { op, inputs: [x([2, 3, 4], values)], attrs: { axes: [0, 2] }, opset: 11 },
        { op, inputs: [x([2, 3, 4], values), i64([-1])], attrs: { keepdims: 0 }, opset: 18 },
      ];
    },
  ),
  // normalization
  { op: 'LayerNormalization', inputs: [x([2, 3, 4]), w([3, 4]), w([3, 4])], attrs: { axis: 1 }, outputs: 3 },
  { op: 'SimplifiedLayerNormalization', inputs: [x([2, 3, 4]), w([4])], outputs: 2 },
  { op: 'BatchNormalization', inputs: [x([2, 3, 2, 2]), w([3]), w([3]), w([3]), w([3], positive)] },
  { op: 'BatchNormalization', inputs: [x([2, 3, 2, 2]), w([3]), w([3]), f32([0, 0, 0]), f32([1, 1, 1])], attrs: { training_mode: 1 }, outputs: 3, label: 'BatchNormalization training' },
  { op: 'InstanceNormalization', inputs: [x([2, 3, 2, 2]), w([3]), w([3])] },
  { op: 'MeanVarianceNormalization', inputs: [x([2, 3, 2, 2])] },
  // data movement
  { op: 'Reshape', inputs: [x([2, 3, 4]), i64([0, -1, 2])] },
  { op: 'Transpose', inputs: [x([2, 3, 4])], attrs: { perm: [2, 0, 1] } },
  { op: 'Concat', inputs: [x([2, 3]), x([2, 1]), w([2, 2])], attrs: { axis: 1 } },
  { op: 'Split', inputs: [x([2, 5]), i64([2, 3])], attrs: { axis: 1 }, outputs: 2 },
  { op: 'Slice', inputs: [x([4, 5]), i64([3, 1]), i64([0, 100]), i64([0, 1]), i64([-1, 2])], label: 'Slice negative and strided steps' },
  { op: 'Squeeze', inputs: [x([2, 1, 3]), i64([1])] },
  { op: 'Unsqueeze', inputs: [x([2, 3]), i64([0, -1])] },
  { op: 'Flatten', inputs: [x([2, 3, 4])], attrs: { axis: 2 } },
  { op: 'Expand', inputs: [x([3, 1]), i64([2, 3, 4])] },
  { op: 'Tile', inputs: [x([2, 3]), i64([2, 2])] },
  { op: 'Gather', inputs: [w([5, 3]), i64([[0, 4, 0], [2, 2, -1]].flat(), [2, 3])], label: 'Gather (embedding lookup, repeated ids)' },
  { op: 'GatherElements', inputs: [x([3, 4]), i64([0, 2, 1, 1, 2, 0], [3, 2])], attrs: { axis: 1 } },
  { op: 'GatherND', inputs: [x([3, 4, 2]), i64([0, 1, 2, 3, 0, 1], [3, 2])] },
  { op: 'Pad', inputs: [x([3, 4]), i64([1, 2, 2, 1]), f32([0.5], [])] },
  { op: 'Pad', inputs: [x([3, 4]), i64([2, 1, 1, 3])], attrs: { mode: 'reflect' }, label: 'Pad reflect' },
  { op: 'Pad', inputs: [x([3, 4]), i64([1, -1, 2, 2])], attrs: { mode: 'edge' }, label: 'Pad edge with a crop' },
  { op: 'DepthToSpace', inputs: [x([1, 8, 2, 3])], attrs: { blocksize: 2, mode: 'CRD' } },
  { op: 'SpaceToDepth', inputs: [x([1, 2, 4, 6])], attrs: { blocksize: 2 } },
  { op: 'Identity', inputs: [x([2, 3])] },
  { op: 'Dropout', inputs: [x([2, 3])] },
  { op: 'Trilu', inputs: [x([3, 4]), i64([1], [])], attrs: { upper: 0 } },
  { op: 'CumSum', inputs: [x([3, 4]), i64([1], [])], attrs: { exclusive: 1, reverse: 1 } },
  // convolutions and pools
  { op: 'Conv', inputs: [x([1, 2, 5, 5]), w([3, 2, 3, 3]), w([3])], attrs: { pads: [1, 0, 1, 2], strides: [2, 1] } },
  { op: 'Conv', inputs: [x([1, 4, 5, 6]), w([4, 1, 3, 3])], attrs: { group: 4, dilations: [2, 1], auto_pad: 'SAME_UPPER' }, label: 'Conv depthwise dilated' },
  { op: 'Conv', inputs: [x([1, 4, 7, 7]), w([6, 2, 2, 2])], attrs: { group: 2, dilations: [2, 2], strides: [2, 2] }, label: 'Conv grouped, dilated and strided' },
  { op: 'Conv', inputs: [x([2, 3, 7]), w([2, 3, 3]), w([2])], attrs: { pads: [2, 1] }, label: 'Conv 1-D' },
  { op: 'Conv', inputs: [x([1, 2, 3, 4, 4]), w([2, 2, 2, 2, 2])], attrs: { strides: [1, 2, 1] }, label: 'Conv 3-D' },
  { op: 'ConvTranspose', inputs: [x([1, 2, 3, 3]), w([2, 3, 3, 3]), w([3])], attrs: { strides: [2, 2], pads: [1, 0, 0, 1], output_padding: [1, 1] } },
  { op: 'ConvTranspose', inputs: [x([1, 4, 3, 3]), w([4, 1, 2, 2])], attrs: { group: 2, dilations: [2, 1] }, label: 'ConvTranspose grouped, dilated' },
  { op: 'ConvTranspose', inputs: [x([1, 2, 4]), w([2, 2, 3])], attrs: { strides: [2] }, label: 'ConvTranspose 1-D' },
  { op: 'ConvTranspose', inputs: [x([1, 2, 2, 2, 2]), w([2, 2, 2, 2, 2])], attrs: { strides: [2, 1, 1] }, label: 'ConvTranspose 3-D' },
  { op: 'MaxPool', inputs: [x([1, 2, 5, 5], { distinct: true })], attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 } },
  { op: 'MaxPool', inputs: [x([1, 2, 6, 6], { distinct: true })], attrs: { kernel_shape: [2, 2], dilations: [2, 2] }, label: 'MaxPool dilated' },
  { op: 'MaxPool', inputs: [x([1, 1, 3, 4, 4], { distinct: true })], attrs: { kernel_shape: [2, 2, 2], strides: [1, 2, 2] }, label: 'MaxPool 3-D' },
  { op: 'AveragePool', inputs: [x([1, 2, 5, 5])], attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: 0 } },
  { op: 'AveragePool', inputs: [x([1, 2, 6])], attrs: { kernel_shape: [3], strides: [2], pads: [1, 1], count_include_pad: 1, ceil_mode: 1 }, label: 'AveragePool 1-D' },
  { op: 'AveragePool', inputs: [x([1, 1, 3, 4, 4])], attrs: { kernel_shape: [2, 2, 2] }, label: 'AveragePool 3-D' },
  { op: 'GlobalAveragePool', inputs: [x([2, 3, 2, 2])] },
  { op: 'GlobalMaxPool', inputs: [x([2, 3, 2, 2], { distinct: true })] },
  { op: 'Resize', inputs: [x([1, 2, 3, 4]), none, f32([1, 1, 2, 1.5])], attrs: { mode: 'linear' }, opset: 13 },
  { op: 'Resize', inputs: [x([1, 1, 3, 4]), none, f32([1, 1, 0.7, 1.6])], attrs: { mode: 'cubic', coordinate_transformation_mode: 'align_corners' }, opset: 13, label: 'Resize cubic' },
  { op: 'Resize', inputs: [x([1, 1, 3, 4]), none, none, i64([1, 1, 6, 2])], attrs: { mode: 'nearest' }, opset: 13, label: 'Resize nearest' },
  { op: 'Upsample', inputs: [x([1, 1, 2, 3]), f32([1, 1, 2, 2])], attrs: { mode: 'linear' }, opset: 9 },
  // com.microsoft
  { op: 'SkipLayerNormalization', domain: 'com.microsoft', inputs: [x([2, 3, 4]), x([2, 3, 4]), w([4]), w([4]), w([4])], outputs: 4 },
  { op: 'SkipSimplifiedLayerNormalization', domain: 'com.microsoft', inputs: [x([2, 3, 4]), x([2, 3, 4]), w([4])], outputs: 4 },
  { op: 'Gelu', domain: 'com.microsoft', inputs: [x([2, 3])] },
  { op: 'BiasGelu', domain: 'com.microsoft', inputs: [x([2, 3]), w([3])] },
  { op: 'FastGelu', domain: 'com.microsoft', inputs: [x([2, 3]), w([3])] },
  { op: 'QuickGelu', domain: 'com.microsoft', inputs: [x([2, 3])] },
];

function label(c: Case): string {
  return c.label ?? `${c.domain ? `${c.domain}:` : ''}${c.op}${c.opset ? ` (opset ${c.opset})` : ''}`;
}

function draw(v: Values, random: () => number): Float32Array {
  const n = v.shape.reduce((a, b) => a * b, 1);
  const [lo, hi] = v.range ?? [-1, 1];
  if (v.distinct) {
    // Evenly spaced values, shuffled: ties and near-ties are impossible.
    const values = Array.from({ length: n }, (_, i) => lo + ((hi - lo) * (i + 0.5)) / n);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [values[i], values[j]] = [values[j], values[i]];
    }
    return Float32Array.from(values);
  }
  return Float32Array.from({ length: n }, () => {
    let value = lo + (hi - lo) * random();
    for (const k of v.kinks ?? []) if (Math.abs(value - k) < 3 * STEP) value = k + (value < k ? -3 : 3) * STEP;
    return value;
  });
}

interface Built {
  model: TfModel;
  feeds: Feeds;
  inputs: string[];
  weights: string[];
  outputs: string[];
}

function build(c: Case, random: () => number): Built {
  const b = new GraphBuilder('case');
  const feeds: Feeds = {};
  const inputs: string[] = [];
  const weights: string[] = [];
  const names = c.inputs.map((spec, i) => {
    if (spec.kind === 'none') return '';
    if (spec.kind === 'const') return b.initializer(`c${i}`, spec.dtype, spec.shape, spec.dtype === DataType.INT64 ? spec.values.map(BigInt) : spec.values);
    const data = draw(spec, random);
    if (spec.kind === 'w') {
      weights.push(b.initializer(`w${i}`, DataType.FLOAT, spec.shape, data));
      return `w${i}`;
    }
    inputs.push(b.input(`x${i}`, DataType.FLOAT, spec.shape));
    feeds[`x${i}`] = { dims: spec.shape, data };
    return `x${i}`;
  });
  const outputs = b.node(c.op, names, c.outputs ?? 1, c.attrs, c.domain ? { domain: c.domain } : {});
  for (const o of outputs) b.output(o, DataType.FLOAT);
  const proto = modelFrom(b.graph, { opsets: { '': c.opset ?? 17, 'com.microsoft': 1 } });
  return { model: TfModel.compile(new OnnxModel(proto, undefined, label(c))), feeds, inputs, weights, outputs };
}

/** sum_k <output_k, R_k>, in float64 on the host. */
function hostWeightedSum(outputs: Outputs, r: Record<string, Float32Array>): number {
  let s = 0;
  for (const [name, rk] of Object.entries(r)) {
    const data = outputs[name].data as ArrayLike<number>;
    for (let i = 0; i < rk.length; i++) s += Number(data[i]) * rk[i];
  }
  return s;
}

function checkCase(c: Case, seed: number): void {
  const random = mulberry32(seed);
  const built = build(c, random);
  const { model, feeds } = built;
  try {
    const first = model.run(feeds);
    const r = Object.fromEntries(Object.entries(first).map(([n, t]) => [n, Float32Array.from({ length: t.data.length }, () => random() * 2 - 1)]));
    const grads = model.gradients({
      feeds,
      weights: built.weights,
      inputs: built.inputs,
      objective: weightedSum(r),
    });
    assert.ok(Math.abs(grads.objective - hostWeightedSum(first, r)) < 1e-3 * (1 + Math.abs(grads.objective)), `${label(c)}: objective value`);
    const targets = [
      ...built.inputs.map((name) => ({ name, analytic: grads.inputs[name], base: feeds[name].data as Float32Array, set: (v: Float32Array) => (feeds[name] = { ...feeds[name], data: v }) })),
      ...built.weights.map((name) => {
        const current = model.readWeight(name);
        return { name, analytic: grads.weights[name], base: current.data as Float32Array, set: (v: Float32Array) => model.assignWeight(name, { dims: current.dims, data: v }) };
      }),
    ];
    for (const t of targets) {
      assert.deepEqual(t.analytic.dims, [...(feeds[t.name]?.dims ?? model.readWeight(t.name).dims)], `${label(c)}: gradient shape of ${t.name}`);
      const n = t.base.length;
      const picks = n <= SAMPLES ? [...Array(n).keys()] : Array.from({ length: SAMPLES }, () => Math.floor(random() * n));
      for (const i of picks) {
        const at = (delta: number) => {
          const v = t.base.slice();
          v[i] += delta;
          t.set(v);
          return hostWeightedSum(model.run(feeds), r);
        };
        const numeric = (at(STEP) - at(-STEP)) / (2 * STEP);
        t.set(t.base);
        const analytic = Number(t.analytic.data[i]);
        assert.ok(
          Math.abs(analytic - numeric) <= ATOL + RTOL * Math.max(Math.abs(analytic), Math.abs(numeric)),
          `${label(c)}: d/d${t.name}[${i}] analytic ${analytic} vs finite difference ${numeric}`,
        );
      }
    }
  } finally {
    model.dispose();
  }
}

function entryKey(d: OpDef): string {
  return `${d.domain ? `${d.domain}:` : ''}${d.opType}@${d.since}`;
}

describe('tf executor gradients (finite differences, wasm backend)', () => {
  before(async () => {
    assert.equal(await selectBackend('wasm'), 'wasm');
  });

  it('has a case for every differentiable registry entry', () => {
    const registry = defaultRegistry();
    const covered = new Set(
      CASES.map((c) => registry.resolve(c.domain, c.op, c.domain ? 1 : (c.opset ?? 17))).filter((d): d is OpDef => d !== undefined).map(entryKey),
    );
    const missing = registry.entries().filter((d) => d.differentiable && !covered.has(entryKey(d))).map(entryKey);
    assert.deepEqual(missing, [], 'differentiable ops without a gradient case');
  });

  CASES.forEach((c, i) => {
    it(label(c), () => checkCase(c, 1000 + i));
  });
});

// The executor replaces the cpu backend's UnsortedSegmentSum too; a few cases check that path.
describe('tf executor gradients on the cpu backend', () => {
  const ON_CPU = ['Gather (embedding lookup, repeated ids)', 'Conv depthwise dilated', 'MaxPool dilated', 'MatMul'];
  before(async () => {
    assert.equal(await selectBackend('cpu'), 'cpu');
  });
  after(async () => {
    await selectBackend('wasm');
  });
  for (const name of ON_CPU) {
    const i = CASES.findIndex((c) => label(c) === name);
    it(name, () => checkCase(CASES[i], 1000 + i));
  }
});
