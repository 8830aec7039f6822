// Read-only views of a GraphProto that passes need before editing it: who produces and who consumes a value,
// a valid execution order, what a subgraph reads from its enclosing graphs, and names that are still free.
// Nothing here is cached on the graph itself: build a GraphIndex, edit, and build a new one.
import { subgraphsOf } from './attributes.js';
import { ModelError } from './model.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from './types.js';

/** A graph that cannot be executed as written (a cycle, an input nothing produces, a value produced twice). */
export class GraphError extends ModelError {}

/** How a node is named in messages: its name, or its position and op type when it has none. */
export function nodeLabel(node: NodeProto, graph?: GraphProto): string {
  if (node.name) return `'${node.name}' (${node.opType ?? '?'})`;
  const at = graph ? graph.node.indexOf(node) : -1;
  return `#${at >= 0 ? at : '?'} (${node.opType ?? '?'})`;
}

/** Names a graph defines itself: inputs, initializers (dense and sparse) and node outputs. */
export function definedNames(graph: GraphProto): Set<string> {
  const names = new Set<string>();
  for (const v of graph.input) if (v.name) names.add(v.name);
  for (const t of graph.initializer) if (t.name) names.add(t.name);
  for (const s of graph.sparseInitializer) if (s.values?.name) names.add(s.values.name);
  for (const n of graph.node) for (const o of n.output) if (o) names.add(o);
  return names;
}

/**
 * Names a graph reads but does not define, nested subgraphs included: what it captures from the enclosing
 * scopes. Graph outputs count as reads, since a subgraph may pass an outer value straight through.
 */
export function freeNames(graph: GraphProto): Set<string> {
  const defined = definedNames(graph);
  const free = new Set<string>();
  const read = (name: string): void => {
    if (name && !defined.has(name)) free.add(name);
  };
  for (const n of graph.node) {
    n.input.forEach(read);
    for (const name of implicitInputs(n)) read(name);
  }
  for (const v of graph.output) read(v.name ?? '');
  return free;
}

/**
 * Names a node's subgraphs (If branches, Loop/Scan bodies) read from the scope around the node. They are
 * inputs of the node as far as ordering and liveness go, though they do not appear in `node.input`
 * (ONNX Runtime calls them implicit inputs).
 */
export function implicitInputs(node: NodeProto): string[] {
  const names = new Set<string>();
  for (const { graph } of subgraphsOf(node)) for (const name of freeNames(graph)) names.add(name);
  return [...names];
}

/**
 * Lookups over one graph (not its subgraphs), built once. Rebuild it after editing the graph: it holds maps,
 * not live views.
 */
export class GraphIndex {
  private readonly producers = new Map<string, NodeProto>();
  private readonly consumerMap = new Map<string, NodeProto[]>();
  private readonly implicit = new Map<NodeProto, string[]>();
  private readonly initializers = new Map<string, TensorProto>();
  private readonly inputs = new Map<string, ValueInfoProto>();
  private readonly outputs = new Map<string, ValueInfoProto>();
  private readonly valueInfos = new Map<string, ValueInfoProto>();

  constructor(readonly graph: GraphProto) {
    for (const t of graph.initializer) if (t.name) this.initializers.set(t.name, t);
    for (const v of graph.input) if (v.name) this.inputs.set(v.name, v);
    for (const v of graph.output) if (v.name) this.outputs.set(v.name, v);
    for (const v of graph.valueInfo) if (v.name) this.valueInfos.set(v.name, v);
    for (const n of graph.node) {
      for (const o of n.output) {
        if (!o) continue;
        const other = this.producers.get(o);
        if (other) throw new GraphError(`value '${o}' is produced by both ${nodeLabel(other, graph)} and ${nodeLabel(n, graph)}`);
        this.producers.set(o, n);
      }
      const implicit = implicitInputs(n);
      if (implicit.length) this.implicit.set(n, implicit);
      // A node reading the same value twice (Mul(x, x)) is listed once among its consumers.
      for (const name of new Set([...n.input, ...implicit])) {
        if (!name) continue;
        const list = this.consumerMap.get(name);
        if (list) list.push(n);
        else this.consumerMap.set(name, [n]);
      }
    }
  }

  /** The node that outputs `name`; undefined for graph inputs, initializers and outer-scope values. */
  producer(name: string): NodeProto | undefined {
    return this.producers.get(name);
  }

  /** Nodes reading `name`, in graph order, including nodes whose subgraphs read it (implicit inputs). */
  consumers(name: string): readonly NodeProto[] {
    return this.consumerMap.get(name) ?? [];
  }

  implicitInputs(node: NodeProto): readonly string[] {
    return this.implicit.get(node) ?? [];
  }

  /** Every input a node depends on: its inputs (omitted optional ones dropped) and implicit inputs. */
  dependencies(node: NodeProto): string[] {
    return [...node.input.filter((n) => n !== ''), ...this.implicitInputs(node)];
  }

  initializer(name: string): TensorProto | undefined {
    return this.initializers.get(name);
  }

  graphInput(name: string): ValueInfoProto | undefined {
    return this.inputs.get(name);
  }

  graphOutput(name: string): ValueInfoProto | undefined {
    return this.outputs.get(name);
  }

  /** Type information for a value: from value_info, else from the graph input or output of that name. */
  valueInfo(name: string): ValueInfoProto | undefined {
    return this.valueInfos.get(name) ?? this.inputs.get(name) ?? this.outputs.get(name);
  }

  /** Graph inputs that are not initializers: what a caller must feed. */
  feeds(): ValueInfoProto[] {
    return this.graph.input.filter((v) => !this.initializers.has(v.name ?? ''));
  }
}

export interface OrderOptions {
  /** Names the graph may read from enclosing graphs (a subgraph's `outerScope` from `walkGraphs`). */
  outerScope?: Iterable<string>;
  index?: GraphIndex;
}

/**
 * The graph's nodes in an order where every value is produced before it is read. The order is stable: a
 * node moves only to come after what it reads, so an already sorted graph comes back unchanged. Throws a
 * GraphError naming the nodes of a cycle, or the node and the input that nothing provides.
 */
export function topologicalOrder(graph: GraphProto, options: OrderOptions = {}): NodeProto[] {
  const index = options.index ?? new GraphIndex(graph);
  const available = new Set<string>(options.outerScope ?? []);
  for (const v of graph.input) if (v.name) available.add(v.name);
  for (const t of graph.initializer) if (t.name) available.add(t.name);
  for (const s of graph.sparseInitializer) if (s.values?.name) available.add(s.values.name);

  const DONE = 2;
  const ACTIVE = 1;
  const state = new Map<NodeProto, number>();
  const order: NodeProto[] = [];
  // Iterative depth-first search: exported graphs have chains thousands of nodes deep.
  for (const root of graph.node) {
    if (state.has(root)) continue;
    const stack: { node: NodeProto; deps: string[]; next: number }[] = [];
    const enter = (n: NodeProto): void => {
      state.set(n, ACTIVE);
      stack.push({ node: n, deps: index.dependencies(n), next: 0 });
    };
    enter(root);
    while (stack.length) {
      const top = stack[stack.length - 1];
      if (top.next === top.deps.length) {
        stack.pop();
        state.set(top.node, DONE);
        order.push(top.node);
        continue;
      }
      const name = top.deps[top.next++];
      const p = index.producer(name);
      if (p) {
        const s = state.get(p);
        if (s === DONE) continue;
        if (s === ACTIVE) {
          const cycle = stack.slice(stack.findIndex((f) => f.node === p)).map((f) => nodeLabel(f.node, graph));
          throw new GraphError(`graph '${graph.name ?? ''}' has a cycle: ${[...cycle, cycle[0]].join(' -> ')}`);
        }
        enter(p);
      } else if (!available.has(name)) {
        throw new GraphError(
          `node ${nodeLabel(top.node, graph)} reads '${name}', which no node, graph input or initializer provides`,
        );
      }
    }
  }
  return order;
}

export interface GraphVisit {
  graph: GraphProto;
  /** The node holding this graph in an attribute; undefined for the graph the walk started from. */
  owner?: NodeProto;
  /** The attribute of `owner` holding it (`then_branch`, `body`...). */
  attribute?: string;
  /** 0 for the starting graph, 1 for its subgraphs, and so on. */
  depth: number;
  /** Names visible from enclosing graphs: their inputs, initializers and node outputs. */
  outerScope: ReadonlySet<string>;
}

/** Every graph, the starting one first, then each subgraph before the rest of its parent's nodes' subgraphs. */
export function* walkGraphs(root: GraphProto, outerScope: ReadonlySet<string> = new Set()): Generator<GraphVisit> {
  yield* walk(root, undefined, undefined, 0, outerScope);
}

function* walk(
  graph: GraphProto,
  owner: NodeProto | undefined,
  attribute: string | undefined,
  depth: number,
  outerScope: ReadonlySet<string>,
): Generator<GraphVisit> {
  yield { graph, owner, attribute, depth, outerScope };
  let inner: Set<string> | undefined; // computed only when a node has subgraphs
  for (const node of graph.node) {
    for (const sub of subgraphsOf(node)) {
      inner ??= new Set([...outerScope, ...definedNames(graph)]);
      yield* walk(sub.graph, node, sub.attribute, depth + 1, inner);
    }
  }
}

/** Every node of the graph and of its subgraphs, with the graph that holds it. */
export function* allNodes(root: GraphProto): Generator<{ node: NodeProto; graph: GraphProto }> {
  for (const { graph } of walkGraphs(root)) for (const node of graph.node) yield { node, graph };
}

function isModel(source: ModelProto | GraphProto): source is ModelProto {
  return 'opsetImport' in source;
}

/**
 * Every name used anywhere: node names and value names (inputs, outputs, initializers, value_info) of the
 * graph, its subgraphs and, for a model, its functions. ONNX keeps one namespace across nested scopes only
 * loosely, so a new name must avoid all of them.
 */
export function usedNames(source: ModelProto | GraphProto): Set<string> {
  const names = new Set<string>();
  const add = (n: string | undefined): void => {
    if (n) names.add(n);
  };
  const addNodes = (nodes: readonly NodeProto[]): void => {
    for (const n of nodes) {
      add(n.name);
      n.input.forEach(add);
      n.output.forEach(add);
    }
  };
  const root = isModel(source) ? source.graph : source;
  if (root) {
    for (const { graph } of walkGraphs(root)) {
      addNodes(graph.node);
      for (const list of [graph.input, graph.output, graph.valueInfo]) for (const v of list) add(v.name);
      for (const t of graph.initializer) add(t.name);
      for (const s of graph.sparseInitializer) add(s.values?.name);
    }
  }
  if (isModel(source)) {
    for (const f of source.functions) {
      f.input.forEach(add);
      f.output.forEach(add);
      for (const n of f.node) for (const { graph } of subgraphsOf(n)) for (const name of usedNames(graph)) add(name);
      addNodes(f.node);
    }
  }
  return names;
}

/**
 * Hands out names no other node or value uses. `fresh(base)` returns `base` while it is free, then
 * `base_1`, `base_2`... (the suffix style of torch.onnx exports, so generated names read like exported ones).
 */
export class NameGenerator {
  private readonly used: Set<string>;
  private readonly nextSuffix = new Map<string, number>();

  constructor(source?: ModelProto | GraphProto) {
    this.used = source ? usedNames(source) : new Set();
  }

  has(name: string): boolean {
    return this.used.has(name);
  }

  /** Marks a name as taken (one the caller chose itself). */
  reserve(name: string): void {
    this.used.add(name);
  }

  reserveAll(names: Iterable<string>): void {
    for (const n of names) this.used.add(n);
  }

  fresh(base: string): string {
    const stem = base || 'value';
    if (!this.used.has(stem)) {
      this.used.add(stem);
      return stem;
    }
    let k = this.nextSuffix.get(stem) ?? 1;
    while (this.used.has(`${stem}_${k}`)) k++;
    this.nextSuffix.set(stem, k + 1);
    const name = `${stem}_${k}`;
    this.used.add(name);
    return name;
  }
}
