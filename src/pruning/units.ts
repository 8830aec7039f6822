// The units structured pruning removes, and which weights each owns. An attention unit is a whole GQA group: its
// n_rep query heads (rows of q), its key and value head (rows of k and v) and the matching input columns of o. An
// MLP unit is one neuron: its gate and up outputs and its down input. Every scoring method reduces a per-weight
// (or per-feature) score to per-unit scores through this one map, so all methods share the unit structure.
import { OnnxCompressError } from '../errors.js';
import { GraphIndex } from '../onnx/graph.js';
import type { OnnxModel } from '../onnx/model.js';
import type { DecoderLayer, DecoderStructure, Projection } from '../structure/decoder-structure.js';
import { floatValues } from '../quantization/writers/common.js';

/** Per decoder layer: one score per key/value group and one per MLP neuron. */
export interface UnitScores {
  attention: Float64Array[];
  mlp: Float64Array[];
}

/** The sizes allocation needs: units per layer and the parameters each unit's removal takes away. */
export interface LayerUnits {
  groups: number;
  neurons: number;
  /** Weights (and bias elements) one attention group owns. */
  groupParams: number;
  /** Weights (and bias elements) one MLP neuron owns. */
  neuronParams: number;
}

/** Which features of a projection belong to which unit: features [offset + u*width, offset + (u+1)*width) to unit u. */
export interface OwnedSlice {
  projection: Projection;
  /** 'out': output features (rows of q, k, v, gate, up); 'in': input features (columns of o, down). */
  axis: 'out' | 'in';
  kind: 'attention' | 'mlp';
  offset: number;
  width: number;
  units: number;
}

/** The slices of every projection of a layer that units own. */
export function ownedSlices(layer: DecoderLayer): OwnedSlice[] {
  const a = layer.attention;
  const nrep = a.heads / a.kvHeads;
  const d = a.headDim;
  const G = a.kvHeads;
  const slices: OwnedSlice[] = [];
  const att = (projection: Projection, axis: 'out' | 'in', offset: number, width: number): void => {
    slices.push({ projection, axis, kind: 'attention', offset, width, units: G });
  };
  if (a.kind === 'fused-qkv') {
    const qkv = a.qkv!;
    att(qkv, 'out', 0, nrep * d);
    att(qkv, 'out', a.heads * d, d);
    att(qkv, 'out', a.heads * d + G * d, d);
  } else {
    att(a.q!, 'out', 0, nrep * d);
    att(a.k!, 'out', 0, d);
    att(a.v!, 'out', 0, d);
  }
  att(a.o, 'in', 0, nrep * d);
  const m = layer.mlp;
  const mlp = (projection: Projection, axis: 'out' | 'in'): void => {
    slices.push({ projection, axis, kind: 'mlp', offset: 0, width: 1, units: m.width });
  };
  if (m.gate) mlp(m.gate, 'out');
  mlp(m.up, 'out');
  mlp(m.down, 'in');
  return slices;
}

/** Units per layer and what each costs, counting weights and the bias elements of owned output features. */
export function layerUnits(structure: DecoderStructure): LayerUnits[] {
  return structure.layers.map((layer) => {
    const cost = { attention: 0, mlp: 0 };
    for (const s of ownedSlices(layer)) {
      const other = s.axis === 'out' ? s.projection.inFeatures : s.projection.outFeatures;
      const bias = s.axis === 'out' && s.projection.bias ? 1 : 0;
      cost[s.kind] += s.width * (other + bias);
    }
    return { groups: layer.attention.kvHeads, neurons: layer.mlp.width, groupParams: cost.attention, neuronParams: cost.mlp };
  });
}

/** Stored weight of a projection as float32, refusing packed (quantized) weights. */
export function projectionWeight(model: OnnxModel, p: Projection, index = new GraphIndex(model.graph)): Float32Array {
  if (p.op === 'MatMulNBits') throw new OnnxCompressError('bad-model', `${model.source}: node ${p.node} is quantized (MatMulNBits); prune the float model, then quantize`);
  const t = index.initializer(p.weight);
  if (!t) throw new OnnxCompressError('bad-model', `${model.source}: weight '${p.weight}' of node ${p.node} is not an initializer`);
  return floatValues(model, t);
}

/**
 * Sums `element(value, flatIndex)` of a stored weight over the axis that is not `axis`, giving one sum per
 * feature of `axis`. The stored layout is [in, out] when outAxis is 1, [out, in] when it is 0.
 */
export function featureSums(values: ArrayLike<number>, p: Projection, axis: 'out' | 'in', element: (v: number, i: number) => number = Math.abs): Float64Array {
  const rows = p.outAxis === 1 ? p.inFeatures : p.outFeatures;
  const cols = p.outAxis === 1 ? p.outFeatures : p.inFeatures;
  if (values.length !== rows * cols) throw new OnnxCompressError('bad-model', `weight '${p.weight}' holds ${values.length} values, not ${rows} x ${cols}`);
  const alongRows = (axis === 'out') === (p.outAxis === 0);
  const sums = new Float64Array(alongRows ? rows : cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      sums[alongRows ? r : c] += element(values[i], i);
    }
  }
  return sums;
}

/** Adds each slice's per-feature sums into its units' scores. `sums(slice)` null: the slice does not count. */
export function unitScores(structure: DecoderStructure, sums: (slice: OwnedSlice, layer: DecoderLayer, position: number) => Float64Array | null): UnitScores {
  const scores: UnitScores = { attention: [], mlp: [] };
  for (const [position, layer] of structure.layers.entries()) {
    const attention = new Float64Array(layer.attention.kvHeads);
    const mlp = new Float64Array(layer.mlp.width);
    for (const slice of ownedSlices(layer)) {
      const features = sums(slice, layer, position);
      if (!features) continue;
      const into = slice.kind === 'attention' ? attention : mlp;
      for (let u = 0; u < slice.units; u++) {
        for (let f = slice.offset + u * slice.width; f < slice.offset + (u + 1) * slice.width; f++) into[u] += features[f];
      }
    }
    scores.attention.push(attention);
    scores.mlp.push(mlp);
  }
  return scores;
}
