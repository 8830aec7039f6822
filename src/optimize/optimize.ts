// `optimize`: a decoder's blocks (found by the structure discovery, src/structure/) rewritten onto ONNX Runtime's
// fused CPU kernels through one GraphEditor — attention (attention.ts), norms (norms.ts), MLP activations
// (activations.ts), no-op Casts (no-op-casts.ts) — then the mask, shape and rotary subgraphs nothing reads any more removed, and the result checked against the original in ONNX
// Runtime (check.ts) before anyone may write it. The interface stays the original's: input_ids, attention_mask,
// position_ids, past_key_values.*, logits, present.* (position_ids is still accepted; the fused attention
// derives positions from attention_mask). The model records that it is optimized in metadata_props.
import { OptionError, OnnxCompressError } from '../errors.js';
import { GraphEditor } from '../onnx/editor.js';
import type { OnnxModel } from '../onnx/model.js';
import { modelFolder } from '../onnx/model-folder.js';
import type { SessionOptions } from '../runtime/session.js';
import { discoverDecoderStructure } from '../structure/discover.js';
import { fuseActivations } from './activations.js';
import { fuseAttention } from './attention.js';
import { removeNoOpCasts } from './no-op-casts.js';
import { compareLogits, type LogitsCheck } from './check.js';
import { FusionContext, type FusionKind, type KeptBlock } from './context.js';
import { OPTIMIZED_KEY, optimizedMarker, type OptimizedMarker } from './marker.js';
import { MS_DOMAIN, fuseNorms } from './norms.js';

export interface OptimizeOptions {
  session?: SessionOptions;
  /** Pack separate q/k/v projections into one product (default true). */
  packQkv?: boolean;
}

export interface OptimizeReport {
  nodes: { before: number; after: number };
  operators: { before: Record<string, number>; after: Record<string, number> };
  fusions: Partial<Record<FusionKind, number>>;
  kept: KeptBlock[];
  layers: number;
  check: LogitsCheck;
  notes: string[];
}

export class OptimizeError extends OnnxCompressError {
  constructor(message: string) {
    super('quality-gate', message);
  }
}

export async function optimizeDecoder(model: OnnxModel, options: OptimizeOptions = {}): Promise<{ model: OnnxModel; report: OptimizeReport }> {
  if (optimizedMarker(model)) throw new OptionError(`${model.source}: already optimized (metadata ${OPTIMIZED_KEY}); optimize the original model instead`);
  const structure = discoverDecoderStructure(model);
  const config = modelFolder(model).config ?? {};
  const editor = new GraphEditor(model);
  const ctx = new FusionContext(editor, model, structure);
  fuseAttention(ctx, {
    ropeTheta: typeof config.rope_theta === 'number' ? config.rope_theta : 10000,
    maxPositions: modelFolder(model).decoder?.maxPositions ?? null,
    packQkv: options.packQkv ?? true,
  });
  fuseNorms(ctx);
  fuseActivations(ctx);
  removeNoOpCasts(ctx);
  const fusions = Object.fromEntries(ctx.applied) as Partial<Record<FusionKind, number>>;
  if (ctx.applied.size === 0) throw new OptionError(`${model.source}: nothing to fuse (${ctx.kept.map((k) => `${k.block}: ${k.reason}`).join('; ') || 'no block matched'})`);
  editor.requireOpset(MS_DOMAIN, 1);
  editor.removeDeadCode();
  const out = editor.finish().model;
  const marker: OptimizedMarker = { fusions, paddedBatches: !fusions.GroupQueryAttention };
  out.proto = { ...out.proto, metadataProps: [...out.proto.metadataProps.filter((p) => p.key !== OPTIMIZED_KEY), { key: OPTIMIZED_KEY, value: JSON.stringify(marker) }] };

  const check = await compareLogits(model, out, options.session);
  if (!check.passed) {
    throw new OptimizeError(
      `${model.source}: the fused graph's logits differ from the original's by ${check.relative.toExponential(2)} of the largest logit (tolerance ${check.tolerance}; ${check.argmaxChanges} greedy token(s) changed); not written`,
    );
  }
  const notes: string[] = [];
  if (fusions.GroupQueryAttention) notes.push('GroupQueryAttention masks causally from sequence lengths: batches whose rows have padding are refused when run (decode such prompts one at a time)');
  return {
    model: out,
    report: {
      nodes: { before: model.graph.node.length, after: out.graph.node.length },
      operators: { before: histogram(model), after: histogram(out) },
      fusions,
      kept: ctx.kept,
      layers: structure.layers.length,
      check,
      notes,
    },
  };
}

function histogram(model: OnnxModel): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of model.graph.node) counts[n.opType ?? '?'] = (counts[n.opType ?? '?'] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort((a, b) => b[1] - a[1]));
}
