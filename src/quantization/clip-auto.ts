// Auto clipping: for each activation a static plan quantizes, the range (among min/max, the standard |x|
// percentiles and entropy) that least disturbs the nodes reading it. Each candidate is judged in context: the
// consumer's output with its input fake-quantized at the candidate range and its weight quantized as the plan
// writes it, against the float output, on activation samples kept during calibration
// (calibration/activation-samples.ts). The error of a range is the relative squared error of that output,
// summed over the activation's consumers (q, k and v projections share one input, and one range).
//
// The consumer runs in ONNX Runtime as a one-node model (the node with its own attributes, beside the same node
// fed through QuantizeLinear/DequantizeLinear and the dequantized weight): Conv (groups, pads, strides,
// dilations in 1-3 D) has no short TypeScript form, MLAS's matmuls are faster than a JavaScript loop, and the
// fake quantization is then ORT's own arithmetic rather than ours. One session per consumer serves every
// candidate: the activation's scale and zero point are inputs. Graph optimisation is off so that the Q/DQ pair
// computes exactly what the operators define.
//
// candidateErrors and chooseCandidate are the choice (samples, weight, candidates -> errors -> index);
// autoActivationRanges is the glue from a plan, statistics and samples to ranges and a report.
import { Tensor } from 'onnxruntime-node';
import type { ActivationSample, SampleRequest, SampleUnit } from '../calibration/activation-samples.js';
import type { AnyActivationStatistics } from '../calibration/collect.js';
import { isFullStats } from '../calibration/observers/tensor-stats.js';
import { attrInt } from '../onnx/attributes.js';
import { GraphBuilder, modelFrom } from '../onnx/builder.js';
import { OnnxModel } from '../onnx/model.js';
import { DataType, type NodeProto } from '../onnx/types.js';
import { Session, type Feeds, type SessionOptions } from '../runtime/session.js';
import { weightSpec, type PlannedNode, type QuantPlan } from './plan.js';
import { dequantize, scaleZeroPoint, type QuantSpec } from './quantizers.js';
import { isFiniteRange, rangeFromStats, rangesBy, STANDARD_PERCENTILES, type ActivationRangeSet, type ClipOptions } from './ranges.js';
import { QuantizationError } from './schemes.js';
import { roundToNearest, type WeightSolver } from './solvers.js';
import { floatValues, weightKey } from './writers/common.js';

/** One range auto clipping considers, named as reports name it. */
export interface ClipCandidate {
  label: string;
  clip: ClipOptions;
}

/** In order of preference on a tie: the least clipping first. */
export const AUTO_CANDIDATES: readonly ClipCandidate[] = [
  { label: 'minmax', clip: { method: 'minmax' } },
  ...[...STANDARD_PERCENTILES].sort((a, b) => b - a).map((p): ClipCandidate => ({ label: `percentile ${p}`, clip: { method: 'percentile', percentile: p } })),
  { label: 'entropy', clip: { method: 'entropy' } },
];

/** The node reading an activation, with what it needs to run alone. */
export interface Consumer {
  /** MatMul, Gemm or Conv as the graph holds it; input 0 is the activation, input 1 the weight. */
  node: NodeProto;
  weight: { dims: readonly number[]; values: Float32Array };
  /** The weight as the plan writes it, dequantized: what DequantizeLinear of its codes gives. */
  dequantized: Float32Array;
  /** A constant bias (Gemm C broadcast over rows, Conv B); absent when the node has none or it is not constant. */
  bias?: { dims: readonly number[]; values: Float32Array };
  /** Activation codes int8 (true) or uint8. */
  signed: boolean;
  /** Default-domain opset of the one-node model. */
  opset: number;
}

/** QuantizeLinear's parameters for an activation range, as the QDQ writer computes them: 8-bit, asymmetric, per tensor. */
export function activationSpec(signed: boolean): Required<QuantSpec> {
  return { bits: 8, signed, symmetric: false, granularity: { kind: 'tensor' }, convention: 'onnx' };
}

/** How a consumer reads its activation, so the sample keeps what it treats independently. */
export function sampleUnitOf(node: NodeProto): SampleUnit {
  if (node.opType === 'Conv') return 'items';
  if (node.opType === 'Gemm' && attrInt(node, 'transA', 0) !== 0) return 'columns';
  return 'rows';
}

/** Largest batch of sample values one run takes, so that outputs stay small however the sample was bounded. */
const MAX_RUN_VALUES = 1 << 20;

/**
 * Relative squared error Σ(y_q − y)² / Σy² of the consumer's output y_q (input fake-quantized at each range,
 * weight dequantized) against its float output y, over the sample's units; one value per range, NaN for a range
 * that is not a finite [min, max].
 */
export async function candidateErrors(
  consumer: Consumer,
  sample: Pick<ActivationSample, 'unit' | 'units'>,
  ranges: readonly (readonly [number, number])[],
  session: SessionOptions = {},
): Promise<number[]> {
  if (sample.units.length === 0) throw new QuantizationError(`auto clipping: no activation sample for node '${consumer.node.name ?? consumer.node.opType}'`);
  const groups = groupUnits(sample.units);
  const model = consumerModel(consumer, sample.unit, groups[0].dims.length);
  const runner = await Session.create(model, { ...session, graphOptimization: 'disabled' });
  const diff = new Float64Array(ranges.length);
  let energy = 0;
  const params = ranges.map((r) => (isFiniteRange(r) ? scaleZeroPoint(r[0], r[1], activationSpec(consumer.signed)) : undefined));
  try {
    const zpType = consumer.signed ? 'int8' : 'uint8';
    for (const { dims, units } of groups) {
      const width = dims.reduce((a, b) => a * b, 1);
      const perRun = Math.max(1, Math.floor(MAX_RUN_VALUES / Math.max(1, width)));
      for (let start = 0; start < units.length; start += perRun) {
        const chunk = units.slice(start, start + perRun);
        const data = new Float32Array(chunk.length * width);
        chunk.forEach((u, i) => data.set(u, i * width));
        const feeds = (p = { scale: 1, zeroPoint: 0 }): Feeds => ({
          x: new Tensor('float32', data, [chunk.length, ...dims]),
          x_scale: new Tensor('float32', Float32Array.of(p.scale), []),
          x_zero_point: consumer.signed ? new Tensor(zpType, Int8Array.of(p.zeroPoint), []) : new Tensor(zpType, Uint8Array.of(p.zeroPoint), []),
        });
        const reference = (await runner.run(feeds(), ['reference'])).reference.data as Float32Array;
        for (let i = 0; i < reference.length; i++) energy += reference[i] * reference[i];
        for (let c = 0; c < ranges.length; c++) {
          const p = params[c];
          if (!p) continue;
          const quantized = (await runner.run(feeds(p), ['quantized'])).quantized.data as Float32Array;
          let d = 0;
          for (let i = 0; i < reference.length; i++) {
            const e = quantized[i] - reference[i];
            d += e * e;
          }
          diff[c] += d;
        }
      }
    }
  } finally {
    await runner.dispose();
  }
  // An all-zero output (a dead input) makes every range equally right: its absolute error is what remains.
  return params.map((p, c) => (p ? (energy > 0 ? diff[c] / energy : diff[c]) : NaN));
}

/** Index of the smallest total error; the first on a tie (candidates come in order of preference). NaN never wins. */
export function chooseCandidate(errors: readonly number[]): number {
  let best = -1;
  for (let i = 0; i < errors.length; i++) {
    if (Number.isNaN(errors[i])) continue;
    if (best < 0 || errors[i] < errors[best]) best = i;
  }
  if (best < 0) throw new QuantizationError('auto clipping: no candidate range has a finite error');
  return best;
}

/** Units of one shape, in sample order; items of several shapes (images of several sizes) run apart. */
function groupUnits(units: ActivationSample['units']): { dims: number[]; units: Float32Array[] }[] {
  const groups = new Map<string, { dims: number[]; units: Float32Array[] }>();
  for (const u of units) {
    const key = u.dims.join(',');
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { dims: u.dims, units: [] }));
    g.units.push(u.values);
  }
  return [...groups.values()];
}

/**
 * The consumer twice over one input `x` of [batch, ...unit dims]: `reference` with the float weight, `quantized`
 * with x through QuantizeLinear/DequantizeLinear (scale and zero point are inputs) and the dequantized weight.
 * A Gemm sampled by columns reads them as rows (transA dropped).
 */
function consumerModel(c: Consumer, unit: SampleUnit, unitRank: number): OnnxModel {
  const g = new GraphBuilder('clip-auto');
  const zpType = c.signed ? DataType.INT8 : DataType.UINT8;
  g.input('x', DataType.FLOAT, [null, ...Array.from({ length: unitRank }, () => null)]);
  g.input('x_scale', DataType.FLOAT, []);
  g.input('x_zero_point', zpType, []);
  g.initializer('w', DataType.FLOAT, c.weight.dims, c.weight.values);
  g.initializer('w_dequantized', DataType.FLOAT, c.weight.dims, c.dequantized);
  const bias = c.bias ? [g.initializer('bias', DataType.FLOAT, c.bias.dims, c.bias.values)] : [];
  const op = c.node.opType ?? '';
  const attributes = (c.node.attribute ?? []).filter((a) => !(unit === 'columns' && a.name === 'transA'));
  g.node(op, ['x', 'w', ...bias], ['reference'], attributes, { name: 'reference' });
  const q = g.op('QuantizeLinear', ['x', 'x_scale', 'x_zero_point']);
  const dq = g.op('DequantizeLinear', [q, 'x_scale', 'x_zero_point']);
  g.node(op, [dq, 'w_dequantized', ...bias], ['quantized'], attributes, { name: 'quantized' });
  g.output('reference', DataType.FLOAT);
  g.output('quantized', DataType.FLOAT);
  return new OnnxModel(modelFrom(g.graph, { opsets: { '': c.opset } }), undefined, `one-node model of '${c.node.name ?? op}' (auto clipping)`);
}

// --- glue: a plan's activations -------------------------------------------------------------------------------

/** What auto clipping decided for one activation, for reports. */
export interface AutoChoice {
  tensor: string;
  /** The winning candidate's label ('minmax', 'percentile 99.99', 'entropy'...). */
  chosen: string;
  /** Nodes whose outputs judged the ranges. */
  consumers: string[];
  /** Units (rows, columns or items) of the sample the consumers ran on, and units offered during calibration. */
  units: number;
  seen: number;
  /** Every candidate with its range and its error (relative squared output error, summed over consumers). */
  candidates: { label: string; range: [number, number]; error: number }[];
}

export interface AutoRangeSet extends ActivationRangeSet {
  method: 'auto';
  choices: AutoChoice[];
}

/** The samples auto clipping needs for a plan: each quantized activation, in the unit its consumers read. */
export function autoSampleRequests(plan: QuantPlan): SampleRequest[] {
  return quantizedConsumers(plan).map((p) => ({ tensor: p.target.activation, unit: sampleUnitOf(p.target.node) }));
}

export interface AutoRangeOptions {
  /** The weight solver the rewrite will use (default round to nearest), so candidates see the weights written. */
  solver?: WeightSolver;
  session?: SessionOptions;
  /** Called after each activation is decided. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Auto-clipped ranges for the activations the plan quantizes. Needs full statistics (percentiles, entropy) and
 * the samples of autoSampleRequests(plan). A tensor the statistics lack is skipped with the reason, as with a
 * fixed method.
 */
export async function autoActivationRanges(
  model: OnnxModel,
  plan: QuantPlan,
  statistics: AnyActivationStatistics,
  samples: readonly ActivationSample[],
  options: AutoRangeOptions = {},
): Promise<AutoRangeSet> {
  const solver = options.solver ?? roundToNearest;
  const consumers = quantizedConsumers(plan);
  const tensors = [...new Set(consumers.map((p) => p.target.activation))];
  const byTensor = new Map(statistics.tensors.map((r) => [r.name, r.stats]));
  const opset = Math.max(model.opset('') ?? 0, 13);
  const weights = new Map<string, Float32Array>();
  const chosen = new Map<string, [number, number]>();
  const choices: AutoChoice[] = [];
  let done = 0;
  for (const tensor of tensors) {
    const stats = byTensor.get(tensor);
    done++;
    if (!stats || stats.count === 0) continue; // rangesBy below skips it with the reason
    if (!isFullStats(stats)) {
      throw new QuantizationError(
        `${model.source}: auto clipping of '${tensor}' compares min/max, percentile and entropy ranges, but the statistics hold ranges only (observe 'ranges' or 'minmax'); collect full statistics`,
      );
    }
    const candidates = AUTO_CANDIDATES.map((c) => ({ label: c.label, range: rangeFromStats(stats, c.clip, tensor) }));
    // Candidates that coincide (few samples: the top percentiles are the extremes) run once.
    const unique: [number, number][] = [];
    const slot = candidates.map(({ range }) => {
      const at = unique.findIndex((u) => u[0] === range[0] && u[1] === range[1]);
      if (at >= 0) return at;
      unique.push(range);
      return unique.length - 1;
    });
    const readers = consumers.filter((p) => p.target.activation === tensor);
    const totals = new Array<number>(unique.length).fill(0);
    let units = 0;
    let seen = 0;
    for (const p of readers) {
      const unit = sampleUnitOf(p.target.node);
      const sample = samples.find((s) => s.tensor === tensor && s.unit === unit);
      if (!sample || sample.units.length === 0) {
        throw new QuantizationError(`${model.source}: auto clipping of '${tensor}' has no activation sample (${unit}) to run node '${p.target.label}' on`);
      }
      units = Math.max(units, sample.units.length);
      seen = Math.max(seen, sample.seen);
      const errors = await candidateErrors(consumerOf(model, p, solver, weights, opset), sample, unique, options.session);
      errors.forEach((e, i) => (totals[i] += e));
    }
    const best = slot[chooseCandidate(slot.map((s) => totals[s]))];
    const winner = candidates[slot.indexOf(best)];
    chosen.set(tensor, winner.range);
    choices.push({
      tensor,
      chosen: winner.label,
      consumers: readers.map((p) => p.target.label),
      units,
      seen,
      candidates: candidates.map((c, i) => ({ label: c.label, range: c.range, error: totals[slot[i]] })),
    });
    options.onProgress?.(done, tensors.length);
  }
  const set = rangesBy(statistics, tensors, (_, tensor) => chosen.get(tensor) ?? [NaN, NaN]);
  return { method: 'auto', ...set, choices: choices.filter((c) => set.ranges.has(c.tensor)) };
}

/**
 * Why auto clipping cannot run on these statistics (some tensor has range-only statistics: no percentiles or
 * entropy to choose from), or undefined when it can.
 */
export function autoClipBlocker(statistics: AnyActivationStatistics, tensors: readonly string[]): string | undefined {
  const wanted = new Set(tensors);
  const partial = statistics.tensors.find((r) => wanted.has(r.name) && r.stats.count > 0 && !isFullStats(r.stats));
  return partial ? `needs full statistics, and those of '${partial.name}' hold ranges only (observe '${statistics.options.observe}')` : undefined;
}

/** Planned static-QDQ nodes that quantize their activation, in plan order. */
function quantizedConsumers(plan: QuantPlan): PlannedNode[] {
  return plan.nodes.filter((n) => n.plan.format === 'qdq' && n.plan.activations);
}

/** The planned node as a Consumer: its weight solved as the rewrite will solve it (once per weight and spec). */
function consumerOf(model: OnnxModel, p: PlannedNode, solver: WeightSolver, cache: Map<string, Float32Array>, opset: number): Consumer {
  const t = p.target;
  const values = floatValues(model, t.weight);
  const key = weightKey(p);
  let dequantized = cache.get(key);
  if (!dequantized) {
    const q = solver.solve({
      node: t.label,
      weight: t.weight.name!,
      values,
      dims: t.weight.dims,
      spec: weightSpec(p),
      reductionAxis: t.reductionAxis,
      channelAxis: t.channelAxis,
    });
    dequantized = dequantize(q);
    cache.set(key, dequantized);
  }
  const plan = p.plan;
  const signed = plan.format === 'qdq' && plan.activations ? plan.activations.signed : false;
  return { node: t.node, weight: { dims: t.weight.dims, values }, dequantized, ...biasOf(model, p), signed, opset };
}

/**
 * The node's constant bias, when it can ride along with sampled rows: Conv's B, or a Gemm C that is a scalar or
 * one value per column. A C of full [M, N] (or computed at run time) is left out: it adds the same to both outputs,
 * so only the error's scale changes.
 */
function biasOf(model: OnnxModel, p: PlannedNode): Pick<Consumer, 'bias'> {
  const t = p.target;
  const name = t.node.input[2];
  if (!name) return {};
  const tensor = model.graph.initializer.find((i) => i.name === name);
  if (!tensor || tensor.dataType !== DataType.FLOAT) return {};
  const count = tensor.dims.reduce((a, b) => a * b, 1);
  if (t.op === 'Gemm') {
    const n = t.weight.dims[t.channelAxis];
    const perColumn = count === 1 || (count === n && (tensor.dims.length === 1 || (tensor.dims.length === 2 && tensor.dims[0] === 1)));
    if (!perColumn) return {};
  }
  return { bias: { dims: tensor.dims, values: floatValues(model, tensor) } };
}
