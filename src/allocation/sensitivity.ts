// Per-layer sensitivity: for every quantizable layer and every candidate format, the loss increase ΔL when only
// that layer is quantized that way (CalibTIP's dL), measured in ONNX Runtime against the float model on the
// selection split of the calibration set, with the exact bytes the writers store for it and cheap proxies
// (weight error, Hessian-weighted output error) whose rank correlation with ΔL is reported. The weights are the
// codes the weight solver (round to nearest, or GPTQ) gives, captured from the writers' own rewrite of the model,
// so the bytes and the fake-quantized values are those a plan of that candidate writes.
import { readdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { HessianAccumulator } from '../calibration/hessian.js';
import { openCalibrationSet, type CalibrationSet } from '../calibration/data/index.js';
import { resolveSetPath } from '../calibration/shipped-sets.js';
import { ModelError, type OnnxModel } from '../onnx/model.js';
import { GraphIndex } from '../onnx/graph.js';
import { layerError } from '../quantization/gptq.js';
import { resolvePlan, type PlanFile } from '../quantization/plan-file.js';
import { dequantize, type Quantized } from '../quantization/quantizers.js';
import { inspectNode, selectTargets, type WeightTarget } from '../quantization/select.js';
import { NBITS_BITS } from '../quantization/schemes.js';
import { roundToNearest, type WeightSolver } from '../quantization/solvers.js';
import { floatValues, tensorBytes } from '../quantization/writers/common.js';
import { rewriteModel } from '../quantization/writers/index.js';
import { collectHessians, gptqFromHessians, hessianAccumulator } from '../quantization/gptq-hessians.js';
import type { QuantMethod } from '../quantization/layerwise/methods.js';
import type { SessionChoice } from '../passes/types.js';
import type { Feeds } from '../runtime/session.js';
import { candidateEntry, candidateLabel, FLOAT_LABEL, type CandidateSpec } from './candidates.js';
import type { ModelSizes } from './budget.js';
import type { LossKind } from './loss.js';
import { spearman } from './rank.js';
import { SensitivityPool } from './sensitivity-pool.js';

export const SENSITIVITY_FORMAT = 'onnx-compress.sensitivity';
export const SENSITIVITY_VERSION = 1;

/** Bits of a float32 activation, for BOPs of weight-only formats (the activation stays float). */
const FLOAT_BITS = 32;

export interface SelectionOptions {
  /** Samples of the selection split (default 8) and tokens per sample (default the set's). */
  samples?: number;
  sequenceLength?: number;
  seed?: number;
}

export interface SensitivityOptions extends SelectionOptions {
  candidates: CandidateSpec[];
  method?: QuantMethod;
  /** A calibration set; its `selection` split when the folder has one. */
  data: string;
  workers?: number;
  session?: SessionChoice;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface CandidateMeasure {
  label: string;
  format: 'float' | 'matmulnbits' | 'qdq';
  bits?: number;
  blockSize?: number;
  /** Exact bytes of the layer's weight in this format, as the writer stores it. */
  bytes: number;
  deltaLoss: number;
  /** Per token (MatMul/Gemm) or output position (Conv): weights x weight bits x activation bits. */
  bops: number;
  /** Σ (W - Ŵ)², and tr((W - Ŵ) H (W - Ŵ)ᵀ) / tokens where the layer's input Hessian was collected. */
  proxies?: { weightError: number; outputError?: number };
}

export interface LayerSensitivity {
  node: string;
  op: string;
  weight: string;
  weightCount: number;
  candidates: CandidateMeasure[];
  /** Candidates left out for this layer, with the reason (e.g. no smaller than a wider one). */
  dropped: { label: string; reason: string }[];
}

export interface SelectionData {
  source: string;
  split: string;
  samples: number;
  tokens: number;
  sequenceLength?: number;
  seed: number;
}

export interface SensitivityTable {
  format: typeof SENSITIVITY_FORMAT;
  version: typeof SENSITIVITY_VERSION;
  model: { path: string; sha256: string };
  method: QuantMethod;
  loss: LossKind;
  data: SelectionData;
  candidates: string[];
  sizes: ModelSizes;
  layers: LayerSensitivity[];
  /** Spearman rank correlation of each proxy with the measured ΔL over every (layer, quantized candidate). */
  proxies: { name: string; spearman: number | null; pairs: number }[];
  timing: { dataSeconds: number; quantizeSeconds: number; measureSeconds: number; totalSeconds: number; workers: number; jobs: number; secondsPerJob: number };
  notes: string[];
}

/** The layers allocation chooses a format for: every MatMul, Gemm and Conv with a constant float weight. */
export function allocationLayers(model: OnnxModel): { targets: WeightTarget[]; nbits: boolean[] } {
  const { targets } = selectTargets(model, {}, 'qdq', ['MatMul', 'Gemm', 'Conv']);
  if (targets.length === 0) throw new ModelError(`${model.source}: no MatMul, Gemm or Conv node with a constant float weight: nothing to allocate bits to`);
  const index = new GraphIndex(model.graph);
  return { targets, nbits: targets.map((t) => typeof inspectNode(t.node, index, 'matmulnbits') !== 'string') };
}

/** Float bytes of the model's initializers, and of those outside the layers. */
export function modelSizes(model: OnnxModel, targets: readonly WeightTarget[]): ModelSizes {
  const floatBytes = model.graph.initializer.reduce((a, t) => a + tensorBytes(t), 0);
  const weights = new Map(targets.map((t) => [t.weight.name, t.weight]));
  const layerBytes = [...weights.values()].reduce((a, t) => a + tensorBytes(t), 0);
  const layerWeights = [...weights.values()].reduce((a, t) => a + t.dims.reduce((x, y) => x * y, 1), 0);
  return { floatBytes, fixedBytes: floatBytes - layerBytes, layerWeights };
}

/** The plan writing every layer in one candidate (each in the format that runs it). */
export function candidatePlanFile(targets: readonly WeightTarget[], nbits: readonly boolean[], c: CandidateSpec): PlanFile {
  return { nodes: targets.map((t, i) => ({ node: t.label, ...candidateEntry(c, nbits[i]) })) };
}

export interface QuantizedCandidate {
  spec: CandidateSpec;
  format: ('matmulnbits' | 'qdq')[];
  bytes: number[];
  /** The dequantized weight of each layer, as the written model computes it. */
  values: Float32Array[];
  proxies: { weightError: number; outputError?: number }[];
}

/** One candidate for every layer at once, through the writers (exact bytes) with the solver's codes captured. */
export function quantizeCandidate(model: OnnxModel, targets: readonly WeightTarget[], nbits: readonly boolean[], c: CandidateSpec, solver: WeightSolver, hessians?: HessianAccumulator): QuantizedCandidate {
  const plan = resolvePlan(model, candidatePlanFile(targets, nbits, c), `candidate ${candidateLabel(c)}`);
  const codes = new Map<string, Quantized>();
  const recording: WeightSolver = {
    name: solver.name,
    solve: (r) => {
      const q = solver.solve(r);
      codes.set(r.node, q);
      return q;
    },
  };
  const written = rewriteModel(model, plan, { solver: recording });
  const byNode = new Map(written.report.nodes.map((n) => [n.node, n]));
  const out: QuantizedCandidate = { spec: c, format: [], bytes: [], values: [], proxies: [] };
  for (const t of targets) {
    const n = byNode.get(t.label);
    // A weight shared with an earlier layer is solved and counted once, there: this layer reads those codes.
    const q = codes.get(t.label) ?? codes.get(targets.find((o) => o.weight.name === t.weight.name)!.label);
    if (!n || !q) throw new ModelError(`${model.source}: node '${t.label}' was not written as candidate ${candidateLabel(c)}`);
    const w = floatValues(model, t.weight);
    const values = dequantize(q);
    let weightError = 0;
    for (let i = 0; i < w.length; i++) weightError += (w[i] - values[i]) ** 2;
    const h = hessians ? (hessians.get(t.activation) ?? hessians.get(t.activation, 'columns')) : undefined;
    const outputError = h && t.weight.dims.length === 2 && h.k === t.weight.dims[t.reductionAxis] ? layerError(w, values, t.weight.dims, t.reductionAxis, h.h) : undefined;
    out.format.push(n.format === 'matmulnbits' ? 'matmulnbits' : 'qdq');
    out.bytes.push(n.sharedWeight ? 0 : n.bytesAfter);
    out.values.push(values);
    out.proxies.push({ weightError, ...(outputError !== undefined ? { outputError } : {}) });
  }
  return out;
}

/** The set a selection is drawn from, as a sensitivity file records it (absolute path of the set). */
export function selectionSource(data: string): string {
  try {
    return resolve(resolveSetPath(data));
  } catch {
    return data;
  }
}

/** The selection split of a set folder (its `selection.jsonl`), else the calibration split / the set itself. */
export function selectionSplit(data: string): string | undefined {
  try {
    const path = resolveSetPath(data);
    return statSync(path).isDirectory() && readdirSync(path).includes('selection.jsonl') ? 'selection' : undefined;
  } catch {
    return undefined;
  }
}

export interface Selection {
  set: CalibrationSet;
  batches: Feeds[];
  loss: LossKind;
  outputs: string[];
  data: SelectionData;
}

export const DEFAULT_SELECTION_SAMPLES = 8;

/** The selection data in memory (every worker runs all of it per job), and the loss that fits the model. */
export async function openSelection(model: OnnxModel, data: string, options: SelectionOptions = {}): Promise<Selection> {
  const split = selectionSplit(data);
  const samples = options.samples ?? DEFAULT_SELECTION_SAMPLES;
  const seed = options.seed ?? 0;
  const set = await openCalibrationSet(data, model, {
    samples,
    seed,
    batchSize: Math.min(samples, 8),
    ...(options.sequenceLength ? { sequenceLength: options.sequenceLength } : {}),
    ...(split ? { split } : {}),
  });
  const batches: Feeds[] = [];
  for await (const b of set.batches()) batches.push(b);
  const outputNames = model.graph.output.map((o) => o.name ?? '');
  const lm = set.kind !== 'tensors' && outputNames.includes('logits');
  return {
    set,
    batches,
    loss: lm ? 'kl' : 'relative-mse',
    outputs: lm ? ['logits'] : outputNames,
    data: {
      source: selectionSource(data),
      split: split ?? 'calibration',
      samples: set.sampleCount,
      tokens: set.tokenCount,
      ...(options.sequenceLength ? { sequenceLength: options.sequenceLength } : {}),
      seed,
    },
  };
}

/** The weight solver of a method, with the input Hessians it (and the output-error proxy) uses. */
export async function methodSolver(model: OnnxModel, targets: readonly WeightTarget[], nbits: readonly boolean[], set: CalibrationSet, method: QuantMethod, session: SessionChoice = {}): Promise<{ solver: WeightSolver; hessians: HessianAccumulator; notes: string[] }> {
  const plan = resolvePlan(model, candidatePlanFile(targets, nbits, { bits: 8, blockSize: 32 }), 'hessians');
  const hessians = hessianAccumulator(plan);
  await collectHessians(model, hessians, set, { session });
  hessians.finish();
  const notes: string[] = [];
  const solver = method === 'gptq' ? gptqFromHessians(hessians, notes) : roundToNearest;
  return { solver, hessians, notes };
}

/**
 * Why a candidate stores no smaller than a wider one. Blocked QDQ is the only format for widths MatMulNBits does not
 * run and for nodes it cannot take (Conv, some Gemms); it keeps codes other than 4-bit in 8-bit tensors, and int4
 * (ONNX's narrowest integer type) would make 2- and 3-bit codes only as small as 4-bit ones, never smaller.
 */
function dropReason(spec: CandidateSpec, format: 'matmulnbits' | 'qdq', bytes: number, wider: CandidateMeasure): string {
  const container = format === 'qdq' && spec.bits < 8 && spec.bits !== 4 ? ` in 8-bit tensors (ONNX's narrower int4 would be no smaller than 4-bit codes; MatMulNBits runs ${NBITS_BITS.join(', ')} bits on MatMul nodes only)` : '';
  return `${format === 'qdq' ? 'blocked QDQ' : 'MatMulNBits'} stores ${spec.bits}-bit codes${container}: ${bytes} bytes, no fewer than ${wider.label} (${wider.bytes} bytes)`;
}

/** Measures the sensitivity table (no cache: sensitivity-file.ts reads and writes those). */
export async function measureSensitivity(model: OnnxModel, fingerprint: { path: string; sha256: string }, options: SensitivityOptions): Promise<SensitivityTable> {
  const started = performance.now();
  const method = options.method ?? 'rtn';
  const { targets, nbits } = allocationLayers(model);
  const sizes = modelSizes(model, targets);
  let t = performance.now();
  const selection = await openSelection(model, options.data, options);
  const { solver, hessians, notes } = await methodSolver(model, targets, nbits, selection.set, method, options.session);
  const dataSeconds = (performance.now() - t) / 1000;

  t = performance.now();
  const quantized = options.candidates.map((c, i) => {
    options.onProgress?.('quantize', i, options.candidates.length);
    return quantizeCandidate(model, targets, nbits, c, solver, hessians);
  });
  const quantizeSeconds = (performance.now() - t) / 1000;

  const layers: LayerSensitivity[] = targets.map((target, l) => {
    const floatBytes = tensorBytes(target.weight);
    const weightCount = target.weight.dims.reduce((a, b) => a * b, 1);
    const candidates: CandidateMeasure[] = [{ label: FLOAT_LABEL, format: 'float', bytes: floatBytes, deltaLoss: 0, bops: weightCount * FLOAT_BITS * FLOAT_BITS }];
    const dropped: LayerSensitivity['dropped'] = [];
    // Widest first, so a narrower width that stores no smaller (3-bit QDQ sits in 8-bit tensors) is dropped.
    const order = quantized.map((q, i) => i).sort((a, b) => quantized[b].spec.bits - quantized[a].spec.bits || quantized[a].spec.blockSize - quantized[b].spec.blockSize);
    for (const i of order) {
      const q = quantized[i];
      const label = candidateLabel(q.spec);
      const smaller = candidates.find((c) => c.bytes <= q.bytes[l] && (c.bits === undefined || c.bits > q.spec.bits));
      if (smaller) {
        dropped.push({ label, reason: dropReason(q.spec, q.format[l], q.bytes[l], smaller) });
        continue;
      }
      candidates.push({ label, format: q.format[l], bits: q.spec.bits, blockSize: q.spec.blockSize, bytes: q.bytes[l], deltaLoss: NaN, bops: weightCount * q.spec.bits * FLOAT_BITS, proxies: q.proxies[l] });
    }
    return { node: target.label, op: target.op, weight: target.weight.name ?? '', weightCount, candidates, dropped };
  });

  t = performance.now();
  const jobs: { layer: number; candidate: number; q: number }[] = [];
  layers.forEach((layer, l) =>
    layer.candidates.forEach((c, ci) => {
      if (c.format !== 'float') jobs.push({ layer: l, candidate: ci, q: quantized.findIndex((q) => candidateLabel(q.spec) === c.label) });
    }),
  );
  const pool = await SensitivityPool.open(model, [...new Set(targets.map((x) => x.weight.name!))], selection.batches, { loss: selection.loss, outputs: selection.outputs, ...(options.workers ? { workers: options.workers } : {}) });
  let losses: number[];
  try {
    losses = await pool.runAll(
      jobs.length,
      (i) => {
        const j = jobs[i];
        const target = targets[j.layer];
        return [{ name: target.weight.name!, dims: [...target.weight.dims], values: quantized[j.q].values[j.layer].slice() }];
      },
      (done) => options.onProgress?.('sensitivity', done, jobs.length),
    );
  } finally {
    await pool.close();
  }
  jobs.forEach((j, i) => (layers[j.layer].candidates[j.candidate].deltaLoss = losses[i]));
  const measureSeconds = (performance.now() - t) / 1000;

  const measured = layers.flatMap((l) => l.candidates.filter((c) => c.proxies));
  const proxy = (name: 'weightError' | 'outputError') => {
    const pairs = measured.filter((c) => c.proxies![name] !== undefined);
    const r = spearman(pairs.map((c) => c.proxies![name]!), pairs.map((c) => c.deltaLoss));
    return { name, spearman: Number.isFinite(r) ? r : null, pairs: pairs.length };
  };
  return {
    format: SENSITIVITY_FORMAT,
    version: SENSITIVITY_VERSION,
    model: fingerprint,
    method,
    loss: selection.loss,
    data: selection.data,
    candidates: options.candidates.map(candidateLabel),
    sizes,
    layers,
    proxies: [proxy('weightError'), proxy('outputError')],
    timing: {
      dataSeconds,
      quantizeSeconds,
      measureSeconds,
      totalSeconds: (performance.now() - started) / 1000,
      workers: pool.size,
      jobs: jobs.length,
      secondsPerJob: jobs.length ? (measureSeconds * pool.size) / jobs.length : 0,
    },
    notes,
  };
}
