// An independent oracle for activation ranges: the tensors captured from ONNX Runtime and their min/max taken
// in plain JavaScript, as a MinMax calibrator would, without the project's observers or collector.
import { captureTensors } from '../../src/runtime/capture.js';
import { fromOrtTensor } from '../../src/runtime/ort-tensor.js';
import type { OnnxModel } from '../../src/onnx/model.js';
import type { Feeds } from '../../src/runtime/session.js';

/** Min/max of every MatMul/Gemm/Conv activation input over one run (float16 tensors decoded, not their bit codes). */
export async function minMaxRanges(model: OnnxModel, feeds: Feeds): Promise<Map<string, [number, number]>> {
  const names = [...new Set(model.graph.node.filter((n) => ['MatMul', 'Gemm', 'Conv'].includes(n.opType ?? '')).map((n) => n.input[0]))];
  const captured = await captureTensors(model, names, feeds);
  const ranges = new Map<string, [number, number]>();
  for (const [name, t] of Object.entries(captured)) {
    let lo = Infinity;
    let hi = -Infinity;
    // Float16 comes back from ONNX Runtime as raw 16-bit codes: decoded to their values first.
    for (const v of fromOrtTensor(t).data as Float32Array) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    ranges.set(name, [lo, hi]);
  }
  return ranges;
}
