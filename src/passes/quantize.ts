// The quantize pass: plan (a named scheme or a plan file) -> ranges for the activations the plan quantizes
// (from the statistics an earlier calibrate pass left, a statistics file, or a calibration set collected here)
// -> solve and rewrite. Checks everything it can before work starts; saving and verifying are the runner's.
import { collectStatistics, type AnyActivationStatistics } from '../calibration/collect.js';
import { openCalibrationSet, openHeldOutSet, type CalibrationOptions } from '../calibration/data/index.js';
import { checkModelMatches, readStatsFile } from '../calibration/stats-file.js';
import { OptionError } from '../errors.js';
import { describeFolding, foldConstants, readAt, type FoldReport } from '../onnx/fold-constants.js';
import { inferShapes, rankLookup } from '../onnx/shapes.js';
import type { ValueFacts } from '../onnx/value-facts.js';
import type { OnnxModel } from '../onnx/model.js';
import type { NodeProto } from '../onnx/types.js';
import { planFromScheme, plannedActivations, planRows, type PlanOrigin, type PlanRow, type QuantPlan } from '../quantization/plan.js';
import { readPlanFile, resolvePlan } from '../quantization/plan-file.js';
import { ActivationSampler, sampleActivations } from '../calibration/activation-samples.js';
import { autoActivationRanges, autoClipBlocker, autoSampleRequests, type AutoChoice, type AutoRangeSet } from '../quantization/clip-auto.js';
import {
  activationRanges,
  checkClipOptions,
  clipChoice,
  CLIP_SETTINGS,
  DEFAULT_CLIP,
  DEFAULT_PERCENTILE,
  STANDARD_PERCENTILES,
  type ActivationRangeSet,
  type ClipChoice,
  type ClipSetting,
  type RangeEntry,
} from '../quantization/ranges.js';
import { QuantizationError, QuantOptionError, resolveScheme, type QuantParams, type SchemeOptions } from '../quantization/schemes.js';
import type { NodeSelection, SkippedNode } from '../quantization/select.js';
import { roundToNearest, type WeightSolver } from '../quantization/solvers.js';
import { tuneBiases, withValues, type BiasTuningReport } from '../quantization/bias-tuning.js';
import type { AdaquantSolverOptions } from '../quantization/adaquant/index.js';
import { adaquantMethod, gptqMethod, LAYERWISE_METHODS, QUANT_METHODS, type LayerwiseMethod, type QuantMethod } from '../quantization/layerwise/methods.js';
import { solveLayerwise, type LayerRecord, type LayerwiseResult, type LayerwiseSummary } from '../quantization/layerwise/run.js';
import { decoderStructure } from '../quantization/layerwise/structure.js';
import type { CalibrationSet } from '../calibration/data/index.js';
import { refuseQuantized, type NodeReport, type OpsetChange } from '../quantization/writers/common.js';
import { rewriteModel } from '../quantization/writers/index.js';
import { plannedActivationQuant, type PlannedActivationQuant } from '../quantization/writers/qdq.js';
import { StepOptions } from './options.js';
import { runFloat16 } from './quantize-fp16.js';
import type { CalibrationSummary, Pass, PassEnv, PassState } from './types.js';

export interface QuantizeOptions extends SchemeOptions {
  /** A named scheme (w8a8, w8, w4, w4a8, w4-qdq) or a plan file, or `allocated`: exactly one. */
  scheme?: string;
  plan?: string;
  /** The plan an earlier allocate step left in the run's state (a recipe's quantize step with no scheme and no plan). */
  allocated?: boolean;
  /**
   * Static QDQ: how activation ranges are clipped (a fixed method, or 'auto': chosen per tensor). Default auto,
   * or minmax (with a note) where auto cannot run: range-only statistics, or no calibration set to sample.
   */
  clip?: ClipChoice;
  select?: NodeSelection;
  /** Collect statistics here from this set (when no calibrate pass ran before). */
  calibration?: { data: string; options?: CalibrationOptions };
  /** Or read them from a file `calibrate` wrote for the same model file. */
  stats?: string;
  /** Weight solver: 'rtn' (round to nearest, the default), or a layer-wise one, 'gptq' or 'adaquant' (need a calibration set). */
  method?: QuantMethod;
  /**
   * Layer-wise methods: each block's inputs from the model with the earlier blocks already quantized (true, the
   * default) or from the float model (false).
   */
  sequential?: boolean;
  /**
   * After the weights are written, tune the quantized layers' biases and the norms' gains and biases against the
   * float model on the calibration set (src/quantization/bias-tuning.ts); needs a calibration set.
   */
  biasTuning?: boolean;
  /**
   * AdaQuant's steps, batch and the sample of each Conv input it tunes on (MatMul/Gemm tune on XᵀX; default:
   * DEFAULT_ADAQUANT_OPTIONS, ADAQUANT_SAMPLE_ROWS). Library callers only, no CLI flag: benchmarks use it to fit a whole-model run in time.
   */
  adaquant?: Pick<AdaquantSolverOptions, 'iterations' | 'batchSize' | 'backend'> & { sampleRows?: number };
}

export { LAYERWISE_METHODS, QUANT_METHODS, type QuantMethod };

export interface QuantizeReport {
  scheme: { name: QuantParams['scheme'] | 'plan'; writer: QuantParams['writer'] | 'mixed'; params?: QuantParams };
  /**
   * Layer-wise methods: per weight, its block, the output error before (RTN) and after the solver, its seconds and
   * the method's own figures (GPTQ's damping, AdaQuant's backend) in `layers`; the run itself in `layerwise`.
   */
  plan: { origin: PlanOrigin; solver: string; rows: PlanRow[]; layers?: LayerRecord[]; layerwise?: LayerwiseSummary };
  calibration: CalibrationSummary | null;
  /** Static schemes: how ranges were clipped and the range of every activation that was quantized. */
  activations: { method: ClipSetting; percentile?: number; ranges: RangeEntry[]; skipped: { tensor: string; reason: string }[]; choices?: AutoChoice[] } | null;
  nodes: { quantized: number; skipped: number; list: NodeReport[]; skippedList: SkippedNode[] };
  sqnrDb: { min: number; median: number; mean: number } | null;
  weights: { bytesBefore: number; bytesAfter: number; ratio: number };
  opsetChanges: OpsetChange[];
  irVersion: { from?: number; to?: number };
  /** Bias and norm tuning (biasTuning): its loss before and after on the held-out selection split, and what was kept. */
  biasTuning?: BiasTuningReport;
  /** Weights that were behind Constant nodes or constant chains, made initializers before planning; absent when none were. */
  folded?: FoldReport;
  notes: string[];
  timing: { calibrationSeconds: number; rangesSeconds: number; writeSeconds: number };
}

/** Inputs where the planner and writers look for a weight (select.ts, plan.ts: embeddings for Gather, Gemm's C as a bias). */
const WEIGHT_INPUTS = { MatMul: [1], Gemm: [1, 2], Conv: [1], Gather: [0] };

const SCHEME_KEYS = ['bits', 'blockSize', 'symmetric', 'accuracyLevel', 'activationType', 'perChannel', 'padding', 'quantizeEmbeddings'] as const;

export const quantizePass: Pass<QuantizeOptions, QuantizeReport> = {
  name: 'quantize',
  kind: 'transform',
  summary: 'quantize with a named scheme or a per-node plan file (QDQ, MatMulNBits, dynamic int8, GatherBlockQuantized, mixed)',
  parse(raw, where) {
    const o = new StepOptions(raw, where);
    const scheme = o.string('scheme');
    const plan = o.string('plan');
    const options: QuantizeOptions = {
      ...(scheme !== undefined ? { scheme } : {}),
      ...(plan !== undefined ? { plan } : {}),
      ...(scheme === undefined && plan === undefined ? { allocated: true } : {}),
      ...(o.has('bits') ? { bits: o.number('bits', { integer: true }) } : {}),
      ...(o.has('blockSize') ? { blockSize: o.number('blockSize', { integer: true }) } : {}),
      ...(o.has('symmetric') ? { symmetric: o.boolean('symmetric') } : {}),
      ...(o.has('accuracyLevel') ? { accuracyLevel: o.number('accuracyLevel', { integer: true }) } : {}),
      ...(o.has('activationType') ? { activationType: o.oneOf('activationType', ['uint8', 'int8'] as const) } : {}),
      ...(o.has('perChannel') ? { perChannel: o.boolean('perChannel') } : {}),
      ...(o.has('padding') ? { padding: o.oneOf('padding', ['pad', 'refuse'] as const) } : {}),
      ...(o.has('quantizeEmbeddings') ? { quantizeEmbeddings: o.boolean('quantizeEmbeddings') } : {}),
    };
    const method = o.oneOf('clip', CLIP_SETTINGS);
    const percentile = o.number('percentile', { min: 0, max: 100 });
    if (method !== undefined || percentile !== undefined) options.clip = clipChoice(method ?? 'percentile', percentile);
    const include = o.patterns('include');
    const exclude = o.patterns('exclude');
    const opTypes = o.strings('opTypes');
    if (include || exclude || opTypes) options.select = { ...(include ? { include } : {}), ...(exclude ? { exclude } : {}), ...(opTypes ? { opTypes } : {}) };
    const calib = o.string('calib');
    const stats = o.string('stats');
    if (calib !== undefined) {
      const samples = o.number('samples', { integer: true, min: 1 });
      const sequenceLength = o.number('seqLen', { integer: true, min: 1 });
      const batchSize = o.number('batch', { integer: true, min: 1 });
      const seed = o.number('seed', { integer: true, min: 0 });
      options.calibration = {
        data: calib,
        options: { ...(samples ? { samples } : {}), ...(sequenceLength ? { sequenceLength } : {}), ...(batchSize ? { batchSize } : {}), ...(seed !== undefined ? { seed } : {}) },
      };
    }
    if (stats !== undefined) options.stats = stats;
    if (o.has('method')) options.method = o.oneOf('method', QUANT_METHODS);
    if (o.has('sequential')) options.sequential = o.boolean('sequential');
    if (o.has('biasTuning')) options.biasTuning = o.boolean('biasTuning');
    o.done();
    try {
      checkQuantizeOptions(options);
    } catch (e) {
      if (e instanceof QuantizationError || e instanceof OptionError) o.fail(e.message);
      throw e;
    }
    return options;
  },
  outputScheme: (options) => checkQuantizeOptions(options),
  requires: (options) => (options.allocated ? 'allocate' : undefined),
  precheck(options, model) {
    refuseQuantized(model);
    if (options.plan !== undefined) readPlanFile(model, options.plan); // node names, formats and blocks, before calibration
  },
  run: (state, options, env) => runQuantize(state, options, env),
};

/** The plan an allocate step left; the runner's order check has made sure one ran. */
function allocatedPlan(model: OnnxModel, state: PassState): QuantPlan {
  if (!state.plan) throw new QuantOptionError('no scheme, no plan file and no plan from an allocate step before quantize');
  return resolvePlan(model, state.plan.file, state.plan.source);
}

/** Everything checkable without the model; throws a QuantOptionError. Returns the scheme's parameters. */
export function checkQuantizeOptions(options: QuantizeOptions): QuantParams | undefined {
  if ([options.scheme, options.plan, options.allocated || undefined].filter((x) => x !== undefined).length !== 1) {
    throw new QuantOptionError(`give exactly one of a scheme (w8a8, w8, w4, w4a8, w4-qdq) and a plan file${options.allocated ? ', or neither to take the plan of an allocate step before it' : ''}`);
  }
  if (options.calibration && options.stats) throw new QuantOptionError('--calib and --stats are alternatives: give one');
  if (options.sequential !== undefined && !(options.method && isLayerwise(options.method))) {
    throw new QuantOptionError(`--${options.sequential ? 'sequential' : 'parallel'} applies to the layer-wise methods (--method ${LAYERWISE_METHODS.join('|')}), not to ${options.method ?? 'rtn'}`);
  }
  if (options.clip) checkClipOptions(options.clip);
  if (options.plan !== undefined || options.allocated) {
    const given = SCHEME_KEYS.filter((k) => options[k] !== undefined);
    if (given.length) throw new QuantOptionError(`${given.join(', ')}: scheme options do not apply to a plan file, which sets them per node`);
    return undefined;
  }
  const params = resolveScheme(options.scheme!, pickSchemeOptions(options));
  if (options.method && isLayerwise(options.method) && params.writer === 'fp16') throw new QuantOptionError(`--method ${options.method}: scheme ${params.scheme} converts to float16 and has no integer weights to solve`);
  if (options.method && isLayerwise(options.method) && params.writer === 'dynamic') {
    throw new QuantOptionError(`--method ${options.method}: scheme ${params.scheme} quantizes activations at run time (dynamic), which a layer-wise solver cannot calibrate for; use rtn, or a static or weight-only scheme`);
  }
  if (options.biasTuning && params.writer === 'fp16') throw new QuantOptionError(`--bias-tuning: scheme ${params.scheme} converts to float16 and quantizes no weight whose error tuning could offset`);
  if (options.clip && !params.activations) {
    throw new QuantOptionError(`--clip: scheme ${params.scheme} quantizes weights only; clipping applies to activation ranges (w8a8)`);
  }
  return params;
}

export function isLayerwise(method: QuantMethod): boolean {
  return LAYERWISE_METHODS.includes(method);
}

function pickSchemeOptions(options: QuantizeOptions): SchemeOptions {
  const out: Record<string, unknown> = {};
  for (const k of SCHEME_KEYS) if (options[k] !== undefined) out[k] = options[k];
  return out as SchemeOptions;
}

async function runQuantize(state: PassState, options: QuantizeOptions, env: PassEnv): Promise<{ state: PassState; report: QuantizeReport }> {
  const params = checkQuantizeOptions(options);
  refuseQuantized(state.model);
  if (params?.writer === 'fp16') return runFloat16(state, options, params, env);
  // Weights stored as Constant nodes or computed from constants (exporters' Transpose, Cast, Reshape... chains)
  // become initializers first, so that the planner finds them; nothing else is touched.
  const makePlan = (m: OnnxModel): QuantPlan => (params ? planFromScheme(m, params, options.select ?? {}) : options.plan !== undefined ? readPlanFile(m, options.plan) : allocatedPlan(m, state));
  let folding = await foldConstants(state.model, { session: env.session, select: readAt(WEIGHT_INPUTS) });
  let plan = makePlan(folding.model);
  // A folded weight no planned node reads (excluded, skipped, an op the scheme does not rewrite) would stay as the
  // folded copy, which can be larger than its chain (an fp16 weight behind Cast(to float32) doubles): fold again,
  // from the input model, only what the plan quantizes, and plan on that.
  const planned = plannedWeightReads(plan);
  if (folding.report.values.some((v) => !planned.values.has(v.name))) {
    folding = await foldConstants(state.model, { session: env.session, select: (value, readers) => readers.some((n) => planned.reads(n, value)) });
    // The first plan's reasons for skipping stand: they were found with every weight visible, where the second
    // plan would only say that a weight left unfolded is not an initializer.
    plan = { ...makePlan(folding.model), skipped: plan.skipped };
  }
  const model = folding.model;
  const who = params ? `scheme ${params.scheme}` : `plan ${options.plan ?? state.plan?.source}`;
  // Before any calibration, and before complaints about options that only matter once something is quantized.
  if (plan.nodes.length === 0) throw noNodeError(env.modelPath, who, params, plan.skipped);
  const needed = plannedActivations(plan);
  const notes: string[] = folding.model !== state.model ? [describeFolding(folding.report)] : [];
  const next: PassState = { ...state, notes: state.notes };

  // Statistics only when the plan quantizes activations; otherwise a calibration set serves verification.
  let statistics: AnyActivationStatistics | undefined;
  let summary: CalibrationSummary | null = null;
  let calibrationSeconds = 0;
  let clip: ClipChoice = options.clip ?? DEFAULT_CLIP;
  // Auto clipping runs each quantized node on samples of its input, kept while the statistics are collected.
  const sampler = clip.method === 'auto' && needed.length > 0 && options.calibration ? new ActivationSampler(autoSampleRequests(plan)) : undefined;
  const layerwise = options.method !== undefined && isLayerwise(options.method) ? options.method : undefined;
  if (options.clip && needed.length === 0) throw new QuantOptionError(`--clip: ${who} quantizes no activation; clipping applies to activation ranges`);
  if (options.stats) {
    const file = readStatsFile(options.stats);
    checkModelMatches(file, env.modelPath, options.stats);
    if (state.model !== env.original) notes.push(`statistics from ${options.stats} describe the input model; an earlier pass changed it`);
    statistics = file.statistics;
    summary = { from: 'stats', path: options.stats, data: statistics.data, samples: statistics.samples, tokens: statistics.tokens, batches: statistics.batches, seconds: 0, options: { ...file.calibration } };
    if (needed.length === 0) notes.push(`${who} quantizes weights only: the statistics in ${options.stats} are not used for ranges`);
    next.calibrationSet = await reopenStatsData(model, file.statistics.data.source, file.calibration, notes);
    next.verificationSet ??= next.calibrationSet;
  } else if (options.calibration) {
    const set = await openCalibrationSet(options.calibration.data, model, options.calibration.options ?? {});
    next.calibrationSet = set;
    next.verificationSet = (await openHeldOutSet(options.calibration.data, model, options.calibration.options ?? {})) ?? set;
    if (needed.length) {
      const t = performance.now();
      const percentile = clip.method === 'percentile' ? (clip.percentile ?? DEFAULT_PERCENTILE) : undefined;
      // Per-tensor min and max only (computed inside ONNX Runtime, which needs opset 7+) when minmax is all the
      // clipping needs; the full observers give the same min and max on older graphs.
      const minmaxOnly = clip.method === 'minmax' && (model.opset('') ?? 0) >= 7;
      statistics = await collectStatistics(model, set, {
        targets: { names: needed },
        observe: minmaxOnly ? 'minmax' : 'full',
        percentiles: percentile !== undefined && !STANDARD_PERCENTILES.includes(percentile) ? [...STANDARD_PERCENTILES, percentile] : STANDARD_PERCENTILES,
        session: env.session,
        accumulators: sampler ? [sampler] : [],
        onProgress: env.onProgress ? (p) => env.onProgress!('calibration', p.samples, p.totalSamples) : undefined,
      });
      calibrationSeconds = (performance.now() - t) / 1000;
      summary = {
        from: 'data',
        path: options.calibration.data,
        data: statistics.data,
        samples: statistics.samples,
        tokens: statistics.tokens,
        batches: statistics.batches,
        seconds: statistics.seconds,
        ...(options.calibration.options ? { options: { ...options.calibration.options } } : {}),
      };
      next.statistics = { statistics, summary };
    } else if (!layerwise && !options.biasTuning) {
      notes.push(`${who} quantizes weights only: the calibration set is used for verification only`);
    }
  } else if (state.statistics) {
    statistics = state.statistics.statistics;
    summary = state.statistics.summary;
  }
  if (needed.length && !statistics) {
    throw new QuantOptionError(
      `${env.modelPath}: ${who} quantizes activations, which needs calibration: give --calib SET (a calibration set) or --stats FILE (written by onnx-compress calibrate), or run a calibrate pass first`,
    );
  }

  let solver: WeightSolver = roundToNearest;
  let t = performance.now();
  let ranges: ActivationRangeSet | AutoRangeSet | undefined;
  const set = next.calibrationSet ?? state.calibrationSet;
  if (needed.length && statistics && !options.clip && clip.method === 'auto') {
    const blocker = autoClipBlocker(statistics, needed) ?? (sampler || set ? undefined : 'needs the calibration set of the statistics, which cannot be reopened, to sample activations');
    if (blocker) {
      clip = { method: 'minmax' };
      notes.push(`activation ranges by minmax: auto clipping (the default) ${blocker}`);
    }
  }
  if (needed.length && statistics) {
    if (clip.method === 'auto') {
      if (!sampler && !set) throw new QuantOptionError(`${env.modelPath}: --clip auto runs each quantized node on calibration samples, but the calibration set of the statistics cannot be opened`);
      const samples = sampler ? sampler.samples() : await sampleActivations(model, set!, autoSampleRequests(plan), { session: env.session });
      // Candidates are judged with round-to-nearest weights: GPTQ's codes depend on H only, not on the ranges.
      ranges = await autoActivationRanges(model, plan, statistics, samples, { solver: roundToNearest, session: env.session });
    } else {
      ranges = activationRanges(statistics, clip, needed);
    }
  }
  const rangesSeconds = (performance.now() - t) / 1000;

  // After the ranges, which do not depend on the solved codes: the layer-wise captures simulate the activation
  // quantization the written model will do with them.
  let solved: LayerwiseResult | undefined;
  if (layerwise) {
    t = performance.now();
    const layerSet = next.calibrationSet ?? state.calibrationSet;
    if (!layerSet) throw new QuantOptionError(`${env.modelPath}: --method ${layerwise} needs a calibration set for its layers' inputs: give --calib SET`);
    solved = await runLayerwise(model, plan, layerSet, layerwise, options, env, ranges ? plannedActivationQuant(plan, ranges.ranges) : undefined);
    solver = solved.solver;
    notes.push(...solved.notes);
    calibrationSeconds += (performance.now() - t) / 1000;
  }

  t = performance.now();
  const valueFacts = await ranksForOpsetRaise(model, env, notes);
  const written = rewriteModel(model, plan, { solver, ...(ranges ? { activationRanges: ranges.ranges } : {}), ...(valueFacts ? { valueFacts } : {}) });
  const writeSeconds = (performance.now() - t) / 1000;
  const r = written.report;
  if (r.nodes.length === 0) throw noNodeError(env.modelPath, who, params, r.skipped);
  // Biases a layer-wise method tuned with their weights (AdaQuant) replace the float ones the writers kept.
  next.model = solved?.tunedBiases.size ? withValues(written.model, solved.tunedBiases) : written.model;
  if (solved?.tunedBiases.size) notes.push(`${solved.summary.method}: the written model holds the tuned biases of ${solved.tunedBiases.size} layers`);
  let biasTuning: BiasTuningReport | undefined;
  if (options.biasTuning) {
    const tuneSet = next.calibrationSet ?? state.calibrationSet;
    if (!tuneSet) throw new QuantOptionError(`${env.modelPath}: --bias-tuning tunes against the float model on calibration data: give --calib SET`);
    const seed = options.calibration?.options?.seed;
    const tuned = await tuneBiases(
      { float: model, written: next.model, plan, solver, set: tuneSet },
      { session: env.session, ...(seed !== undefined ? { seed } : {}), ...(env.onProgress ? { onEpoch: (done, total) => env.onProgress!('bias tuning', done, total) } : {}) },
    );
    next.model = tuned.model;
    if (tuned.report) biasTuning = tuned.report;
    notes.push(...tuned.notes);
  }
  if (params) next.scheme = params;
  const counted = r.nodes.filter((n) => !n.sharedWeight);
  const used = new Set(r.nodes.map((n) => n.activation).filter((a): a is string => a !== undefined));
  return {
    state: next,
    report: {
      scheme: { name: r.scheme, writer: r.writer, ...(params ? { params } : {}) },
      plan: { origin: plan.origin, solver: solver.name, rows: planRows(plan), ...(solved ? { layers: solved.records, layerwise: solved.summary } : {}) },
      calibration: summary,
      activations: ranges
        ? {
            method: clip.method,
            ...(ranges.percentile !== undefined ? { percentile: ranges.percentile } : {}),
            ranges: ranges.entries.filter((e) => used.has(e.tensor)),
            skipped: ranges.skipped,
            ...('choices' in ranges ? { choices: ranges.choices.filter((c) => used.has(c.tensor)) } : {}),
          }
        : null,
      nodes: { quantized: r.nodes.length, skipped: r.skipped.length, list: r.nodes, skippedList: r.skipped },
      sqnrDb: summarizeSqnr(counted.map((n) => n.sqnrDb)),
      weights: { ...r.totals, ratio: r.totals.bytesBefore > 0 ? r.totals.bytesAfter / r.totals.bytesBefore : 1 },
      opsetChanges: r.opsetChanges,
      irVersion: r.irVersion,
      ...(biasTuning ? { biasTuning } : {}),
      ...(folding.model !== state.model ? { folded: folding.report } : {}),
      notes: [...notes, ...r.notes],
      timing: { calibrationSeconds, rangesSeconds, writeSeconds },
    },
  };
}

/**
 * The layer-wise solve (src/quantization/layerwise/): blocks from the decoder structure when discovery recognises
 * the graph, sequential unless told otherwise, progress per block.
 */
async function runLayerwise(
  model: OnnxModel,
  plan: QuantPlan,
  set: CalibrationSet,
  method: QuantMethod,
  options: QuantizeOptions,
  env: PassEnv,
  activationQuant: ReadonlyMap<string, PlannedActivationQuant> | undefined,
): Promise<LayerwiseResult> {
  const { structure, note } = await decoderStructure(model);
  const mode = options.sequential === false ? 'parallel' : 'sequential';
  const seed = options.calibration?.options?.seed;
  const stage = `${method} (${mode})`;
  return solveLayerwise(model, plan, set, {
    method: method === 'adaquant' ? adaquantFor(options.adaquant, seed) : gptqMethod(),
    mode,
    session: env.session,
    ...(seed !== undefined ? { seed } : {}),
    ...(activationQuant?.size ? { activationQuant } : {}),
    ...(structure ? { structure } : {}),
    ...(note ? { structureNote: note } : {}),
    ...(env.onProgress ? { onBlock: (done: number, total: number) => env.onProgress!(stage, done, total) } : {}),
  });
}

function adaquantFor(tuning: QuantizeOptions['adaquant'], seed: number | undefined): LayerwiseMethod {
  const { sampleRows, ...options } = tuning ?? {};
  return adaquantMethod({ ...options, ...(seed !== undefined ? { seed } : {}) }, sampleRows);
}

function noNodeError(modelPath: string, who: string, params: QuantParams | undefined, skipped: readonly SkippedNode[]): QuantizationError {
  const handled = params ? ` (it rewrites ${params.opTypes.join(', ')} with a constant float weight)` : '';
  return new QuantizationError(`${modelPath}: no node to quantize with ${who}${handled}${skipped.length ? `; skipped: ${skipped.map((s) => `${s.node} (${s.reason})`).join('; ')}` : ''}`);
}

/**
 * The weight inputs (WEIGHT_INPUTS positions) of the nodes a plan quantizes: their names, and a test of whether a
 * node of another copy of the graph is one of them reading a value there. Folding leaves a node's outputs as they
 * were, so its first output names it in the input model and in any folded copy.
 */
function plannedWeightReads(plan: QuantPlan): { values: Set<string>; reads: (node: NodeProto, value: string) => boolean } {
  const positions = (n: NodeProto): readonly number[] => WEIGHT_INPUTS[n.opType as keyof typeof WEIGHT_INPUTS] ?? [];
  const nodes = new Set(plan.nodes.map((p) => p.target.node.output[0]));
  const values = new Set(plan.nodes.flatMap((p) => positions(p.target.node).map((k) => p.target.node.input[k]).filter((v): v is string => !!v)));
  return { values, reads: (n, value) => nodes.has(n.output[0]) && positions(n).some((k) => n.input[k] === value) };
}

async function reopenStatsData(model: OnnxModel, source: string, options: CalibrationOptions, notes: string[]) {
  try {
    return await openCalibrationSet(source, model, options);
  } catch (e) {
    notes.push(`the statistics' calibration set ${source} cannot be reopened (${(e as Error).message}): verification uses generated inputs`);
    return undefined;
  }
}

function summarizeSqnr(values: number[]): QuantizeReport['sqnrDb'] {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return null;
  const mid = finite.length >> 1;
  return {
    min: finite[0],
    median: finite.length % 2 ? finite[mid] : (finite[mid - 1] + finite[mid]) / 2,
    mean: finite.reduce((a, v) => a + v, 0) / finite.length,
  };
}

/** Ops whose `axis` meant "flatten to 2-D here" before opset 13 and "this axis" from 13. */
const FLATTENING_BEFORE_13 = new Set(['Softmax', 'LogSoftmax', 'Hardmax']);

/**
 * Ranks of the model's values from one ONNX Runtime run (src/onnx/shapes.ts), when the writers may raise the
 * opset past 13 over a Softmax-family node with an explicit axis: with the rank known, an axis that is the last
 * one keeps the node as it is; without it the upgrade is still exact, through Flatten/op/Reshape. A model whose
 * shapes cannot be generated from its declared inputs gets that longer, exact form and a note.
 */
async function ranksForOpsetRaise(model: OnnxModel, env: PassEnv, notes: string[]): Promise<ValueFacts | undefined> {
  if ((model.opset('') ?? 13) >= 13) return undefined;
  const explicit = model.graph.node.some((n) => FLATTENING_BEFORE_13.has(n.opType ?? '') && n.attribute.some((a) => a.name === 'axis' && Number(a.i) !== -1));
  if (!explicit) return undefined;
  try {
    return { rankOf: rankLookup(model.graph, await inferShapes(model, undefined, { session: env.session })) };
  } catch (e) {
    notes.push(`ranks for the opset raise could not be inferred (${(e as Error).message}); Softmax-family nodes with an explicit axis keep their meaning through Flatten/Reshape`);
    return undefined;
  }
}
