// Small models that store their weights the way exporters do (tf2onnx, Paddle2ONNX, older PyTorch, hand-edited
// graphs): behind Constant nodes in each attribute form, behind Identity / Cast / Transpose / Reshape / Unsqueeze /
// Concat / Slice chains, shared by two nodes, or listed as graph inputs with a same-name initializer (IR 3). Each
// comes with its feeds and the number of nodes a weight quantizer should find once the weights are folded.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor } from 'onnxruntime-node';
import { emptyAttribute, floatAttr, floatsAttr, intAttr, intsAttr, stringsAttr, tensorAttr, type AttrInput } from '../../src/onnx/attributes.js';
import { GraphBuilder, modelFrom } from '../../src/onnx/builder.js';
import { encodeTensor } from '../../src/onnx/codec.js';
import { OnnxModel } from '../../src/onnx/model.js';
import { makeTensor } from '../../src/onnx/tensor.js';
import { AttributeType, DataType } from '../../src/onnx/types.js';
import type { Feeds } from '../../src/runtime/session.js';
import { mulberry32 } from './prng.js';

export interface ExporterModel {
  name: string;
  model: OnnxModel;
  /** One sample of inputs. */
  feeds: () => Feeds;
  /** Nodes with a weight once folded: MatMul/Gemm (w8 rewrites MatMul only) and Conv. */
  weights: { matmul: number; gemm: number; conv: number };
}

function uniform(seed: number, n: number, scale = 0.5): Float32Array {
  const random = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (random() * 2 - 1) * scale);
}

function floatFeed(name: string, dims: number[], seed: number): Feeds {
  return { [name]: new Tensor('float32', uniform(seed, dims.reduce((a, b) => a * b, 1), 2), dims) };
}

const K = 24;
const N = 16;
const ROWS = 4;

/** A Constant node whose output is `name`, as Paddle2ONNX writes weights (the node itself unnamed). */
function constant(b: GraphBuilder, name: string, attrs: AttrInput): string {
  return b.node('Constant', [], [name], attrs)[0];
}

function stored(b: GraphBuilder, name: string, dtype: DataType, dims: number[], values: ArrayLike<number | bigint>): string {
  const t = makeTensor('', dtype, dims, values);
  delete t.name;
  return constant(b, name, [tensorAttr('value', t)]);
}

function model(b: GraphBuilder, name: string, opset: number, irVersion?: number): OnnxModel {
  return new OnnxModel(modelFrom(b.graph, { opsets: { '': opset }, ...(irVersion !== undefined ? { irVersion } : {}) }), undefined, name);
}

/**
 * Constant weights in every attribute form: `value` (a MatMul weight), `sparse_value` (a second MatMul weight),
 * `value_floats` (a bias), `value_float` (a scale), `value_ints` (a Reshape shape), `value_int` (Gather indices)
 * and `value_strings` (a graph output of its own, left out with `strings: false`: verification compares numbers).
 */
export function constantForms(opset = 13, { strings = true } = {}): ExporterModel {
  const b = new GraphBuilder('constant_forms');
  b.input('x', DataType.FLOAT, [ROWS, K]);
  const w1 = stored(b, 'fc1.weight', DataType.FLOAT, [K, N], uniform(1, K * N));
  const bias = constant(b, 'fc1.bias', [floatsAttr('value_floats', Array.from(uniform(2, N)))]);
  const scale = constant(b, 'scale', [floatAttr('value_float', 0.75)]);
  const h = b.op('Relu', [b.op('Mul', [b.op('Add', [b.op('MatMul', ['x', w1]), bias]), scale])]);
  const shape = constant(b, 'shape', [intsAttr('value_ints', [ROWS, N])]);
  // A sparse [N, 4] weight: every third element set.
  const dense = uniform(3, N * 4);
  const at = Array.from({ length: N * 4 }, (_, i) => i).filter((i) => i % 3 === 0);
  const sparse = {
    ...emptyAttribute('sparse_value', AttributeType.SPARSE_TENSOR),
    sparseTensor: {
      values: makeTensor('fc2.values', DataType.FLOAT, [at.length], at.map((i) => dense[i])),
      indices: makeTensor('fc2.indices', DataType.INT64, [at.length], at.map(BigInt)),
      dims: [N, 4],
    },
  };
  const w2 = constant(b, 'fc2.weight', [sparse]);
  b.output('y', DataType.FLOAT, [ROWS, 4]);
  b.node('MatMul', [b.op('Reshape', [h, shape]), w2], ['y']);
  const index = constant(b, 'column.index', [intAttr('value_int', 2)]);
  b.output('column', DataType.FLOAT, [ROWS]);
  b.node('Gather', ['y', index], ['column'], { axis: 1 });
  if (strings) {
    b.output('labels', DataType.STRING, [2]);
    b.node('Constant', [], ['labels'], [stringsAttr('value_strings', ['cat', 'dog'])], { name: 'labels' });
  }
  return { name: `constant forms (opset ${opset})`, model: model(b, 'constant-forms', opset), feeds: () => floatFeed('x', [ROWS, K], 11), weights: { matmul: 2, gemm: 0, conv: 0 } };
}

/** One weight chain in front of a MatMul's right-hand side. */
export type Chain = 'identity' | 'transpose' | 'cast-fp16' | 'reshape' | 'unsqueeze-squeeze' | 'concat-slice';
export const CHAINS: readonly Chain[] = ['identity', 'transpose', 'cast-fp16', 'reshape', 'unsqueeze-squeeze', 'concat-slice'];

/** x [4, K] -> MatMul with a [K, N] weight computed by `chain` from Constant nodes -> Relu -> y. */
export function weightChain(chain: Chain, opset = 13): ExporterModel {
  const b = new GraphBuilder(`chain_${chain}`);
  b.input('x', DataType.FLOAT, [ROWS, K]);
  const values = uniform(20, K * N);
  const int64 = (dims: number[], v: number[]) => b.constant(DataType.INT64, dims, v.map(BigInt));
  let w: string;
  switch (chain) {
    case 'identity':
      w = b.op('Identity', [b.op('Identity', [b.constant(DataType.FLOAT, [K, N], values)])]);
      break;
    case 'transpose': {
      // Stored as [N, K] (tf2onnx keeps TensorFlow's layout and transposes it in the graph).
      const t = new Float32Array(K * N);
      for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) t[n * K + k] = values[k * N + n];
      w = b.op('Transpose', [b.constant(DataType.FLOAT, [N, K], t)], { perm: [1, 0] });
      break;
    }
    case 'cast-fp16':
      w = b.op('Cast', [b.constant(DataType.FLOAT16, [K, N], values)], { to: DataType.FLOAT });
      break;
    case 'reshape':
      w = b.op('Reshape', [b.constant(DataType.FLOAT, [K * N], values), int64([2], [K, N])]);
      break;
    case 'unsqueeze-squeeze': {
      const axes = [0];
      const up = opset >= 13 ? b.op('Unsqueeze', [b.constant(DataType.FLOAT, [K, N], values), int64([1], axes)]) : b.op('Unsqueeze', [b.constant(DataType.FLOAT, [K, N], values)], { axes });
      w = opset >= 13 ? b.op('Squeeze', [up, int64([1], axes)]) : b.op('Squeeze', [up], { axes });
      break;
    }
    case 'concat-slice': {
      // Two halves joined along N, with two padding columns sliced off again.
      const half = (from: number) => {
        const out = new Float32Array(K * (N / 2 + 1));
        for (let k = 0; k < K; k++) for (let n = 0; n < N / 2; n++) out[k * (N / 2 + 1) + n] = values[k * N + from + n];
        return out;
      };
      const left = b.op('Slice', [b.constant(DataType.FLOAT, [K, N / 2 + 1], half(0)), int64([1], [0]), int64([1], [N / 2]), int64([1], [1])]);
      const right = b.op('Slice', [b.constant(DataType.FLOAT, [K, N / 2 + 1], half(N / 2)), int64([1], [0]), int64([1], [N / 2]), int64([1], [1])]);
      w = b.op('Concat', [left, right], { axis: 1 });
      break;
    }
  }
  b.output('y', DataType.FLOAT, [ROWS, N]);
  b.node('Relu', [b.op('MatMul', ['x', w])], ['y']);
  return { name: `${chain} chain (opset ${opset})`, model: model(b, `chain-${chain}`, opset), feeds: () => floatFeed('x', [ROWS, K], 21), weights: { matmul: 1, gemm: 0, conv: 0 } };
}

/**
 * One [K, K] weight read by two MatMuls (x W, then relu(x W) W): a Constant node, or (`throughIdentity`) an
 * initializer the second MatMul reads through an Identity, as torch.onnx exports a shared parameter.
 */
export function sharedWeight(opset = 13, { throughIdentity = false } = {}): ExporterModel {
  const b = new GraphBuilder('shared');
  b.input('x', DataType.FLOAT, [ROWS, K]);
  const w = throughIdentity ? b.initializer('shared.weight', DataType.FLOAT, [K, K], uniform(30, K * K)) : stored(b, 'shared.weight', DataType.FLOAT, [K, K], uniform(30, K * K));
  b.output('y', DataType.FLOAT, [ROWS, K]);
  b.node('MatMul', [b.op('Relu', [b.op('MatMul', ['x', w])]), throughIdentity ? b.op('Identity', [w]) : w], ['y']);
  const how = throughIdentity ? 'an initializer and its Identity' : 'a Constant';
  return { name: `weight shared by two MatMuls, ${how} (opset ${opset})`, model: model(b, 'shared', opset), feeds: () => floatFeed('x', [ROWS, K], 31), weights: { matmul: 2, gemm: 0, conv: 0 } };
}

/** IR 3, opset 8: weights are initializers that are also listed as graph inputs (Gemm then MatMul). */
export function weightsAsInputs(): ExporterModel {
  const b = new GraphBuilder('ir3');
  b.input('x', DataType.FLOAT, [ROWS, K]);
  const weight = (name: string, dims: number[], seed: number): string => {
    b.graph.input.push({ name, type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } }, metadataProps: [] });
    return b.initializer(name, DataType.FLOAT, dims, uniform(seed, dims.reduce((a, c) => a * c, 1)));
  };
  const w1 = weight('fc1.weight', [N, K], 40);
  const b1 = weight('fc1.bias', [N], 41);
  const w2 = weight('fc2.weight', [N, 8], 42);
  const h = b.op('Relu', [b.op('Gemm', ['x', w1, b1], { transB: 1 })]);
  b.output('y', DataType.FLOAT, [ROWS, 8]);
  b.node('MatMul', [h, w2], ['y']);
  return { name: 'weights as graph inputs (IR 3)', model: model(b, 'ir3', 8, 3), feeds: () => floatFeed('x', [ROWS, K], 43), weights: { matmul: 1, gemm: 1, conv: 0 } };
}

/**
 * A Paddle2ONNX-style CNN: every weight and bias a Constant node, NCHW input, two Convs, global pooling, a
 * Reshape to a Constant shape and a fully connected layer (MatMul + Add).
 */
export function paddleCnn(opset = 11): ExporterModel {
  const b = new GraphBuilder('paddle_cnn');
  b.input('image', DataType.FLOAT, [1, 3, 12, 12]);
  const c = (name: string, dims: number[], seed: number, scale = 0.3) => stored(b, name, DataType.FLOAT, dims, uniform(seed, dims.reduce((a, x) => a * x, 1), scale));
  const conv1 = b.op('Conv', ['image', c('conv2d_0.w_0', [8, 3, 3, 3], 50), c('conv2d_0.b_0', [8], 51, 0.1)], { pads: [1, 1, 1, 1], strides: [1, 1], kernel_shape: [3, 3] });
  const conv2 = b.op('Conv', [b.op('Relu', [conv1]), c('conv2d_1.w_0', [12, 8, 3, 3], 52, 0.2), c('conv2d_1.b_0', [12], 53, 0.1)], { pads: [1, 1, 1, 1], strides: [2, 2], kernel_shape: [3, 3] });
  const pooled = b.op('GlobalAveragePool', [b.op('Relu', [conv2])]);
  const flat = b.op('Reshape', [pooled, stored(b, 'shape_0', DataType.INT64, [2], [1n, 12n])]);
  b.output('logits', DataType.FLOAT, [1, 5]);
  b.node('Add', [b.op('MatMul', [flat, c('fc_0.w_0', [12, 5], 54)]), c('fc_0.b_0', [5], 55, 0.1)], ['logits']);
  return { name: `Paddle-style CNN (opset ${opset})`, model: model(b, 'paddle-cnn', opset), feeds: () => floatFeed('image', [1, 3, 12, 12], 56), weights: { matmul: 1, gemm: 0, conv: 2 } };
}

/**
 * A Paddle2ONNX-style attention head at an old opset: Constant weights, Softmax along axis 3 of a rank-4 value and
 * along axis 2 of a rank-3 value (the last axis both times) with no value_info, so only shapes tell that the
 * opset-13 upgrade keeps them as they are.
 */
export function paddleAttention(opset = 9): ExporterModel {
  const b = new GraphBuilder('paddle_attention');
  b.input('x', DataType.FLOAT, [1, 6, 16]);
  const c = (name: string, dims: number[], seed: number) => stored(b, name, DataType.FLOAT, dims, uniform(seed, dims.reduce((a, x) => a * x, 1), 0.4));
  const heads = b.op('Reshape', [b.op('MatMul', ['x', c('fc_q.w_0', [16, 16], 60)]), stored(b, 'shape_heads', DataType.INT64, [4], [1n, 6n, 2n, 8n])]);
  const attended = b.op('Softmax', [heads], { axis: 3 });
  const merged = b.op('Reshape', [attended, stored(b, 'shape_merge', DataType.INT64, [3], [1n, 6n, 16n])]);
  b.output('probs', DataType.FLOAT, [1, 6, 10]);
  b.node('Softmax', [b.op('MatMul', [merged, c('fc_out.w_0', [16, 10], 61)])], ['probs'], { axis: 2 });
  return { name: `Paddle-style attention head (opset ${opset})`, model: model(b, 'paddle-attention', opset), feeds: () => floatFeed('x', [1, 6, 16], 62), weights: { matmul: 2, gemm: 0, conv: 0 } };
}

/** Writes `count` samples of generated inputs as an ONNX test-data folder (test_data_set_<n>/input_<k>.pb). */
export function writeSamples(dir: string, fixture: ExporterModel, count: number): string {
  for (let s = 0; s < count; s++) {
    const sample = join(dir, `test_data_set_${s}`);
    mkdirSync(sample, { recursive: true });
    const feeds = fixture.feeds();
    Object.entries(feeds).forEach(([name, t], k) => {
      const random = mulberry32(1000 + 17 * s + k);
      const data = Float32Array.from(t.data as Float32Array, (v) => v * (0.5 + random()));
      writeFileSync(join(sample, `input_${k}.pb`), encodeTensor(makeTensor(name, DataType.FLOAT, t.dims as number[], data)));
    });
  }
  return dir;
}
