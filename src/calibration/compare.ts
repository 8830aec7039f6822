// Does the calibration set matter? For each set: the activation statistics of the tensors a static scheme
// quantizes, then the model quantized with that set's ranges and scored on evaluation domains. What comes back:
//   - per tensor, each set's range by three measures (|x| max, |x| 99.99th percentile, entropy threshold) and how
//     far apart the sets are (relative spread = (largest - smallest) / largest, 0 when all agree); the tensors
//     that move most, by the |x| max spread (minmax ranges, the default clipping, follow it);
//   - per set, outlier counts (|x| >= 6, LLM.int8()'s magnitude; beyond 6 sigma) over those tensors and how far
//     its ranges lie from the first set's (mean |log2 ratio| of |x| max);
//   - perplexity (and bits per byte) of the fp32 model and of each set's quantized model on each domain's
//     evaluation split: a (1 + sets) x domains matrix.
// Statistics are reduced to these figures as soon as a set is done, so memory does not grow with the sets.
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DecoderSession } from '../decoding/decoder-session.js';
import { perplexity } from '../decoding/perplexity.js';
import type { WindowPlan } from '../decoding/scoring-windows.js';
import { textCodecFor } from '../decoding/text-codec.js';
import { readScoringSet, resolveTextSet, type ScoringSet } from '../decoding/text-set.js';
import { describeDecoder } from '../onnx/decoder-info.js';
import { loadModel, ModelError, type OnnxModel } from '../onnx/model.js';
import { activationRanges, checkClipOptions, DEFAULT_PERCENTILE, type ClipMethod, type ClipOptions } from '../quantization/ranges.js';
import { QuantizationError, resolveScheme } from '../quantization/schemes.js';
import { selectTargets as selectQuantTargets } from '../quantization/select.js';
import { quantizeModel } from '../quantization/writers/index.js';
import { reportMeta } from '../report/meta.js';
import type { ReportMeta } from '../report/types.js';
import { collectStatistics, type ActivationStatistics, type CollectProgress } from './collect.js';
import { openCalibrationSet, type CalibrationOptions } from './data/index.js';
import { requiredInputs } from './data/model-inputs.js';
import { missingSetError } from './missing-set.js';
import { resolveSetPath } from './shipped-sets.js';

export const COMPARE_KIND = 'compare-calib';
export const COMPARE_VERSION = 1;

export const COMPARE_DEFAULTS = {
  samples: 32,
  sequenceLength: 128,
  seed: 0,
  batchSize: 4,
  scheme: 'w8a8',
  /** Scored tokens per evaluation domain. */
  evalTokens: 4096,
  /** Tokens per scoring window (capped by the model's positions); stride is half of it. */
  window: 256,
  top: 10,
} as const;

/** The three range measures compared. */
export const RANGE_MEASURES = ['absMax', 'p9999', 'entropy'] as const;
export type RangeMeasure = (typeof RANGE_MEASURES)[number];

export const MEASURE_LABELS: Readonly<Record<RangeMeasure, string>> = {
  absMax: '|x| max',
  p9999: '|x| p99.99',
  entropy: 'entropy threshold',
};

export interface CompareOptions {
  /** Calibration sets: shipped names (prose, code...), set folders or .jsonl files; at least one. */
  sets: readonly string[];
  /** Evaluation domains (their `evaluation` split): shipped names, set folders or .jsonl files. Default: the sets' own. */
  eval?: readonly string[];
  samples?: number;
  sequenceLength?: number;
  seed?: number;
  batchSize?: number;
  /** A scheme that quantizes activations from calibration ranges; default w8a8. */
  scheme?: string;
  /** How each set's statistics become the quantizer's ranges (quantization/ranges.ts); default minmax. */
  clip?: ClipOptions;
  evalTokens?: number;
  window?: number;
  /** How many tensors the `mostMoved` list keeps. */
  top?: number;
  /** ONNX Runtime intra-op threads. */
  threads?: number;
  onProgress?: (event: CompareProgress) => void;
}

export type CompareProgress =
  | { phase: 'calibrate'; set: string; index: number; sets: number; progress: CollectProgress }
  | { phase: 'evaluate'; model: string; domain: string; done: number; total: number };

/** A calibration set or evaluation domain as named in the report, and the file or folder read. */
export interface NamedSource {
  name: string;
  path: string;
}

export interface TensorRange {
  min: number;
  max: number;
  absMax: number;
  /** 99.99th percentile of |x|. */
  p9999: number;
  /** Entropy (KL-optimal) clipping range and its threshold max(|low|, |high|). */
  entropyRange: [number, number];
  entropy: number;
  /** Values with |x| >= the outlier magnitude. */
  outliers: number;
  /** Values beyond the outlier sigmas from the mean: bounds from the histogram. */
  beyondSigmas: [lower: number, upper: number];
  count: number;
}

export interface TensorComparison {
  tensor: string;
  producer?: { node: string; opType: string };
  /** Quantized nodes reading the tensor. */
  consumers: string[];
  /** One per set, in the order of `sets`. */
  ranges: TensorRange[];
  /** (largest - smallest) / largest over the sets, per measure; in [0, 1]. */
  spread: Record<RangeMeasure, number>;
  /** log2(largest / smallest) over the sets, per measure; null when the smallest is 0. */
  log2Ratio: Record<RangeMeasure, number | null>;
}

export interface SetSummary extends NamedSource {
  kind: ActivationStatistics['data']['kind'];
  samples: number;
  tokens: number;
  seconds: number;
  outliers: {
    magnitude: number;
    sigmas: number;
    /** Values with |x| >= magnitude, over the compared tensors. */
    atLeastMagnitude: number;
    /** Share of all observed values. */
    fraction: number;
    /** Compared tensors holding at least one. */
    tensors: number;
    /** Values beyond `sigmas` standard deviations (bounds from the histograms). */
    beyondSigmas: { lower: number; upper: number };
    values: number;
  };
  /** Mean and largest |log2(|x| max / first set's |x| max)| over the tensors; 0 for the first set. */
  shiftFromFirst: { mean: number; max: number };
  /** What the quantizer did with this set's ranges. */
  quantization: { nodes: number; activations: number; notes: string[] };
}

export interface DomainSummary extends NamedSource {
  documents: number;
  tokens: number;
  bytes: number;
}

export interface PerplexityMatrix {
  /** 'fp32', then one row per set (the model quantized with that set's ranges). */
  rows: string[];
  /** Evaluation domains. */
  columns: string[];
  perplexity: number[][];
  bitsPerByte: number[][];
  /** perplexity / fp32 perplexity, per cell (the fp32 row is all 1). */
  ratioToFp32: number[][];
}

export interface CompareCalibReport {
  kind: typeof COMPARE_KIND;
  version: typeof COMPARE_VERSION;
  meta: ReportMeta;
  model: string;
  scheme: string;
  /** How each set's statistics became the quantizer's ranges (and the percentile, for 'percentile'). */
  rangeMethod: ClipMethod;
  percentile?: number;
  calibration: Required<Pick<CalibrationOptions, 'samples' | 'sequenceLength' | 'seed' | 'batchSize'>> & { split: 'calibration' };
  evaluation: { split: 'evaluation'; maxTokens: number; window: number; stride: number; tokenizer: string } | null;
  sets: SetSummary[];
  domains: DomainSummary[];
  /** Every compared tensor (the scheme's quantized activations), in topological order. */
  tensors: TensorComparison[];
  /** The `top` tensors with the largest |x| max spread, largest first. */
  mostMoved: string[];
  perplexity: PerplexityMatrix | null;
  notes: string[];
  seconds: number;
}

/** A calibration set as typed: an existing file or folder, or the name of a shipped set (its folder). */
export function resolveCalibrationSet(spec: string): NamedSource {
  const path = resolveSetPath(spec);
  if (!existsSync(path)) throw missingSetError(spec);
  return { name: path === spec ? setName(spec) : spec, path };
}

/** An evaluation domain as typed: its evaluation file. */
export function resolveEvaluationDomain(spec: string): NamedSource {
  return { name: existsSync(spec) ? setName(spec) : spec, path: resolveTextSet(spec) };
}

function setName(path: string): string {
  const base = basename(path.replace(/[\\/]+$/, ''));
  if (!statSync(path).isDirectory()) {
    const stem = base.replace(/\.jsonl$/, '');
    // calibration-sets/prose/calibration.jsonl -> prose
    return ['calibration', 'selection', 'evaluation', 'train'].includes(stem) ? basename(dirname(path)) : stem;
  }
  return base;
}

/** Distinct names: a repeated one gets #2, #3...; 'fp32' is the unquantized row of the matrix. */
function distinctNames<T extends NamedSource>(items: T[], reserved: readonly string[] = []): T[] {
  const seen = new Set(reserved);
  return items.map((item) => {
    let name = item.name;
    for (let k = 2; seen.has(name); k++) name = `${item.name}#${k}`;
    seen.add(name);
    return { ...item, name };
  });
}

/** The quantizer's activation ranges from one set's statistics, clipped as the quantize command clips them. */
export function activationRangesFrom(statistics: ActivationStatistics, clip: ClipOptions = { method: 'minmax' }): Map<string, [number, number]> {
  return activationRanges(statistics, clip).ranges;
}

export async function compareCalibrationSets(modelPath: string, options: CompareOptions): Promise<CompareCalibReport> {
  const started = performance.now();
  if (options.sets.length === 0) throw new ModelError('compare-calib needs at least one calibration set');
  const schemeName = options.scheme ?? COMPARE_DEFAULTS.scheme;
  const params = resolveScheme(schemeName);
  if (!params.activations) {
    throw new QuantizationError(
      `scheme ${schemeName} quantizes weights only, so the calibration set does not change the quantized model; compare-calib needs a static scheme (w8a8)`,
    );
  }
  const clip = options.clip ?? { method: 'minmax' };
  checkClipOptions(clip);
  const model = loadModel(modelPath);
  const sets = distinctNames(options.sets.map(resolveCalibrationSet), ['fp32']);
  const decoder = describeDecoder(model);
  // A model that fixes input_ids' batch or length gets those (anything else would be refused by the data layer).
  const [fixedBatch, fixedLength] = requiredInputs(model).find((i) => i.name === 'input_ids')?.dims ?? [];
  const calibration = {
    samples: options.samples ?? COMPARE_DEFAULTS.samples,
    sequenceLength: options.sequenceLength ?? fixedLength ?? Math.min(COMPARE_DEFAULTS.sequenceLength, decoder?.maxPositions ?? Infinity),
    seed: options.seed ?? COMPARE_DEFAULTS.seed,
    batchSize: options.batchSize ?? fixedBatch ?? COMPARE_DEFAULTS.batchSize,
  };
  if (options.eval?.length && !decoder) {
    throw new ModelError(`${modelPath}: not a decoder language model, so there is no perplexity to measure; leave out --eval`);
  }
  const domains = distinctNames(options.eval ? options.eval.map(resolveEvaluationDomain) : decoder ? defaultDomains(sets) : []);
  const notes: string[] = [];
  if (decoder && domains.length === 0) notes.push('no evaluation domain: none of the sets has an evaluation split and none was given');

  // The tensors the scheme quantizes, and the nodes reading each.
  const targets = selectQuantTargets(model, {}, params.writer, params.opTypes).targets;
  const consumers = new Map<string, string[]>();
  for (const t of targets) consumers.set(t.activation, [...(consumers.get(t.activation) ?? []), t.label]);
  if (consumers.size === 0) throw new QuantizationError(`${modelPath}: scheme ${schemeName} finds no node to quantize (${params.opTypes.join(', ')} with constant weights)`);

  // 1. Statistics per set, reduced at once to ranges and outlier counts.
  const perSet: { source: NamedSource; statistics: Omit<ActivationStatistics, 'tensors'>; ranges: Map<string, TensorRange>; quantRanges: Map<string, [number, number]> }[] = [];
  for (const [index, source] of sets.entries()) {
    const data = await openCalibrationSet(source.path, model, { ...calibration, split: 'calibration' });
    const statistics = await collectStatistics(model, data, {
      targets: { names: [...consumers.keys()] },
      ...(options.threads ? { session: { intraOpThreads: options.threads } } : {}),
      onProgress: (progress) => options.onProgress?.({ phase: 'calibrate', set: source.name, index, sets: sets.length, progress }),
    });
    const { tensors, ...rest } = statistics;
    perSet.push({
      source,
      statistics: rest,
      ranges: new Map(tensors.map((t) => [t.name, tensorRange(t.stats)])),
      quantRanges: activationRangesFrom(statistics, clip),
    });
  }

  // 2. Range differences, over the tensors every set observed (in topological order).
  const order = [...consumers.keys()].filter((name) => perSet.every((s) => s.ranges.has(name)));
  const producers = new Map(producersOf(model));
  const tensors: TensorComparison[] = order.map((name) => {
    const ranges = perSet.map((s) => s.ranges.get(name)!);
    const spread = {} as Record<RangeMeasure, number>;
    const log2Ratio = {} as Record<RangeMeasure, number | null>;
    for (const m of RANGE_MEASURES) {
      const values = ranges.map((r) => r[m]);
      const hi = Math.max(...values);
      const lo = Math.min(...values);
      spread[m] = hi > 0 ? (hi - lo) / hi : 0;
      log2Ratio[m] = lo > 0 ? Math.log2(hi / lo) : hi > 0 ? null : 0;
    }
    const producer = producers.get(name);
    return { tensor: name, ...(producer ? { producer } : {}), consumers: consumers.get(name)!, ranges, spread, log2Ratio };
  });
  const mostMoved = [...tensors]
    .sort((a, b) => b.spread.absMax - a.spread.absMax || b.spread.p9999 - a.spread.p9999 || b.spread.entropy - a.spread.entropy)
    .slice(0, options.top ?? COMPARE_DEFAULTS.top)
    .map((t) => t.tensor);

  // 3. What the quantizer makes of each set's ranges, and the perplexity matrix.
  const setSummaries: SetSummary[] = perSet.map((s, i) => summarizeSet(s.source, s.statistics, tensors, i));
  // One quantized model at a time: built when it is scored, dropped after.
  const variants = perSet.map((s, i) => ({
    name: s.source.name,
    build: (): OnnxModel => {
      const { model: q, report: r } = quantizeModel(model, params, { activationRanges: s.quantRanges });
      const activations = new Set(r.nodes.flatMap((n) => (n.activation ? [n.activation] : []))).size;
      setSummaries[i].quantization = { nodes: r.nodes.length, activations, notes: r.notes };
      return q;
    },
  }));
  const scored = decoder && domains.length > 0 ? await scoreMatrix(modelPath, model, variants, domains, options) : null;
  if (!scored) for (const v of variants) v.build(); // the quantizer's account of each set's ranges, even unscored

  return {
    kind: COMPARE_KIND,
    version: COMPARE_VERSION,
    meta: reportMeta(),
    model: modelPath,
    scheme: params.scheme,
    rangeMethod: clip.method,
    ...(clip.method === 'percentile' ? { percentile: clip.percentile ?? DEFAULT_PERCENTILE } : {}),
    calibration: { ...calibration, split: 'calibration' },
    evaluation: scored?.evaluation ?? null,
    sets: setSummaries,
    domains: scored?.domains ?? [],
    tensors,
    mostMoved,
    perplexity: scored?.matrix ?? null,
    notes,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * Perplexity of the fp32 model and of each quantized model on every domain. Domains are tokenised once; one
 * model is open at a time.
 */
async function scoreMatrix(
  modelPath: string,
  model: OnnxModel,
  quantized: readonly { name: string; build: () => OnnxModel }[],
  domains: readonly NamedSource[],
  options: CompareOptions,
): Promise<{ matrix: PerplexityMatrix; evaluation: NonNullable<CompareCalibReport['evaluation']>; domains: DomainSummary[] }> {
  const sessionOptions = options.threads ? { intraOpThreads: options.threads } : {};
  const total = (quantized.length + 1) * domains.length;
  let done = 0;
  const rows: { perplexity: number; bitsPerByte: number }[][] = [];
  const scoreRow = async (label: string, decoder: DecoderSession, scoring: readonly ScoringSet[], plan: WindowPlan): Promise<void> => {
    const row: { perplexity: number; bitsPerByte: number }[] = [];
    for (const [d, set] of scoring.entries()) {
      const r = await perplexity(decoder, set, plan);
      row.push({ perplexity: r.perplexity, bitsPerByte: r.bitsPerByte });
      options.onProgress?.({ phase: 'evaluate', model: label, domain: domains[d].name, done: ++done, total });
    }
    rows.push(row);
  };

  const fp32 = await DecoderSession.open({ path: modelPath, model }, sessionOptions);
  let scoring: ScoringSet[];
  let evaluation: NonNullable<CompareCalibReport['evaluation']>;
  try {
    const maxTokens = options.evalTokens ?? COMPARE_DEFAULTS.evalTokens;
    const window = Math.max(2, Math.min(options.window ?? COMPARE_DEFAULTS.window, fp32.maxPositions ?? Infinity));
    const codec = textCodecFor(model, fp32.vocab);
    scoring = [];
    for (const domain of domains) scoring.push(await readScoringSet(domain.path, codec, { bos: fp32.special.bos, maxTokens }));
    evaluation = { split: 'evaluation', maxTokens, window, stride: Math.max(1, Math.floor(window / 2)), tokenizer: codec.description };
    await scoreRow('fp32', fp32, scoring, evaluation);
  } finally {
    await fp32.dispose();
  }
  for (const q of quantized) {
    const decoder = await DecoderSession.open(q.build(), sessionOptions);
    try {
      await scoreRow(q.name, decoder, scoring, evaluation);
    } finally {
      await decoder.dispose();
    }
  }
  const perplexities = rows.map((r) => r.map((c) => c.perplexity));
  return {
    evaluation,
    domains: domains.map((d, i) => ({ ...d, documents: scoring[i].documents.length, tokens: scoring[i].tokens, bytes: scoring[i].bytes })),
    matrix: {
      rows: ['fp32', ...quantized.map((q) => q.name)],
      columns: domains.map((d) => d.name),
      perplexity: perplexities,
      bitsPerByte: rows.map((r) => r.map((c) => c.bitsPerByte)),
      ratioToFp32: perplexities.map((r) => r.map((p, d) => p / perplexities[0][d])),
    },
  };
}

/** Default evaluation domains: each set folder's own evaluation split, where it has one. */
function defaultDomains(sets: readonly NamedSource[]): NamedSource[] {
  return sets.flatMap((s) => {
    const file = join(s.path, 'evaluation.jsonl');
    return statSync(s.path).isDirectory() && existsSync(file) ? [{ name: s.name, path: file }] : [];
  });
}

function tensorRange(s: ActivationStatistics['tensors'][number]['stats']): TensorRange {
  const p9999 = s.absPercentiles.find((p) => p.percentile === 99.99)?.value ?? s.absMax;
  return {
    min: s.min,
    max: s.max,
    absMax: s.absMax,
    p9999,
    entropyRange: [s.entropy.low, s.entropy.high],
    entropy: Math.max(Math.abs(s.entropy.low), Math.abs(s.entropy.high)),
    outliers: s.outliers.atLeastMagnitude,
    beyondSigmas: [s.outliers.beyondSigmas.lower, s.outliers.beyondSigmas.upper],
    count: s.count,
  };
}

function producersOf(model: OnnxModel): [string, { node: string; opType: string }][] {
  const out: [string, { node: string; opType: string }][] = [];
  model.graph.node.forEach((node, i) => {
    for (const o of node.output) if (o) out.push([o, { node: node.name || `#${i}`, opType: node.opType ?? '' }]);
  });
  return out;
}

function summarizeSet(source: NamedSource, s: Omit<ActivationStatistics, 'tensors'>, tensors: readonly TensorComparison[], index: number): SetSummary {
  let atLeast = 0;
  let values = 0;
  const beyond = { lower: 0, upper: 0 };
  let withOutliers = 0;
  const shifts: number[] = [];
  for (const t of tensors) {
    const r = t.ranges[index];
    atLeast += r.outliers;
    values += r.count;
    beyond.lower += r.beyondSigmas[0];
    beyond.upper += r.beyondSigmas[1];
    if (r.outliers > 0) withOutliers++;
    const first = t.ranges[0].absMax;
    if (first > 0 && r.absMax > 0) shifts.push(Math.abs(Math.log2(r.absMax / first)));
  }
  return {
    ...source,
    kind: s.data.kind,
    samples: s.samples,
    tokens: s.tokens,
    seconds: s.seconds,
    outliers: {
      magnitude: s.options.stats.outlierMagnitude,
      sigmas: s.options.stats.outlierSigmas,
      atLeastMagnitude: atLeast,
      fraction: values > 0 ? atLeast / values : 0,
      tensors: withOutliers,
      beyondSigmas: beyond,
      values,
    },
    shiftFromFirst: { mean: shifts.length ? shifts.reduce((a, b) => a + b, 0) / shifts.length : 0, max: shifts.length ? Math.max(...shifts) : 0 },
    quantization: { nodes: 0, activations: 0, notes: [] },
  };
}
