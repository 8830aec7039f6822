// What an optimized model says about itself (metadata_props), for the commands that run it: the decoder refuses
// padded batches when GroupQueryAttention does the masking, and optimize refuses to run twice.
import type { OnnxModel } from '../onnx/model.js';
import type { FusionKind } from './context.js';

/**
 * metadata_props key of an optimized model: JSON of OptimizedMarker. Not under `onnx_compress.`, the prefix of
 * embedded companion files, which outputs rewrite.
 */
export const OPTIMIZED_KEY = 'onnx-compress.optimized';

export interface OptimizedMarker {
  fusions: Partial<Record<FusionKind, number>>;
  /** false when rows with padding cannot run (GroupQueryAttention masks from sequence lengths alone). */
  paddedBatches: boolean;
}

export function optimizedMarker(model: OnnxModel): OptimizedMarker | null {
  const entry = model.proto.metadataProps.find((p) => p.key === OPTIMIZED_KEY);
  if (!entry?.value) return null;
  try {
    return JSON.parse(entry.value) as OptimizedMarker;
  } catch {
    return null;
  }
}
