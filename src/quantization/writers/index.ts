// The "rewrite" of plan -> solve -> rewrite: one editor over the model, one rewriter per format, each planned
// node rewritten in plan order by its format's rewriter with codes from the solver. Named schemes are plans too
// (quantizeModel), so a scheme and the same choices in a plan file write the same bytes.
import { GraphEditor } from '../../onnx/editor.js';
import type { OnnxModel } from '../../onnx/model.js';
import type { ValueFacts } from '../../onnx/value-facts.js';
import { planFromScheme, plannedActivations, type NodeFormat, type QuantPlan } from '../plan.js';
import { QuantizationError, resolveScheme, type QuantParams, type SchemeOptions } from '../schemes.js';
import type { NodeSelection } from '../select.js';
import { roundToNearest, type WeightSolver } from '../solvers.js';
import { makeReport, refuseQuantized, type ActivationRanges, type FormatRewriter, type NodeReport, type RewriteContext, type WriterResult } from './common.js';
import { dynamicRewriter } from './dynamic.js';
import { gatherRewriter } from './gather.js';
import { nbitsRewriter } from './matmulnbits.js';
import { qdqRewriter } from './qdq.js';

/** Each format's rewriter, in the order they finish (which fixes the order of opset imports they add). */
const REWRITERS: Readonly<Record<NodeFormat, (ctx: RewriteContext) => FormatRewriter>> = {
  qdq: qdqRewriter,
  dynamic: dynamicRewriter,
  matmulnbits: nbitsRewriter,
  'gather-block': gatherRewriter,
};

export interface RewriteOptions {
  /** Default round-to-nearest. */
  solver?: WeightSolver;
  /** Tensor name -> [min, max]; required when the plan quantizes activations (static QDQ). */
  activationRanges?: ActivationRanges;
  /**
   * Ranks (and element types) of values, e.g. from ONNX Runtime (src/onnx/shapes.ts), for an opset raise: with a
   * known rank, a pre-13 Softmax on its last axis stays one node instead of Flatten/Softmax/Reshape.
   */
  valueFacts?: ValueFacts;
}

/** Writes a plan into a copy of the model; the input model is left untouched. */
export function rewriteModel(model: OnnxModel, plan: QuantPlan, options: RewriteOptions = {}): WriterResult {
  const { solver = roundToNearest, activationRanges, valueFacts } = options;
  if (!activationRanges && plannedActivations(plan).length) {
    const who = plan.origin.kind === 'scheme' ? `scheme ${plan.origin.scheme}` : `plan ${plan.origin.path}`;
    throw new QuantizationError(`${who} quantizes activations: pass their ranges (tensor name -> [min, max]) from calibration`);
  }
  refuseQuantized(model);
  const edit = new GraphEditor(model);
  const ctx: RewriteContext = { model, edit, solver, ...(activationRanges ? { activationRanges } : {}), ...(valueFacts ? { valueFacts } : {}) };
  const rewriters = new Map<NodeFormat, FormatRewriter>();
  const nodes: NodeReport[] = plan.nodes.map((p) => {
    let r = rewriters.get(p.plan.format);
    if (!r) rewriters.set(p.plan.format, (r = REWRITERS[p.plan.format](ctx)));
    return r.rewrite(p);
  });
  const notes = (Object.keys(REWRITERS) as NodeFormat[]).flatMap((f) => rewriters.get(f)?.finish() ?? []);
  if (plan.float.length) notes.unshift(`kept in float by the plan: ${plan.float.join(', ')}`);
  const finished = edit.finish();
  return { model: finished.model, report: makeReport(plan.origin, solver.name, nodes, [...plan.skipped], finished, notes) };
}

export interface QuantizeOptions extends SchemeOptions, RewriteOptions {
  select?: NodeSelection;
}

/** Quantizes a model with a named scheme (or resolved parameters): the scheme's plan, rewritten. */
export function quantizeModel(model: OnnxModel, scheme: string | QuantParams, options: QuantizeOptions = {}): WriterResult {
  const { select, activationRanges, solver, ...schemeOptions } = options;
  const params = typeof scheme === 'string' ? resolveScheme(scheme, schemeOptions) : scheme;
  return rewriteModel(model, planFromScheme(model, params, select ?? {}), { ...(solver ? { solver } : {}), ...(activationRanges ? { activationRanges } : {}) });
}

export type { ActivationRanges, NodeReport, OpsetChange, WriterReport, WriterResult } from './common.js';
export { packMatMulNBits, type NBitsWeights } from './matmulnbits.js';
