// The decoder structure for block grouping, from src/structure's discovery when it recognises the graph. Any
// failure (not a decoder, a form discovery does not know) only means the blocks come from the graph's residual
// Adds instead, so it becomes a note, never an error.
import type { OnnxModel } from '../../onnx/model.js';
import type { DecoderStructure } from '../../structure/decoder-structure.js';
import { discoverDecoderStructure } from '../../structure/discover.js';

export async function decoderStructure(model: OnnxModel): Promise<{ structure?: DecoderStructure; note?: string }> {
  try {
    return { structure: await discoverDecoderStructure(model) };
  } catch (e) {
    return { note: `not recognised as a decoder (${(e as Error).message})` };
  }
}
