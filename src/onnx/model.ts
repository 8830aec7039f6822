// The model object every pass works on: the decoded ModelProto plus where its external weights live.
// Opening a model reads only the .onnx file; external tensors stay on disk until someone asks for their bytes.
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { dirname, isAbsolute, normalize, resolve, sep } from 'node:path';
import { OnnxCompressError, type ErrorCode } from '../errors.js';
import { decodeModel, OnnxFormatError } from './codec.js';
import { DataLocation, type GraphProto, type ModelProto, type TensorProto } from './types.js';

/** Bad input, with a message fit to print as one line (it names the file and the tensor or node). */
export class ModelError extends OnnxCompressError {
  constructor(message: string, code: ErrorCode = 'bad-model') {
    super(code, message);
  }
}

export interface ExternalRef {
  location: string;
  offset: number;
  length?: number;
  checksum?: string;
}

export interface LoadOptions {
  /** Directory external-data locations are relative to, for a model given as bytes. */
  baseDir?: string;
  /** Name to use in error messages for a model given as bytes. */
  name?: string;
}

export class OnnxModel {
  constructor(
    public proto: ModelProto,
    /** Directory external data is resolved against (the model file's directory). */
    public readonly baseDir: string | undefined,
    /** The file the model came from, or a label for an in-memory model; used in messages. */
    public readonly source: string,
  ) {}

  get graph(): GraphProto {
    if (!this.proto.graph) throw new ModelError(`${this.source}: model has no graph`);
    return this.proto.graph;
  }

  /** Opset version imported for a domain ('' and 'ai.onnx' are the same domain). */
  opset(domain = ''): number | undefined {
    const want = domain === 'ai.onnx' ? '' : domain;
    const entry = this.proto.opsetImport.find((o) => (o.domain ?? '') === want || (want === '' && o.domain === 'ai.onnx'));
    return entry?.version;
  }

  /** Every tensor that carries weights: initializers, Constant values and sparse parts, subgraphs included. */
  *tensors(): Generator<TensorProto> {
    yield* tensorsOf(this.graph);
    for (const f of this.proto.functions) for (const n of f.node) for (const a of n.attribute) yield* attributeTensors(a);
  }

  /** The external files this model's tensors point at, relative to baseDir. */
  externalFiles(): string[] {
    const files = new Set<string>();
    for (const t of this.tensors()) if (isExternal(t)) files.add(externalRef(t, this.source).location);
    return [...files];
  }

  /**
   * The tensor's bytes in ONNX raw layout, read from raw_data or from its external file; undefined when the
   * tensor stores its values in the typed fields (float_data, int64_data...).
   */
  rawBytes(t: TensorProto): Uint8Array | undefined {
    if (!isExternal(t)) return t.rawData;
    const ref = externalRef(t, this.source);
    const file = this.externalPath(ref.location, t);
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      throw new ModelError(`${this.source}: external data file ${file} for tensor '${t.name}' cannot be opened`);
    }
    try {
      const size = statSync(file).size;
      const length = ref.length ?? size - ref.offset;
      if (ref.offset + length > size) {
        throw new ModelError(
          `${this.source}: tensor '${t.name}' needs bytes ${ref.offset}..${ref.offset + length} of ${file}, which has ${size}`,
        );
      }
      const out = Buffer.allocUnsafe(length);
      readFully(fd, out, ref.offset);
      return out;
    } finally {
      closeSync(fd);
    }
  }

  /** Byte length of a tensor's raw data without reading it; undefined for typed-field tensors. */
  rawByteLength(t: TensorProto): number | undefined {
    if (!isExternal(t)) return t.rawData?.length;
    const ref = externalRef(t, this.source);
    if (ref.length !== undefined) return ref.length;
    const file = this.externalPath(ref.location, t);
    let size: number;
    try {
      size = statSync(file).size;
    } catch {
      throw new ModelError(`${this.source}: external data file ${file} for tensor '${t.name}' cannot be opened`);
    }
    return Math.max(0, size - ref.offset);
  }

  /** Absolute path of an external-data location, refusing locations that leave the model's directory. */
  externalPath(location: string, t?: TensorProto): string {
    if (!this.baseDir) {
      throw new ModelError(`${this.source}: tensor '${t?.name}' uses external data but the model has no directory`);
    }
    if (isAbsolute(location) || normalize(location).split(sep).includes('..')) {
      throw new ModelError(`${this.source}: tensor '${t?.name}' has external data outside the model directory: ${location}`);
    }
    return resolve(this.baseDir, location);
  }
}

export function isExternal(t: TensorProto): boolean {
  return t.dataLocation === DataLocation.EXTERNAL;
}

export function externalRef(t: TensorProto, source = 'model'): ExternalRef {
  const kv = new Map(t.externalData.map((e) => [e.key ?? '', e.value ?? '']));
  const location = kv.get('location');
  if (!location) throw new ModelError(`${source}: tensor '${t.name}' is external but has no location`);
  const int = (key: string): number | undefined => {
    const v = kv.get(key);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new ModelError(`${source}: tensor '${t.name}' has a bad external ${key}: ${v}`);
    return n;
  };
  return { location, offset: int('offset') ?? 0, length: int('length'), checksum: kv.get('checksum') };
}

function* attributeTensors(a: import('./types.js').AttributeProto): Generator<TensorProto> {
  if (a.t) yield a.t;
  yield* a.tensors;
  for (const s of [a.sparseTensor, ...a.sparseTensors]) {
    if (s?.values) yield s.values;
    if (s?.indices) yield s.indices;
  }
  if (a.g) yield* tensorsOf(a.g);
  for (const g of a.graphs) yield* tensorsOf(g);
}

function* tensorsOf(g: GraphProto): Generator<TensorProto> {
  yield* g.initializer;
  for (const s of g.sparseInitializer) {
    if (s.values) yield s.values;
    if (s.indices) yield s.indices;
  }
  for (const n of g.node) for (const a of n.attribute) yield* attributeTensors(a);
}

export function readFully(fd: number, out: Uint8Array, position: number): void {
  let done = 0;
  while (done < out.length) {
    const n = readSync(fd, out, done, out.length - done, position + done);
    // Plain Error: callers check the file's size first (or rewrap this with the file name, npy.ts), so this
    // only fires when a file shrinks while it is read.
    if (n === 0) throw new Error('unexpected end of file');
    done += n;
  }
}

/** Opens a model from a file (external data resolved beside it) or from bytes. */
export function loadModel(input: string | Uint8Array, options: LoadOptions = {}): OnnxModel {
  if (typeof input === 'string') {
    let bytes: Buffer;
    try {
      bytes = readFileSync(input);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
      throw new ModelError(`${input}: ${why}`);
    }
    return fromBytes(bytes, dirname(resolve(input)), input);
  }
  return fromBytes(input, options.baseDir, options.name ?? '<in-memory model>');
}

function fromBytes(bytes: Uint8Array, baseDir: string | undefined, source: string): OnnxModel {
  if (bytes.length === 0) throw new ModelError(`${source}: file is empty`);
  let proto: ModelProto;
  try {
    proto = decodeModel(bytes);
  } catch (e) {
    if (e instanceof OnnxFormatError) throw new ModelError(`${source}: ${e.message}`);
    throw e;
  }
  if (!proto.graph) throw new ModelError(`${source}: not an ONNX model (no graph)`);
  if (proto.irVersion === undefined) throw new ModelError(`${source}: not an ONNX model (no ir_version)`);
  return new OnnxModel(proto, baseDir, source);
}
