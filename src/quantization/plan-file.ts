// Plan files (`quantize --plan plan.json`): a per-node choice of format, bits, granularity and activation type,
// as JSON a user writes or edits. Schema (docs/plans.md has the long form):
//
//   {
//     "format": "onnx-compress.quant-plan", "version": 1,       (both optional)
//     "scheme": "w4a8",                                         (optional base: every node as that scheme writes it)
//     "nodes": [                                                (applied in order; a later entry wins for a node)
//       { "node": "/model/layers.0/mlp/down_proj/MatMul", "format": "qdq", "bits": 8, "activations": "uint8" },
//       { "pattern": "self_attn", "op": "MatMul", "format": "qdq", "bits": 8 },
//       { "pattern": "lm_head", "format": "float" }
//     ]
//   }
//
// An entry names its nodes exactly ("node": a node name, or a list) or by a regular expression tested against
// node and weight names ("pattern") among the op types its format rewrites, or those given ("op"). Every mistake is a one-line error
// naming the file and the entry (nodes[i]): a node that does not exist, a pattern that matches nothing, a
// format the op cannot take, bits the format cannot store, a block size that does not divide K with padding
// refused. A node matched by a pattern that its format cannot take stays float and is listed as skipped.
import { readFileSync } from 'node:fs';
import { GraphIndex, nodeLabel } from '../onnx/graph.js';
import type { OnnxModel } from '../onnx/model.js';
import type { NodeProto } from '../onnx/types.js';
import {
  gatherTarget,
  gatherVerdict,
  isDefaultDomain,
  NODE_FORMATS,
  planFromScheme,
  weightSpec,
  type NodeFormat,
  type NodePlan,
  type PlannedNode,
  type PlanRow,
  type QuantPlan,
} from './plan.js';
import { MAX_BITS, MIN_BITS } from './quantizers.js';
import { ALL_BITS, checkBlockSize, NBITS_BITS, QuantOptionError, resolveScheme, type SchemeOptions, type WeightParams } from './schemes.js';
import { inspectNode, WRITER_OPS, type SkippedNode } from './select.js';

export const PLAN_FORMAT = 'onnx-compress.quant-plan';
export const PLAN_VERSION = 1;

/** One entry of a plan file, as written. */
export interface PlanEntry {
  node?: string | string[];
  pattern?: string;
  op?: string | string[];
  format: NodeFormat | 'float';
  bits?: number;
  /** Weights in blocks of this size along the reduction axis. */
  blockSize?: number;
  /** Without blocks: 'channel' (one scale per output channel) or 'tensor'. */
  granularity?: 'tensor' | 'channel' | 'block';
  symmetric?: boolean;
  /** qdq only: also quantize the input activation (static, needs calibration), with these codes. */
  activations?: 'uint8' | 'int8';
  /** matmulnbits only: accuracy_level 0..4. */
  accuracyLevel?: number;
  /** A K that the block size does not divide: 'pad' (default) or 'refuse'. */
  padding?: 'pad' | 'refuse';
}

export interface PlanFile {
  format?: typeof PLAN_FORMAT;
  version?: typeof PLAN_VERSION;
  scheme?: string;
  schemeOptions?: SchemeOptions;
  nodes?: PlanEntry[];
}

/** Op types a pattern entry without "op" considers, per format. */
const PATTERN_OPS: Readonly<Record<NodeFormat | 'float', readonly string[]>> = {
  qdq: WRITER_OPS.qdq,
  matmulnbits: WRITER_OPS.matmulnbits,
  dynamic: WRITER_OPS.dynamic,
  'gather-block': ['Gather'],
  float: ['MatMul', 'Gemm', 'Conv', 'Gather'],
};

const ENTRY_KEYS = new Set(['node', 'pattern', 'op', 'format', 'bits', 'blockSize', 'granularity', 'symmetric', 'activations', 'accuracyLevel', 'padding']);
const FILE_KEYS = new Set(['format', 'version', 'scheme', 'schemeOptions', 'nodes']);

/** Reads and resolves a plan file against a model; throws a QuantOptionError naming the file and entry. */
export function readPlanFile(model: OnnxModel, path: string): QuantPlan {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new QuantOptionError(`--plan ${path}: ${code === 'ENOENT' ? 'no such file' : `cannot be read (${code ?? e})`}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new QuantOptionError(`--plan ${path}: not JSON (${(e as Error).message})`);
  }
  return resolvePlan(model, json, path);
}

/** A plan file's content resolved against a model: every node's format and parameters, checked. */
export function resolvePlan(model: OnnxModel, json: unknown, source: string): QuantPlan {
  const fail = (where: string, why: string): never => {
    throw new QuantOptionError(`plan ${source}${where ? `: ${where}` : ''}: ${why}`);
  };
  if (!json || typeof json !== 'object' || Array.isArray(json)) fail('', 'expected a JSON object with "nodes" (and optionally "scheme")');
  const file = json as PlanFile;
  for (const key of Object.keys(file)) if (!FILE_KEYS.has(key)) fail('', `unknown key '${key}' (known: ${[...FILE_KEYS].join(', ')})`);
  if (file.format !== undefined && file.format !== PLAN_FORMAT) fail('', `format is '${String(file.format)}', expected '${PLAN_FORMAT}'`);
  if (file.version !== undefined && file.version !== PLAN_VERSION) fail('', `version ${String(file.version)}; this build reads version ${PLAN_VERSION}`);
  if (file.nodes !== undefined && !Array.isArray(file.nodes)) fail('', '"nodes" must be a list of entries');
  if (file.scheme === undefined && !file.nodes?.length) fail('', 'the plan names no scheme and no nodes: nothing to quantize');

  const graph = model.graph;
  const index = new GraphIndex(graph);
  const chosen = new Map<NodeProto, PlannedNode | 'float'>();
  const skipped = new Map<NodeProto, SkippedNode>();
  if (file.scheme !== undefined) {
    let base: QuantPlan;
    try {
      base = planFromScheme(model, resolveScheme(String(file.scheme), file.schemeOptions ?? {}));
    } catch (e) {
      throw new QuantOptionError(`plan ${source}: "scheme": ${(e as Error).message}`);
    }
    for (const p of base.nodes) chosen.set(p.target.node, p);
    for (const s of base.skipped) {
      const node = graph.node.find((n) => (n.name || nodeLabel(n, graph)) === s.node);
      if (node) skipped.set(node, s);
    }
  }

  (file.nodes ?? []).forEach((entry, i) => {
    const where = `nodes[${i}]`;
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) fail(where, 'expected an object');
    for (const key of Object.keys(entry)) if (!ENTRY_KEYS.has(key)) fail(where, `unknown key '${key}' (known: ${[...ENTRY_KEYS].join(', ')})`);
    const plan = entryPlan(entry, (why) => fail(where, why));
    const { nodes, exact } = matchedNodes(model, index, entry, (why) => fail(where, why));
    for (const node of nodes) {
      const label = node.name || nodeLabel(node, graph);
      if (plan === 'float') {
        // A pattern keeps in float what could have been quantized; a MatMul of two activations never could.
        if (!exact && !node.input.some((i) => index.initializer(i))) continue;
        chosen.set(node, 'float');
        skipped.delete(node);
        continue;
      }
      const verdict = plan.format === 'gather-block' ? gatherVerdict(node, index, plan.weights.bits) : inspectNode(node, index, plan.format);
      if (typeof verdict === 'string' && verdict !== 'ok') {
        if (exact) fail(`${where} (node '${label}')`, `format ${plan.format} cannot take this ${node.opType} node: ${verdict}`);
        // The later entry wins even when it cannot be applied: the node stays float (not an earlier choice).
        chosen.delete(node);
        skipped.set(node, { node: label, op: node.opType ?? '', reason: `plan ${where}: ${verdict}` });
        continue;
      }
      const target = verdict === 'ok' ? gatherTarget(node, label, index) : verdict;
      const planned: PlannedNode = { target, plan };
      checkBlocks(planned, (why) => fail(`${where} (node '${label}')`, why));
      chosen.set(node, planned);
      skipped.delete(node);
    }
  });

  // Rewrite order: weight ops in graph order, then embedding lookups (as the scheme writers always did).
  const nodes: PlannedNode[] = [];
  const float: string[] = [];
  for (const pass of ['weights', 'lookups'] as const) {
    for (const node of graph.node) {
      const c = chosen.get(node);
      if (c === undefined) continue;
      if (c === 'float') {
        if (pass === 'weights') float.push(node.name || nodeLabel(node, graph));
        continue;
      }
      if ((c.plan.format === 'gather-block') === (pass === 'lookups')) nodes.push(c);
    }
  }
  return { origin: { kind: 'file', path: source }, nodes, skipped: [...skipped.values()], float };
}

/** The nodes an entry names; `exact` when it named them one by one (a mismatch is then an error, not a skip). */
function matchedNodes(model: OnnxModel, index: GraphIndex, entry: PlanEntry, fail: (why: string) => never): { nodes: NodeProto[]; exact: boolean } {
  const graph = model.graph;
  const ops = entry.op === undefined ? undefined : Array.isArray(entry.op) ? entry.op : [entry.op];
  const opOk = (n: NodeProto): boolean => isDefaultDomain(n) && (!ops || ops.includes(n.opType ?? ''));
  if ((entry.node === undefined) === (entry.pattern === undefined)) fail('give exactly one of "node" (names) and "pattern" (a regular expression)');
  if (entry.node !== undefined) {
    const names = Array.isArray(entry.node) ? entry.node : [entry.node];
    const nodes = names.map((name) => {
      if (typeof name !== 'string') fail(`"node" must be a name or a list of names, got ${JSON.stringify(name)}`);
      // An unnamed node goes by its label ('#12 (MatMul)'), as reports and saved plans name it.
      const node = graph.node.find((n) => n.name === name) ?? graph.node.find((n) => !n.name && nodeLabel(n, graph) === name);
      if (!node) fail(`no node named '${name}' in the main graph of ${model.source}`);
      if (!opOk(node)) fail(`node '${name}' is a ${node.domain ? `${node.domain}.` : ''}${node.opType}, not ${ops!.join(' or ')}`);
      return node;
    });
    return { nodes, exact: true };
  }
  let re: RegExp;
  try {
    re = new RegExp(String(entry.pattern));
  } catch (e) {
    fail(`"pattern" is not a regular expression (${(e as Error).message})`);
  }
  // Without "op", a pattern picks only the op types its format rewrites (float: any weight op), not every
  // Mul, Reshape or Constant whose name happens to match.
  const formatOps = ops ?? PATTERN_OPS[entry.format];
  const nodes = graph.node.filter((n) => {
    if (!isDefaultDomain(n) || !formatOps.includes(n.opType ?? '')) return false;
    const names = [n.name ?? '', ...n.input.filter((i) => index.initializer(i))].filter(Boolean);
    return names.some((name) => name.search(re) >= 0);
  });
  if (nodes.length === 0) fail(`pattern /${entry.pattern}/ matches no node of type ${formatOps.join(', ')} in ${model.source}`);
  return { nodes, exact: false };
}

/** The node plan an entry asks for, with each format's defaults filled in; 'float' to leave nodes alone. */
function entryPlan(entry: PlanEntry, fail: (why: string) => never): NodePlan | 'float' {
  const format = entry.format;
  if (!NODE_FORMATS.includes(format)) fail(`"format" must be one of ${NODE_FORMATS.join(', ')}, got ${JSON.stringify(format)}`);
  if (format === 'float') {
    const extra = Object.keys(entry).filter((k) => !['node', 'pattern', 'op', 'format'].includes(k));
    if (extra.length) fail(`format float takes no ${extra.join(', ')}`);
    return 'float';
  }
  const blocked = format === 'matmulnbits' || format === 'gather-block';
  const bits = entry.bits ?? (blocked ? 4 : 8);
  if (!Number.isInteger(bits) || bits < MIN_BITS || bits > MAX_BITS) fail(`"bits" must be an integer from ${MIN_BITS} to ${MAX_BITS}, got ${JSON.stringify(entry.bits)}`);
  const allowed = format === 'matmulnbits' ? NBITS_BITS : format === 'gather-block' ? [2, 4, 8] : ALL_BITS;
  if (!allowed.includes(bits)) {
    fail(`format ${format} cannot store ${bits}-bit weights (ONNX Runtime 1.30 runs ${allowed.join(', ')}); use qdq for ${bits} bits`);
  }
  const granularity = entry.granularity ?? (entry.blockSize !== undefined || blocked ? 'block' : format === 'dynamic' ? 'tensor' : 'channel');
  if (!['tensor', 'channel', 'block'].includes(granularity)) fail(`"granularity" must be tensor, channel or block, got ${JSON.stringify(granularity)}`);
  if (blocked && granularity !== 'block') fail(`format ${format} stores weights in blocks; granularity ${granularity} is not possible`);
  if (format === 'dynamic' && granularity === 'block') fail('format dynamic (MatMulInteger) takes no block size');
  let blockSize: number | undefined;
  if (granularity === 'block') {
    blockSize = entry.blockSize ?? 32;
    try {
      checkBlockSize('"blockSize"', blockSize);
    } catch (e) {
      fail((e as Error).message);
    }
  } else if (entry.blockSize !== undefined) {
    fail(`"blockSize" needs granularity block, not ${granularity}`);
  }
  if (entry.symmetric !== undefined && typeof entry.symmetric !== 'boolean') fail(`"symmetric" must be true or false`);
  const symmetric = entry.symmetric ?? true;
  if (entry.activations !== undefined && format !== 'qdq') fail(`"activations" applies to format qdq only (static activation quantization)`);
  if (entry.activations !== undefined && entry.activations !== 'uint8' && entry.activations !== 'int8') fail(`"activations" must be uint8 or int8, got ${JSON.stringify(entry.activations)}`);
  if (entry.accuracyLevel !== undefined && format !== 'matmulnbits') fail(`"accuracyLevel" applies to format matmulnbits only`);
  const accuracyLevel = entry.accuracyLevel ?? 0;
  if (!Number.isInteger(accuracyLevel) || accuracyLevel < 0 || accuracyLevel > 4) fail(`"accuracyLevel" must be 0..4, got ${JSON.stringify(entry.accuracyLevel)}`);
  if (entry.padding !== undefined && entry.padding !== 'pad' && entry.padding !== 'refuse') fail(`"padding" must be pad or refuse, got ${JSON.stringify(entry.padding)}`);
  if (entry.padding !== undefined && (format === 'dynamic' || format === 'gather-block')) fail(`"padding" applies to blocked qdq and matmulnbits weights`);
  const padK = (entry.padding ?? 'pad') === 'pad';

  // As the named schemes resolve them (schemes.ts): blocked weights follow ORT's MatMulNBits quantizer, the rest
  // quantize_static / quantize_dynamic.
  const weights: WeightParams = {
    bits,
    symmetric,
    signed: blocked ? false : symmetric,
    perChannel: granularity === 'channel',
    convention: blockSize !== undefined ? 'mlas' : 'onnx',
    ...(blockSize !== undefined ? { blockSize } : {}),
  };
  switch (format) {
    case 'qdq':
      return { format, weights, ...(entry.activations ? { activations: { signed: entry.activations === 'int8', symmetric: false } } : {}), padK };
    case 'matmulnbits':
      return { format, weights: { ...weights, blockSize: blockSize! }, accuracyLevel, padK };
    case 'dynamic':
      return { format, weights };
    case 'gather-block':
      return { format, weights: { ...weights, blockSize: blockSize! } };
  }
}

/** A block size that does not divide K is an error when the entry refuses padding. */
function checkBlocks(p: PlannedNode, fail: (why: string) => never): void {
  const spec = weightSpec(p);
  if (spec.granularity.kind !== 'block' || !('padK' in p.plan) || p.plan.padK) return;
  const k = p.target.weight.dims[p.target.reductionAxis];
  if (k % spec.granularity.blockSize !== 0) fail(`K = ${k} is not a multiple of block size ${spec.granularity.blockSize}, and the entry refuses padding`);
}

/** A resolved plan written out as a plan file naming every node: what `quantize --save-plan` writes. */
export function planFileFrom(rows: readonly PlanRow[]): PlanFile {
  return {
    format: PLAN_FORMAT,
    version: PLAN_VERSION,
    nodes: rows.map((r): PlanEntry => {
      if (r.format === 'float') return { node: r.node, format: 'float' };
      const { node, format, bits, granularity, blockSize, symmetric, activations, accuracyLevel, padding } = r;
      return {
        node,
        format,
        ...(bits !== undefined ? { bits } : {}),
        ...(granularity !== undefined ? { granularity } : {}),
        ...(blockSize !== undefined ? { blockSize } : {}),
        ...(symmetric !== undefined ? { symmetric } : {}),
        ...(activations !== undefined ? { activations } : {}),
        ...(accuracyLevel !== undefined ? { accuracyLevel } : {}),
        ...(padding !== undefined ? { padding } : {}),
      };
    }),
  };
}
