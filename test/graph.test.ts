import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeModel } from '../src/onnx/codec.js';
import { graphAttr } from '../src/onnx/attributes.js';
import { emptyGraph, GraphBuilder, makeNode } from '../src/onnx/builder.js';
import {
  allNodes,
  freeNames,
  GraphError,
  GraphIndex,
  implicitInputs,
  NameGenerator,
  topologicalOrder,
  usedNames,
  walkGraphs,
} from '../src/onnx/graph.js';
import { DataType, type GraphProto, type NodeProto } from '../src/onnx/types.js';
import { TESTDATA_ROOT } from './support/testdata.js';

function conformance(name: string): GraphProto {
  return decodeModel(readFileSync(join(TESTDATA_ROOT, 'node', name, 'model.onnx'))).graph!;
}

/** x -> A -> B, C (both read A) -> D(B, C) -> E(D, x): a diamond plus a long edge. */
function diamond(): GraphProto {
  const b = new GraphBuilder('diamond');
  const x = b.input('x', DataType.FLOAT, ['n']);
  const a = b.op('Relu', [x], undefined, { name: 'A' });
  const bb = b.op('Neg', [a], undefined, { name: 'B' });
  const c = b.op('Abs', [a], undefined, { name: 'C' });
  const d = b.op('Add', [bb, c], undefined, { name: 'D' });
  b.node('Mul', [d, x], ['y'], undefined, { name: 'E' });
  b.output('y', DataType.FLOAT, ['n']);
  return b.graph;
}

function assertValidOrder(graph: GraphProto, order: NodeProto[]): void {
  const seen = new Set(graph.input.map((v) => v.name!));
  for (const n of order) {
    for (const i of n.input) assert.ok(i === '' || seen.has(i), `${n.name} reads ${i} before it is produced`);
    n.output.forEach((o) => seen.add(o));
  }
  assert.equal(order.length, graph.node.length);
}

/** A deterministic shuffle (LCG), so a failure reproduces. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

test('topologicalOrder sorts shuffled nodes and leaves a sorted graph unchanged', () => {
  const g = diamond();
  const sorted = [...g.node];
  assert.deepEqual(topologicalOrder(g), sorted);
  for (let seed = 1; seed <= 20; seed++) {
    const s = { ...g, node: shuffled(sorted, seed) };
    assertValidOrder(s, topologicalOrder(s));
  }
});

test('topologicalOrder handles a chain deeper than the JS call stack', () => {
  const b = new GraphBuilder('chain');
  let v = b.input('x', DataType.FLOAT, [1]);
  for (let i = 0; i < 50_000; i++) v = b.op('Neg', [v]);
  b.graph.node.reverse();
  const order = topologicalOrder(b.graph);
  assertValidOrder(b.graph, order);
});

test('a cycle is reported with the nodes on it', () => {
  const g = emptyGraph('cyclic');
  g.input.push({ name: 'x', metadataProps: [] });
  g.node.push(
    makeNode('Relu', ['x'], ['a'], undefined, { name: 'first' }),
    makeNode('Add', ['a', 'c'], ['b'], undefined, { name: 'second' }),
    makeNode('Neg', ['b'], ['c'], undefined, { name: 'third' }),
  );
  assert.throws(() => topologicalOrder(g), (e: Error) => {
    assert.ok(e instanceof GraphError);
    assert.match(e.message, /cycle/);
    assert.match(e.message, /'second' \(Add\)/);
    assert.match(e.message, /'third' \(Neg\)/);
    assert.doesNotMatch(e.message, /'first'/);
    return true;
  });
});

test('an input nothing provides is reported with the node reading it', () => {
  const g = emptyGraph('dangling');
  g.node.push(makeNode('Relu', ['nowhere'], ['y'], undefined, { name: 'reader' }));
  assert.throws(() => topologicalOrder(g), /node 'reader' \(Relu\) reads 'nowhere'/);
  // An omitted optional input ('') is not a dependency.
  g.node[0].input = ['nowhere', ''];
  assert.doesNotThrow(() => topologicalOrder(g, { outerScope: ['nowhere'] }));
});

test('producers, consumers and lookups', () => {
  const b = new GraphBuilder('lookups');
  const x = b.input('x', DataType.FLOAT, [2]);
  b.initializer('w', DataType.FLOAT, [2], [1, 2]);
  const sq = b.op('Mul', [x, x], undefined, { name: 'square' });
  b.node('Add', [sq, 'w'], ['y'], undefined, { name: 'addw' });
  b.node('Sub', [x, 'w'], ['z'], undefined, { name: 'subw' });
  b.output('y', DataType.FLOAT, [2]);
  b.valueInfo(sq, DataType.FLOAT, [2]);
  const idx = new GraphIndex(b.graph);
  assert.equal(idx.producer('y')?.name, 'addw');
  assert.equal(idx.producer('x'), undefined);
  assert.deepEqual(idx.consumers('x').map((n) => n.name), ['square', 'subw']); // Mul(x, x) counted once
  assert.deepEqual(idx.consumers('w').map((n) => n.name), ['addw', 'subw']);
  assert.deepEqual(idx.consumers('y'), []);
  assert.equal(idx.initializer('w')?.dims[0], 2);
  assert.equal(idx.graphInput('x')?.name, 'x');
  assert.equal(idx.graphOutput('y')?.name, 'y');
  assert.equal(idx.valueInfo(sq)?.type?.tensorType?.elemType, DataType.FLOAT);
  assert.equal(idx.valueInfo('y')?.name, 'y');
  assert.deepEqual(idx.feeds().map((v) => v.name), ['x']);
});

test('a value produced twice is refused', () => {
  const g = emptyGraph();
  g.node.push(makeNode('Relu', ['x'], ['y'], undefined, { name: 'one' }), makeNode('Neg', ['x'], ['y'], undefined, { name: 'two' }));
  assert.throws(() => new GraphIndex(g), /'y' is produced by both 'one' \(Relu\) and 'two' \(Neg\)/);
});

test('subgraph outer-scope names in a conformance Loop (Range, expanded)', () => {
  const g = conformance('test_range_float_type_positive_delta_expanded');
  const loop = g.node.find((n) => n.opType === 'Loop')!;
  const visits = [...walkGraphs(g)];
  assert.equal(visits.length, 2);
  const body = visits[1];
  assert.equal(body.owner, loop);
  assert.equal(body.attribute, 'body');
  assert.equal(body.depth, 1);
  for (const name of ['start', 'limit', 'delta']) assert.ok(body.outerScope.has(name));
  // The body adds `delta` from the enclosing graph on each iteration: Loop reads it implicitly.
  assert.deepEqual([...freeNames(body.graph)], ['delta']);
  assert.deepEqual(implicitInputs(loop), ['delta']);
  assert.ok(new GraphIndex(g).consumers('delta').includes(loop));
  // The body only validates once told what its scope provides.
  assert.throws(() => topologicalOrder(body.graph), /reads 'delta'/);
  assertValidOrder({ ...body.graph, input: [...body.graph.input, { name: 'delta', metadataProps: [] }] }, topologicalOrder(body.graph, { outerScope: body.outerScope }));
});

test('walkGraphs visits If branches and Loop bodies of conformance models', () => {
  const ifGraph = conformance('test_if');
  const ifVisits = [...walkGraphs(ifGraph)];
  assert.deepEqual(ifVisits.map((v) => v.attribute).sort(), [undefined, 'else_branch', 'then_branch'].sort());
  for (const v of ifVisits.slice(1)) {
    assert.equal(v.owner?.opType, 'If');
    assert.ok(v.outerScope.has('cond'));
    assert.deepEqual([...freeNames(v.graph)], []);
  }
  const loopGraph = conformance('test_loop11');
  const [, body] = [...walkGraphs(loopGraph)];
  assert.equal(body.owner?.opType, 'Loop');
  assert.ok(body.outerScope.has('trip_count') && body.outerScope.has('y'));
  assertValidOrder(body.graph, topologicalOrder(body.graph, { outerScope: body.outerScope }));
  const all = [...allNodes(loopGraph)];
  assert.equal(all.length, 1 + body.graph.node.length);
});

test('ordering puts the producer of a captured value before the node whose subgraph reads it', () => {
  const branch = (out: string): GraphProto => {
    const g = emptyGraph(out);
    g.node.push(makeNode('Identity', ['captured'], [out]));
    g.output.push({ name: out, metadataProps: [] });
    return g;
  };
  const g = emptyGraph('main');
  g.input.push({ name: 'cond', metadataProps: [] }, { name: 'x', metadataProps: [] });
  g.node.push(
    makeNode('If', ['cond'], ['y'], [graphAttr('then_branch', branch('t')), graphAttr('else_branch', branch('e'))], { name: 'if' }),
    makeNode('Neg', ['x'], ['captured'], undefined, { name: 'producer' }),
  );
  assert.deepEqual(topologicalOrder(g).map((n) => n.name), ['producer', 'if']);
  // A branch reading the If's own output is a cycle through the implicit input.
  g.node[0].attribute[0].g!.node[0].input = ['y'];
  assert.throws(() => topologicalOrder(g), /cycle: 'if' \(If\) -> 'if' \(If\)/);
});

test('NameGenerator avoids every name in the model, subgraphs included', () => {
  const model = decodeModel(readFileSync(join(TESTDATA_ROOT, 'node', 'test_loop11', 'model.onnx')));
  const used = usedNames(model);
  for (const name of ['trip_count', 'res_scan', 'iter_count', 'slice_out', 'scan_out']) assert.ok(used.has(name), name);
  const names = new NameGenerator(model);
  assert.equal(names.fresh('slice_out'), 'slice_out_1'); // a body value, not visible at the top level
  assert.equal(names.fresh('slice_out'), 'slice_out_2');
  assert.equal(names.fresh('fresh'), 'fresh');
  assert.equal(names.fresh('fresh'), 'fresh_1');
  names.reserve('v_1');
  assert.equal(names.fresh('v'), 'v');
  assert.equal(names.fresh('v'), 'v_2');
  // Node names count too.
  const g = diamond();
  assert.equal(new NameGenerator(g).fresh('D'), 'D_1');
});
