// Raising the default-domain opset (src/onnx/opset-upgrade.ts, through GraphEditor.requireOpset) must keep what
// every node computes. Builder fixtures at opsets 7 to 12 (Softmax family on the last and a middle axis,
// Upsample, Resize-10, Scatter, attributes that became inputs, fp16 Clip/Pad, BatchNormalization, Dropout, an
// If body, RoiAlign, GroupNormalization) are upgraded to 13 and 21 and run in ONNX Runtime beside the original
// (ranks from shapes.ts's inference keep a Softmax the declarations cannot place);
// then every conformance model below opset 13 is upgraded and checked against its recorded outputs.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Tensor } from 'onnxruntime-node';
import { decodeTensor } from '../src/onnx/codec.js';
import { dtypeInfo } from '../src/onnx/dtypes.js';
import { floatAttr, floatsAttr, intsAttr } from '../src/onnx/attributes.js';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { GraphEditor } from '../src/onnx/editor.js';
import { GraphError } from '../src/onnx/graph.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import type { ValueFacts } from '../src/onnx/opset-upgrade.js';
import { inferShapes, rankLookup } from '../src/onnx/shapes.js';
import { tensorValues, type DecodedTensor } from '../src/onnx/tensor.js';
import { DataType, type GraphProto, type NodeProto } from '../src/onnx/types.js';
import { fromOrtTensor, toOrtTensor } from '../src/runtime/ort-tensor.js';
import { RuntimeError, Session, type Feeds } from '../src/runtime/session.js';
import { mulberry32 } from './support/prng.js';
import { TESTDATA_ROOT, SUITES } from './support/testdata.js';

const F = DataType.FLOAT;
const TARGETS = [13, 21];

function fixture(opset: number, build: (b: GraphBuilder) => void, name = `opset${opset}.onnx`): OnnxModel {
  const b = new GraphBuilder('fixture');
  build(b);
  return new OnnxModel(modelFrom(b.graph, { opsets: { '': opset } }), undefined, name);
}

function upgrade(model: OnnxModel, to: number, facts?: ValueFacts): OnnxModel {
  const edit = new GraphEditor(model);
  edit.requireOpset('', to, facts);
  const r = edit.finish();
  assert.equal(r.model.opset(''), to);
  return r.model;
}

function random(dims: number[], seed: number, scale = 2): DecodedTensor {
  const next = mulberry32(seed);
  const n = dims.reduce((a, b) => a * b, 1);
  return { dtype: F, dims, data: Float32Array.from({ length: n }, () => (next() - 0.5) * scale) };
}

const feedsOf = (values: Record<string, DecodedTensor>): Feeds => Object.fromEntries(Object.entries(values).map(([k, v]) => [k, toOrtTensor(v, k)]));

async function run(model: OnnxModel, feeds: Feeds): Promise<Record<string, DecodedTensor>> {
  const s = await Session.create(model, { intraOpThreads: 1 });
  try {
    const out = await s.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, fromOrtTensor(t as Tensor)]));
  } finally {
    await s.dispose();
  }
}

/** Largest |a - b| over the elements; Infinity when the shapes differ. */
function maxDiff(a: DecodedTensor, b: DecodedTensor): number {
  if (a.dims.join() !== b.dims.join() || a.dtype !== b.dtype) return Infinity;
  let worst = 0;
  for (let i = 0; i < b.data.length; i++) {
    const x = Number(a.data[i]);
    const y = Number(b.data[i]);
    if (Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y))) continue;
    worst = Math.max(worst, Math.abs(x - y));
  }
  return worst;
}

/** The original and each upgrade run on the same feeds; every output agrees within `tol` (0: bit for bit). */
async function sameInOrt(original: OnnxModel, feeds: Feeds, tol = 0, facts?: ValueFacts): Promise<OnnxModel[]> {
  const want = await run(original, feeds);
  const upgraded: OnnxModel[] = [];
  for (const to of TARGETS) {
    const model = upgrade(original, to, facts);
    const got = await run(model, feeds);
    for (const [name, w] of Object.entries(want)) {
      const d = maxDiff(got[name], w);
      assert.ok(d <= tol, `${original.source} -> ${to}: output ${name} differs by ${d} (tolerance ${tol})`);
    }
    upgraded.push(model);
  }
  return upgraded;
}

const ops = (m: OnnxModel | GraphProto): string[] => ('graph' in m ? m.graph : m).node.map((n: NodeProto) => n.opType ?? '');

describe('opset upgrade keeps what nodes compute', () => {
  for (const op of ['Softmax', 'LogSoftmax', 'Hardmax']) {
    for (const opset of [9, 11, 12]) {
      for (const dims of [
        [2, 3, 4],
        [2, 3, 4, 5],
      ]) {
        const x = random(dims, dims.length * 100 + opset);
        it(`${op} at opset ${opset}, rank ${dims.length}: the last axis stays as it is, a middle axis goes through Flatten/Reshape`, async () => {
          const last = fixture(opset, (b) => {
            b.input('X', F, dims);
            b.node(op, ['X'], ['Y'], { axis: dims.length - 1 });
            b.output('Y', F);
          });
          for (const m of await sameInOrt(last, feedsOf({ X: x }))) assert.deepEqual(ops(m), [op]);
          const middle = fixture(opset, (b) => {
            b.input('X', F, dims);
            b.node(op, ['X'], ['Y'], { axis: 1 });
            b.output('Y', F);
          });
          for (const m of await sameInOrt(middle, feedsOf({ X: x }))) assert.deepEqual(ops(m), ['Flatten', op, 'Shape', 'Reshape']);
        });
      }
    }
  }

  it('Softmax on the last axis of an input of unknown rank: Flatten/Reshape without a rank, kept as is with one', async () => {
    // The exporter case of issue 10: opset 9, axis 3 on a rank-4 value that nothing declares.
    const model = fixture(9, (b) => {
      b.input('X', F);
      b.node('Softmax', ['X'], ['Y'], { axis: 3 });
      b.output('Y', F);
    });
    const feeds = feedsOf({ X: random([2, 3, 4, 5], 7) });
    for (const m of await sameInOrt(model, feeds)) assert.deepEqual(ops(m), ['Flatten', 'Softmax', 'Shape', 'Reshape']);
    const facts: ValueFacts = { rankOf: (name) => (name === 'X' ? 4 : undefined) };
    for (const m of await sameInOrt(model, feeds, 0, facts)) assert.deepEqual(ops(m), ['Softmax']);
  });

  it('ranks inferred in ONNX Runtime (shapes.ts) keep an undeclared last-axis Softmax as it is', async () => {
    const model = fixture(9, (b) => {
      b.input('X', F, ['batch', 6]);
      const r = b.op('Reshape', ['X', b.constant(DataType.INT64, [3], [0n, 2n, 3n])]);
      b.node('Softmax', [r], ['Y'], { axis: 2 });
      b.output('Y', F);
    });
    const shapes = await inferShapes(model, undefined, { dims: { batch: 2 } });
    const feeds = feedsOf({ X: random([2, 6], 5) });
    for (const m of await sameInOrt(model, feeds, 0, { rankOf: rankLookup(model.graph, shapes) })) assert.deepEqual(ops(m), ['Constant', 'Reshape', 'Softmax']);
    for (const m of await sameInOrt(model, feeds)) assert.deepEqual(ops(m), ['Constant', 'Reshape', 'Flatten', 'Softmax', 'Shape', 'Reshape']);
  });

  it('Softmax at opset 7 without an axis on a rank-2 input keeps the old default axis 1', async () => {
    const model = fixture(7, (b) => {
      b.input('X', F, [3, 5]);
      b.node('Softmax', ['X'], ['Y']);
      b.output('Y', F);
    });
    for (const m of await sameInOrt(model, feedsOf({ X: random([3, 5], 3) }))) {
      assert.deepEqual(ops(m), ['Softmax']);
      assert.equal(m.graph.node[0].attribute.find((a) => a.name === 'axis')?.i, 1n);
    }
  });

  it('Upsample (opset 7 scales attribute, opset 9 scales input; nearest and linear) becomes Resize', async () => {
    const x = random([1, 2, 3, 4], 11);
    const at7 = fixture(7, (b) => {
      b.input('X', F, [1, 2, 3, 4]);
      b.node('Upsample', ['X'], ['Y'], { mode: 'nearest', scales: floatsAttr('scales', [1, 1, 2, 3]) });
      b.output('Y', F);
    });
    for (const m of await sameInOrt(at7, feedsOf({ X: x }))) assert.deepEqual(ops(m), ['Resize']);
    for (const mode of ['nearest', 'linear']) {
      const at9 = fixture(9, (b) => {
        b.input('X', F, [1, 2, 3, 4]);
        b.initializer('scales', F, [4], [1, 1, 2, 2.5]);
        b.node('Upsample', ['X', 'scales'], ['Y'], { mode });
        b.output('Y', F);
      });
      for (const m of await sameInOrt(at9, feedsOf({ X: x }))) assert.deepEqual(ops(m), ['Resize']);
    }
  });

  it('Resize-10 enlarging and shrinking, nearest and linear: asymmetric sampling, rounding down or up', async () => {
    const x = random([1, 1, 5, 6], 12);
    for (const mode of ['nearest', 'linear']) {
      for (const scales of [
        [1, 1, 2, 3],
        [1, 1, 0.6, 0.5],
      ]) {
        const model = fixture(10, (b) => {
          b.input('X', F, [1, 1, 5, 6]);
          b.initializer('scales', F, [4], scales);
          b.node('Resize', ['X', 'scales'], ['Y'], { mode });
          b.output('Y', F);
        });
        await sameInOrt(model, feedsOf({ X: x }));
      }
    }
  });

  it('Scatter (opset 9) becomes ScatterElements', async () => {
    const model = fixture(9, (b) => {
      b.input('data', F, [3, 4]);
      b.initializer('indices', DataType.INT64, [2, 3], [0n, 3n, 1n, 2n, 0n, 1n]);
      b.input('updates', F, [2, 3]);
      b.node('Scatter', ['data', 'indices', 'updates'], ['Y'], { axis: 1 });
      b.output('Y', F);
    });
    const models = await sameInOrt(model, feedsOf({ data: random([3, 4], 13), updates: random([2, 3], 14) }));
    for (const m of models) assert.deepEqual(ops(m), ['ScatterElements']);
  });

  it('attributes that became inputs at 10, 11, 13 and 18 (opset 7 and 11 fixtures)', async () => {
    const dims = [2, 3, 4, 5];
    const at7 = fixture(7, (b) => {
      b.input('X', F, dims);
      const c = b.op('Clip', ['X'], { min: floatAttr('min', -0.5), max: 0.5 });
      b.node('Pad', [c], ['padded'], { pads: [0, 0, 1, 1, 0, 0, 1, 1], value: 0.25 });
      b.node('Pad', ['X'], ['reflected'], { pads: [0, 0, 1, 2, 0, 0, 2, 1], mode: 'reflect' });
      const s = b.op('Slice', ['X'], { starts: [1, 0], ends: intsAttr('ends', [2, 9223372036854775807n]), axes: [1, 3] });
      b.node('Split', ['X'], ['split0', 'split1'], { axis: 1, split: [1, 2] });
      const sq = b.op('Squeeze', [s], { axes: [1] });
      b.node('Unsqueeze', [sq], ['unsqueezed'], { axes: [0, 3] });
      b.node('ReduceMean', ['X'], ['mean'], { axes: [1, 2], keepdims: 0 });
      b.node('ReduceSum', ['X'], ['sum'], { axes: [3], keepdims: 1 });
      b.node('TopK', ['X'], ['top', 'topIndex'], { k: 2, axis: 3 });
      for (const o of ['padded', 'reflected', 'split0', 'split1', 'unsqueezed', 'mean', 'sum', 'top']) b.output(o, F);
      b.output('topIndex', DataType.INT64);
    });
    const x = random(dims, 21);
    const upgraded = await sameInOrt(at7, feedsOf({ X: x }));
    for (const m of upgraded) assert.ok(m.graph.node.every((n) => !n.attribute.some((a) => ['min', 'max', 'pads', 'value', 'starts', 'split', 'k'].includes(a.name ?? ''))));

    const at11 = fixture(11, (b) => {
      b.input('X', F, dims);
      b.node('Split', ['X'], ['even0', 'even1'], { axis: 2 });
      b.node('Split', ['X'], ['uneven0', 'uneven1'], { axis: -1, split: [2, 3] });
      const u = b.op('Unsqueeze', ['X'], { axes: [-1, 0] });
      b.node('Squeeze', [u], ['squeezed'], { axes: [0, -1] });
      b.node('ReduceMean', ['X'], ['mean'], { axes: [-1], keepdims: 1 });
      b.node('ReduceSum', ['X'], ['sumAll'], { keepdims: 0 });
      b.node('ReduceMax', ['X'], ['max'], { axes: [0, 2] });
      for (const o of ['even0', 'even1', 'uneven0', 'uneven1', 'squeezed', 'mean', 'sumAll', 'max']) b.output(o, F);
    });
    const [to13, to21] = await sameInOrt(at11, feedsOf({ X: x }));
    // ReduceMean and ReduceMax keep their axes attribute at 13; everything moves by 18.
    assert.deepEqual(
      to13.graph.node.filter((n) => n.attribute.some((a) => a.name === 'axes')).map((n) => n.opType),
      ['ReduceMean', 'ReduceMax'],
    );
    assert.ok(to21.graph.node.every((n) => !n.attribute.some((a) => a.name === 'axes' || a.name === 'split')));
    assert.equal(to21.graph.node[0].attribute.find((a) => a.name === 'num_outputs')?.i, 2n);
  });

  it('Clip and Pad values take the input type of an fp16 model', async () => {
    const model = fixture(9, (b) => {
      b.input('X', DataType.FLOAT16, [2, 3]);
      const c = b.op('Clip', ['X'], { min: floatAttr('min', -0.5), max: 0.75 });
      b.node('Pad', [c], ['Y'], { pads: [0, 1, 0, 1], value: 0.1 });
      b.output('Y', DataType.FLOAT16);
    });
    const x: DecodedTensor = { dtype: DataType.FLOAT16, dims: [2, 3], data: Float32Array.from([-2, -0.25, 0.5, 1, 0.125, 3]) };
    // Clip-6 and Pad-2 have no float16 kernels in ONNX Runtime, so the expectation is computed by hand.
    const pad = 0.0999755859375; // 0.1 in float16
    const want = [pad, -0.5, -0.25, 0.5, pad, pad, 0.75, 0.125, 0.75, pad];
    for (const to of TARGETS) {
      const m = upgrade(model, to);
      assert.deepEqual(m.graph.initializer.map((t) => t.dataType), [DataType.FLOAT16, DataType.FLOAT16, DataType.INT64, DataType.FLOAT16]);
      const got = (await run(m, feedsOf({ X: x }))).Y;
      assert.deepEqual(got.dims, [2, 5]);
      assert.deepEqual([...got.data], want);
    }
  });

  it('BatchNormalization at opset 7: spatial=1 dropped, spatial=0 rewritten element-wise', async () => {
    const x = random([2, 3, 4, 4], 31);
    const stats = (b: GraphBuilder, dims: number[], seed: number): string[] =>
      ['scale', 'bias', 'mean', 'var'].map((s, i) => {
        const v = random(dims, seed + i);
        const data = s === 'var' ? (v.data as Float32Array).map((e) => Math.abs(e) + 0.5) : v.data;
        return b.initializer(s, F, dims, data as Float32Array);
      });
    const spatial = fixture(7, (b) => {
      b.input('X', F, [2, 3, 4, 4]);
      b.node('BatchNormalization', ['X', ...stats(b, [3], 40)], ['Y'], { spatial: 1, epsilon: floatAttr('epsilon', 1e-3) });
      b.output('Y', F);
    });
    for (const m of await sameInOrt(spatial, feedsOf({ X: x }))) assert.deepEqual(m.graph.node[0].attribute.map((a) => a.name), ['epsilon']);
    const perActivation = fixture(7, (b) => {
      b.input('X', F, [2, 3, 4, 4]);
      b.node('BatchNormalization', ['X', ...stats(b, [3, 4, 4], 50)], ['Y'], { spatial: 0, epsilon: floatAttr('epsilon', 1e-3) });
      b.output('Y', F);
    });
    const [scale, bias, mean, variance] = perActivation.graph.initializer.map((t) => tensorValues(t).data as Float32Array);
    const want = Float32Array.from(x.data as Float32Array, (v, i) => {
      const c = i % 48;
      return ((v - mean[c]) / Math.sqrt(variance[c] + 1e-3)) * scale[c] + bias[c];
    });
    for (const to of TARGETS) {
      const got = (await run(upgrade(perActivation, to), feedsOf({ X: x }))).Y;
      assert.ok(maxDiff(got, { dtype: F, dims: [2, 3, 4, 4], data: want }) < 1e-5, `spatial=0 -> ${to}`);
    }
  });

  it('Dropout: an unread mask is dropped at 10, ratio becomes an input at 12, a read mask is refused', async () => {
    const at7 = (readMask: boolean): OnnxModel =>
      fixture(7, (b) => {
        b.input('X', F, [2, 5]);
        b.node('Dropout', ['X'], ['Y', 'mask'], { ratio: 0.3 }, { name: 'drop' });
        b.output('Y', F);
        if (readMask) b.output('mask', F);
      });
    for (const m of await sameInOrt(at7(false), feedsOf({ X: random([2, 5], 61) }))) assert.deepEqual(m.graph.node[0].output, ['Y']);
    // ONNX Runtime returns a zero mask before 10; from 10 the mask is bool and all true at inference.
    assert.throws(() => upgrade(at7(true), 13), (e: Error) => e instanceof GraphError && /node 'drop' \(Dropout\) has a mask that other nodes or the graph outputs read/.test(e.message));
    const at11 = fixture(11, (b) => {
      b.input('X', F, [2, 5]);
      b.node('Dropout', ['X'], ['Y'], { ratio: 0.3 });
      b.output('Y', F);
    });
    for (const m of await sameInOrt(at11, feedsOf({ X: random([2, 5], 62) }))) {
      assert.equal(m.graph.node[0].input.length, 2);
      assert.deepEqual([...(tensorValues(m.graph.initializer[0]).data as Float32Array)], [Math.fround(0.3)]);
    }
  });

  it('an If whose branches hold Unsqueeze: each branch gets its own axes initializer', async () => {
    const branch = (name: string, negate: boolean): GraphProto => {
      const g = new GraphBuilder(name);
      const v = negate ? g.op('Neg', ['X']) : 'X';
      g.node('Unsqueeze', [v], [`${name}_out`], { axes: [0] });
      g.output(`${name}_out`, F);
      return g.graph;
    };
    const model = fixture(11, (b) => {
      b.input('X', F, [2, 3]);
      b.input('cond', DataType.BOOL, []);
      b.node('If', ['cond'], ['Y'], { then_branch: branch('then', false), else_branch: branch('else', true) });
      b.output('Y', F);
    });
    const x = random([2, 3], 71);
    for (const cond of [1, 0]) {
      const models = await sameInOrt(model, feedsOf({ X: x, cond: { dtype: DataType.BOOL, dims: [], data: Uint8Array.of(cond) } }));
      for (const m of models) {
        assert.equal(m.graph.initializer.length, 0);
        for (const a of m.graph.node[0].attribute) assert.equal(a.g?.initializer.length, 1, `${a.name} holds its axes`);
      }
    }
  });

  it('RoiAlign (opset 10) keeps output_half_pixel sampling', async () => {
    const model = fixture(10, (b) => {
      b.input('X', F, [1, 2, 5, 5]);
      b.initializer('rois', F, [2, 4], [0, 0, 3, 3, 1, 0.5, 4, 2.5]);
      b.initializer('batch', DataType.INT64, [2], [0n, 0n]);
      b.node('RoiAlign', ['X', 'rois', 'batch'], ['Y'], { output_height: 2, output_width: 3, sampling_ratio: 2 });
      b.output('Y', F);
    });
    await sameInOrt(model, feedsOf({ X: random([1, 2, 5, 5], 81) }));
  });

  it('GroupNormalization (opset 18) gets per-channel scale and bias at 21', async () => {
    const model = fixture(18, (b) => {
      b.input('X', F, [2, 6, 3, 3]);
      b.initializer('scale', F, [3], [0.5, 2, -1]);
      b.initializer('bias', F, [3], [0.1, -0.2, 0.3]);
      b.node('GroupNormalization', ['X', 'scale', 'bias'], ['Y'], { num_groups: 3, epsilon: floatAttr('epsilon', 1e-5) });
      b.output('Y', F);
    });
    const feeds = feedsOf({ X: random([2, 6, 3, 3], 91) });
    const want = (await run(model, feeds)).Y;
    const got = (await run(upgrade(model, 21), feeds)).Y;
    assert.ok(maxDiff(got, want) < 1e-5, `differs by ${maxDiff(got, want)}`);
  });

  it('refuses only what has no exact rewrite, naming the node in one line', () => {
    const runtimeScales = fixture(10, (b) => {
      b.input('X', F, [1, 1, 2, 2]);
      b.input('scales', F, [4]);
      b.node('Resize', ['X', 'scales'], ['Y'], { mode: 'nearest' }, { name: 'resize_dyn' });
      b.output('Y', F);
    });
    const experimental = fixture(9, (b) => {
      b.input('X', F, [1, 3, 2, 2]);
      b.node('ImageScaler', ['X'], ['Y'], { scale: 0.5, bias: [0.1, 0.2, 0.3] }, { name: 'scaler' });
      b.output('Y', F);
    });
    const cases: [OnnxModel, RegExp][] = [
      [runtimeScales, /^opset10\.onnx: cannot raise the opset from 10 to 13: node 'resize_dyn' \(Resize\) rounds nearest samples by whether its run-time scales/],
      [experimental, /^opset9\.onnx: cannot raise the opset from 9 to 13: node 'scaler' \(ImageScaler\) is an experimental operator/],
    ];
    for (const [model, message] of cases) {
      assert.throws(() => upgrade(model, 13), (e: Error) => e instanceof GraphError && message.test(e.message) && !e.message.includes('\n'));
    }
  });
});

// ---- the conformance sweep -------------------------------------------------------------------------------

type Outcome = 'matched' | 'refused' | 'ort-cannot-run' | 'not-a-tensor-model' | 'mismatch';
interface Row {
  key: string;
  opset: number;
  to: number;
  outcome: Outcome;
  detail: string;
  /** Every output equals the original model's ORT output bit for bit (when ORT runs the original). */
  bitExact?: boolean;
}

// ONNX's backend-test tolerance (onnx/backend/test/case/test_case.py).
const RTOL = 1e-3;
const ATOL = 1e-7;
/** The upgraded model must reproduce at least this share of the recorded outputs it can run. */
const MIN_MATCHED_FRACTION = 0.95;

function withinTolerance(got: DecodedTensor, want: DecodedTensor): boolean {
  if (got.dims.join() !== want.dims.join() || got.dtype !== want.dtype) return false;
  const float = dtypeInfo(want.dtype).kind === 'float';
  for (let i = 0; i < want.data.length; i++) {
    const a = got.data[i];
    const b = want.data[i];
    if (a === b) continue;
    if (!float) return false;
    const x = Number(a);
    const y = Number(b);
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (!(Math.abs(x - y) <= ATOL + RTOL * Math.abs(y))) return false;
  }
  return true;
}

async function tryRun(model: OnnxModel, sets: Feeds[]): Promise<Record<string, DecodedTensor>[] | string> {
  let s: Session;
  try {
    s = await Session.create(model, { intraOpThreads: 1 });
  } catch (e) {
    if (e instanceof RuntimeError) return e.message.slice(e.model.length + 2);
    throw e;
  }
  try {
    const out: Record<string, DecodedTensor>[] = [];
    for (const feeds of sets) {
      const got = await s.run(feeds);
      out.push(Object.fromEntries(Object.entries(got).map(([k, t]) => [k, fromOrtTensor(t as Tensor)])));
    }
    return out;
  } catch (e) {
    if (e instanceof RuntimeError) return `run failed: ${e.message.slice(e.model.length + 2)}`;
    throw e;
  } finally {
    await s.dispose();
  }
}

async function sweepCase(suite: string, name: string): Promise<Row[]> {
  const dir = join(TESTDATA_ROOT, suite, name);
  const key = `${suite}/${name}`;
  const model = new OnnxModel(loadModel(join(dir, 'model.onnx')).proto, dir, key);
  const opset = model.opset('') ?? 0;
  const rows = (outcome: Outcome, detail: string): Row[] => TARGETS.map((to) => ({ key, opset, to, outcome, detail }));
  const inits = new Set(model.graph.initializer.map((t) => t.name));
  const inputs = model.graph.input.filter((v) => !inits.has(v.name));
  if ([...inputs, ...model.graph.output].some((v) => !v.type?.tensorType)) return rows('not-a-tensor-model', 'sequence/optional inputs or outputs');
  const setDirs = readdirSync(dir).filter((f) => f.startsWith('test_data_set_')).sort();
  const pb = (set: string, prefix: string): DecodedTensor[] =>
    readdirSync(join(dir, set))
      .filter((f) => f.startsWith(prefix) && f.endsWith('.pb'))
      .sort((a, b) => Number(a.slice(prefix.length, -3)) - Number(b.slice(prefix.length, -3)))
      .map((f) => tensorValues(decodeTensor(readFileSync(join(dir, set, f)))));
  let feeds: Feeds[];
  try {
    feeds = setDirs.map((set) => Object.fromEntries(pb(set, 'input_').map((t, i) => [inputs[i].name!, toOrtTensor(t)])));
  } catch {
    return rows('not-a-tensor-model', 'inputs ONNX Runtime cannot take from JavaScript');
  }
  const expected = setDirs.map((set) => pb(set, 'output_'));
  const original = await tryRun(model, feeds);
  const out: Row[] = [];
  for (const to of TARGETS) {
    let upgraded: OnnxModel;
    try {
      upgraded = upgrade(model, to);
    } catch (e) {
      if (!(e instanceof GraphError)) throw e;
      out.push({ key, opset, to, outcome: 'refused', detail: e.message.replace(/^.*?: node /, 'node ') });
      continue;
    }
    const got = await tryRun(upgraded, feeds);
    if (typeof got === 'string') {
      const why = typeof original === 'string' ? `the original neither: ${got}` : `only the upgrade: ${got}`;
      out.push({ key, opset, to, outcome: 'ort-cannot-run', detail: why });
      continue;
    }
    const names = model.graph.output.map((o) => o.name!);
    const bad: string[] = [];
    got.forEach((outputs, s) =>
      expected[s].forEach((want, i) => {
        if (withinTolerance(outputs[names[i]], want)) return;
        // ORT's own deviation from the reference counts as reproduced when the original gives the same.
        if (typeof original !== 'string' && maxDiff(outputs[names[i]], original[s][names[i]]) === 0) return;
        bad.push(`set ${s} ${names[i]}`);
      }),
    );
    const bitExact = typeof original === 'string' ? undefined : got.every((o, s) => names.every((n) => maxDiff(o[n], original[s][n]) === 0));
    out.push({ key, opset, to, outcome: bad.length ? 'mismatch' : 'matched', detail: bad.join(', '), ...(bitExact !== undefined ? { bitExact } : {}) });
  }
  return out;
}

it('every conformance model below opset 13, raised to 13 and 21, reproduces its recorded outputs in ONNX Runtime', { skip: !existsSync(TESTDATA_ROOT) && `${TESTDATA_ROOT} not installed` }, async (t) => {
  const rows: Row[] = [];
  for (const suite of SUITES) {
    for (const name of readdirSync(join(TESTDATA_ROOT, suite)).sort()) {
      const file = join(TESTDATA_ROOT, suite, name, 'model.onnx');
      if (!existsSync(file)) continue;
      const opset = loadModel(file).opset('');
      if (opset === undefined || opset >= 13) continue;
      rows.push(...(await sweepCase(suite, name)));
    }
  }
  // One summary line per source opset and target, then every row that did not match.
  const groups = new Map<string, Row[]>();
  for (const r of rows) {
    const k = `${r.opset} -> ${r.to}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const count = (list: Row[], o: Outcome): number => list.filter((r) => r.outcome === o).length;
  for (const [k, list] of [...groups].sort((a, b) => a[1][0].opset - b[1][0].opset || a[1][0].to - b[1][0].to)) {
    const exact = list.filter((r) => r.outcome === 'matched' && r.bitExact).length;
    t.diagnostic(
      `opset ${k}: ${list.length} models, matched ${count(list, 'matched')} (bit-exact with the original in ORT ${exact}), ` +
        `refused ${count(list, 'refused')}, ORT cannot run ${count(list, 'ort-cannot-run')}, not tensor models ${count(list, 'not-a-tensor-model')}, mismatched ${count(list, 'mismatch')}`,
    );
  }
  for (const r of rows) if (r.outcome === "matched" && r.bitExact === false) t.diagnostic(`  not bit-exact ${r.key} (${r.opset} -> ${r.to})`);
  for (const r of rows) if (r.outcome !== "matched") t.diagnostic(`  ${r.outcome} ${r.key} (${r.opset} -> ${r.to}): ${r.detail}`);

  assert.deepEqual(rows.filter((r) => r.outcome === 'mismatch').map((r) => `${r.key} -> ${r.to}: ${r.detail}`), []);
  // An upgrade ORT cannot run where it ran the original is a broken rewrite.
  assert.deepEqual(rows.filter((r) => r.outcome === 'ort-cannot-run' && r.detail.startsWith('only the upgrade')).map((r) => `${r.key} -> ${r.to}: ${r.detail}`), []);
  const runnable = rows.filter((r) => r.outcome === 'matched' || r.outcome === 'refused');
  assert.ok(count(runnable, 'matched') >= MIN_MATCHED_FRACTION * runnable.length, `${count(runnable, 'matched')} of ${runnable.length} matched`);
});
