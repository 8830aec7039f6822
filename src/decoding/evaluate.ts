// How good a model is and what it costs. For a decoder language model: perplexity and bits per byte on a text set
// with sliding windows, and with a reference (the original model) the KL divergence and top-1 agreement of the
// model against it; `speed` adds prefill and decode tokens/s. For any other model: output agreement with the
// reference on a folder of input_*.pb / .npy tensors. Sizes always. The `eval` command and the evaluate pass are
// thin wrappers around evaluateModel.
import { openCalibrationSet } from '../calibration/data/index.js';
import { CalibrationDataError } from '../calibration/data/errors.js';
import { OptionError } from '../errors.js';
import { loadModel, ModelError, OnnxModel } from '../onnx/model.js';
import { modelFolder } from '../onnx/model-folder.js';
import { Session } from '../runtime/session.js';
import { compareDecoders } from './compare.js';
import { DecoderSession, type LoadedFile } from './decoder-session.js';
import { modelSize, type SizeReport } from './model-size.js';
import { outputAgreement, type AgreementReport } from './output-agreement.js';
import { perplexity, type PerplexityReport } from './perplexity.js';
import { checkWindowPlan, windowCount, type WindowPlan } from './scoring-windows.js';
import { measureSpeed, type SpeedReport } from './speed.js';
import { textCodecFor } from './text-codec.js';
import { readScoringSet, resolveTextSet, type ScoringSet } from './text-set.js';

/** One model's figures; `perplexity` and `speed` for language models only. */
export interface ModelFigures {
  model: string;
  size: SizeReport;
  perplexity?: PerplexityReport;
  speed?: SpeedReport;
}

export interface EvalReport {
  kind: 'language-model' | 'tensors';
  data: string;
  candidate: ModelFigures;
  reference: ModelFigures | null;
  /** Language models: the scoring set and windows. */
  scoring?: { tokenizer: string; documents: number; tokens: number; bytes: number; window: number; stride: number; windows: number };
  /** Language models whose reference reads the text differently (tokenizer, BOS): its own scoring of the set. */
  referenceScoring?: EvalReport['scoring'];
  /** Why `comparison` is absent although a reference was given. */
  comparisonSkipped?: string;
  /** Language models with a reference: KL(reference || model) per token and top-1 agreement. */
  comparison?: { kl: { mean: number; p95: number; max: number }; top1Agreement: number };
  /** Other models with a reference. */
  agreement?: AgreementReport;
}

/** A model to evaluate: a file, an in-memory model, or a file already loaded (`{ path, model }`). */
export type EvalModel = string | OnnxModel | LoadedFile;

/** What evaluateModel is doing: scoring windows, speed runs (one per model), or tensor samples. */
export type EvalStage = 'scoring' | 'speed' | 'agreement';

export interface EvalOptions {
  /**
   * Language models: a shipped set name (prose, code, email, nonsense, nonsense-bytes), a set folder (its
   * evaluation.jsonl) or a .jsonl file. Other models: a folder of input_<k>.pb / test_data_set_<n>/ or <input>.npy
   * tensors.
   */
  data: string;
  /** The original model to compare against; required for models that are not decoder language models. */
  reference?: EvalModel;
  /** Tokens per window (default: 1024, or the model's max positions if fewer). */
  window?: number;
  /** Tokens between window starts; each window scores only tokens no earlier one did (default: window / 2). */
  stride?: number;
  /** Score at most this many tokens of the set. */
  maxTokens?: number;
  /** Also measure prefill (512 tokens) and decode (128 tokens, KV cache) tokens/s at batch 1. */
  speed?: boolean;
  /** ONNX Runtime intra-op threads (default: one per core). */
  threads?: number;
  /** Progress: units done of `total` (0 when unknown) in a stage. */
  onProgress?: (stage: EvalStage, done: number, total: number) => void;
}

interface Resolved {
  /** The name reports use: the path for files, the source label for in-memory models. */
  label: string;
  model: OnnxModel;
  /** The file ONNX Runtime opens, or undefined to open the model object from its bytes. */
  path: string | undefined;
}

function resolveModel(m: EvalModel): Resolved {
  if (typeof m === 'string') return { label: m, model: loadModel(m), path: m };
  if (m instanceof OnnxModel) return { label: m.source, model: m, path: undefined };
  return { label: m.path, model: m.model, path: m.path };
}

function opened(r: Resolved): string | OnnxModel | LoadedFile {
  return r.path === undefined ? r.model : { path: r.path, model: r.model };
}

function checkOptions(options: EvalOptions): void {
  if (typeof options.data !== 'string' || options.data === '') throw new OptionError('evaluation: data (a set or tensor folder) is required');
  const whole = (value: number | undefined, name: string, min: number) => {
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= min)) {
      throw new OptionError(`evaluation option ${name} must be a whole number >= ${min}, got ${value}`);
    }
  };
  whole(options.window, 'window', 0);
  whole(options.stride, 'stride', 0);
  whole(options.maxTokens, 'maxTokens', 0);
  whole(options.threads, 'threads', 0);
}

/** Evaluates `model` (the compressed model when a reference is given); see EvalOptions and EvalReport. */
export async function evaluateModel(model: EvalModel, options: EvalOptions): Promise<EvalReport> {
  checkOptions(options);
  const candidate = resolveModel(model);
  const reference = options.reference === undefined ? undefined : resolveModel(options.reference);
  return modelFolder(candidate.model).decoder
    ? evalLanguageModel(candidate, reference, options)
    : evalTensors(candidate, reference, options);
}

async function evalLanguageModel(cand: Resolved, ref: Resolved | undefined, options: EvalOptions): Promise<EvalReport> {
  if (ref && !modelFolder(ref.model).decoder) throw new ModelError(`${ref.label}: not a decoder language model, unlike ${cand.label}`);
  const session = { intraOpThreads: options.threads };
  const progress = options.onProgress;
  const decoders: DecoderSession[] = [];
  try {
    const candidate = await DecoderSession.open(opened(cand), session);
    decoders.push(candidate);
    const original = ref ? await DecoderSession.open(opened(ref), session) : undefined;
    if (original) decoders.push(original);

    // Each model reads the text with its own settings (tokenizer, BOS, from the files that travel with it); the
    // windows fit the shorter of their maximum positions, so one plan serves both.
    const window = options.window ?? Math.min(1024, ...decoders.map((d) => d.maxPositions ?? 1024));
    const plan: WindowPlan = { window, stride: options.stride ?? Math.max(1, Math.floor(window / 2)) };
    checkWindowPlan(plan);
    const textPath = resolveTextSet(options.data);
    const read = async (r: Resolved, d: DecoderSession) => {
      const codec = textCodecFor(r.model, d.vocab);
      return { codec, set: await readScoringSet(textPath, codec, { bos: d.special.bos, maxTokens: options.maxTokens }) };
    };
    const { codec, set } = await read(cand, candidate);
    const own = ref && original ? await readReference(read, ref, original, codec.description, candidate.special.bos, set) : undefined;
    const figures = (r: Resolved, speed?: SpeedReport, ppl?: PerplexityReport): ModelFigures => ({
      model: r.label,
      size: modelSize(r.model),
      ...(ppl ? { perplexity: ppl } : {}),
      ...(speed ? { speed } : {}),
    });
    const totalWindows = progress ? windowCount(set.documents, plan) : 0;
    const onWindow = progress && ((windows: number) => progress('scoring', windows, totalWindows));
    const speedRuns = options.speed ? decoders.length : 0;
    let speedDone = 0;
    const speedOf = async (d: DecoderSession | undefined) => {
      if (!options.speed || !d) return undefined;
      const report = await measureSpeed(d);
      progress?.('speed', ++speedDone, speedRuns);
      return report;
    };
    const scoring = { tokenizer: codec.description, documents: set.documents.length, tokens: set.tokens, bytes: set.bytes, ...plan };
    if (!original) {
      const { windows, ...ppl } = await perplexity(candidate, set, plan, onWindow);
      return { kind: 'language-model', data: set.path, candidate: figures(cand, await speedOf(candidate), ppl), reference: null, scoring: { ...scoring, windows } };
    }
    if (own && own.mismatch) {
      // Different token streams: each model's perplexity on its own reading; KL and top-1 need the same tokens.
      const { windows, ...candPpl } = await perplexity(candidate, set, plan, onWindow);
      const { windows: refWindows, ...refPpl } = await perplexity(original, own.set, plan);
      return {
        kind: 'language-model',
        data: set.path,
        candidate: figures(cand, await speedOf(candidate), candPpl),
        reference: figures(ref!, await speedOf(original), refPpl),
        scoring: { ...scoring, windows },
        referenceScoring: { tokenizer: own.tokenizer, documents: own.set.documents.length, tokens: own.set.tokens, bytes: own.set.bytes, ...plan, windows: refWindows },
        comparisonSkipped: own.mismatch,
      };
    }
    const c = await compareDecoders(original, candidate, set, plan, onWindow);
    return {
      kind: 'language-model',
      data: set.path,
      candidate: figures(cand, await speedOf(candidate), c.candidate),
      reference: figures(ref!, await speedOf(original), c.reference),
      scoring: { ...scoring, windows: c.windows },
      comparison: { kl: c.kl, top1Agreement: c.top1Agreement },
    };
  } finally {
    for (const d of decoders) await d.dispose();
  }
}

async function evalTensors(cand: Resolved, ref: Resolved | undefined, options: EvalOptions): Promise<EvalReport> {
  if (!ref) throw new OptionError(`${cand.label}: not a decoder language model; evaluating it needs --reference (the original) to compare outputs with`);
  const samples = await openCalibrationSet(options.data, cand.model);
  if (samples.kind !== 'tensors') {
    throw new CalibrationDataError(`${options.data}: a text set, but ${cand.label} is not a decoder language model; give a folder of input_<k>.pb or <input>.npy tensors`);
  }
  const session = { intraOpThreads: options.threads };
  const sessions: Session[] = [];
  try {
    const candidate = await Session.create(cand.path ?? cand.model, session);
    sessions.push(candidate);
    const original = await Session.create(ref.path ?? ref.model, session);
    sessions.push(original);
    const progress = options.onProgress;
    const batches = progress ? counted(samples.batches(), (n) => progress('agreement', n, samples.sampleCount)) : samples.batches();
    return {
      kind: 'tensors',
      data: options.data,
      candidate: { model: cand.label, size: modelSize(cand.model) },
      reference: { model: ref.label, size: modelSize(ref.model) },
      agreement: await outputAgreement(original, candidate, batches),
    };
  } finally {
    for (const s of sessions) await s.dispose();
  }
}

type Reading = { codec: { description: string }; set: ScoringSet };

/**
 * The reference's reading of the set: the candidate's when both read text the same way (tokenizer and BOS), else
 * its own; `mismatch` says why token-by-token comparison is impossible when the ids differ.
 */
async function readReference(
  read: (r: Resolved, d: DecoderSession) => Promise<Reading>,
  ref: Resolved,
  original: DecoderSession,
  candidateTokenizer: string,
  candidateBos: number | null,
  candidateSet: ScoringSet,
): Promise<{ set: ScoringSet; tokenizer: string; mismatch: string | undefined }> {
  const sameCodec = textCodecFor(ref.model, original.vocab).description === candidateTokenizer;
  if (sameCodec && original.special.bos === candidateBos) return { set: candidateSet, tokenizer: candidateTokenizer, mismatch: undefined };
  const { codec, set } = await read(ref, original);
  const same = set.documents.length === candidateSet.documents.length && set.documents.every((d, i) => sameIds(d.ids, candidateSet.documents[i].ids));
  const bos = (b: number | null) => (b === null ? 'no BOS' : `BOS ${b}`);
  const how = [...(sameCodec ? [] : [`tokenizer ${codec.description} vs ${candidateTokenizer}`]), ...(original.special.bos === candidateBos ? [] : [`${bos(original.special.bos)} vs ${bos(candidateBos)}`])];
  return {
    set,
    tokenizer: codec.description,
    mismatch: same ? undefined : `the reference reads the text differently (${how.join('; ')}), so KL and top-1 agreement, which need the same tokens, are not computed; each model's perplexity is on its own reading`,
  };
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The same items, calling `onItem` with the count after each one is consumed. */
async function* counted<T>(items: AsyncIterable<T>, onItem: (n: number) => void): AsyncGenerator<T> {
  let n = 0;
  for await (const item of items) {
    yield item;
    onItem(++n);
  }
}
