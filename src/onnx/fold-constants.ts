// Weights hidden behind constant subgraphs become initializers. Exporters (tf2onnx, Paddle2ONNX, older PyTorch,
// hand-edited graphs) store weights as Constant nodes, or compute them from constants through Identity, Cast
// (float16 -> float32), Transpose, Reshape, Unsqueeze, Concat... chains; quantizers only see initializers. Every
// value computed from constants only is evaluated once in ONNX Runtime (a small model whose outputs are those
// values, run with no inputs: no op is re-implemented here) and the chains behind it are removed; what is not
// constant is left as it was.
//
// What is folded: Constant nodes (every value* form), and any deterministic default-domain op whose inputs are all
// constant, except where that would grow the model: a node that produces more elements than it reads, beyond a
// small allowance (Expand, Tile, ConstantOfShape, Range, broadcasts, outer products to big tensors), stays a node
// and its inputs are folded instead. Random ops, ops with subgraphs and sequence/optional ops are never folded, and
// a value a subgraph reads from the main graph keeps its producer (the editor does not rename subgraph captures).
//
// A folded value keeps its name when the name is free once its producer is gone (so weight names in plans and
// reports stay the exporter's); it gets a fresh one when a node or a value_info entry still uses it. Graph outputs
// keep their name in every case. A value several nodes read becomes one initializer they all read.
//
// IR < 4 listed every initializer as a graph input as well; those entries are dropped (the initializers are
// weights, not inputs) and the model moves to IR 4. At IR >= 4 an input with a same-name initializer is an
// overridable default: it stays an input, but like select.ts does, folding treats its initializer as the weight.
import { AttributeType, type GraphProto, type NodeProto, type TensorProto } from './types.js';
import { attributeType, findAttr } from './attributes.js';
import { byteSize, dtypeInfo, dtypeName, ALL_DTYPES } from './dtypes.js';
import { GraphEditor } from './editor.js';
import { emptyGraph, makeNode, modelFrom } from './builder.js';
import { GraphIndex, NameGenerator, nodeLabel, topologicalOrder } from './graph.js';
import { OnnxModel } from './model.js';
import { elementCount, tensorValues, type DecodedTensor } from './tensor.js';
import { fromOrtTensor } from '../runtime/ort-tensor.js';
import { RuntimeError, Session, type Outputs, type SessionOptions } from '../runtime/session.js';

export interface FoldOptions {
  /** ONNX Runtime threads and provider for the evaluation (CPU, ORT's default threads unless given). */
  session?: Pick<SessionOptions, 'intraOpThreads' | 'executionProvider'>;
  /**
   * Elements a node may produce beyond the number it reads (default 65,536, 256 KiB of float32): past that it
   * stays a node, so a constant Expand or ConstantOfShape to a big tensor is not written into the file.
   */
  maxGrowth?: number;
  /**
   * Which values to fold, by the value and the nodes that read it once folding is done (default: every one).
   * A value left out keeps its producer, and so the chain behind it (a graph output has no readers).
   */
  select?: (value: string, readers: readonly NodeProto[]) => boolean;
}

/** One initializer that folding added. */
export interface FoldedValue {
  /** Its name in the folded model. */
  name: string;
  /** The value's name in the input model (differs from `name` only when that name is still in use). */
  from: string;
  dtype: string;
  dims: number[];
  bytes: number;
  /** Op types of the removed nodes it was computed by, in graph order without repeats ('Constant' first for a stored weight). */
  ops: string[];
  /** How many removed nodes it was computed by (nodes shared with other folded values count for each). */
  nodes: number;
}

/** A constant node folding left in place, and why. */
export interface KeptNode {
  node: string;
  op: string;
  reason: string;
}

export interface FoldReport {
  values: FoldedValue[];
  /** Bytes of the initializers added. */
  bytes: number;
  /** Nodes removed, per op type. */
  removed: Record<string, number>;
  /** IR < 4 weights that were also listed as graph inputs: now plain initializers. */
  weightInputs: string[];
  /** Overridable initializers (IR >= 4 graph inputs) that only removed nodes read: gone with their chains. */
  removedInputs: string[];
  kept: KeptNode[];
  irVersion: { from?: number; to?: number };
}

export interface FoldResult {
  /** The folded model; the input model itself when there was nothing to fold. */
  model: OnnxModel;
  report: FoldReport;
}

const DEFAULT_MAX_GROWTH = 65_536;
/**
 * A chain that would copy more elements than this of data the model keeps anyway (a tied embedding that Gather
 * reads and, transposed, the output projection) is left as it is: the file would hold the weight twice.
 */
const DUPLICATE_LIMIT = 1024;

/** Ops whose output is not a function of their inputs, holds a subgraph, or is not a tensor. */
const NEVER_FOLDED = /^(Random\w*|Multinomial|Bernoulli|Dropout|If|Loop|Scan|Sequence\w*|SplitToSequence|ConcatFromSequence|Optional\w*)$/;

/** Element types onnxruntime-node can hand back (its names, as session metadata gives them). */
const FETCHABLE = new Set(ALL_DTYPES.flatMap((d) => (d.ort ? [d.ort as string] : [])));

/** Folds every constant subgraph of the main graph into initializers; see the top of this file. */
export async function foldConstants(model: OnnxModel, options: FoldOptions = {}): Promise<FoldResult> {
  const g = model.graph;
  const index = new GraphIndex(g);
  const order = topologicalOrder(g, { index });
  const weightInputs = (model.proto.irVersion ?? 0) < 4 ? g.input.filter((v) => index.initializer(v.name ?? '')).map((v) => v.name!) : [];
  let candidates = foldableNodes(g, index, order);
  if (options.select) candidates = selectedCones(candidates, index, options.select);
  const empty: FoldReport = { values: [], bytes: 0, removed: {}, weightInputs: [], removedInputs: [], kept: [], irVersion: {} };
  if (candidates.length === 0 && weightInputs.length === 0) return { model, report: empty };

  const evaluator = new Evaluator(model, candidates, index, options.session ?? {});
  try {
    const decision = await decide(candidates, index, evaluator, { maxGrowth: options.maxGrowth ?? DEFAULT_MAX_GROWTH, ...(options.select ? { select: options.select } : {}) });
    return edit(model, index, decision, evaluator, weightInputs);
  } finally {
    await evaluator.dispose();
  }
}

/**
 * The nodes that could be folded as far as their op and the constness of their inputs go, in topological order:
 * deterministic default-domain ops whose every input is an initializer, a sparse initializer or such a node's output.
 */
export function foldableNodes(g: GraphProto, index = new GraphIndex(g), order = topologicalOrder(g, { index })): NodeProto[] {
  const sparse = new Set(g.sparseInitializer.flatMap((s) => (s.values?.name ? [s.values.name] : [])));
  const constant = new Set<string>();
  const isConstant = (name: string): boolean => name === '' || constant.has(name) || index.initializer(name) !== undefined || sparse.has(name);
  const candidates: NodeProto[] = [];
  for (const node of order) {
    if (!foldableOp(node) || !node.input.every(isConstant)) continue;
    candidates.push(node);
    for (const o of node.output) if (o) constant.add(o);
  }
  return candidates;
}

/** The candidates some selected value is computed from: nothing else needs evaluating. */
function selectedCones(candidates: readonly NodeProto[], index: GraphIndex, select: NonNullable<FoldOptions['select']>): NodeProto[] {
  const inside = new Set(candidates);
  const outputs = new Set(index.graph.output.map((o) => o.name ?? ''));
  const wanted = new Set<NodeProto>();
  const stack: NodeProto[] = [];
  for (const node of candidates) {
    for (const o of node.output) {
      if (!o) continue;
      const readers = index.consumers(o).filter((c) => !inside.has(c));
      if ((readers.length > 0 || outputs.has(o)) && select(o, readers)) stack.push(node);
    }
  }
  while (stack.length) {
    const node = stack.pop()!;
    if (wanted.has(node)) continue;
    wanted.add(node);
    for (const i of node.input) {
      const p = i ? index.producer(i) : undefined;
      if (p && inside.has(p)) stack.push(p);
    }
  }
  return candidates.filter((n) => wanted.has(n));
}

function foldableOp(node: NodeProto): boolean {
  const op = node.opType ?? '';
  if ((node.domain ?? '') !== '' && node.domain !== 'ai.onnx') return false;
  if (NEVER_FOLDED.test(op)) return false;
  return !node.attribute.some((a) => a.g || a.graphs.length);
}

/** The tensor of a Constant node's `value` attribute: stored data, moved without running anything. */
function storedValue(node: NodeProto): TensorProto | undefined {
  if (node.opType !== 'Constant') return undefined;
  const a = findAttr(node, 'value');
  return a && attributeType(a) === AttributeType.TENSOR ? a.t : undefined;
}

/** Elements a Constant node reads from its attribute (its only input). */
function attributeElements(node: NodeProto): number {
  const a = node.attribute.find((x) => x.name?.startsWith('value') || x.name === 'sparse_value');
  if (!a) return 0;
  if (a.sparseTensor) return elementCount(a.sparseTensor.values?.dims ?? []) + elementCount(a.sparseTensor.indices?.dims ?? []);
  if (a.t) return elementCount(a.t.dims);
  return Math.max(1, a.floats.length, a.ints.length, a.strings.length);
}

interface Meta {
  type: string;
  isTensor: boolean;
  /** Known only when ONNX Runtime inferred every dimension (and the value is not a scalar, which reads the same as unknown). */
  dims?: number[];
}

/**
 * The constant subgraph as a model of its own, opened in ONNX Runtime once: its inferred output types and shapes
 * come at load, values are fetched as decide() asks for them.
 */
class Evaluator {
  private session?: Session;
  private readonly meta = new Map<string, Meta>();
  private readonly fetched = new Map<string, DecodedTensor>();
  /** Values ORT failed to compute or hand back, with its message. */
  readonly failed = new Map<string, string>();
  /** Why evaluation is impossible (ORT refused the subgraph); every computed value is then left alone. */
  broken?: string;
  private opened = false;

  constructor(
    private readonly model: OnnxModel,
    private readonly candidates: readonly NodeProto[],
    private readonly index: GraphIndex,
    private readonly options: NonNullable<FoldOptions['session']>,
  ) {}

  /** Whether there is anything ORT must compute (stored Constant values need no session). */
  get needed(): boolean {
    return this.candidates.some((n) => !storedValue(n));
  }

  async open(): Promise<void> {
    if (this.opened) return;
    this.opened = true;
    if (!this.needed) return;
    const graph = emptyGraph(`${this.model.graph.name ?? 'graph'}_constants`);
    // ORT hands a sparse Constant's output back as a sparse value onnxruntime-node cannot read; an Identity after
    // it makes the value dense.
    const names = new NameGenerator(this.model.proto);
    graph.node = this.candidates.flatMap((n) => {
      if (n.opType !== 'Constant' || !findAttr(n, 'sparse_value')) return [n];
      const sparse = names.fresh(`${n.output[0]}/sparse`);
      return [{ ...n, output: [sparse] }, makeNode('Identity', [sparse], [n.output[0]], undefined, { name: names.fresh(`${n.output[0]}/dense`) })];
    });
    const read = new Set(this.candidates.flatMap((n) => n.input));
    graph.initializer = this.model.graph.initializer.filter((t) => read.has(t.name ?? ''));
    graph.sparseInitializer = this.model.graph.sparseInitializer.filter((s) => read.has(s.values?.name ?? ''));
    // Untyped outputs: onnxruntime-node infers their types (see src/runtime/capture.ts).
    graph.output = this.candidates.flatMap((n) => n.output.filter(Boolean).map((name) => ({ name, metadataProps: [] })));
    const proto = modelFrom(graph, { opsets: Object.fromEntries(this.model.proto.opsetImport.map((o) => [o.domain ?? '', o.version ?? 1])) });
    // Initializers that are not graph inputs need IR 4; the ops' meaning depends on the opsets only.
    proto.irVersion = Math.max(this.model.proto.irVersion ?? 4, 4);
    try {
      this.session = await Session.create(new OnnxModel(proto, this.model.baseDir, `${this.model.source} (constant subgraph)`), {
        ...this.options,
        graphOptimization: 'disabled',
      });
    } catch (e) {
      if (!(e instanceof RuntimeError)) throw e;
      this.broken = `ONNX Runtime cannot evaluate the constant subgraph (${e.detail})`;
      return;
    }
    for (const m of this.session.outputMetadata) {
      const shape = m.isTensor ? m.shape : [];
      const dims = shape.length > 0 && shape.every((d) => typeof d === 'number' && d >= 0) ? (shape as number[]) : undefined;
      this.meta.set(m.name, { type: m.isTensor ? m.type : 'non-tensor', isTensor: m.isTensor, ...(dims ? { dims } : {}) });
    }
  }

  /** Whether ORT can hand the value back to JavaScript (as far as is known before trying). */
  fetchable(name: string): boolean {
    const m = this.meta.get(name);
    return !!m && m.isTensor && FETCHABLE.has(m.type) && !this.failed.has(name);
  }

  typeOf(name: string): string {
    return this.meta.get(name)?.type ?? 'unknown';
  }

  /** Number of elements of a constant value, when known without running anything more. */
  elements(name: string): number | undefined {
    const init = this.index.initializer(name);
    if (init) return elementCount(init.dims);
    const s = this.model.graph.sparseInitializer.find((x) => x.values?.name === name);
    if (s) return elementCount(s.dims);
    const producer = this.index.producer(name);
    const stored = producer && storedValue(producer);
    if (stored) return elementCount(stored.dims);
    const known = this.fetched.get(name)?.dims ?? this.meta.get(name)?.dims;
    return known ? elementCount(known) : undefined;
  }

  /** Whether the value was fetched, or tried and failed. */
  has(name: string): boolean {
    return this.fetched.has(name) || this.failed.has(name);
  }

  /** Computes the values; one ORT cannot compute or hand back is tried alone, and recorded in `failed`. */
  async fetch(names: readonly string[]): Promise<void> {
    if (!this.session || names.length === 0) return;
    let out: Outputs;
    try {
      out = await this.session.run({}, names);
    } catch (e) {
      if (!(e instanceof RuntimeError)) throw e;
      if (names.length === 1) this.failed.set(names[0], e.detail);
      else for (const name of names) await this.fetch([name]);
      return;
    }
    for (const name of names) this.fetched.set(name, fromOrtTensor(out[name], name));
  }

  /** A folded value's contents: a stored Constant's tensor as it is, or what ORT computed. */
  value(name: string): DecodedTensor {
    const producer = this.index.producer(name);
    const stored = producer && storedValue(producer);
    if (stored) return tensorValues(stored, this.model.rawBytes(stored));
    const v = this.fetched.get(name);
    if (!v) throw new Error(`constant '${name}' was not evaluated`); // a bug in decide(), not bad input
    return v;
  }

  async dispose(): Promise<void> {
    await this.session?.dispose();
  }
}

interface Decision {
  /** Nodes removed. */
  folded: Set<NodeProto>;
  /** Values of removed nodes that something left in the graph reads (or the graph returns), in graph order. */
  frontier: string[];
  /** Candidates left in place, with the reason (null: the caller did not select their value). */
  kept: Map<NodeProto, string | null>;
}

interface Rules {
  maxGrowth: number;
  select?: FoldOptions['select'];
}

/**
 * Which candidates are folded. Starts from all of them and takes back, until nothing changes, the nodes whose
 * output a subgraph reads, that would copy data the model keeps anyway, that grow the data past the allowance,
 * whose value the caller did not select or ORT cannot hand back; values whose size ORT could not infer at load
 * are fetched to measure them.
 */
async function decide(candidates: readonly NodeProto[], index: GraphIndex, ev: Evaluator, rules: Rules): Promise<Decision> {
  const kept = new Map<NodeProto, string | null>();
  const keep = (node: NodeProto, reason: string | null): void => {
    if (!kept.has(node)) kept.set(node, reason);
  };
  await ev.open();
  if (ev.broken) for (const n of candidates) if (!storedValue(n)) keep(n, ev.broken);
  const graphOutputs = new Set(index.graph.output.map((o) => o.name ?? ''));
  for (;;) {
    const folded = new Set<NodeProto>();
    const constant = new Set<string>();
    for (const node of candidates) {
      if (kept.has(node)) continue;
      // An input no node produces is an initializer: candidates read nothing else.
      if (!node.input.every((i) => i === '' || constant.has(i) || !index.producer(i))) continue;
      folded.add(node);
      for (const o of node.output) if (o) constant.add(o);
    }
    const staying = (name: string): NodeProto[] => index.consumers(name).filter((c) => !folded.has(c));
    const frontier = [...folded].flatMap((n) => n.output.filter((o) => o && (graphOutputs.has(o) || staying(o).length > 0)));
    const before = kept.size;

    for (const v of frontier) {
      const readers = staying(v);
      if (readers.some((c) => index.implicitInputs(c).includes(v))) keep(index.producer(v)!, `a subgraph reads '${v}'`);
      else if (rules.select && !rules.select(v, readers)) keep(index.producer(v)!, null);
    }
    const need = new Set<string>();
    for (const node of folded) {
      if (storedValue(node)) continue;
      const reads = [...new Set(node.input.filter(Boolean))];
      const writes = node.output.filter(Boolean);
      const unknown = [...reads, ...writes].filter((name) => ev.elements(name) === undefined);
      for (const name of unknown) {
        if (ev.fetchable(name)) need.add(name);
        else keep(index.producer(name)!, `the size of '${name}' (${ev.typeOf(name)}) is unknown until it runs and cannot be read back`);
      }
      if (unknown.length) continue;
      // An Identity copies nothing: edit() makes its readers read its input.
      const copied = node.opType === 'Identity' ? undefined : reads.find((name) => ev.elements(name)! > DUPLICATE_LIMIT && (graphOutputs.has(name) || staying(name).length > 0));
      const inElements = node.opType === 'Constant' ? attributeElements(node) : sum(reads.map((name) => ev.elements(name)!));
      const outElements = sum(writes.map((name) => ev.elements(name)!));
      if (copied) keep(node, `the model keeps '${copied}' (${ev.elements(copied)} elements, read by ${describeReaders(staying(copied), index)}): folding would store it twice`);
      else if (outElements > Math.max(inElements, rules.maxGrowth)) keep(node, `it makes ${outElements} elements from ${inElements}`);
    }
    const aliases = aliasesOf(frontier, index, folded);
    for (const v of frontier) {
      const producer = index.producer(v)!;
      if (kept.has(producer) || storedValue(producer) || ev.has(v) || aliases.has(v)) continue;
      if (ev.fetchable(v)) need.add(v);
      else keep(producer, `its output '${v}' is ${ev.typeOf(v)}, which ONNX Runtime cannot hand back`);
    }
    if (kept.size > before) continue;
    const missing = [...need].filter((n) => !ev.has(n));
    if (missing.length === 0) return { folded, frontier, kept };
    await ev.fetch(missing);
    for (const name of missing) {
      const why = ev.failed.get(name);
      if (why !== undefined) keep(index.producer(name)!, `ONNX Runtime cannot compute '${name}' (${why})`);
    }
  }
}

function describeReaders(readers: readonly NodeProto[], index: GraphIndex): string {
  if (readers.length === 0) return 'the graph outputs';
  const first = readers[0].name || nodeLabel(readers[0], index.graph);
  return readers.length === 1 ? first : `${first} and ${readers.length - 1} more`;
}

function edit(model: OnnxModel, index: GraphIndex, decision: Decision, ev: Evaluator, weightInputs: readonly string[]): FoldResult {
  const { folded, frontier } = decision;
  const g = model.graph;
  const removed: Record<string, number> = {};
  for (const n of folded) removed[n.opType ?? ''] = (removed[n.opType ?? ''] ?? 0) + 1;
  const values: FoldedValue[] = [];
  let current = model;
  let removedInputs: string[] = [];

  if (folded.size > 0) {
    // First edit: the chains go and their frontier values become initializers under fresh names (the editor hands
    // out only unused names, and the values' own names are still taken by the nodes being removed).
    const first = new GraphEditor(model);
    for (const n of folded) first.remove(n);
    const contents = new Map<string, DecodedTensor>();
    const names = new Map<string, string>();
    const aliases = aliasesOf(frontier, index, folded);
    for (const v of frontier) {
      if (aliases.has(v)) continue;
      const t = ev.value(v);
      contents.set(v, t);
      names.set(v, first.tensor(v, t.dtype, t.dims, t.data));
      first.renameReads(v, names.get(v)!);
    }
    for (const [v, source] of aliases) first.renameReads(v, names.get(source) ?? source);
    const done = first.finish();
    current = done.model;
    removedInputs = done.removedInputs;
    // Second edit: each value takes its own name back where nothing uses it any more.
    const second = new GraphEditor(current);
    let restored = false;
    for (const v of frontier) {
      if (aliases.has(v) || second.names.has(v)) continue;
      const t = contents.get(v)!;
      const name = second.tensor(v, t.dtype, t.dims, t.data);
      second.renameReads(names.get(v)!, name);
      names.set(v, name);
      restored = true;
    }
    if (restored) current = second.finish().model;

    for (const v of frontier) {
      const source = aliases.get(v);
      const t = contents.get(source ?? v);
      const init = source !== undefined ? index.initializer(source) : undefined;
      const cone = coneOf(v, index, folded);
      values.push({
        name: source !== undefined ? (names.get(source) ?? source) : names.get(v)!,
        from: v,
        dtype: dtypeName(t?.dtype ?? init?.dataType),
        dims: [...(t?.dims ?? init?.dims ?? [])],
        bytes: source !== undefined ? 0 : bytesOf(t!),
        ops: [...new Set(g.node.filter((n) => cone.has(n)).map((n) => n.opType ?? ''))],
        nodes: cone.size,
      });
    }
  }

  const stillInputs = weightInputs.filter((name) => current.graph.input.some((v) => v.name === name));
  if (stillInputs.length) current = withoutWeightInputs(current, new Set(stillInputs));
  return {
    model: current,
    report: {
      values,
      bytes: sum(values.map((v) => v.bytes)),
      removed,
      weightInputs: stillInputs,
      removedInputs: removedInputs.filter((n) => !weightInputs.includes(n)),
      kept: [...decision.kept].flatMap(([n, reason]) => (reason === null ? [] : [{ node: n.name || nodeLabel(n, g), op: n.opType ?? '', reason }])),
      irVersion: current.proto.irVersion !== model.proto.irVersion ? { from: model.proto.irVersion, to: current.proto.irVersion } : {},
    },
  };
}

function bytesOf(t: DecodedTensor): number {
  if (dtypeInfo(t.dtype).kind === 'string') return sum((t.data as string[]).map((s) => Buffer.byteLength(s)));
  return byteSize(t.dtype, elementCount(t.dims));
}

/**
 * Frontier values only Identity nodes separate from a constant the model keeps (an initializer, or another
 * frontier value), with that constant: PyTorch exports a parameter two nodes share as `Identity(weight)`, and its
 * readers should read the weight itself rather than a copy. A graph output keeps its own name, so it is copied.
 */
function aliasesOf(frontier: readonly string[], index: GraphIndex, folded: ReadonlySet<NodeProto>): Map<string, string> {
  const inFrontier = new Set(frontier);
  const outputs = new Set(index.graph.output.map((o) => o.name ?? ''));
  const aliases = new Map<string, string>();
  for (const v of frontier) {
    if (outputs.has(v)) continue;
    let source = v;
    for (let p = index.producer(source); p && folded.has(p) && p.opType === 'Identity'; p = index.producer(source)) source = p.input[0];
    if (source !== v && (!index.producer(source) || inFrontier.has(source))) aliases.set(v, source);
  }
  return aliases;
}

/** The removed nodes a value was computed by. */
function coneOf(value: string, index: GraphIndex, folded: ReadonlySet<NodeProto>): Set<NodeProto> {
  const cone = new Set<NodeProto>();
  const stack = [value];
  while (stack.length) {
    const p = index.producer(stack.pop()!);
    if (!p || !folded.has(p) || cone.has(p)) continue;
    cone.add(p);
    stack.push(...p.input.filter(Boolean));
  }
  return cone;
}

/**
 * Drops the graph-input entries of IR < 4 weights. The editor has no edit for this (it only drops an input together
 * with its initializer), so the copy is made here: the graph object and its input list are new, nothing else is
 * touched, and IR 4 is the first version where an initializer need not be an input.
 */
function withoutWeightInputs(model: OnnxModel, names: ReadonlySet<string>): OnnxModel {
  const graph = { ...model.graph, input: model.graph.input.filter((v) => !names.has(v.name ?? '')) };
  const irVersion = Math.max(model.proto.irVersion ?? 4, 4);
  return new OnnxModel({ ...model.proto, irVersion, graph }, model.baseDir, model.source);
}

/**
 * A `select` for foldConstants: values some node reads at one of the given input positions of its op type
 * (`{ MatMul: [1] }`: the right-hand side of a MatMul).
 */
export function readAt(positions: Readonly<Record<string, readonly number[]>>): NonNullable<FoldOptions['select']> {
  return (value, readers) => readers.some((n) => (positions[n.opType ?? ''] ?? []).some((k) => n.input[k] === value));
}

/** One line for reports: how many values were folded, from which ops, and their bytes. */
export function describeFolding(r: FoldReport): string {
  const parts: string[] = [];
  if (r.values.length) {
    const ops = Object.entries(r.removed)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([op, n]) => `${n} ${op}`)
      .join(', ');
    const named = r.values.slice(0, 3).map((v) => v.name).join(', ') + (r.values.length > 3 ? ', ...' : '');
    parts.push(`folded ${r.values.length} constant value${r.values.length === 1 ? '' : 's'} into initializers (${named}: ${formatBytes(r.bytes)}; removed ${ops})`);
  }
  if (r.weightInputs.length) parts.push(`${r.weightInputs.length} weight${r.weightInputs.length === 1 ? '' : 's'} listed as graph inputs (IR < 4) made plain initializers`);
  if (r.kept.length) parts.push(`${r.kept.length} constant node${r.kept.length === 1 ? '' : 's'} left in place (${r.kept[0].node}: ${r.kept[0].reason}${r.kept.length > 1 ? '; ...' : ''})`);
  return parts.join('; ');
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
