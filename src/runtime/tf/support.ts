// Whether the TensorFlow.js executor can run a model, decided before anything runs: every node needs a
// registry entry for its opset that accepts its attributes, and every value crossing the model's boundary needs
// an element type tfjs can hold. All problems are collected into one error, grouped by op type.
import { ModelError, type OnnxModel } from '../../onnx/model.js';
import { nodeLabel } from '../../onnx/graph.js';
import { dtypeName } from '../../onnx/dtypes.js';
import type { GraphProto, NodeProto, TypeProto } from '../../onnx/types.js';
import { tfTypeOf } from './dtypes.js';
import { normalizeDomain, type OpRegistry } from './registry.js';

export interface SupportProblem {
  /** `Op` for the default domain, `domain:Op` otherwise; '' for problems that are not about a node. */
  op: string;
  /** The first node with this problem, as nodeLabel prints it, or the value concerned. */
  where: string;
  /** How many nodes share the op and reason. */
  count: number;
  reason: string;
}

/** Raised by compile when the model cannot run; `problems` has the details, the message one line of them. */
export class UnsupportedModelError extends ModelError {
  constructor(
    readonly source: string,
    readonly problems: SupportProblem[],
  ) {
    super(`${source}: the tf engine cannot run this model: ${problems.map(describe).join('; ')}`);
    this.name = 'UnsupportedModelError';
  }
}

function describe(p: SupportProblem): string {
  const more = p.count > 1 ? ` and ${p.count - 1} more` : '';
  return p.op ? `${p.op} (${p.reason}; node ${p.where}${more})` : `${p.where}: ${p.reason}`;
}

/** The opset a model imports for a domain; an unimported custom domain counts as version 1. */
export function opsetFor(model: OnnxModel, domain: string | undefined): number {
  return model.opset(normalizeDomain(domain)) ?? 1;
}

function opName(node: NodeProto): string {
  const domain = normalizeDomain(node.domain);
  return domain ? `${domain}:${node.opType}` : (node.opType ?? '?');
}

function nodeProblem(node: NodeProto, registry: OpRegistry, opset: number): string | undefined {
  const def = registry.resolve(node.domain, node.opType ?? '', opset);
  if (!def) return registry.has(node.domain, node.opType ?? '') ? `not implemented for opset ${opset}` : 'unsupported op';
  try {
    const why = def.unsupported?.(node, opset);
    return why ? `unsupported: ${why}` : undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

function typeProblem(type: TypeProto | undefined): string | undefined {
  if (!type) return undefined;
  if (!type.tensorType) return 'not a tensor (sequences, maps and optionals are not supported)';
  const elem = type.tensorType.elemType;
  if (elem === undefined || tfTypeOf(elem)) return undefined;
  let name: string;
  try {
    name = dtypeName(elem);
  } catch {
    name = String(elem);
  }
  return `element type ${name} cannot be held by TensorFlow.js`;
}

/** Every reason the executor cannot run the model (empty when it can). */
export function supportProblems(model: OnnxModel, registry: OpRegistry): SupportProblem[] {
  const graph: GraphProto = model.graph;
  const grouped = new Map<string, SupportProblem>();
  for (const node of graph.node) {
    const reason = nodeProblem(node, registry, opsetFor(model, node.domain));
    if (!reason) continue;
    const key = `${opName(node)}|${reason}`;
    const seen = grouped.get(key);
    if (seen) seen.count++;
    else grouped.set(key, { op: opName(node), where: nodeLabel(node, graph), count: 1, reason });
  }
  const problems = [...grouped.values()];
  for (const [kind, values] of [['input', graph.input], ['output', graph.output]] as const) {
    for (const v of values) {
      const why = typeProblem(v.type);
      if (why) problems.push({ op: '', where: `${kind} '${v.name}'`, count: 1, reason: why });
    }
  }
  for (const t of graph.initializer) {
    if (!tfTypeOf(t.dataType)) problems.push({ op: '', where: `initializer '${t.name}'`, count: 1, reason: typeProblem({ tensorType: { elemType: t.dataType } }) ?? 'no element type' });
  }
  if (graph.sparseInitializer.length) problems.push({ op: '', where: 'graph', count: 1, reason: 'sparse initializers are not supported' });
  return problems;
}
