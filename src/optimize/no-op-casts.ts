// PyTorch exports of LLaMA's RMSNorm keep `hidden_states.to(float32)` as a Cast on the residual stream even when
// it is float32 already. Such a Cast changes nothing; its readers read its input instead and it goes (ONNX Runtime
// would drop it at load too, but it is not part of the graph we describe as optimized).
import { attrInt } from '../onnx/attributes.js';
import { DataType } from '../onnx/types.js';
import type { FusionContext } from './context.js';

export function removeNoOpCasts(ctx: FusionContext): void {
  const s = ctx.structure;
  // The residual stream has the type of the keys and values computed from it: the KV cache's (float32 here).
  const caches = s.layers.map((l) => l.attention.pastKey && ctx.index.graphInput(l.attention.pastKey)?.type?.tensorType?.elemType);
  if (caches.length === 0 || caches.some((t) => t !== DataType.FLOAT)) return;
  const stream = new Set(s.layers.flatMap((l) => [l.residualIn, l.residualMid, l.residualOut, l.attentionNorm.input, l.mlpNorm.input]));
  stream.add(s.finalNorm.input);
  for (const value of stream) {
    for (const cast of ctx.index.consumers(value)) {
      if (cast.opType !== 'Cast' || attrInt(cast, 'to', -1) !== DataType.FLOAT || ctx.index.graphOutput(cast.output[0])) continue;
      if (!ctx.remove(cast)) continue;
      ctx.editor.renameReads(cast.output[0], value);
      ctx.count('NoOpCast');
    }
  }
}
