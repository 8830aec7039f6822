// A small API for adding inputs, weights and nodes to a graph, used by passes that rewrite graphs and by tests
// and scripts that make models from scratch. It edits the GraphProto in place and hands out names that no
// other node or value in the model uses.
import { tensorAttr, toAttributes, type AttrInput } from './attributes.js';
import { GraphError, NameGenerator, usedNames } from './graph.js';
import { makeTensor, type TensorValues } from './tensor.js';
import type { DataType, GraphProto, ModelProto, NodeProto, TensorProto, TypeProto, ValueInfoProto } from './types.js';

/** One dimension of a declared shape: a size, a symbolic name (`batch`), or null for unknown. */
export type Dim = number | string | null;

export function tensorType(dtype: DataType, shape?: readonly Dim[]): TypeProto {
  const type: TypeProto = { tensorType: { elemType: dtype } };
  if (shape) {
    type.tensorType!.shape = {
      dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : typeof d === 'string' ? { dimParam: d } : {})),
    };
  }
  return type;
}

/** A ValueInfoProto for a tensor; `shape` undefined leaves the rank unknown. */
export function valueInfo(name: string, dtype: DataType, shape?: readonly Dim[]): ValueInfoProto {
  return { name, type: tensorType(dtype, shape), metadataProps: [] };
}

export function emptyGraph(name = 'graph'): GraphProto {
  return {
    name,
    node: [],
    initializer: [],
    sparseInitializer: [],
    input: [],
    output: [],
    valueInfo: [],
    quantizationAnnotation: [],
    metadataProps: [],
  };
}

export interface NodeOptions {
  /** Node name; default `<scope>/<opType>`, made unique. */
  name?: string;
  /** Operator domain; omitted means the default ONNX domain. */
  domain?: string;
}

export function makeNode(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  attrs?: AttrInput,
  options: NodeOptions = {},
): NodeProto {
  const node: NodeProto = {
    opType,
    input: [...inputs],
    output: [...outputs],
    attribute: toAttributes(attrs),
    metadataProps: [],
    deviceConfigurations: [],
  };
  if (options.name !== undefined) node.name = options.name;
  if (options.domain) node.domain = options.domain;
  return node;
}

/** What several builders over one graph share: the names in use and the values already produced. */
interface Shared {
  names: NameGenerator;
  produced: Set<string>;
}

export interface BuilderOptions {
  /**
   * Names to avoid; pass the model-wide generator when building inside a subgraph so new names stay unique
   * across the model. Default: the names used in `graph`.
   */
  names?: NameGenerator;
}

/**
 * Appends to a graph. Node names follow torch.onnx exports: `scoped('model').scoped('layers.0')` makes nodes
 * named `/model/layers.0/MatMul`, `/model/layers.0/MatMul_1` with outputs `<node name>_output_0`.
 */
export class GraphBuilder {
  readonly graph: GraphProto;
  /** Prefix of default node names: '' at the top, `/model/layers.0` in a scope. */
  readonly scope: string;
  private readonly shared: Shared;

  constructor(graph: GraphProto | string = 'graph', options: BuilderOptions = {}) {
    this.graph = typeof graph === 'string' ? emptyGraph(graph) : graph;
    this.scope = '';
    const produced = new Set<string>();
    for (const v of this.graph.input) if (v.name) produced.add(v.name);
    for (const t of this.graph.initializer) if (t.name) produced.add(t.name);
    for (const n of this.graph.node) for (const o of n.output) if (o) produced.add(o);
    const names = options.names ?? new NameGenerator();
    names.reserveAll(usedNames(this.graph));
    this.shared = { names, produced };
  }

  get names(): NameGenerator {
    return this.shared.names;
  }

  /** A builder on the same graph whose default node names are prefixed with `<scope>/<sub>`. */
  scoped(sub: string): GraphBuilder {
    // Built without the constructor: the child shares this builder's state instead of rescanning the graph.
    const child = Object.create(GraphBuilder.prototype) as GraphBuilder;
    Object.assign(child, { graph: this.graph, scope: `${this.scope}/${sub}`, shared: this.shared });
    return child;
  }

  input(name: string, dtype: DataType, shape?: readonly Dim[]): string {
    this.claim(name);
    this.graph.input.push(valueInfo(name, dtype, shape));
    return name;
  }

  /** Declares a graph output; the value itself may be produced before or after. */
  output(name: string, dtype: DataType, shape?: readonly Dim[]): string {
    this.names.reserve(name);
    this.graph.output.push(valueInfo(name, dtype, shape));
    return name;
  }

  /** Records type information for an intermediate value (graph.value_info). */
  valueInfo(name: string, dtype: DataType, shape?: readonly Dim[]): string {
    this.names.reserve(name);
    this.graph.valueInfo.push(valueInfo(name, dtype, shape));
    return name;
  }

  initializer(name: string, dtype: DataType, dims: readonly number[], values: TensorValues): string {
    return this.addInitializer(makeTensor(name, dtype, dims, values));
  }

  addInitializer(t: TensorProto): string {
    if (!t.name) throw new GraphError('an initializer needs a name');
    this.claim(t.name);
    this.graph.initializer.push(t);
    return t.name;
  }

  /**
   * Appends a node and returns its output names. `outputs` is either the names to use or how many fresh ones
   * to make (default 1); `attrs` follows `toAttributes` (plain JS values, or constructors from attributes.ts).
   */
  node(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[] | number = 1,
    attrs?: AttrInput,
    options: NodeOptions = {},
  ): string[] {
    const name = options.name ?? this.names.fresh(this.scope ? `${this.scope}/${opType}` : opType);
    this.names.reserve(name);
    let outs: string[];
    if (typeof outputs === 'number') {
      outs = Array.from({ length: outputs }, (_, i) => this.names.fresh(`${name}_output_${i}`));
      for (const o of outs) this.shared.produced.add(o);
    } else {
      outs = [...outputs];
      for (const o of outs) if (o) this.claim(o);
    }
    this.graph.node.push(makeNode(opType, inputs, outs, attrs, { ...options, name }));
    return outs;
  }

  /** A single-output node; returns its output name. */
  op(opType: string, inputs: readonly string[], attrs?: AttrInput, options?: NodeOptions): string {
    return this.node(opType, inputs, 1, attrs, options)[0];
  }

  /** A Constant node holding the given tensor; returns its output name. */
  constant(dtype: DataType, dims: readonly number[], values: TensorValues, options?: NodeOptions): string {
    const value = makeTensor('', dtype, dims, values);
    delete value.name; // Constant values are anonymous, as exporters write them
    return this.op('Constant', [], [tensorAttr('value', value)], options);
  }

  /** A name is produced once per graph (SSA): a second producer is a bug in the caller. */
  private claim(name: string): void {
    if (this.shared.produced.has(name)) throw new GraphError(`value '${name}' is already produced in graph '${this.graph.name ?? ''}'`);
    this.shared.produced.add(name);
    this.names.reserve(name);
  }
}

export interface ModelOptions {
  /** Opset per domain, e.g. `{ '': 17, 'com.microsoft': 1 }` (default `{ '': 17 }`). */
  opsets?: Readonly<Record<string, number>>;
  /** Default: the IR version that introduced the default-domain opset. */
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  /** metadata_props entries. */
  metadata?: Readonly<Record<string, string>>;
}

/** The IR version each default-domain opset came with (onnx.helper's VERSION_TABLE). */
export function irVersionForOpset(opset: number): number {
  const table: [number, number][] = [
    [23, 11],
    [21, 10],
    [19, 9],
    [15, 8],
    [12, 7],
    [11, 6],
    [10, 5],
    [9, 4],
  ];
  for (const [from, ir] of table) if (opset >= from) return ir;
  return 3;
}

export function modelFrom(graph: GraphProto, options: ModelOptions = {}): ModelProto {
  const opsets = options.opsets ?? { '': 17 };
  const main = opsets[''] ?? opsets['ai.onnx'];
  const model: ModelProto = {
    irVersion: options.irVersion ?? irVersionForOpset(main ?? 17),
    opsetImport: Object.entries(opsets).map(([domain, version]) => ({ domain, version })),
    graph,
    metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
    trainingInfo: [],
    functions: [],
    configuration: [],
  };
  if (options.producerName !== undefined) model.producerName = options.producerName;
  if (options.producerVersion !== undefined) model.producerVersion = options.producerVersion;
  if (options.docString !== undefined) model.docString = options.docString;
  return model;
}
