// The one way passes change a graph. A GraphEditor collects edits against a model — nodes replaced or removed,
// values renamed, initializers added, replaced or resized, value types and shapes set, graph outputs added or
// renamed, opsets required — and applies them all at once to a copy, then checks the copy is a valid graph in
// topological order. The input model is never modified; untouched tensors are shared, not copied.
//
// Quantization writers replace nodes and add initializers; structured pruning resizes initializers, rewrites
// shape constants and removes whole nodes; calibration adds graph outputs. Each gets back the new model and a
// list of what changed, for its report.
import { irVersionForOpset, makeNode, tensorType, type Dim, type NodeOptions } from './builder.js';
import type { AttrInput } from './attributes.js';
import { freeNames, GraphError, GraphIndex, implicitInputs, NameGenerator, nodeLabel } from './graph.js';
import { OnnxModel } from './model.js';
import { upgradeOpset, type ValueFacts } from './opset-upgrade.js';
import { makeTensor, type TensorValues } from './tensor.js';
import type { DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TypeProto, ValueInfoProto } from './types.js';

export interface OpsetChange {
  domain: string;
  /** Absent when the domain was not imported before. */
  from?: number;
  to: number;
}

/** One change an edit made, as reports list them. Nodes are named by their label (nodeLabel). */
export type GraphChange =
  | { kind: 'node-replaced'; node: string; by: string[] }
  | { kind: 'node-removed'; node: string }
  | { kind: 'node-added'; node: string }
  | { kind: 'dead-node-removed'; node: string }
  | { kind: 'initializer-added'; name: string; dims: number[] }
  | { kind: 'initializer-replaced'; name: string; dimsBefore: number[]; dims: number[] }
  | { kind: 'initializer-removed'; name: string }
  | { kind: 'value-renamed'; from: string; to: string }
  | { kind: 'value-typed'; name: string }
  | { kind: 'output-added'; name: string }
  | { kind: 'opset-changed'; domain: string; from?: number; to: number }
  | { kind: 'ir-version-changed'; from?: number; to: number };

export interface EditResult {
  model: OnnxModel;
  changes: GraphChange[];
  opsetChanges: OpsetChange[];
  irVersion: { from?: number; to?: number };
  /** Initializers dropped that were also graph inputs (overridable weights). */
  removedInputs: string[];
  /** Initializers marked superseded (a replacement exists) that some node still reads, so they stay. */
  supersededStillRead: string[];
}

export class GraphEditor {
  readonly names: NameGenerator;
  /** Lookups over the graph as it was before the edit. */
  readonly index: GraphIndex;
  private readonly replaced = new Map<NodeProto, NodeProto[]>();
  private readonly added: TensorProto[] = [];
  private readonly replacedTensors = new Map<string, TensorProto>();
  private readonly renames = new Map<string, string>();
  private readonly typed = new Map<string, TypeProto>();
  private readonly newOutputs: ValueInfoProto[] = [];
  private readonly appended: NodeProto[] = [];
  private readonly opsets = new Map<string, number>();
  private valueFacts: ValueFacts = {};
  private readonly superseded = new Set<string>();
  private dead = false;

  constructor(readonly model: OnnxModel) {
    this.names = new NameGenerator(model.proto);
    this.index = new GraphIndex(model.graph);
  }

  /** A fresh value name made from `base`. */
  value(base: string): string {
    return this.names.fresh(base);
  }

  /** A new initializer named after `base` (made unique); returns its name. */
  tensor(base: string, dtype: DataType, dims: readonly number[], values: TensorValues): string {
    const name = this.names.fresh(base);
    this.added.push(makeTensor(name, dtype, dims, values));
    return name;
  }

  /** A node named after `options.name` (default the op type), made unique; `outputs` are used as given. */
  node(op: string, inputs: readonly string[], outputs: readonly string[], attrs?: AttrInput, options: NodeOptions = {}): NodeProto {
    return makeNode(op, inputs, outputs, attrs, { ...options, name: this.names.fresh(options.name ?? op) });
  }

  /** `nodes` run in the place of `node` (so the order stays topological); they must produce what it produced. */
  replace(node: NodeProto, nodes: readonly NodeProto[]): void {
    if (this.replaced.has(node)) throw new GraphError(`${this.model.source}: node ${nodeLabel(node, this.model.graph)} is edited twice`);
    this.replaced.set(node, [...nodes]);
  }

  /**
   * Nodes that run after every node of the graph (they read graph values or each other, in the order given):
   * what a pass adds beside the model rather than inside it, such as reductions of captured values.
   */
  append(nodes: readonly NodeProto[]): void {
    this.appended.push(...nodes);
  }

  /** The node goes; whatever read its outputs must be rewired (renameReads) or removed too. */
  remove(node: NodeProto): void {
    this.replace(node, []);
  }

  /**
   * Every read of `from` (node inputs, subgraph captures excluded, and graph outputs) reads `to` instead. Used
   * to bypass a removed node: its consumers read its input.
   */
  renameReads(from: string, to: string): void {
    this.renames.set(from, to);
  }

  /** Replaces an existing initializer's data, possibly with other dimensions (a pruned weight). */
  replaceInitializer(name: string, dtype: DataType, dims: readonly number[], values: TensorValues): void {
    if (!this.index.initializer(name)) throw new GraphError(`${this.model.source}: no initializer '${name}' to replace`);
    this.replacedTensors.set(name, makeTensor(name, dtype, dims, values));
  }

  /** Records that an initializer has a replacement; finish() says whether some node still reads the original. */
  supersede(name: string): void {
    this.superseded.add(name);
  }

  /** Declares a value's element type and shape (value_info, or the graph input/output of that name). */
  setValueType(name: string, dtype: DataType, shape?: readonly Dim[]): void {
    this.typed.set(name, tensorType(dtype, shape));
  }

  /**
   * Makes a value a graph output (ONNX Runtime then returns it), typed by an element type (and shape), by a whole
   * TypeProto, or untyped (ONNX Runtime infers it). A value that is already an output is left as it is.
   */
  addOutput(name: string, type?: DataType | TypeProto, shape?: readonly Dim[]): void {
    if (this.model.graph.output.some((o) => o.name === name) || this.newOutputs.some((o) => o.name === name)) return;
    const typed = type === undefined ? undefined : typeof type === 'number' ? tensorType(type, shape) : structuredClone(type);
    this.newOutputs.push({ name, ...(typed ? { type: typed } : {}), metadataProps: [] });
  }

  /**
   * The new nodes need at least this opset of `domain` ('' is the default domain). Raising the default domain
   * rewrites nodes whose meaning changed; `facts` (ranks and element types, e.g. from shape inference) let it
   * keep more of them as they are, and fill what the model does not declare.
   */
  requireOpset(domain: string, version: number, facts?: ValueFacts): void {
    this.opsets.set(domain, Math.max(version, this.opsets.get(domain) ?? 0));
    if (facts) this.valueFacts = facts;
  }

  /** Also remove nodes whose outputs nothing reads (no graph output either), and initializers nothing reads. */
  removeDeadCode(): void {
    this.dead = true;
  }

  /** The edited copy of the model, checked to be a valid graph in topological order. */
  finish(): EditResult {
    const proto = this.model.proto;
    const g = this.model.graph;
    const changes: GraphChange[] = [];
    const label = (n: NodeProto): string => n.name || nodeLabel(n, g);
    for (const [node, by] of this.replaced) {
      changes.push(by.length ? { kind: 'node-replaced', node: label(node), by: by.map((n) => n.name ?? n.opType ?? '') } : { kind: 'node-removed', node: label(node) });
    }

    let nodes = [...g.node.flatMap((n) => this.replaced.get(n) ?? [n]), ...this.appended];
    for (const n of this.appended) changes.push({ kind: 'node-added', node: n.name ?? n.opType ?? '' });
    let outputs = [...g.output, ...this.newOutputs];
    if (this.renames.size) {
      const rename = (name: string): string => this.renames.get(name) ?? name;
      nodes = nodes.map((n) => (n.input.some((i) => this.renames.has(i)) ? { ...n, input: n.input.map(rename) } : n));
      outputs = outputs.map((o) => (this.renames.has(o.name ?? '') ? { ...o, name: rename(o.name!) } : o));
      for (const [from, to] of this.renames) changes.push({ kind: 'value-renamed', from, to });
    }
    for (const o of this.newOutputs) changes.push({ kind: 'output-added', name: o.name! });
    let graph: GraphProto = { ...g, node: nodes, output: outputs };

    if (this.dead) graph = this.withoutDeadNodes(graph, changes, label);

    // Drop initializers that edited nodes read and nothing reads now (all unread ones, with removeDeadCode).
    const candidates = new Set([...this.replaced.keys()].flatMap((n) => n.input));
    const read = new Set(freeNames({ ...graph, initializer: [], input: [] }));
    const dropped = new Set(
      g.initializer.filter((t) => t.name && (this.dead || candidates.has(t.name) || this.renames.has(t.name)) && !read.has(t.name)).map((t) => t.name!),
    );
    graph.initializer = [
      ...g.initializer.filter((t) => !dropped.has(t.name ?? '')).map((t) => this.replacedTensors.get(t.name ?? '') ?? t),
      ...this.added,
    ];
    graph.input = g.input.filter((v) => !dropped.has(v.name ?? ''));
    graph.valueInfo = g.valueInfo.filter((v) => !dropped.has(v.name ?? ''));
    const removedInputs = g.input.filter((v) => dropped.has(v.name ?? '')).map((v) => v.name!);
    for (const name of dropped) changes.push({ kind: 'initializer-removed', name });
    for (const t of this.added) changes.push({ kind: 'initializer-added', name: t.name!, dims: [...t.dims] });
    for (const [name, t] of this.replacedTensors) {
      changes.push({ kind: 'initializer-replaced', name, dimsBefore: [...(this.index.initializer(name)?.dims ?? [])], dims: [...t.dims] });
      // A resized initializer that is also a graph input must say its new shape there too.
      graph.input = graph.input.map((v) => (v.name === name ? { ...v, type: tensorType(t.dataType!, t.dims) } : v));
    }
    if (this.typed.size) graph = this.withTypes(graph, changes);

    const opsetImport: OperatorSetIdProto[] = proto.opsetImport.map((o) => ({ ...o }));
    const opsetChanges: OpsetChange[] = [];
    for (const [domain, version] of this.opsets) {
      const entry = opsetImport.find((o) => (o.domain ?? '') === domain || (domain === '' && o.domain === 'ai.onnx'));
      const from = entry?.version;
      if (from !== undefined && from >= version) continue;
      if (domain === '' && from !== undefined) graph = upgradeOpset(graph, from, version, this.names, this.model.source, this.valueFacts);
      if (entry) entry.version = version;
      else opsetImport.push({ domain, version });
      opsetChanges.push({ domain, ...(from !== undefined ? { from } : {}), to: version });
      changes.push({ kind: 'opset-changed', domain, ...(from !== undefined ? { from } : {}), to: version });
    }

    // IR 3 wanted every initializer listed as a graph input; the new ones are not, so such models move to IR 4.
    // A raised default opset needs the IR version that came with it.
    const defaultOpset = opsetImport.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version;
    let ir = proto.irVersion;
    const need = Math.max(this.added.length ? 4 : 0, opsetChanges.some((c) => c.domain === '') && defaultOpset ? irVersionForOpset(defaultOpset) : 0);
    if (ir !== undefined && ir < need) {
      changes.push({ kind: 'ir-version-changed', from: ir, to: need });
      ir = need;
    }

    // An input that was already out of order is not this edit's fault (ONNX Runtime sorts such graphs itself).
    if (isValid(g, this.model.source)) checkValid(graph, this.model.source);
    const out: ModelProto = { ...proto, opsetImport, graph, ...(ir !== undefined ? { irVersion: ir } : {}) };
    return {
      model: new OnnxModel(out, this.model.baseDir, this.model.source),
      changes,
      opsetChanges,
      irVersion: ir !== proto.irVersion ? { from: proto.irVersion, to: ir } : {},
      removedInputs,
      supersededStillRead: [...this.superseded].filter((w) => read.has(w)),
    };
  }

  private withoutDeadNodes(graph: GraphProto, changes: GraphChange[], label: (n: NodeProto) => string): GraphProto {
    let nodes = graph.node;
    for (;;) {
      // Every value some remaining node reads (its inputs and what its subgraphs capture) or the graph returns;
      // values nodes of this graph produce count too (freeNames would leave those out).
      const read = new Set<string>();
      for (const n of nodes) for (const name of [...n.input, ...implicitInputs(n)]) if (name) read.add(name);
      for (const o of graph.output) if (o.name) read.add(o.name);
      const live = nodes.filter((n) => n.output.some((o) => o !== '' && read.has(o)));
      if (live.length === nodes.length) break;
      const kept = new Set(live);
      for (const n of nodes) if (!kept.has(n)) changes.push({ kind: 'dead-node-removed', node: label(n) });
      nodes = live;
    }
    return { ...graph, node: nodes };
  }

  private withTypes(graph: GraphProto, changes: GraphChange[]): GraphProto {
    const typed = new Map(this.typed);
    const retype = (list: readonly ValueInfoProto[]): ValueInfoProto[] =>
      list.map((v) => {
        const t = typed.get(v.name ?? '');
        if (!t) return v;
        typed.delete(v.name!);
        return { ...v, type: t };
      });
    const input = retype(graph.input);
    const output = retype(graph.output);
    const valueInfo = retype(graph.valueInfo);
    for (const [name, type] of typed) valueInfo.push({ name, type, metadataProps: [] });
    for (const name of this.typed.keys()) changes.push({ kind: 'value-typed', name });
    return { ...graph, input, output, valueInfo };
  }
}

/**
 * Throws a GraphError naming the first node that reads a value no graph input, initializer or earlier node
 * provides, or a value produced twice: an edit must leave a graph ONNX Runtime can run in the order written.
 */
export function checkValid(graph: GraphProto, source: string): void {
  const index = new GraphIndex(graph); // throws on a value produced twice
  const available = new Set<string>();
  for (const v of graph.input) if (v.name) available.add(v.name);
  for (const t of graph.initializer) if (t.name) available.add(t.name);
  for (const s of graph.sparseInitializer) if (s.values?.name) available.add(s.values.name);
  for (const node of graph.node) {
    for (const name of index.dependencies(node)) {
      if (!available.has(name)) {
        const why = index.producer(name) ? 'which a later node produces' : 'which nothing provides';
        throw new GraphError(`${source}: after the edit, node ${nodeLabel(node, graph)} reads '${name}', ${why}`);
      }
    }
    for (const o of node.output) if (o) available.add(o);
  }
  for (const o of graph.output) {
    if (o.name && !available.has(o.name)) throw new GraphError(`${source}: after the edit, graph output '${o.name}' is produced by nothing`);
  }
}

function isValid(graph: GraphProto, source: string): boolean {
  try {
    checkValid(graph, source);
    return true;
  } catch (e) {
    if (e instanceof GraphError) return false;
    throw e;
  }
}
