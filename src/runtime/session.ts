// A thin wrapper over onnxruntime-node's InferenceSession: one place that knows how to open a model (file or
// in-memory, external data included), which options we expose, and how ORT's errors become one-line messages.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { OnnxCompressError } from '../errors.js';
import { encodeModel } from '../onnx/codec.js';
import { ModelError, type OnnxModel } from '../onnx/model.js';
import { concatAxis0 } from './ort-tensor.js';

export type GraphOptimization = 'disabled' | 'basic' | 'extended' | 'all';
export type ExecutionProvider = 'cpu' | 'cuda';

export interface SessionOptions {
  /** Threads ORT may use inside one operator; ORT's default (one per core) when absent. */
  intraOpThreads?: number;
  /** 'cpu' (default) or 'cuda'; nodes CUDA cannot run fall back to the CPU provider. */
  executionProvider?: ExecutionProvider;
  /** ORT graph optimisation level; default 'all'. */
  graphOptimization?: GraphOptimization;
  /**
   * Whether ORT's idle intra-op threads spin waiting for work (ORT's default, true). Spinning shaves latency off
   * each operator but burns the cores that other threads of this process (statistics workers) could use.
   */
  spinning?: boolean;
}

export type Feeds = Record<string, Tensor>;
export type Outputs = Record<string, Tensor>;

/**
 * A failure inside ONNX Runtime (model refused, unsupported op, bad feed), as one line that names the model and,
 * where ORT's message has them, the node and op.
 */
export class RuntimeError extends OnnxCompressError {
  constructor(
    /** The model file, or the label of an in-memory model. */
    readonly model: string,
    /** ORT's message, cleaned to one line. */
    readonly detail: string,
    /** The node's name ('' for an unnamed node) when ORT's message names one. */
    readonly node?: string,
    readonly opType?: string,
  ) {
    super('runtime', `${model}: ${node ? `node '${node}' (${opType}): ` : opType ? `${opType} node: ` : ''}${detail}`);
  }
}

/** Builds a RuntimeError from whatever ORT threw. */
export function runtimeError(model: string, e: unknown): RuntimeError {
  if (e instanceof RuntimeError) return e;
  const raw = e instanceof Error ? e.message : String(e);
  let text = cleanOrtMessage(raw);
  // Graph checks report a node as `In Node, ("name", OpType, "domain", -1) : (inputs) -> (outputs) , Error <msg>`.
  const inNode = /In Node, \("([^"]*)", ([\w.]+), "[^"]*", -?\d+\) : .*? , Error (.*)$/.exec(text);
  if (inNode) return new RuntimeError(model, inNode[3], inNode[1], inNode[2]);
  // Shape inference and kernel errors say `Node (name) Op (OpType) <msg>`.
  const nodeOp = /Node \(([^)]*)\) Op \(([\w.]+)\) (.*)$/.exec(text);
  if (nodeOp) return new RuntimeError(model, nodeOp[3], nodeOp[1], nodeOp[2]);
  // Kernel lookup failures name the op, its opset version and the node: `for Add(6) node with name 'n'`.
  const noKernel = /Could not find an implementation for ([\w.]+)\(\d+\) node with name '([^']*)'/.exec(text);
  if (noKernel) return new RuntimeError(model, text, noKernel[2], noKernel[1]);
  text = text.replace(/^This is an invalid model\.\s*/, 'invalid model: ');
  return new RuntimeError(model, text);
}

/**
 * ORT messages carry source locations (`/onnxruntime_src/...h:46 void f(...) `, `tensorprotoutils.cc:461 Fn `),
 * status prefixes (`[ONNXRuntimeError] : 1 : FAIL : `) and newlines; keep only the sentence a user can act on.
 */
export function cleanOrtMessage(raw: string): string {
  // The file name is ours to print (the RuntimeError names it), so ORT's "Load model from <path> failed:" goes.
  let s = raw.replace(/\[ONNXRuntimeError\] : \d+ : \w+ : /g, '').replace(/^Load model from .*? failed:\s*/, '');
  // An absolute source path followed by the C++ signature of the function that threw.
  for (let at = s.search(/\S*onnxruntime_src\/\S+:\d+ /); at >= 0; at = s.search(/\S*onnxruntime_src\/\S+:\d+ /)) {
    const afterPath = s.indexOf(' ', at) + 1;
    s = s.slice(0, at) + s.slice(skipSignature(s, afterPath));
  }
  s = s.replace(/\b[\w-]+\.(?:cc|h|cpp):\d+ (?:[\w:~]+ )?/g, '');
  return s.replace(/\s+/g, ' ').trim();
}

/**
 * Index just past a C++ signature starting at `from` (`ret ns::f(args) const::<lambda()> [with T = float] `), or
 * `from` when there is none.
 */
function skipSignature(s: string, from: number): number {
  const open = s.indexOf('(', from);
  // A signature has no sentence before its parenthesis; ". " or ": " there means the message starts at `from`.
  if (open < 0 || /[.:] /.test(s.slice(from, open))) return from;
  // The signature ends at the first space outside brackets after its argument list.
  let depth = 0;
  let i = open;
  for (; i < s.length && !(depth === 0 && s[i] === ' ' && i > open); i++) {
    if ('(<'.includes(s[i])) depth++;
    else if (')>'.includes(s[i])) depth--;
  }
  if (i >= s.length) return from;
  i++;
  if (s.startsWith('[with ', i)) {
    const close = s.indexOf('] ', i);
    if (close >= 0) i = close + 2;
  }
  return i;
}

// Where onnxruntime-node keeps its native libraries; the CUDA provider is a separate download placed there.
function ortBinaryDir(): string {
  const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
  return join(dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

function ortSessionOptions(source: string, options: SessionOptions): InferenceSession.SessionOptions {
  const out: InferenceSession.SessionOptions = {
    graphOptimizationLevel: options.graphOptimization ?? 'all',
    // Fatal only: errors reach us as exceptions (ORT would log them to stderr too), and its warnings (unused
    // initializers and the like) would only be noise.
    logSeverityLevel: 4,
  };
  if (options.intraOpThreads !== undefined) out.intraOpNumThreads = options.intraOpThreads;
  if (options.spinning === false) out.extra = { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } };
  if (options.executionProvider === 'cuda') {
    // Checking first avoids ORT logging a load failure to stderr before it throws.
    const lib = join(ortBinaryDir(), 'libonnxruntime_providers_cuda.so');
    if (!existsSync(lib)) {
      throw new RuntimeError(
        source,
        `the CUDA execution provider is not installed (no ${lib}; reinstall onnxruntime-node with --onnxruntime-node-install=cuda12 on linux/x64)`,
      );
    }
    out.executionProviders = ['cuda', 'cpu'];
  } else {
    out.executionProviders = ['cpu'];
  }
  return out;
}

/**
 * ORT resolves external data of a model given as bytes against the process's working directory, so the files are
 * handed over in memory instead: onnxruntime-node 1.30 accepts `externalData: [{path: location, data: Uint8Array}]`
 * (it refuses a file path string in `data`, and a bare string entry).
 */
function externalDataOf(model: OnnxModel): InferenceSession.SessionOptions['externalData'] {
  const files = model.externalFiles();
  if (files.length === 0) return undefined;
  return files.map((location) => {
    const file = model.externalPath(location);
    try {
      return { path: location, data: readFileSync(file) };
    } catch (e) {
      throw new ModelError(`${model.source}: external data file ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? e})`);
    }
  });
}

export class Session {
  private constructor(
    private readonly ort: InferenceSession,
    /** The model file or in-memory label, used in messages. */
    readonly source: string,
  ) {}

  /** Opens a model file (external data resolved beside it) or an in-memory model (its proto as it is now). */
  static async create(model: string | OnnxModel, options: SessionOptions = {}): Promise<Session> {
    const source = typeof model === 'string' ? model : model.source;
    const ortOptions = ortSessionOptions(source, options);
    if (typeof model === 'string' && !existsSync(model)) throw new RuntimeError(source, 'no such file');
    // Our own failures (unreadable external data) are ModelErrors with their own message: kept out of the try.
    const externalData = typeof model === 'string' ? undefined : externalDataOf(model);
    let created: InferenceSession;
    try {
      created =
        typeof model === 'string'
          ? await InferenceSession.create(model, ortOptions)
          : await InferenceSession.create(encodeModel(model.proto), externalData ? { ...ortOptions, externalData } : ortOptions);
    } catch (e) {
      const err = runtimeError(source, e);
      if (options.executionProvider === 'cuda' && /cuda|provider/i.test(err.detail) && err.node === undefined) {
        throw new RuntimeError(source, `the CUDA execution provider could not be loaded: ${err.detail}`);
      }
      throw err;
    }
    return new Session(created, source);
  }

  get inputNames(): readonly string[] {
    return this.ort.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.ort.outputNames;
  }

  get inputMetadata(): readonly InferenceSession.ValueMetadata[] {
    return this.ort.inputMetadata;
  }

  get outputMetadata(): readonly InferenceSession.ValueMetadata[] {
    return this.ort.outputMetadata;
  }

  /** Runs once; `fetches` limits the outputs computed (all graph outputs by default). */
  async run(feeds: Feeds, fetches?: readonly string[]): Promise<Outputs> {
    this.checkFeeds(feeds);
    try {
      return fetches ? await this.ort.run(feeds, fetches) : await this.ort.run(feeds);
    } catch (e) {
      throw runtimeError(this.source, e);
    }
  }

  /**
   * Runs a list of samples, `batchSize` at a time stacked along axis 0, and returns every output concatenated
   * along axis 0 in sample order. Every input and output must have the batch on axis 0 (checked: an output
   * whose axis 0 is not the batch's row count is refused rather than silently mis-stacked), and the model must
   * accept a batch dimension of that size. batchSize 1 (the default) runs sample by sample.
   */
  async runBatched(samples: readonly Feeds[], batchSize = 1, fetches?: readonly string[]): Promise<Outputs> {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, not ${batchSize}`);
    if (samples.length === 0) throw new RangeError(`${this.source}: runBatched needs at least one sample`);
    const parts = new Map<string, Tensor[]>();
    for (let start = 0; start < samples.length; start += batchSize) {
      const group = samples.slice(start, start + batchSize);
      const names = Object.keys(group[0]);
      const feeds: Feeds = {};
      for (const name of names) {
        feeds[name] = group.length === 1 ? group[0][name] : concatAxis0(group.map((s, i) => required(s, name, start + i, this.source)), name);
      }
      const rows = batchRows(feeds, this.source);
      const outputs = await this.run(feeds, fetches);
      for (const [name, t] of Object.entries(outputs)) {
        if (t.dims[0] !== rows) {
          throw new RuntimeError(this.source, `output '${name}' has ${t.dims[0] ?? 'no'} rows on axis 0 for a batch of ${rows}: it cannot be batched`);
        }
        let list = parts.get(name);
        if (!list) parts.set(name, (list = []));
        list.push(t);
      }
    }
    const out: Outputs = {};
    for (const [name, list] of parts) out[name] = list.length === 1 ? list[0] : concatAxis0(list, name);
    return out;
  }

  async dispose(): Promise<void> {
    await this.ort.release();
  }

  /** ORT's own messages for these cases do not name the input; ours do. */
  private checkFeeds(feeds: Feeds): void {
    for (const meta of this.ort.inputMetadata) {
      const t = feeds[meta.name];
      if (!t) throw new RuntimeError(this.source, `input '${meta.name}' is missing from the feeds`);
      if (!meta.isTensor) continue;
      if (t.type !== meta.type) throw new RuntimeError(this.source, `input '${meta.name}' must be ${meta.type}, got ${t.type}`);
      const want = meta.shape;
      // ORT reports an input of unknown rank as [] too, so an empty shape is left for ORT to judge.
      const fits =
        want.length === 0 || (want.length === t.dims.length && want.every((d, i) => typeof d !== 'number' || d === t.dims[i]));
      if (!fits) throw new RuntimeError(this.source, `input '${meta.name}' must have shape [${want.join(',')}], got [${t.dims.join(',')}]`);
    }
    const known = new Set(this.ort.inputNames);
    for (const name of Object.keys(feeds)) {
      if (!known.has(name)) throw new RuntimeError(this.source, `'${name}' is not an input of the model (inputs: ${[...known].join(', ')})`);
    }
  }
}

function required(sample: Feeds, name: string, index: number, source: string): Tensor {
  const t = sample[name];
  if (!t) throw new RuntimeError(source, `sample ${index} has no feed for input '${name}'`);
  return t;
}

function batchRows(feeds: Feeds, source: string): number {
  let rows: number | undefined;
  for (const [name, t] of Object.entries(feeds)) {
    const r = t.dims[0];
    if (r === undefined) throw new RuntimeError(source, `input '${name}' is a scalar: it has no batch axis`);
    if (rows !== undefined && r !== rows) throw new RuntimeError(source, `inputs disagree on the batch size (${rows} vs ${r} for '${name}')`);
    rows = r;
  }
  return rows ?? 0;
}
