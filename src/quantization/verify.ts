// Verification of a written model before it is reported (and, in the pipeline, before it is moved to where the
// user asked): the file loads in ONNX Runtime (graph optimisations on, as a user runs it), runs a sample batch,
// and its outputs are compared with the original's on the same batch. The figures come from the decoding
// module's own functions: output-agreement.ts (max |diff|, cosine per output) for every model, and compare.ts
// (KL(original || quantized) per token, top-1 agreement, perplexity on the batch) for decoder language models.
//
// A model fails verification when ONNX Runtime cannot load or run it, an output is missing or changes size, an
// output holds NaN or infinity where the original does not (the figures turn non-finite), or a figure is
// below a threshold the caller set (minCosine, minTop1Agreement).
//
// The sample batch comes from the calibration set when there is one; otherwise it is generated from the
// signature: for a decoder a short text through the model's tokenizer (byte-level for the sample models) or
// seeded token ids, for any other model seeded normal values in float inputs and zeros in integer ones, each
// symbolic dimension 1.
import { statSync } from 'node:fs';
import { env } from 'onnxruntime-node';
import type { CalibrationSet } from '../calibration/data/index.js';
import { decoderFeeder } from '../calibration/data/decoder-feeds.js';
import { requiredInputs } from '../calibration/data/model-inputs.js';
import { compareDecoders } from '../decoding/compare.js';
import { DecoderSession } from '../decoding/decoder-session.js';
import { outputAgreement, type OutputAgreement } from '../decoding/output-agreement.js';
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
  ) {
    super(message, code);
    this.name = 'VerificationError';
  }
}

export interface VerifyOptions {
  intraOpThreads?: number;
  executionProvider?: ExecutionProvider;
  /** Fail when any output's cosine similarity with the original's is below this. */
  minCosine?: number;
  /** Language models: fail when the share of tokens whose top-1 prediction agrees is below this. */
  minTop1Agreement?: number;
}

export interface VerificationInputs {
  source: 'calibration' | 'generated';
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
  thresholds: { minCosine?: number; minTop1Agreement?: number };
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

/** Up to `maxBatches` batches of a calibration set, as verification inputs. */
export async function calibrationInputs(set: CalibrationSet, maxBatches = 1): Promise<VerificationInputs> {
  const batches: Feeds[] = [];
  for await (const feeds of set.batches()) {
    batches.push(feeds);
    if (batches.length >= maxBatches) break;
  }
  if (batches.length === 0) throw new QuantizationError(`${set.source}: the calibration set gave no batch to verify with`);
  return { source: 'calibration', description: set.source, batches };
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
      agreement = await outputAgreement(reference, candidate, inputs.batches);
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
      thresholds: {
        ...(options.minCosine !== undefined ? { minCosine: options.minCosine } : {}),
        ...(options.minTop1Agreement !== undefined ? { minTop1Agreement: options.minTop1Agreement } : {}),
      },
      loadSeconds: (loaded - started) / 1000,
      runSeconds: (performance.now() - loaded) / 1000,
    };
    check(report, written, originalName, options);
    return report;
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

function check(report: VerificationReport, written: string, original: string, options: VerifyOptions): void {
  const fail = (why: string): never => {
    throw new VerificationError(`${written}: failed verification against ${original}: ${why}`, report);
  };
  for (const o of report.outputs) {
    if (!Number.isFinite(o.maxAbsDiff) || !Number.isFinite(o.cosine)) fail(`output '${o.output}' holds NaN or infinite values`);
    if (options.minCosine !== undefined && o.cosine < options.minCosine) {
      fail(`output '${o.output}' has cosine similarity ${o.cosine.toFixed(6)} with the original's, below the minimum ${options.minCosine}`);
    }
  }
  const lm = report.languageModel;
  if (lm && !Number.isFinite(lm.kl.mean)) fail('the next-token distributions hold NaN or infinite values');
  if (lm && options.minTop1Agreement !== undefined && lm.top1Agreement < options.minTop1Agreement) {
    fail(`top-1 agreement ${(100 * lm.top1Agreement).toFixed(2)}% is below the minimum ${(100 * options.minTop1Agreement).toFixed(2)}%`);
  }
}
