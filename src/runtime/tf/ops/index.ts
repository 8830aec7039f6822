// The default operator set of the TensorFlow.js executor: every category file's entries in one registry.
import { OpRegistry } from '../registry.js';
import { CONTRIB_OPS } from './contrib.js';
import { CONV_OPS } from './conv.js';
import { ELEMENTWISE_OPS } from './elementwise.js';
import { GENERATOR_OPS } from './generators.js';
import { LOGIC_OPS } from './logic.js';
import { MATH_OPS } from './math.js';
import { NORMALIZATION_OPS } from './normalization.js';
import { POOL_OPS } from './pool.js';
import { REDUCE_OPS } from './reduce.js';
import { RESIZE_OPS } from './resize.js';
import { SHAPE_OPS } from './shape.js';

/** Each category's entries, for reports that group ops by file. */
export const OP_CATEGORIES = {
  elementwise: ELEMENTWISE_OPS,
  logic: LOGIC_OPS,
  math: MATH_OPS,
  reduce: REDUCE_OPS,
  normalization: NORMALIZATION_OPS,
  shape: SHAPE_OPS,
  generators: GENERATOR_OPS,
  conv: CONV_OPS,
  pool: POOL_OPS,
  resize: RESIZE_OPS,
  contrib: CONTRIB_OPS,
} as const;

/** A fresh registry with every built-in op; callers may add their own entries to it. */
export function defaultRegistry(): OpRegistry {
  return new OpRegistry(Object.values(OP_CATEGORIES).flat());
}
