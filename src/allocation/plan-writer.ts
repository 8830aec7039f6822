// A solved allocation as the plan file `quantize --plan` reads: one entry per layer naming its node, with the
// format, bits and block size of its chosen candidate (MatMulNBits where ORT runs the width, blocked QDQ
// otherwise: the format the candidate was measured and sized in), or float.
import type { PlanEntry, PlanFile } from '../quantization/plan-file.js';
import { PLAN_FORMAT, PLAN_VERSION } from '../quantization/plan-file.js';
import type { LayerSensitivity } from './sensitivity.js';

export function allocationPlanFile(layers: readonly LayerSensitivity[], choice: readonly number[]): PlanFile {
  if (choice.length !== layers.length) throw new RangeError(`allocation: ${choice.length} choices for ${layers.length} layers`);
  const nodes: PlanEntry[] = layers.map((l, i) => {
    const c = l.candidates[choice[i]];
    if (!c) throw new RangeError(`allocation: layer ${l.node} has no candidate ${choice[i]}`);
    if (c.format === 'float') return { node: l.node, format: 'float' };
    return { node: l.node, format: c.format, bits: c.bits!, blockSize: c.blockSize! };
  });
  return { format: PLAN_FORMAT, version: PLAN_VERSION, nodes };
}
