// Which tensors calibration observes. By default what a quantizer needs ranges for: the activation inputs of
// MatMul, Gemm and Conv (the tensors ONNX Runtime's calibrators observe). Every node output as well only when
// asked (set 'all'): statistics for analysis, and what the NaN/Inf check re-runs a failing batch with. Weights
// are not activations: initializers and Constant outputs are never targets. Only float tensors are observed;
// where the graph does not declare a type, ONNX Runtime's output types decide later (collect.ts), since a graph
// without value_info says nothing about most intermediates.
import { GraphIndex, topologicalOrder } from '../onnx/graph.js';
import { OptionError } from '../errors.js';
import { ModelError, type OnnxModel } from '../onnx/model.js';
import { DataType, type NodeProto } from '../onnx/types.js';

export const DEFAULT_INPUT_OPS: readonly string[] = ['MatMul', 'Gemm', 'Conv'];

/** Ops whose outputs are weights rather than activations. */
const CONSTANT_OPS = new Set(['Constant']);

/**
 * The default candidates: 'inputs', the activation inputs of MatMul/Gemm/Conv (what their quantizers read), or
 * 'all', those and every node output.
 */
export type TargetSet = 'inputs' | 'all';

export const TARGET_SETS: readonly TargetSet[] = ['inputs', 'all'];

/**
 * Candidates come from the first of `names`, `inputsOf` and `ops` given, else from `set` (default 'inputs');
 * include/exclude filter them.
 */
export interface TargetOptions {
  /** The default candidates when none of names, inputsOf and ops is given; default 'inputs'. */
  set?: TargetSet;
  /** Exactly these tensors (node outputs, graph inputs or initializers of the main graph), instead of the default. */
  names?: readonly string[];
  /** The inputs and outputs of nodes of these op types (as ORT's op_types_to_calibrate), instead of the default. */
  ops?: readonly string[];
  /** Only the activation inputs of nodes of these op types (what a quantizer of those ops reads), instead of the default. */
  inputsOf?: readonly string[];
  /** Keep only the names this matches. */
  include?: RegExp;
  /** Drop the names this matches. */
  exclude?: RegExp;
}

export interface Target {
  name: string;
  /** The node that computes it; absent for graph inputs and initializers. */
  producer?: { node: string; opType: string };
  /** Position of the producer in topological order; -1 for graph inputs and initializers. */
  rank: number;
  /** Element type where the graph declares it; undefined when only ONNX Runtime knows. */
  dtype?: DataType;
}

/** The element types observed; ORT hands float16 over as bits, which collect.ts widens. */
export function isObservedType(dtype: DataType): boolean {
  return dtype === DataType.FLOAT || dtype === DataType.FLOAT16;
}

/** Targets of the main graph in topological order (the order the NaN/Inf check reports in). */
export function selectTargets(model: OnnxModel, which: TargetOptions | TargetSet = {}): Target[] {
  const options: TargetOptions = typeof which === 'string' ? { set: which } : which;
  if (options.set !== undefined && !TARGET_SETS.includes(options.set)) {
    throw new OptionError(`calibration targets: unknown set '${String(options.set)}' (known: ${TARGET_SETS.join(', ')})`);
  }
  const graph = model.graph;
  const index = new GraphIndex(graph);
  const order = topologicalOrder(graph, { index });
  const declared = declaredTypes(model);
  const rank = new Map(order.map((node, i) => [node, i]));
  const position = new Map(graph.node.map((node, i) => [node, i]));
  const targets: Target[] = [];
  for (const name of candidateNames(model, index, order, options)) {
    // search() rather than test(): a /g or /y pattern would make test() depend on the previous call.
    if (options.include && name.search(options.include) < 0) continue;
    if (options.exclude && name.search(options.exclude) >= 0) continue;
    const dtype = declared.get(name);
    if (dtype !== undefined && !isObservedType(dtype)) continue;
    const node = index.producer(name);
    targets.push({
      name,
      // An unnamed node is named by its position, as nodeLabel (graph.ts) does.
      ...(node ? { producer: { node: node.name || `#${position.get(node)}`, opType: node.opType ?? '' } } : {}),
      rank: node ? rank.get(node)! : -1,
      ...(dtype !== undefined ? { dtype } : {}),
    });
  }
  // Stable: graph inputs first, then by producer, outputs of one node in their order.
  return targets.sort((a, b) => a.rank - b.rank);
}

function candidateNames(model: OnnxModel, index: GraphIndex, order: readonly NodeProto[], options: TargetOptions): string[] {
  if (options.names) return namedCandidates(model, index, options.names);
  if (options.inputsOf) return candidatesOf(order, index, new Set(options.inputsOf), new Set());
  if (options.ops) return candidatesOf(order, index, new Set(options.ops), new Set(options.ops));
  return candidatesOf(order, index, new Set(DEFAULT_INPUT_OPS), options.set === 'all' ? 'all' : new Set());
}

/** Activation inputs of nodes of `inputsOf` and outputs of nodes of `outputsOf`, in topological order. */
function candidatesOf(order: readonly NodeProto[], index: GraphIndex, inputsOf: ReadonlySet<string>, outputsOf: ReadonlySet<string> | 'all'): string[] {
  const names = new Set<string>();
  const isActivation = (name: string): boolean =>
    name !== '' && index.initializer(name) === undefined && !CONSTANT_OPS.has(index.producer(name)?.opType ?? '');
  for (const node of order) {
    const op = node.opType ?? '';
    if (inputsOf.has(op)) for (const name of node.input) if (isActivation(name)) names.add(name);
    if (outputsOf === 'all' || outputsOf.has(op)) for (const name of node.output) if (isActivation(name)) names.add(name);
  }
  return [...names];
}

function namedCandidates(model: OnnxModel, index: GraphIndex, names: readonly string[]): string[] {
  for (const name of names) {
    if (!index.producer(name) && !index.graphInput(name) && !index.initializer(name)) {
      throw new ModelError(`${model.source}: no tensor '${name}' in the main graph to calibrate`);
    }
  }
  return [...new Set(names)];
}

/** Element types the graph states: initializers, graph inputs and outputs, value_info. */
function declaredTypes(model: OnnxModel): Map<string, DataType> {
  const graph = model.graph;
  const types = new Map<string, DataType>();
  for (const v of [...graph.valueInfo, ...graph.input, ...graph.output]) {
    const t = v.type?.tensorType?.elemType;
    if (v.name && t) types.set(v.name, t);
  }
  for (const t of graph.initializer) if (t.name && t.dataType) types.set(t.name, t.dataType);
  return types;
}
