// GraphEditor (src/onnx/editor.ts) on small builder graphs: removing a node and rewiring its consumer, resizing
// an initializer that is also a graph input, typing values, adding outputs, dead-code removal, the validity
// check (a dangling read, a value produced twice, an input that was already out of order) and the change list.
// The edited models run in ONNX Runtime where the edit should keep (or change, predictably) the numbers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Tensor } from 'onnxruntime-node';
import { GraphBuilder, makeNode, modelFrom, valueInfo } from '../src/onnx/builder.js';
import { GraphEditor, type GraphChange } from '../src/onnx/editor.js';
import { GraphError } from '../src/onnx/graph.js';
import { OnnxModel } from '../src/onnx/model.js';
import { tensorValues } from '../src/onnx/tensor.js';
import { DataType, type NodeProto, type ValueInfoProto } from '../src/onnx/types.js';
import { Session, type Feeds } from '../src/runtime/session.js';

// X [1, 4] -> MatMul(W [4, 3]) -> Y -> Relu -> R -> Add(B [3]) -> OUT [1, 3]; W and B are also graph inputs
// (overridable initializers, as IR 3 exporters wrote them).
const W = [1, -2, 3, 0.5, -1, 2, -0.5, 1, 1, 2, 0, -3];
const B = [0.25, -0.5, 1];
const X = [1, 2, -1, 0.5];

function linear(): OnnxModel {
  const b = new GraphBuilder('linear');
  b.input('X', DataType.FLOAT, [1, 4]);
  b.initializer('W', DataType.FLOAT, [4, 3], W);
  b.initializer('B', DataType.FLOAT, [3], B);
  b.graph.input.push(valueInfo('W', DataType.FLOAT, [4, 3]), valueInfo('B', DataType.FLOAT, [3]));
  b.node('MatMul', ['X', 'W'], ['Y'], undefined, { name: 'matmul' });
  b.node('Relu', ['Y'], ['R'], undefined, { name: 'relu' });
  b.node('Add', ['R', 'B'], ['OUT'], undefined, { name: 'add' });
  b.output('OUT', DataType.FLOAT, [1, 3]);
  return new OnnxModel(modelFrom(b.graph, { opsets: { '': 17 } }), undefined, 'linear.onnx');
}

function matmul(x: number[], w: number[], k: number, n: number): number[] {
  return Array.from({ length: n }, (_, j) => x.reduce((s, xi, i) => s + xi * w[i * n + j], 0));
}

async function run(model: OnnxModel, feeds: Feeds): Promise<Record<string, number[]>> {
  const s = await Session.create(model, { intraOpThreads: 1 });
  try {
    const out = await s.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, [...(t.data as Float32Array)]]));
  } finally {
    await s.dispose();
  }
}

const xFeed = (): Feeds => ({ X: new Tensor('float32', Float32Array.from(X), [1, 4]) });

function close(actual: number[], expected: number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) < 1e-5, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
}

const kinds = (changes: GraphChange[]) => changes.map((c) => c.kind);
const nodeNames = (m: OnnxModel) => m.graph.node.map((n) => n.name);
const dimsOf = (v: ValueInfoProto | undefined) => v?.type?.tensorType?.shape?.dim.map((d) => d.dimValue ?? d.dimParam ?? null);

describe('GraphEditor', () => {
  it('removes a node and rewires its consumer; the result runs in ORT with the expected numbers', async () => {
    const model = linear();
    const before = JSON.stringify(model.proto.graph!.node);
    const relu = model.graph.node.find((n) => n.opType === 'Relu')!;
    const edit = new GraphEditor(model);
    edit.remove(relu);
    edit.renameReads('R', 'Y');
    const r = edit.finish();
    assert.deepEqual(nodeNames(r.model), ['matmul', 'add']);
    assert.deepEqual(r.model.graph.node[1].input, ['Y', 'B']);
    assert.deepEqual(r.changes, [
      { kind: 'node-removed', node: 'relu' },
      { kind: 'value-renamed', from: 'R', to: 'Y' },
    ]);
    assert.equal(JSON.stringify(model.proto.graph!.node), before, 'the input model is untouched');

    const y = matmul(X, W, 4, 3);
    close((await run(model, xFeed())).OUT, y.map((v, j) => Math.max(0, v) + B[j]), 'float model');
    // Without the Relu the negative entries of X @ W come through.
    assert.ok(y.some((v) => v < 0), 'the test input exercises the Relu');
    close((await run(r.model, xFeed())).OUT, y.map((v, j) => v + B[j]), 'Relu removed');
  });

  it('resizes an initializer that is also a graph input (its declared type follows); setValueType; runs', async () => {
    const model = linear();
    // Prune the last output column: W [4, 3] -> [4, 2], B [3] -> [2].
    const w2 = [0, 1, 2, 3].flatMap((i) => [W[i * 3], W[i * 3 + 1]]);
    const edit = new GraphEditor(model);
    edit.replaceInitializer('W', DataType.FLOAT, [4, 2], w2);
    edit.replaceInitializer('B', DataType.FLOAT, [2], B.slice(0, 2));
    edit.setValueType('OUT', DataType.FLOAT, [1, 2]);
    edit.setValueType('Y', DataType.FLOAT, [1, 2]);
    const r = edit.finish();
    const g = r.model.graph;
    assert.deepEqual(g.initializer.find((t) => t.name === 'W')!.dims, [4, 2]);
    assert.deepEqual([...(tensorValues(g.initializer.find((t) => t.name === 'W')!).data as Float32Array)], w2);
    assert.deepEqual(dimsOf(g.input.find((v) => v.name === 'W')), [4, 2], 'graph input W declares the new shape');
    assert.deepEqual(dimsOf(g.input.find((v) => v.name === 'B')), [2]);
    assert.deepEqual(dimsOf(g.output.find((v) => v.name === 'OUT')), [1, 2], 'setValueType on a graph output');
    const y = g.valueInfo.find((v) => v.name === 'Y');
    assert.equal(y?.type?.tensorType?.elemType, DataType.FLOAT, 'setValueType on an intermediate adds value_info');
    assert.deepEqual(dimsOf(y), [1, 2]);
    assert.deepEqual(r.changes, [
      { kind: 'initializer-replaced', name: 'W', dimsBefore: [4, 3], dims: [4, 2] },
      { kind: 'initializer-replaced', name: 'B', dimsBefore: [3], dims: [2] },
      { kind: 'value-typed', name: 'OUT' },
      { kind: 'value-typed', name: 'Y' },
    ]);
    assert.deepEqual(dimsOf(model.graph.input.find((v) => v.name === 'W')), [4, 3], 'the input model is untouched');
    const expected = matmul(X, w2, 4, 2).map((v, j) => Math.max(0, v) + B[j]);
    close((await run(r.model, xFeed())).OUT, expected, 'pruned model');
  });

  it('replaceInitializer of a name that is not an initializer is a GraphError', () => {
    assert.throws(() => new GraphEditor(linear()).replaceInitializer('nope', DataType.FLOAT, [1], [0]), (e: Error) => e instanceof GraphError && /no initializer 'nope'/.test(e.message));
  });

  it('addOutput makes an intermediate value a graph output that ORT returns', async () => {
    const edit = new GraphEditor(linear());
    edit.addOutput('Y', DataType.FLOAT, [1, 3]);
    const r = edit.finish();
    assert.deepEqual(r.model.graph.output.map((o) => o.name), ['OUT', 'Y']);
    assert.deepEqual(r.changes, [{ kind: 'output-added', name: 'Y' }]);
    const out = await run(r.model, xFeed());
    close(out.Y, matmul(X, W, 4, 3), 'Y');
  });

  it('removeDeadCode removes the nodes and initializers an edit left unread (transitively), and nothing else', async () => {
    // OUT = Y + Sigmoid(Y) * C, Y = X @ W. Replacing the Add by Identity(Y) leaves Sigmoid, Mul and C unread.
    const b = new GraphBuilder('dead');
    b.input('X', DataType.FLOAT, [1, 4]);
    b.initializer('W', DataType.FLOAT, [4, 3], W);
    b.initializer('C', DataType.FLOAT, [3], [2, 2, 2]);
    b.initializer('UNUSED', DataType.FLOAT, [1], [7]);
    b.node('MatMul', ['X', 'W'], ['Y'], undefined, { name: 'matmul' });
    b.node('Sigmoid', ['Y'], ['S'], undefined, { name: 'sigmoid' });
    b.node('Mul', ['S', 'C'], ['M'], undefined, { name: 'mul' });
    b.node('Add', ['Y', 'M'], ['OUT'], undefined, { name: 'add' });
    b.output('OUT', DataType.FLOAT, [1, 3]);
    const model = new OnnxModel(modelFrom(b.graph), undefined, 'dead.onnx');
    const add = model.graph.node.find((n) => n.opType === 'Add')!;

    // Without removeDeadCode the branch stays (only initializers the edited node read are dropped).
    const keep = new GraphEditor(model);
    keep.replace(add, [makeNode('Identity', ['Y'], ['OUT'], undefined, { name: 'identity' })]);
    assert.deepEqual(nodeNames(keep.finish().model), ['matmul', 'sigmoid', 'mul', 'identity']);

    const edit = new GraphEditor(model);
    edit.replace(add, [makeNode('Identity', ['Y'], ['OUT'], undefined, { name: 'identity' })]);
    edit.removeDeadCode();
    const r = edit.finish();
    assert.deepEqual(nodeNames(r.model), ['matmul', 'identity']);
    assert.deepEqual(r.model.graph.initializer.map((t) => t.name), ['W']);
    assert.deepEqual(
      r.changes.filter((c) => c.kind !== 'node-replaced'),
      [
        { kind: 'dead-node-removed', node: 'mul' },
        { kind: 'dead-node-removed', node: 'sigmoid' },
        { kind: 'initializer-removed', name: 'C' },
        { kind: 'initializer-removed', name: 'UNUSED' },
      ],
    );
    assert.deepEqual(r.changes[0], { kind: 'node-replaced', node: 'add', by: ['identity'] });
    close((await run(r.model, xFeed())).OUT, matmul(X, W, 4, 3), 'OUT = Y');
  });

  it('an edit that leaves a node reading an undefined value throws a GraphError naming the node', () => {
    const model = linear();
    const edit = new GraphEditor(model);
    edit.remove(model.graph.node.find((n) => n.opType === 'Relu')!); // the Add still reads R
    assert.throws(
      () => edit.finish(),
      (e: Error) => e instanceof GraphError && /node 'add' \(Add\) reads 'R', which nothing provides/.test(e.message) && /^linear\.onnx: /.test(e.message),
    );
    // Reading a value a later node produces is named as such.
    const edit2 = new GraphEditor(model);
    const mm = model.graph.node.find((n) => n.opType === 'MatMul')!;
    edit2.replace(mm, [makeNode('Neg', ['R'], ['N'], undefined, { name: 'neg' }), mm]);
    edit2.renameReads('X', 'N');
    assert.throws(() => edit2.finish(), (e: Error) => e instanceof GraphError && /node 'neg' \(Neg\) reads 'R', which a later node produces/.test(e.message));
  });

  it('a value produced twice throws a GraphError naming both producers', () => {
    const model = linear();
    const relu = model.graph.node.find((n) => n.opType === 'Relu')!;
    const edit = new GraphEditor(model);
    edit.replace(relu, [makeNode('Relu', ['Y'], ['R'], undefined, { name: 'relu2' }), makeNode('Abs', ['Y'], ['R'], undefined, { name: 'abs' })]);
    assert.throws(() => edit.finish(), (e: Error) => e instanceof GraphError && /value 'R' is produced by both 'relu2' \(Relu\) and 'abs' \(Abs\)/.test(e.message));
  });

  it('editing a node twice is refused', () => {
    const model = linear();
    const relu = model.graph.node.find((n) => n.opType === 'Relu')!;
    const edit = new GraphEditor(model);
    edit.remove(relu);
    assert.throws(() => edit.replace(relu, []), (e: Error) => e instanceof GraphError && /node 'relu' \(Relu\) is edited twice/.test(e.message));
  });

  it('an input graph already out of order is not blamed for it', async () => {
    const model = linear();
    const nodes: NodeProto[] = [...model.graph.node].reverse(); // add, relu, matmul: each reads a later node's output
    model.proto = { ...model.proto, graph: { ...model.graph, node: nodes } };
    const edit = new GraphEditor(model);
    edit.addOutput('Y');
    const r = edit.finish();
    assert.deepEqual(nodeNames(r.model), ['add', 'relu', 'matmul']);
    // ONNX Runtime sorts such graphs itself.
    const out = await run(r.model, xFeed());
    const y = matmul(X, W, 4, 3);
    close(out.OUT, y.map((v, j) => Math.max(0, v) + B[j]), 'OUT');
    close(out.Y, y, 'Y');
  });

  it('requireOpset raises the default opset (and the IR version with it) and lists both changes', () => {
    const edit = new GraphEditor(linear());
    edit.requireOpset('', 21);
    edit.requireOpset('com.microsoft', 1);
    const r = edit.finish();
    assert.equal(r.model.opset(''), 21);
    assert.equal(r.model.opset('com.microsoft'), 1);
    assert.deepEqual(kinds(r.changes), ['opset-changed', 'opset-changed', 'ir-version-changed']);
    assert.deepEqual(r.opsetChanges, [
      { domain: '', from: 17, to: 21 },
      { domain: 'com.microsoft', to: 1 },
    ]);
    assert.deepEqual(r.irVersion, { from: 8, to: 10 });
  });
});
