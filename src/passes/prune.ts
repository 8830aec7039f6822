// The prune pass: structured pruning of a decoder (whole GQA groups and MLP neurons) to a target sparsity of its
// attention + MLP parameters, scored by NIRVANA's saliency or a baseline (src/pruning/), with the calibration set
// given or chosen by KL among candidates. The model really shrinks (surgery.ts); saving and verifying are the
// runner's. Pruning moves outputs far more than quantization, and the runner's quality gate applies as it is: a
// pruned model below the thresholds is refused unless the user lowers them or passes --no-gate (the report
// carries the gate's figures either way), so the gate never passes silently and its meaning stays one.
import { CalibrationDataError } from '../calibration/data/errors.js';
import { openCalibrationSet, openHeldOutSet, type CalibrationOptions, type CalibrationSet } from '../calibration/data/index.js';
import { OptionError } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { checkSparsity, DEFAULT_GAMMA } from '../pruning/allocate.js';
import { parseCandidates, selectByKl, type CandidateResult } from '../pruning/kl-select.js';
import { applyScores, methodReadsData, PRUNE_METHODS, scoreUnits, type MethodScores, type PruneMethod, type PruneOutcome } from '../pruning/prune.js';
import { SCORE_NORMALISATIONS, type ScoreNormalisation } from '../pruning/normalize.js';
import { SALIENCY_OBJECTIVES, type SaliencyObjective } from '../pruning/saliency.js';
import { BACKEND_CHOICES, type BackendChoice, type BackendName } from '../runtime/tf/index.js';
import { discoverDecoderStructure } from '../structure/discover.js';
import type { DecoderStructure } from '../structure/decoder-structure.js';
import { StepOptions } from './options.js';
import type { Pass, PassEnv, PassState } from './types.js';

/** The reference's calibration batch: 32 samples of 128 tokens; gradients are taken 8 samples at a time. */
export const DEFAULT_PRUNE_CALIBRATION = { samples: 32, sequenceLength: 128, batchSize: 8 } as const;

export interface PruneOptions {
  /** Fraction of the attention + MLP parameters to remove, in [0, 1). */
  sparsity: number;
  method: PruneMethod;
  gamma?: number;
  /** nirvana only: max-logits (the reference's F, default) or loss. */
  objective?: SaliencyObjective;
  /** Per-layer normalisation of the scores before the global ranking (default none, the reference's). */
  normalise?: ScoreNormalisation;
  /** Smallest fraction of each layer's MLP neurons kept (default 0: the reference's 8-neuron floor only). */
  minMlpKeep?: number;
  /** One calibration set ... */
  calibration?: { data: string; options?: CalibrationOptions };
  /** ... or candidates (`SET` / `SET@SEED`) to choose between by KL; their options come from `calibration.options`. */
  candidates?: string[];
  /** KL selection split (default: the first candidate's set) and evaluation split for each candidate's perplexity. */
  selectOn?: string;
  evalOn?: string;
  /** Tokens each candidate is scored on (selection and evaluation). */
  selectTokens?: number;
  backend?: BackendChoice;
}

export interface PruneLayerReport {
  layer: number;
  groups: { kept: number[]; total: number };
  heads: { kept: number; total: number };
  neurons: { kept: number; total: number };
  /** FLAP: the projections whose output gained the removed units' mean contribution as a bias. */
  compensation: ('attention' | 'mlp')[];
}

export interface PruneReport {
  method: PruneMethod;
  objective?: SaliencyObjective;
  sparsity: number;
  gamma: number;
  calibration: { data: string; seed: number; samples: number; tokens: number } | null;
  /** Attention + MLP parameters (target and achieved), and every float parameter of the model before and after. */
  params: PruneOutcome['allocation']['params'] & { modelBefore: number; modelAfter: number };
  attention: PruneOutcome['allocation']['attention'];
  mlp: PruneOutcome['allocation']['mlp'];
  layers: PruneLayerReport[];
  /** nirvana, taylor: the interpreter's gradient run. */
  interpreter?: { backend: BackendName; objective: number; samples: number; chunks: number; seconds: number; peakRssBytes: number };
  /** KL selection: every candidate, the chosen one marked. */
  candidates?: CandidateResult[];
  selectionFile?: string;
  timing: { scoreSeconds: number; allocateSeconds: number; surgerySeconds: number; selectionSeconds?: number };
  notes: string[];
}

export function checkPruneOptions(o: PruneOptions): void {
  checkSparsity(o.sparsity);
  if (!(PRUNE_METHODS as readonly string[]).includes(o.method)) throw new OptionError(`method must be one of ${PRUNE_METHODS.join(', ')}, got '${String(o.method)}'`);
  if (o.gamma !== undefined && !(Number.isFinite(o.gamma) && o.gamma >= 0)) throw new OptionError(`gamma must be a number >= 0, got ${o.gamma}`);
  if (o.normalise !== undefined && !SCORE_NORMALISATIONS.includes(o.normalise)) throw new OptionError(`normalise must be one of ${SCORE_NORMALISATIONS.join(', ')}, got '${String(o.normalise)}'`);
  if (o.minMlpKeep !== undefined && !(Number.isFinite(o.minMlpKeep) && o.minMlpKeep >= 0 && o.minMlpKeep <= 1)) throw new OptionError(`minMlpKeep must be in [0, 1], got ${o.minMlpKeep}`);
  if (o.objective !== undefined && o.method !== 'nirvana') throw new OptionError(`objective applies to method nirvana (taylor always uses the loss), not ${o.method}`);
  if (o.candidates && o.calibration?.data !== undefined) throw new OptionError('give one calibration set or candidates to choose between, not both');
  if (o.candidates) {
    parseCandidates(o.candidates);
    if (!methodReadsData(o.method)) throw new OptionError(`method ${o.method} reads no calibration data, so there is nothing for KL selection to choose`);
  } else if (methodReadsData(o.method) && o.calibration?.data === undefined) {
    throw new OptionError(`method ${o.method} needs calibration data: give a calibration set (--calib SET) or candidates (--calib-candidates A B ...)`);
  }
  if (!o.candidates && (o.selectOn !== undefined || o.evalOn !== undefined || o.selectTokens !== undefined)) {
    throw new OptionError('the selection and evaluation splits apply to KL selection (candidates) only');
  }
}

export const prunePass: Pass<PruneOptions, PruneReport> = {
  name: 'prune',
  kind: 'transform',
  summary: 'structured pruning of a decoder (GQA groups, MLP neurons) by NIRVANA saliency or a baseline, calibration chosen by KL among candidates',
  parse(raw, where) {
    const o = new StepOptions(raw, where);
    const sparsity = o.number('sparsity', { min: 0 }) ?? o.fail('"sparsity" is required');
    const method = o.oneOf('method', PRUNE_METHODS) ?? 'nirvana';
    const gamma = o.number('gamma', { min: 0 });
    const objective = o.oneOf('objective', SALIENCY_OBJECTIVES);
    const normalise = o.oneOf('normalise', SCORE_NORMALISATIONS);
    const minMlpKeep = o.number('minMlpKeep', { min: 0 });
    const calib = o.string('calib');
    const candidates = o.strings('candidates');
    const samples = o.number('samples', { integer: true, min: 1 });
    const sequenceLength = o.number('seqLen', { integer: true, min: 1 });
    const batchSize = o.number('batch', { integer: true, min: 1 });
    const seed = o.number('seed', { integer: true, min: 0 });
    const selectOn = o.string('selectOn');
    const evalOn = o.string('evalOn');
    const selectTokens = o.number('selectTokens', { integer: true, min: 1 });
    const backend = o.oneOf('backend', BACKEND_CHOICES);
    o.done();
    const options: PruneOptions = {
      sparsity,
      method,
      ...(gamma !== undefined ? { gamma } : {}),
      ...(objective ? { objective } : {}),
      ...(normalise ? { normalise } : {}),
      ...(minMlpKeep !== undefined ? { minMlpKeep } : {}),
      calibration: {
        ...(calib !== undefined ? { data: calib } : {}),
        options: { ...(samples ? { samples } : {}), ...(sequenceLength ? { sequenceLength } : {}), ...(batchSize ? { batchSize } : {}), ...(seed !== undefined ? { seed } : {}) },
      } as PruneOptions['calibration'],
      ...(candidates ? { candidates } : {}),
      ...(selectOn ? { selectOn } : {}),
      ...(evalOn ? { evalOn } : {}),
      ...(selectTokens ? { selectTokens } : {}),
      ...(backend ? { backend } : {}),
    };
    try {
      checkPruneOptions(options);
    } catch (e) {
      if (e instanceof OptionError) o.fail(e.message);
      throw e;
    }
    return options;
  },
  precheck(options, model) {
    checkPruneOptions(options);
    discoverDecoderStructure(model); // a graph that is not a decoder fails before any data is read
  },
  async run(state, options, env) {
    return prune(state, options, env);
  },
};

/** The calibration set, opened with the pruning defaults, refusing a set too short for the batch asked for. */
async function openPruneSet(data: string, seed: number | undefined, model: OnnxModel, options: CalibrationOptions = {}): Promise<CalibrationSet> {
  const merged: CalibrationOptions = { ...DEFAULT_PRUNE_CALIBRATION, ...options, ...(seed !== undefined ? { seed } : {}) };
  const set = await openCalibrationSet(data, model, merged);
  if (set.sampleCount < merged.samples!) {
    throw new CalibrationDataError(
      `${set.source}: ${set.sampleCount} windows of ${merged.sequenceLength} tokens, fewer than the ${merged.samples} samples of the calibration batch; lower --samples or --seq-len, or give more text`,
    );
  }
  return set;
}

async function prune(state: PassState, options: PruneOptions, env: PassEnv) {
  const model = state.model;
  const structure = discoverDecoderStructure(model);
  const notes: string[] = [];
  const calibOptions = options.calibration?.options ?? {};
  const scoreOptions = {
    ...(options.objective ? { objective: options.objective } : {}),
    ...(options.backend ? { backend: options.backend } : {}),
    session: env.session,
    ...(env.onProgress ? { onChunk: (done: number, total: number) => env.onProgress!(`${options.method} scores`, done, total) } : {}),
  };
  const sparsity = {
    sparsity: options.sparsity,
    ...(options.gamma !== undefined ? { gamma: options.gamma } : {}),
    ...(options.normalise !== undefined ? { normalise: options.normalise } : {}),
    ...(options.minMlpKeep !== undefined ? { minNeuronFraction: options.minMlpKeep } : {}),
  };

  let set: CalibrationSet | undefined;
  let setData: { data: string; seed: number } | undefined;
  let scored: MethodScores;
  let outcome: PruneOutcome;
  let selection: { results: CandidateResult[]; file: string; seconds: number } | undefined;
  if (options.candidates) {
    const candidates = parseCandidates(options.candidates);
    const started = performance.now();
    const chosen = await selectByKl(
      model,
      candidates,
      async (c) => {
        const s = await openPruneSet(c.data, c.seed, model, calibOptions);
        const sc = await scoreUnits(model, structure, options.method, s, scoreOptions);
        return { ...applyScores(model, structure, sc, sparsity), scored: sc, set: s, candidate: c };
      },
      {
        selection: options.selectOn ?? candidates[0].data,
        evaluation: options.evalOn ?? options.selectOn ?? candidates[0].data,
        ...(options.selectTokens ? { maxTokens: options.selectTokens } : {}),
        ...(env.session.intraOpThreads ? { threads: env.session.intraOpThreads } : {}),
        ...(env.onProgress ? { onCandidate: (done: number, total: number) => env.onProgress!('calibration candidates', done, total) } : {}),
      },
    );
    ({ scored, set } = chosen.chosen);
    outcome = chosen.chosen;
    setData = { data: chosen.chosen.candidate.data, seed: chosen.chosen.candidate.seed };
    selection = { results: chosen.results, file: chosen.selectionFile, seconds: (performance.now() - started) / 1000 };
  } else {
    if (options.calibration?.data !== undefined) {
      set = await openPruneSet(options.calibration.data, undefined, model, calibOptions);
      setData = { data: options.calibration.data, seed: calibOptions.seed ?? 0 };
      if (!methodReadsData(options.method)) notes.push(`magnitude reads no calibration data; ${options.calibration.data} serves verification only`);
    }
    scored = await scoreUnits(model, structure, options.method, methodReadsData(options.method) ? set : undefined, scoreOptions);
    outcome = applyScores(model, structure, scored, sparsity);
  }
  if (Math.abs(outcome.allocation.params.relativeError) > 0.01) {
    notes.push(`kept ${outcome.allocation.params.kept} attention + MLP parameters, ${(100 * outcome.allocation.params.relativeError).toFixed(2)}% off the target ${Math.round(outcome.allocation.params.targetKept)}: the units are too coarse to come closer`);
  }
  if (options.normalise && options.normalise !== 'none') notes.push(`scores normalised per layer (${options.normalise}) before the global ranking; the reference ranks raw scores`);
  if (options.minMlpKeep) notes.push(`every layer keeps at least ${(100 * options.minMlpKeep).toFixed(0)}% of its MLP neurons (the reference: 8)`);
  if (options.method === 'taylor') notes.push('taylor is the first-order Taylor score |W * dLoss/dW| (LLM-Pruner, element-wise), i.e. the saliency with the LM loss as objective');

  const report: PruneReport = {
    method: options.method,
    ...(options.method === 'nirvana' ? { objective: options.objective ?? 'max-logits' } : options.method === 'taylor' ? { objective: 'loss' as const } : {}),
    sparsity: options.sparsity,
    gamma: outcome.allocation.gamma,
    calibration: set && setData ? { ...setData, samples: set.sampleCount, tokens: set.tokenCount } : null,
    params: { ...outcome.allocation.params, modelBefore: parameterCount(model), modelAfter: parameterCount(outcome.model) },
    attention: outcome.allocation.attention,
    mlp: outcome.allocation.mlp,
    layers: layerReports(structure, outcome),
    ...(scored.saliency
      ? {
          interpreter: {
            backend: scored.saliency.backend,
            objective: scored.saliency.objective,
            samples: scored.saliency.samples,
            chunks: scored.saliency.chunks,
            seconds: scored.saliency.seconds,
            peakRssBytes: scored.saliency.peakRss,
          },
        }
      : {}),
    ...(selection ? { candidates: selection.results, selectionFile: selection.file } : {}),
    timing: {
      scoreSeconds: scored.seconds,
      allocateSeconds: outcome.seconds.allocate,
      surgerySeconds: outcome.seconds.surgery,
      ...(selection ? { selectionSeconds: selection.seconds } : {}),
    },
    notes,
  };
  // Verification reads data the scores did not (the chosen set's evaluation split where it has one), fed as the
  // input model takes it: verification runs it on the original and adapts the caches for the pruned model. The
  // calibration set is not handed on: its feeds fit the unpruned model, not the passes after this one.
  const held = set && setData ? ((await openHeldOutSet(setData.data, env.original, { ...DEFAULT_PRUNE_CALIBRATION, ...calibOptions })) ?? set) : undefined;
  const next: PassState = { ...state, model: outcome.model, ...(held ? { verificationSet: held } : {}), notes: [...state.notes, ...notes] };
  return { state: next, report };
}

function layerReports(structure: DecoderStructure, outcome: PruneOutcome): PruneLayerReport[] {
  return structure.layers.map((layer, l) => {
    const keep = outcome.selection[l];
    const nrep = layer.attention.heads / layer.attention.kvHeads;
    return {
      layer: layer.index,
      groups: { kept: keep.groups, total: layer.attention.kvHeads },
      heads: { kept: keep.groups.length * nrep, total: layer.attention.heads },
      neurons: { kept: keep.neurons.length, total: layer.mlp.width },
      compensation: (['attention', 'mlp'] as const).filter((k) => keep.compensation?.[k] !== undefined),
    };
  });
}

/** Elements of every float initializer: the model's parameters. */
export function parameterCount(model: OnnxModel): number {
  return model.graph.initializer.filter((t) => t.dataType === 1).reduce((a, t) => a + t.dims.reduce((x, d) => x * Number(d), 1), 0);
}

export { DEFAULT_GAMMA };
