// One layer's MLP, from the projections reading its norm to the one feeding the residual add: SwiGLU (two
// projections, the gate's output through Sigmoid, SiLU written out) or GELU (one projection, GELU as an op or in
// its tanh or erf form).
import type { OnnxModel } from '../onnx/model.js';
import type { NodeProto } from '../onnx/types.js';
import { forward, projectionsReading } from './attention.js';
import { shapeVector } from './constants.js';
import type { Mlp, Projection, SizeConstant } from './decoder-structure.js';
import { StructureError } from './errors.js';
import { attributeSizes, type GraphView } from './projection.js';

const SILU = new Set(['Sigmoid', 'Silu', 'QuickGelu']);
const GELU = new Set(['Tanh', 'Erf', 'Gelu', 'FastGelu', 'BiasGelu']);

export function matchMlp(model: OnnxModel, view: GraphView, layer: number, normOut: string, down: Projection, downNode: NodeProto): { mlp: Mlp; nodes: Set<NodeProto> } {
  const where = `${model.source}: layer ${layer}`;
  const readers = projectionsReading(view, normOut);
  const stop = new Set([downNode]);
  const flows = readers.map((r) => forward(view, [r.proj.output], stop));
  for (const [i, f] of flows.entries()) {
    if (!f.nodes.has(downNode)) throw new StructureError(`${where}: ${readers[i].proj.node} reads the MLP norm but does not reach ${down.node}`);
  }
  const acts = (i: number, ops: ReadonlySet<string>): boolean => [...flows[i].nodes].some((n) => ops.has(n.opType ?? ''));
  let mlp: Mlp;
  if (readers.length === 2) {
    const gateAt = [0, 1].filter((i) => acts(i, SILU));
    if (gateAt.length !== 1) throw new StructureError(`${where}: of ${readers[0].proj.node} and ${readers[1].proj.node}, not exactly one goes through a Sigmoid (the SwiGLU gate)`);
    const gate = readers[gateAt[0]].proj;
    const up = readers[1 - gateAt[0]].proj;
    if (gate.outFeatures !== up.outFeatures || down.inFeatures !== up.outFeatures) {
      throw new StructureError(`${where}: gate, up and down widths ${gate.outFeatures}, ${up.outFeatures}, ${down.inFeatures} differ`);
    }
    mlp = { kind: 'swiglu', gate, up, down, width: up.outFeatures, sizes: [] };
  } else if (readers.length === 1) {
    const up = readers[0].proj;
    if (!acts(0, GELU)) throw new StructureError(`${where}: between ${up.node} and ${down.node} there is no GELU (Gelu, or its tanh or erf form)`);
    if (down.inFeatures !== up.outFeatures) throw new StructureError(`${where}: ${up.node} gives ${up.outFeatures} features, ${down.node} reads ${down.inFeatures}`);
    mlp = { kind: 'gelu', up, down, width: up.outFeatures, sizes: [] };
  } else {
    throw new StructureError(`${where}: ${readers.length} projections read the MLP norm's output '${normOut}'; expected gate and up (SwiGLU) or one (GELU)`);
  }
  const nodes = new Set([...readers.map((r) => r.node), ...flows.flatMap((f) => [...f.nodes])]);
  const sizes: SizeConstant[] = [];
  for (const n of nodes) {
    if (n.opType !== 'Reshape' && n.opType !== 'Expand') continue;
    const els = shapeVector(model, view.index, n.input[1], n).elements ?? [];
    for (const e of els) if (e && e.value === mlp.width) sizes.push({ node: view.label(e.node), holder: e.holder, position: e.position, meaning: 'mlp-width', value: e.value });
  }
  for (const p of [mlp.gate, mlp.up]) if (p) sizes.push(...attributeSizes(p, 'mlp-width'));
  sizes.push(...attributeSizes(down, undefined, 'mlp-width'));
  mlp.sizes = sizes;
  return { mlp, nodes };
}
