// Verification of a written model before it is reported (and, in the pipeline, before it is moved to where the
// user asked): the file loads in ONNX Runtime (graph optimisations on, as a user runs it), runs a sample batch,
// and its outputs are compared with the original's on the same batch. The figures come from the decoding
// module's own functions: output-agreement.ts (max |diff|, cosine per output) for every model, and compare.ts
// (KL(original || quantized) per token, top-1 agreement, perplexity on the batch) for decoder language models.
//
// A model fails verification when ONNX Runtime cannot load or run it, or an output is missing or changes size
// (code 'runtime'); and, unless the caller turned the quality gate off, when an output holds NaN or infinity
// where the original does not (the figures turn non-finite) or a figure is below its threshold: the caller's
// minCosine / minTop1Agreement, else the defaults of DEFAULT_GATE, chosen from bench/quality-gate.ts's
// measurements (docs/quality-gate.md) so that a model that lost its accuracy is never reported as a success.
// With the gate off the figures are still measured and reported, with what the model missed (`waived`).
//
// The sample batch comes from the calibration set when there is one; otherwise it is generated from the
// signature: for a decoder a short text through the model's tokenizer (byte-level for the sample models) or
// seeded token ids, for any other model seeded normal values in float inputs and zeros in integer ones, each
// symbolic dimension 1.
import { statSync } from 'node:fs';
import { env, Tensor } from 'onnxruntime-node';
import type { CalibrationSet } from '../calibration/data/index.js';
import { decoderFeeder } from '../calibration/data/decoder-feeds.js';
import { requiredInputs } from '../calibration/data/model-inputs.js';
import { compareDecoders } from '../decoding/compare.js';
import { DecoderSession } from '../decoding/decoder-session.js';
import { outputAgreement, type AgreementAdaptation, type OutputAgreement } from '../decoding/output-agreement.js';
import type { ScoringSet } from '../decoding/text-set.js';
import { readSpecialTokens } from '../decoding/special-tokens.js';
import { textCodecFor } from '../decoding/text-codec.js';
import { describeDecoder } from '../onnx/decoder-info.js';
import { dtypeInfo } from '../onnx/dtypes.js';
import type { OnnxModel } from '../onnx/model.js';
import { zeroValues, type TensorData } from '../onnx/tensor.js';
import { toOrtTensor } from '../runtime/ort-tensor.js';
import { Session, type ExecutionProvider, type Feeds } from '../runtime/session.js';
import { seededRandom } from '../util/prng.js';
import { QuantizationError } from './schemes.js';

/**
 * A written model that did not pass verification; the message says which check and on what. Code 'quality-gate'
 * when it ran but missed a threshold, 'runtime' when ONNX Runtime could not load or run it.
 */
export class VerificationError extends QuantizationError {
  constructor(
    message: string,
    /** The figures measured before the failure, when it got that far. */
    readonly figures?: VerificationReport,
    code: 'quality-gate' | 'runtime' = 'quality-gate',
    /** Quality-gate failures: how to accept the model anyway (the message ends with it). */
    readonly override?: string,
  ) {
    super(message, code);
    this.name = 'VerificationError';
  }
}

/**
 * The thresholds in force when the caller sets none. Measured in bench/quality-gate.ts (every scheme and clipping
 * method on the sample decoders and the conformance CNNs, plus deliberately broken models): healthy results sit
 * well above them, collapsed ones well below; docs/quality-gate.md has the table and the reasoning.
 */
export const DEFAULT_GATE = {
  /** Every model: the smallest cosine similarity any output may have with the original's. */
  minCosine: 0.97,
  /** Language models: the smallest share of positions whose top-1 next token agrees with the original's. */
  minTop1Agreement: 0.8,
} as const;

/** How to accept a model the gate refused, appended to the failure line. */
const OVERRIDE = 'to accept it, lower the threshold (--min-cosine / --min-top1; recipes: verify minCosine / minTop1) or turn the gate off (--no-gate; recipes: verify gate false)';

export interface VerifyOptions {
  intraOpThreads?: number;
  executionProvider?: ExecutionProvider;
  /** Fail when any output's cosine similarity with the original's is below this. */
  minCosine?: number;
  /** Language models: fail when the share of tokens whose top-1 prediction agrees is below this. */
  minTop1Agreement?: number;
  /** false: accept any model that loads and runs (figures still measured; the report says what it missed). */
  gate?: boolean;
}

export interface VerificationInputs {
  /** held-out: a split of the calibration set's folder that calibration did not read (openHeldOutSet). */
  source: 'held-out' | 'calibration' | 'generated';
  /** What the batch is: the calibration set's path, or how it was generated. */
  description: string;
  batches: Feeds[];
}

export interface LanguageModelAgreement {
  /** Tokens scored (every position after each row's first). */
  tokens: number;
  /** KL(original || quantized) of the next-token distributions, in nats per token. */
  kl: { mean: number; p95: number; max: number };
  top1Agreement: number;
  /** Perplexity of each model on the batch (a sanity figure: a small batch, not an evaluation). */
  perplexity: { original: number; quantized: number };
}

export interface VerificationReport {
  passed: true;
  engine: EngineInfo;
  inputs: { source: VerificationInputs['source']; description: string; batches: number; rows: number };
  /** Per output over the batch: largest |original - quantized| and cosine similarity. */
  outputs: OutputAgreement[];
  /** The worst output: largest max |diff|, smallest cosine. */
  worst: { maxAbsDiff: number; cosine: number };
  languageModel?: LanguageModelAgreement;
  /** 'off': the caller accepted any result (`waived` says what the model missed). */
  gate: 'on' | 'off';
  /** The thresholds the figures were checked against (top-1: language models only) and which were the defaults. */
  thresholds: { minCosine: number; minTop1Agreement?: number; defaults: ('minCosine' | 'minTop1Agreement')[] };
  /** Gate off: the check the model failed, accepted anyway (absent when it met every threshold). */
  waived?: string;
  /** Opening both models in ONNX Runtime; running and comparing them. */
  loadSeconds: number;
  runSeconds: number;
}

export interface EngineInfo {
  name: 'onnxruntime-node';
  version: string;
  executionProvider: ExecutionProvider;
  intraOpThreads: number | 'default';
}

export function engineInfo(options: Pick<VerifyOptions, 'intraOpThreads' | 'executionProvider'> = {}): EngineInfo {
  return {
    name: 'onnxruntime-node',
    version: env.versions.node ?? env.versions.common,
    executionProvider: options.executionProvider ?? 'cpu',
    intraOpThreads: options.intraOpThreads ?? 'default',
  };
}

/** A fixed text for decoders verified without data: ordinary prose with digits and punctuation. */
const SAMPLE_TEXT = 'The quick brown fox jumps over the lazy dog. In 1996, 42 people counted 7 boats on the river; none sank.';
/** Token ids of a generated decoder sample when the model has no tokenizer the project can use. */
const GENERATED_TOKENS = 48;

/** Up to `maxBatches` batches of a data set (held out from calibration, or the calibration set), as verification inputs. */
export async function calibrationInputs(set: CalibrationSet, maxBatches = 1, source: 'held-out' | 'calibration' = 'calibration'): Promise<VerificationInputs> {
  const batches: Feeds[] = [];
  for await (const feeds of set.batches()) {
    batches.push(feeds);
    if (batches.length >= maxBatches) break;
  }
  if (batches.length === 0) throw new QuantizationError(`${set.source}: the calibration set gave no batch to verify with`);
  return { source, description: set.source, batches };
}

/** One batch built from the model's signature (see the top of this file). */
export function generatedInputs(model: OnnxModel, seed = 0): VerificationInputs {
  const summary = describeDecoder(model);
  if (summary) {
    const feeder = decoderFeeder(model, summary);
    const { ids, how } = sampleTokens(model, summary.vocab, seed);
    const length = feeder.fixedSequence ?? ids.length;
    const row = Array.from({ length }, (_, i) => ids[i % ids.length]);
    const rows = Array.from({ length: feeder.fixedBatch ?? 1 }, () => row);
    return { source: 'generated', description: `${how}, ${length} tokens`, batches: [feeder.feeds(rows)] };
  }
  const random = seededRandom(seed);
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const feeds: Feeds = {};
  for (const input of requiredInputs(model)) {
    const info = dtypeInfo(input.dtype);
    if (info.ort === null || info.kind === 'string' || info.kind === 'complex') {
      throw new QuantizationError(`${model.source}: input '${input.name}' is ${info.name}; verification without data cannot generate it (give --calib)`);
    }
    const dims = (input.dims ?? [1]).map((d) => d ?? 1);
    const count = dims.reduce((a, b) => a * b, 1);
    const data = zeroValues(input.dtype, count);
    if (info.kind === 'float') for (let i = 0; i < count; i++) (data as Float32Array)[i] = normal();
    feeds[input.name] = toOrtTensor({ dtype: input.dtype, dims, data: data as TensorData }, `input '${input.name}'`);
  }
  return { source: 'generated', description: `seeded normal values (seed ${seed}) in float inputs, zeros elsewhere; symbolic dims 1`, batches: [feeds] };
}

function sampleTokens(model: OnnxModel, vocab: number | null, seed: number): { ids: number[]; how: string } {
  const bos = readSpecialTokens(model).bos;
  if (vocab) {
    try {
      const codec = textCodecFor(model, vocab);
      let ids = codec.encode(SAMPLE_TEXT);
      if (bos !== null && bos < vocab && ids[0] !== bos) ids = [bos, ...ids];
      if (ids.length >= 2 && ids.every((id) => id >= 0 && id < vocab)) return { ids, how: `a fixed English sentence (tokenizer ${codec.description})` };
    } catch {
      // no tokenizer: seeded ids below
    }
  }
  const top = vocab ?? 256;
  const random = seededRandom(seed);
  const ids = Array.from({ length: GENERATED_TOKENS }, () => Math.floor(random() * top));
  if (bos !== null && bos < top) ids[0] = bos;
  return { ids, how: `seeded random token ids (seed ${seed})` };
}

/**
 * Opens the original and the written model in ONNX Runtime, runs both on the inputs and compares them. Throws
 * VerificationError when a check fails; the original is trusted (its failures are reported as such).
 */
export async function verifyModel(
  original: OnnxModel,
  written: string,
  inputs: VerificationInputs,
  options: VerifyOptions = {},
): Promise<VerificationReport> {
  const sessionOptions = { intraOpThreads: options.intraOpThreads, executionProvider: options.executionProvider };
  const originalName = original.source;
  // A model read from a file is opened from it (ONNX Runtime reads it and its external data itself).
  const reopen = isFile(original.source) ? original.source : original;
  const started = performance.now();
  const opened: { dispose(): Promise<void> }[] = [];
  try {
    // Decoders open as DecoderSessions (which hold a plain Session) so that one pair serves both comparisons.
    let reference: Session;
    let candidate: Session;
    let decoders: [DecoderSession, DecoderSession] | undefined;
    if (describeDecoder(original) !== null) {
      const loaded = typeof reopen === 'string' ? { path: reopen, model: original } : original; // not parsed again
      const r = await openOriginal(() => DecoderSession.open(loaded, sessionOptions), originalName);
      opened.push(r);
      const c = await openWritten(() => DecoderSession.open(written, sessionOptions), written);
      opened.push(c);
      decoders = [r, c];
      reference = r.session;
      candidate = c.session;
    } else {
      reference = await openOriginal(() => Session.create(reopen, sessionOptions), originalName);
      opened.push(reference);
      candidate = await openWritten(() => Session.create(written, sessionOptions), written);
      opened.push(candidate);
    }
    const loaded = performance.now();

    let agreement;
    try {
      agreement = await outputAgreement(reference, candidate, inputs.batches, decoders ? cacheAdaptation(decoders) : {});
    } catch (e) {
      throw new VerificationError(`${written}: does not run on the verification batch: ${(e as Error).message}`, undefined, 'runtime');
    }
    const languageModel = decoders ? await decoderAgreement(decoders, inputs.batches) : undefined;
    const outputs = agreement.outputs;
    const report: VerificationReport = {
      passed: true,
      engine: engineInfo(options),
      inputs: { source: inputs.source, description: inputs.description, batches: inputs.batches.length, rows: countRows(inputs.batches) },
      outputs,
      worst: {
        maxAbsDiff: outputs.reduce((a, o) => (Number.isNaN(o.maxAbsDiff) || o.maxAbsDiff > a ? o.maxAbsDiff : a), 0),
        cosine: outputs.reduce((a, o) => (Number.isNaN(o.cosine) || o.cosine < a ? o.cosine : a), 1),
      },
      ...(languageModel ? { languageModel } : {}),
      gate: options.gate === false ? 'off' : 'on',
      thresholds: thresholdsFor(options, languageModel !== undefined),
      loadSeconds: (loaded - started) / 1000,
      runSeconds: (performance.now() - loaded) / 1000,
    };
    const missed = gateFailure(report);
    if (missed === undefined) return report;
    if (report.gate === 'off') return { ...report, waived: missed };
    throw new VerificationError(`${written}: failed verification against ${originalName}: ${missed}; ${OVERRIDE}`, report, 'quality-gate', OVERRIDE);
  } finally {
    for (const s of opened.reverse()) await s.dispose();
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The original must run for the comparison; when it does not, that is the message (not the quantized model's fault). */
function openOriginal<T>(open: () => Promise<T>, original: string): Promise<T> {
  return openOrSay(open, original, (detail) => new QuantizationError(`${original}: ONNX Runtime cannot load the original model, which verification compares the quantized one with: ${detail}`));
}

function openWritten<T>(open: () => Promise<T>, written: string): Promise<T> {
  return openOrSay(open, written, (detail) => new VerificationError(`${written}: ONNX Runtime cannot load it: ${detail}`, undefined, 'runtime'));
}

/** Opens, or throws `error(ORT's message without the file name it starts with)`. */
async function openOrSay<T>(open: () => Promise<T>, file: string, error: (detail: string) => Error): Promise<T> {
  try {
    return await open();
  } catch (e) {
    const message = (e as Error).message;
    throw error(message.startsWith(`${file}: `) ? message.slice(file.length + 2) : message);
  }
}

/** KL, top-1 agreement and perplexity over the batch's token rows, through compare.ts. */
async function decoderAgreement([reference, candidate]: [DecoderSession, DecoderSession], batches: readonly Feeds[]): Promise<LanguageModelAgreement | undefined> {
  const rows = batches.flatMap((feeds) => tokenRows(feeds, reference.signature.inputIds.name));
  const max = reference.maxPositions ?? Infinity;
  const documents = rows.map((ids) => ({ ids: ids.slice(0, max), bytes: Math.min(ids.length, max) - 1 })).filter((d) => d.ids.length >= 2);
  if (documents.length === 0) return undefined;
  const tokens = documents.reduce((a, d) => a + d.ids.length - 1, 0);
  const set: ScoringSet = { path: 'verification batch', documents, tokens, bytes: tokens };
  const window = Math.max(...documents.map((d) => d.ids.length));
  let c;
  try {
    c = await compareDecoders(reference, candidate, set, { window, stride: window - 1 });
  } catch (e) {
    throw new VerificationError(`${candidate.source}: does not run on the verification batch: ${(e as Error).message}`, undefined, 'runtime');
  }
  return {
    tokens: c.tokens,
    kl: c.kl,
    top1Agreement: c.top1Agreement,
    perplexity: { original: c.reference.perplexity, quantized: c.candidate.perplexity },
  };
}

/**
 * A structurally pruned decoder keeps fewer key/value heads in some layers: it is fed empty caches of its own
 * shape, and its caches are compared only where their shape is the original's (the logits always are).
 */
function cacheAdaptation([reference, candidate]: [DecoderSession, DecoderSession]): AgreementAdaptation {
  const theirs = new Map(candidate.signature.cache.map((s) => [s.past, s]));
  const differs = reference.signature.cache.filter((s) => theirs.get(s.past)?.emptyShape.join(',') !== s.emptyShape.join(','));
  if (differs.length === 0) return {};
  const skipped = new Set(differs.map((s) => s.present));
  return {
    outputs: reference.session.outputNames.filter((n) => !skipped.has(n)),
    candidateFeeds: (feeds) => {
      const own = { ...feeds };
      for (const s of differs) {
        const fed = feeds[s.past];
        const slot = theirs.get(s.past);
        if (!fed || !slot || fed.size !== 0) continue; // only empty pasts are verification inputs
        own[s.past] = new Tensor(fed.type, (fed.type === 'float16' ? new Uint16Array(0) : new Float32Array(0)) as never, [fed.dims[0], ...slot.emptyShape.slice(1)]);
      }
      return own;
    },
  };
}

function tokenRows(feeds: Feeds, name: string): number[][] {
  const t = feeds[name];
  if (!t || t.dims.length !== 2) return [];
  const [batch, length] = t.dims;
  const data = t.data as ArrayLike<number | bigint>;
  return Array.from({ length: batch }, (_, b) => Array.from({ length }, (_, i) => Number(data[b * length + i])));
}

function countRows(batches: readonly Feeds[]): number {
  let rows = 0;
  for (const feeds of batches) {
    const first = Object.values(feeds).find((t) => t.dims.length > 0);
    rows += first ? first.dims[0] : 1;
  }
  return rows;
}

/** The quality gate in one line: the thresholds in force (defaults marked), and whether the model passed or was let through. */
export function describeGate(v: Pick<VerificationReport, 'gate' | 'thresholds' | 'waived'>): string {
  const t = v.thresholds;
  const mark = (key: 'minCosine' | 'minTop1Agreement'): string => (t.defaults.includes(key) ? ' (default)' : '');
  const limits = [
    `cosine >= ${t.minCosine}${mark('minCosine')}`,
    ...(t.minTop1Agreement !== undefined ? [`top-1 agreement >= ${(100 * t.minTop1Agreement).toFixed(2)}%${mark('minTop1Agreement')}`] : []),
  ].join(', ');
  if (v.gate === 'on') return `quality gate passed: ${limits}`;
  return v.waived ? `quality gate off: accepted although ${v.waived} (${limits})` : `quality gate off (the model met its thresholds anyway: ${limits})`;
}

function thresholdsFor(options: VerifyOptions, languageModel: boolean): VerificationReport['thresholds'] {
  const defaults: VerificationReport['thresholds']['defaults'] = [];
  const pick = (key: keyof typeof DEFAULT_GATE): number => {
    if (options[key] !== undefined) return options[key];
    defaults.push(key);
    return DEFAULT_GATE[key];
  };
  const minCosine = pick('minCosine');
  const minTop1Agreement = languageModel ? pick('minTop1Agreement') : undefined;
  return { minCosine, ...(minTop1Agreement !== undefined ? { minTop1Agreement } : {}), defaults };
}

/** What the model missed, as one clause naming the worst output and its figure against the threshold; undefined when it passed. */
export function gateFailure(report: Pick<VerificationReport, 'outputs' | 'languageModel' | 'thresholds'>): string | undefined {
  const { thresholds: t } = report;
  const said = (key: 'minCosine' | 'minTop1Agreement'): string => (t.defaults.includes(key) ? 'the default minimum' : 'the minimum');
  const broken = report.outputs.find((o) => !Number.isFinite(o.maxAbsDiff) || !Number.isFinite(o.cosine));
  if (broken) return `output '${broken.output}' holds NaN or infinite values`;
  const lm = report.languageModel;
  if (lm && !Number.isFinite(lm.kl.mean)) return 'the next-token distributions hold NaN or infinite values';
  const missed: string[] = [];
  const worst = report.outputs.reduce<OutputAgreement | undefined>((a, o) => (a === undefined || o.cosine < a.cosine ? o : a), undefined);
  if (worst && worst.cosine < t.minCosine) {
    missed.push(`output '${worst.output}' has cosine similarity ${worst.cosine.toFixed(6)} with the original's, below ${said('minCosine')} ${t.minCosine}`);
  }
  if (lm && t.minTop1Agreement !== undefined && lm.top1Agreement < t.minTop1Agreement) {
    missed.push(`top-1 agreement ${(100 * lm.top1Agreement).toFixed(2)}% is below ${said('minTop1Agreement')} ${(100 * t.minTop1Agreement).toFixed(2)}%`);
  }
  return missed.length ? missed.join(', and ') : undefined;
}
