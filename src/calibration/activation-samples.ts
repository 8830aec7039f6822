// Bounded, seeded samples of activation values, kept while calibration streams the set: an ActivationAccumulator
// (collect.ts) holding a reservoir of whole units per tensor, so a consumer can later be run on real inputs
// (auto clipping judges each candidate range by the error of the node that reads the activation). A unit is what
// the consumer treats independently: a row of a MatMul/Gemm input (its last axis), a column when Gemm reads the
// input transposed, or one item along axis 0 for a Conv (its spatial neighbourhood matters, so it stays whole).
// Memory is bounded by `maxValues` per tensor (at least `minUnits` units), whatever the size of the set; the
// reservoir (Algorithm R) gives every unit the same chance, and the draw depends only on the seed and the order
// of the batches, which the calibration set fixes.
import { OptionError } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { seededRandom } from '../util/prng.js';
import { collectStatistics, type ActivationAccumulator, type CollectOptions } from './collect.js';
import type { CalibrationSet } from './data/index.js';

export type SampleUnit = 'rows' | 'columns' | 'items';

export interface SampleRequest {
  tensor: string;
  unit: SampleUnit;
}

export interface ActivationSample {
  tensor: string;
  unit: SampleUnit;
  /** The kept units, each with its own dims ([K] for rows and columns, the item's dims for items). */
  units: { dims: number[]; values: Float32Array }[];
  /** Units offered over the run (kept or not). */
  seen: number;
}

export interface SamplerOptions {
  /** Values kept per requested tensor, at most (default 65,536), unless `minUnits` units need more. */
  maxValues?: number;
  /** Units kept however wide they are (default 16). */
  minUnits?: number;
  seed?: number;
  /**
   * Batches sampled per tensor, the first ones of the set (default SAMPLE_BATCHES). The same first batches whether
   * the samples are kept while statistics are collected or in a run of their own (statistics from a file or an
   * earlier pass), so a recipe and the one-command equivalent choose the same ranges and write the same bytes.
   */
  batches?: number;
}

export const DEFAULT_SAMPLE_VALUES = 65_536;
const DEFAULT_MIN_UNITS = 16;

interface Reservoir {
  request: SampleRequest;
  random: () => number;
  capacity: number;
  kept: ActivationSample['units'];
  seen: number;
  /** Batches offered so far. */
  batches: number;
}

/** Reservoir samples of the requested tensors; give it to collectStatistics as an accumulator. */
export class ActivationSampler implements ActivationAccumulator {
  readonly targets: readonly string[];
  private readonly reservoirs: Reservoir[];
  private readonly byTensor = new Map<string, Reservoir[]>();
  private readonly maxValues: number;
  private readonly minUnits: number;
  private readonly maxBatches: number;

  constructor(requests: readonly SampleRequest[], options: SamplerOptions = {}) {
    this.maxValues = options.maxValues ?? DEFAULT_SAMPLE_VALUES;
    this.minUnits = options.minUnits ?? DEFAULT_MIN_UNITS;
    this.maxBatches = options.batches ?? SAMPLE_BATCHES;
    if (!(Number.isInteger(this.maxValues) && this.maxValues >= 1)) throw new OptionError(`activation samples: maxValues must be a whole number >= 1, got ${this.maxValues}`);
    if (!(Number.isInteger(this.minUnits) && this.minUnits >= 1)) throw new OptionError(`activation samples: minUnits must be a whole number >= 1, got ${this.minUnits}`);
    const seed = options.seed ?? 0;
    const seenRequests = new Set<string>();
    this.reservoirs = [];
    for (const request of requests) {
      const key = `${request.tensor}\u0000${request.unit}`;
      if (seenRequests.has(key)) continue;
      seenRequests.add(key);
      // Each tensor its own stream, so adding a tensor to the request does not change another's draw.
      const r: Reservoir = { request, random: seededRandom((seed + Math.imul(0x9e3779b1, this.reservoirs.length + 1)) >>> 0), capacity: 0, kept: [], seen: 0, batches: 0 };
      this.reservoirs.push(r);
      const list = this.byTensor.get(request.tensor) ?? [];
      list.push(r);
      this.byTensor.set(request.tensor, list);
    }
    this.targets = [...this.byTensor.keys()];
  }

  add(name: string, values: Float32Array, dims: readonly number[]): void {
    for (const r of this.byTensor.get(name) ?? []) {
      if (r.batches++ < this.maxBatches) offerUnits(r, values, dims, this.maxValues, this.minUnits);
    }
  }

  finish(): void {}

  /** What was kept, in request order (a repeated request once). */
  samples(): ActivationSample[] {
    return this.reservoirs.map((r) => ({ tensor: r.request.tensor, unit: r.request.unit, units: r.kept, seen: r.seen }));
  }
}

function offerUnits(r: Reservoir, values: Float32Array, dims: readonly number[], maxValues: number, minUnits: number): void {
  const { count, width, unitDims, copy } = unitsOf(r.request, values, dims);
  if (count === 0 || width === 0) return;
  if (r.capacity === 0) r.capacity = Math.max(minUnits, Math.floor(maxValues / width));
  for (let u = 0; u < count; u++) {
    const n = r.seen++;
    if (n < r.capacity) {
      r.kept.push({ dims: unitDims, values: copy(u) });
      continue;
    }
    const j = Math.floor(r.random() * (n + 1));
    if (j < r.capacity) r.kept[j] = { dims: unitDims, values: copy(u) };
  }
}

/** How one batch's values split into units; `copy(u)` copies unit u out (the buffer is only lent). */
function unitsOf(
  request: SampleRequest,
  values: Float32Array,
  dims: readonly number[],
): { count: number; width: number; unitDims: number[]; copy: (u: number) => Float32Array } {
  if (request.unit === 'items') {
    const count = dims.length === 0 ? 0 : dims[0];
    const width = count === 0 ? 0 : values.length / count;
    return { count, width, unitDims: dims.slice(1), copy: (u) => values.slice(u * width, (u + 1) * width) };
  }
  if (dims.length === 0) return { count: 0, width: 0, unitDims: [], copy: () => new Float32Array(0) };
  if (request.unit === 'rows') {
    const width = dims[dims.length - 1];
    return { count: width === 0 ? 0 : values.length / width, width, unitDims: [width], copy: (u) => values.slice(u * width, (u + 1) * width) };
  }
  // Columns of a 2-D [K, M] input read transposed (Gemm transA=1): M units of K values.
  if (dims.length !== 2) throw new OptionError(`activation samples: '${request.tensor}' is ${dims.length}-D; columns are sampled from 2-D tensors only`);
  const [k, m] = dims;
  return {
    count: m,
    width: k,
    unitDims: [k],
    copy: (u) => {
      const out = new Float32Array(k);
      for (let i = 0; i < k; i++) out[i] = values[i * m + u];
      return out;
    },
  };
}

/** Batches sampled (the first ones of the set), however the samples are collected. */
export const SAMPLE_BATCHES = 8;

/**
 * Samples of the requested tensors from the first `batches` batches of a set, in a run of their own (no
 * statistics): for statistics that were collected without them.
 */
export async function sampleActivations(
  model: OnnxModel,
  set: CalibrationSet,
  requests: readonly SampleRequest[],
  options: SamplerOptions & { batches?: number; session?: CollectOptions['session'] } = {},
): Promise<ActivationSample[]> {
  const sampler = new ActivationSampler(requests, options);
  if (sampler.targets.length === 0) return [];
  await collectStatistics(model, firstBatches(set, options.batches ?? SAMPLE_BATCHES), { observe: 'none', accumulators: [sampler], ...(options.session ? { session: options.session } : {}) });
  return sampler.samples();
}

/** The set cut to its first `count` batches (counts are those of the whole set: only progress reads them). */
function firstBatches(set: CalibrationSet, count: number): CalibrationSet {
  return {
    source: set.source,
    kind: set.kind,
    sampleCount: set.sampleCount,
    tokenCount: set.tokenCount,
    async *batches() {
      let n = 0;
      if (count <= 0) return;
      for await (const feeds of set.batches()) {
        yield feeds;
        if (++n >= count) return;
      }
    },
  };
}
