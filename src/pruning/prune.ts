// Structured pruning as a library call: score the units with a method, allocate (allocate.ts), apply the selection
// with the surgery (surgery.ts). Scoring is separate from applying so that one set of scores serves several
// sparsities (benchmarks) and the KL selection prunes once per candidate set.
import type { CalibrationSet } from '../calibration/data/index.js';
import { OptionError } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import type { SessionOptions } from '../runtime/session.js';
import type { BackendChoice } from '../runtime/tf/index.js';
import type { DecoderStructure } from '../structure/decoder-structure.js';
import { allocate, type AllocateOptions, type Allocation } from './allocate.js';
import { flapCompensation, flapScores, magnitudeScores, wandaSpScores } from './baselines.js';
import { projectionInputStats, type LayerChannelStats } from './channel-stats.js';
import { normaliseScores, type ScoreNormalisation } from './normalize.js';
import { saliencyScores, type SaliencyObjective, type SaliencyResult } from './saliency.js';
import type { PruneSelection } from './selection.js';
import { pruneDecoder } from './surgery.js';
import { layerUnits, type UnitScores } from './units.js';

export const PRUNE_METHODS = ['nirvana', 'magnitude', 'wanda-sp', 'flap', 'taylor'] as const;
export type PruneMethod = (typeof PRUNE_METHODS)[number];

/** Every method but magnitude reads calibration data. */
export function methodReadsData(method: PruneMethod): boolean {
  return method !== 'magnitude';
}

export interface ScoreOptions {
  /** NIRVANA's objective (default max-logits, the reference's); taylor always uses the loss. */
  objective?: SaliencyObjective;
  /** TensorFlow.js backend for the gradient methods (nirvana, taylor). */
  backend?: BackendChoice;
  /** ONNX Runtime session for the activation methods (wanda-sp, flap). */
  session?: SessionOptions;
  onChunk?: (done: number, total: number) => void;
}

export interface MethodScores {
  method: PruneMethod;
  scores: UnitScores;
  /** Activation methods: the statistics FLAP's compensation also needs. */
  stats?: LayerChannelStats[];
  /** Gradient methods: the interpreter run. */
  saliency?: Omit<SaliencyResult, 'scores'>;
  seconds: number;
}

export async function scoreUnits(
  model: OnnxModel,
  structure: DecoderStructure,
  method: PruneMethod,
  set: CalibrationSet | undefined,
  options: ScoreOptions = {},
): Promise<MethodScores> {
  if (!(PRUNE_METHODS as readonly string[]).includes(method)) throw new OptionError(`method must be one of ${PRUNE_METHODS.join(', ')}, got '${String(method)}'`);
  const started = performance.now();
  const done = (rest: Omit<MethodScores, 'method' | 'seconds'>): MethodScores => ({ method, ...rest, seconds: (performance.now() - started) / 1000 });
  if (method === 'magnitude') return done({ scores: magnitudeScores(model, structure) });
  if (!set) throw new OptionError(`method ${method} needs calibration data`);
  if (method === 'nirvana' || method === 'taylor') {
    const objective = method === 'taylor' ? 'loss' : (options.objective ?? 'max-logits');
    const { scores, ...saliency } = await saliencyScores(model, structure, set, { objective, ...(options.backend ? { backend: options.backend } : {}), ...(options.onChunk ? { onChunk: options.onChunk } : {}) });
    return done({ scores, saliency });
  }
  const stats = await projectionInputStats(model, structure, set, options.session);
  return done({ scores: method === 'flap' ? flapScores(model, structure, stats) : wandaSpScores(model, structure, stats), stats });
}

export interface PruneOutcome {
  model: OnnxModel;
  allocation: Allocation;
  /** What the surgery applied (with FLAP's compensation). */
  selection: PruneSelection;
  seconds: { allocate: number; surgery: number };
}

/** Allocation options plus the per-layer normalisation applied to the scores before the global ranking (default none). */
export interface ApplyOptions extends AllocateOptions {
  normalise?: ScoreNormalisation;
}

export function applyScores(model: OnnxModel, structure: DecoderStructure, scored: MethodScores, options: ApplyOptions): PruneOutcome {
  let t = performance.now();
  const allocation = allocate(layerUnits(structure), normaliseScores(scored.scores, options.normalise ?? 'none'), options);
  const selection = scored.method === 'flap' ? flapCompensation(model, structure, scored.stats!, allocation.selection) : allocation.selection;
  const allocateSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  const pruned = pruneDecoder(model, structure, selection);
  return { model: pruned, allocation, selection, seconds: { allocate: allocateSeconds, surgery: (performance.now() - t) / 1000 } };
}
