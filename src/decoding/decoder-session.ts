// A decoder language model in ONNX Runtime, driven step by step: the first step takes the prompts (left-padded
// into one batch when their lengths differ) with an empty past, each later step one or more new tokens per row
// with the presents of the previous step as the past. The attention mask and position ids are kept here, so
// callers deal only in token ids and logits. Input names, element types and the cache layout are read from the
// model's signature, so this works with any decoder describeDecoder recognises (optimum and GPT-2 layouts,
// int64 or int32 ids, float32 or float16 caches, merged decoders with use_cache_branch).
import { Tensor } from 'onnxruntime-node';
import { OptionError } from '../errors.js';
import type { DecoderSummary } from '../onnx/decoder-info.js';
import { loadModel, ModelError, OnnxModel } from '../onnx/model.js';
import { modelFolder } from '../onnx/model-folder.js';
import { Session, type Feeds, type SessionOptions } from '../runtime/session.js';
import { KvCache, kvSlots, type KvSlot } from './kv-cache.js';
import { Logits } from './logits.js';
import { readSpecialTokens, type SpecialTokens } from './special-tokens.js';
import { optimizedMarker } from '../optimize/marker.js';

export interface DecoderOptions extends SessionOptions {
  /**
   * false: every step re-runs the whole sequence with an empty past instead of feeding the cache back. Slow; it
   * exists as the reference the cached path is checked against.
   */
  useCache?: boolean;
}

type IntType = 'int64' | 'int32';

/** The model's inputs and outputs as the decoder feeds and reads them. */
export interface DecoderSignature {
  inputIds: { name: string; type: IntType };
  attentionMask: { name: string; type: IntType } | null;
  positionIds: { name: string; type: IntType } | null;
  /** Merged decoders (one graph for the first and later steps) choose their branch with this bool input. */
  useCacheBranch: string | null;
  logits: string;
  cache: KvSlot[];
}

/** Where a batch of sequences stands after a step. Treat as immutable: each step returns a new one. */
export interface DecoderState {
  /** Every row's tokens so far, left padding included; all rows have the same length. */
  readonly tokens: readonly (readonly number[])[];
  /** 1 for a real token, 0 for padding, per row and position. */
  readonly mask: readonly (readonly number[])[];
  /** The past for the next step; null when the model has no cache or the session does not use it. */
  readonly cache: KvCache | null;
}

export interface DecoderStep {
  /** Logits for the tokens this step added ([batch, new tokens, vocab]; for a first step, padding included). */
  logits: Logits;
  state: DecoderState;
}

/** A model file and its loaded form. */
export interface LoadedFile {
  path: string;
  model: OnnxModel;
}

/** Where a session's steps spent their time: inside ONNX Runtime's run, and in all (feeds, cache, logits). */
export interface DecoderTiming {
  steps: number;
  forwardSeconds: number;
  runSeconds: number;
}

export class DecoderSession {
  /** Accumulated over every forward/logitsOf call; the difference is the decode loop's own overhead. */
  readonly timing: DecoderTiming = { steps: 0, forwardSeconds: 0, runSeconds: 0 };

  private constructor(
    readonly session: Session,
    readonly signature: DecoderSignature,
    readonly description: DecoderSummary,
    readonly special: SpecialTokens,
    readonly vocab: number,
    private readonly useCache: boolean,
    /** GroupQueryAttention (an optimized model) masks from sequence lengths only: padded rows would be wrong. */
    private readonly refusesPadding: boolean,
  ) {}

  /** Opens a decoder from a file or a model object; fails with a one-line message if it is not one. */
  /**
   * `model`: a file, an in-memory model, or a file already loaded (`{ path, model }`: read for its description,
   * not parsed again).
   */
  static async open(model: string | OnnxModel | LoadedFile, options: DecoderOptions = {}): Promise<DecoderSession> {
    const { useCache = true, ...sessionOptions } = options;
    const object = typeof model === 'string' ? loadModel(model) : model instanceof OnnxModel ? model : model.model;
    const description = modelFolder(object).decoder;
    if (!description) throw new ModelError(`${object.source}: not a decoder language model (no past_key_values inputs and no *ForCausalLM config.json)`);
    // A file is opened by ORT from its path (external data resolved by ORT itself); a model object from its bytes.
    const path = typeof model === 'string' ? model : model instanceof OnnxModel ? undefined : model.path;
    const session = await Session.create(path ?? object, sessionOptions);
    try {
      const signature = readSignature(session, description);
      const vocab = vocabOf(session, signature, description);
      return new DecoderSession(session, signature, description, readSpecialTokens(object), vocab, useCache, refusesPadding(object));
    } catch (e) {
      await session.dispose();
      throw e;
    }
  }

  get source(): string {
    return this.session.source;
  }

  /** The longest sequence the model's positions cover (config.json, or the graph's position tables), when known. */
  get maxPositions(): number | null {
    return this.description.maxPositions;
  }

  /**
   * Runs one step. Without a state, `tokens` are the prompts: rows of any length (at least one token each), left-
   * padded with the pad id. With a state, every row gets the same number of new tokens.
   */
  async forward(tokens: readonly (readonly number[])[], state?: DecoderState): Promise<DecoderStep> {
    const started = performance.now();
    const added = state ? this.extend(state, tokens) : leftPad(tokens, this.special.pad, this.source);
    this.checkTokens(tokens);
    const newCount = state ? tokens[0].length : added.tokens[0].length;
    const cached = this.useCache && this.signature.cache.length > 0;
    const past = cached ? (state?.cache ?? KvCache.empty(this.signature.cache, tokens.length)) : null;
    // Without a cache the whole sequence runs again and only the new positions' logits are kept.
    const feedFrom = past ? past.length : 0;
    const outputs = await this.run(added.tokens, added.mask, feedFrom, past, cached);
    const all = Logits.fromTensor(outputs[this.signature.logits], `${this.source}: output '${this.signature.logits}'`);
    const logits = all.length === newCount ? all : lastPositions(all, newCount);
    const cache = cached ? KvCache.fromOutputs(this.signature.cache, outputs, this.source) : null;
    this.timing.forwardSeconds += (performance.now() - started) / 1000;
    return { logits, state: { ...added, cache } };
  }

  /** Logits at every position of fresh sequences (left-padded when ragged), with no cache kept: for scoring. */
  async logitsOf(tokens: readonly (readonly number[])[]): Promise<Logits> {
    const started = performance.now();
    this.checkTokens(tokens);
    const { tokens: rows, mask } = leftPad(tokens, this.special.pad, this.source);
    const past = this.signature.cache.length ? KvCache.empty(this.signature.cache, rows.length) : null;
    const outputs = await this.run(rows, mask, 0, past, false);
    const logits = Logits.fromTensor(outputs[this.signature.logits], `${this.source}: output '${this.signature.logits}'`);
    this.timing.forwardSeconds += (performance.now() - started) / 1000;
    return logits;
  }

  async dispose(): Promise<void> {
    await this.session.dispose();
  }

  private extend(state: DecoderState, tokens: readonly (readonly number[])[]): Omit<DecoderState, 'cache'> {
    if (tokens.length !== state.tokens.length) throw new OptionError(`${this.source}: a step of ${tokens.length} rows on a batch of ${state.tokens.length}`);
    const n = tokens[0]?.length ?? 0;
    if (n === 0 || tokens.some((r) => r.length !== n)) throw new OptionError(`${this.source}: every row of a step needs the same number (>= 1) of new tokens`);
    const ones = new Array<number>(n).fill(1);
    return { tokens: state.tokens.map((row, i) => row.concat(tokens[i])), mask: state.mask.map((row) => row.concat(ones)) };
  }

  private checkTokens(tokens: readonly (readonly number[])[]): void {
    for (const row of tokens) {
      for (const t of row) {
        if (!Number.isInteger(t) || t < 0 || t >= this.vocab) throw new OptionError(`${this.source}: token id ${t} is outside the vocabulary (0..${this.vocab - 1})`);
      }
    }
  }

  /** Feeds positions feedFrom.. of every row (with `past` holding the ones before) and runs the model. */
  private async run(rows: readonly (readonly number[])[], mask: readonly (readonly number[])[], feedFrom: number, past: KvCache | null, fetchPresents: boolean) {
    const sig = this.signature;
    const batch = rows.length;
    const total = rows[0].length;
    const positions = mask.map((m) => positionsFromMask(m, feedFrom));
    const longest = Math.max(...positions.map((p) => p[p.length - 1] + 1));
    const max = this.maxPositions;
    if (max !== null && longest > max) throw new OptionError(`${this.source}: a sequence of ${longest} tokens is longer than the model's ${max} positions`);
    if (this.refusesPadding && mask.some((m) => m.includes(0))) {
      throw new OptionError(`${this.source}: an optimized model (GroupQueryAttention) cannot run a batch with padding: give prompts of one length, or one at a time`);
    }

    const feeds: Feeds = { [sig.inputIds.name]: intTensor(sig.inputIds.type, rows, [batch, total - feedFrom], feedFrom) };
    if (sig.attentionMask) feeds[sig.attentionMask.name] = intTensor(sig.attentionMask.type, mask, [batch, total]);
    if (sig.positionIds) feeds[sig.positionIds.name] = intTensor(sig.positionIds.type, positions, [batch, total - feedFrom]);
    if (sig.useCacheBranch) feeds[sig.useCacheBranch] = new Tensor('bool', Uint8Array.from([past && past.length > 0 ? 1 : 0]), [1]);
    if (sig.cache.length) Object.assign(feeds, (past ?? KvCache.empty(sig.cache, batch)).tensors);
    const fetches = fetchPresents ? [sig.logits, ...sig.cache.map((s) => s.present)] : [sig.logits];
    const started = performance.now();
    try {
      return await this.session.run(feeds, fetches);
    } finally {
      this.timing.runSeconds += (performance.now() - started) / 1000;
      this.timing.steps++;
    }
  }
}

/**
 * Hugging Face's position ids of positions `from`.. of a row: the count of real tokens before each position;
 * padding gets 1 (it is masked).
 */
function positionsFromMask(mask: readonly number[], from = 0): number[] {
  let seen = 0;
  for (let i = 0; i < from; i++) seen += mask[i] ? 1 : 0;
  const out = new Array<number>(mask.length - from);
  for (let i = from; i < mask.length; i++) out[i - from] = mask[i] ? seen++ : 1;
  return out;
}

function leftPad(rows: readonly (readonly number[])[], pad: number, source: string): Omit<DecoderState, 'cache'> {
  if (rows.length === 0 || rows.some((r) => r.length === 0)) throw new OptionError(`${source}: every sequence needs at least one token`);
  const width = Math.max(...rows.map((r) => r.length));
  return {
    tokens: rows.map((r) => [...new Array<number>(width - r.length).fill(pad), ...r]),
    mask: rows.map((r) => [...new Array<number>(width - r.length).fill(0), ...new Array<number>(r.length).fill(1)]),
  };
}

/** Columns `from`.. of every row as one tensor, written straight into the typed array (no intermediate arrays). */
function intTensor(type: IntType, rows: readonly (readonly number[])[], dims: number[], from = 0): Tensor {
  const width = rows[0].length - from;
  if (type === 'int32') {
    const out = new Int32Array(rows.length * width);
    rows.forEach((r, b) => {
      for (let i = 0; i < width; i++) out[b * width + i] = r[from + i];
    });
    return new Tensor('int32', out, dims);
  }
  const out = new BigInt64Array(rows.length * width);
  rows.forEach((r, b) => {
    for (let i = 0; i < width; i++) out[b * width + i] = BigInt(r[from + i]);
  });
  return new Tensor('int64', out, dims);
}

/** An optimized model whose attention is GroupQueryAttention says so in its metadata (src/optimize/marker.ts). */
function refusesPadding(model: OnnxModel): boolean {
  return optimizedMarker(model)?.paddedBatches === false;
}

/** The last `n` positions of every row, copied into a block of their own. */
function lastPositions(all: Logits, n: number): Logits {
  const out = new Float32Array(all.batch * n * all.vocab);
  for (let b = 0; b < all.batch; b++) {
    const from = (b * all.length + all.length - n) * all.vocab;
    out.set(all.data.subarray(from, from + n * all.vocab), b * n * all.vocab);
  }
  return new Logits(out, all.batch, n, all.vocab);
}

const IDS = ['input_ids'];
const MASKS = ['attention_mask'];
const POSITIONS = ['position_ids'];
const BRANCH = ['use_cache_branch'];

function readSignature(session: Session, d: DecoderSummary): DecoderSignature {
  const source = session.source;
  const inputs = new Map(session.inputMetadata.map((m) => [m.name, m]));
  const intInput = (names: string[], required: boolean): { name: string; type: IntType } | null => {
    const name = names.find((n) => inputs.has(n));
    if (!name) {
      if (required) throw new ModelError(`${source}: no '${names[0]}' input (inputs: ${[...inputs.keys()].join(', ')})`);
      return null;
    }
    const meta = inputs.get(name)!;
    const type = meta.isTensor ? meta.type : undefined;
    if (type !== 'int64' && type !== 'int32') throw new ModelError(`${source}: input '${name}' is ${type}; int64 or int32 was expected`);
    return { name, type };
  };
  const meta = (list: typeof session.inputMetadata) =>
    list.map((m) => ({ name: m.name, type: m.isTensor ? m.type : undefined, shape: m.isTensor ? m.shape : undefined }));
  const signature: DecoderSignature = {
    inputIds: intInput(IDS, true)!,
    attentionMask: intInput(MASKS, false),
    positionIds: intInput(POSITIONS, false),
    useCacheBranch: BRANCH.find((n) => inputs.has(n)) ?? null,
    logits: session.outputNames.includes('logits') ? 'logits' : session.outputNames[0],
    cache: kvSlots(source, meta(session.inputMetadata), meta(session.outputMetadata), d),
  };
  const fed = new Set([signature.inputIds.name, signature.attentionMask?.name, signature.positionIds?.name, signature.useCacheBranch, ...signature.cache.map((s) => s.past)]);
  const unknown = [...inputs.keys()].filter((n) => !fed.has(n));
  if (unknown.length) throw new ModelError(`${source}: the decoder does not know how to feed input${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `'${n}'`).join(', ')}`);
  return signature;
}

function vocabOf(session: Session, sig: DecoderSignature, d: DecoderSummary): number {
  const meta = session.outputMetadata.find((m) => m.name === sig.logits);
  const last = meta?.isTensor ? meta.shape.at(-1) : undefined;
  const vocab = typeof last === 'number' ? last : d.vocab;
  if (!vocab) throw new ModelError(`${session.source}: cannot tell the vocabulary size (logits have a symbolic last axis and there is no config.json)`);
  return vocab;
}
