// Writing a model: inline, or with its large initializers in one `<file>_data` file (the layout transformers.js
// and onnx's own save_model(save_as_external_data=True) produce). Weights are streamed from wherever they live,
// so re-saving a model larger than memory needs only a chunk of it at a time.
import { closeSync, openSync, realpathSync, writeSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { OptionError, OutputError } from '../errors.js';
import { encodeModel, PROTOBUF_LIMIT_BYTES } from './codec.js';
import { externalRef, isExternal, ModelError, type OnnxModel, readFully } from './model.js';
import { DataLocation, type GraphProto, type TensorProto } from './types.js';
import { AtomicFiles, writeError } from '../util/atomic.js';

export interface SaveOptions {
  /**
   * true: initializers of at least `threshold` bytes go to external data; false: everything inline;
   * undefined: keep the model's layout (external if it already had external tensors or would pass 2 GiB).
   */
  externalData?: boolean;
  /** Smallest tensor, in bytes, moved to external data (default 1024, as onnx's own writer). */
  threshold?: number;
  /** External data file name, relative to the model (default `<model file name>_data`). */
  location?: string;
}

export interface SaveReport {
  path: string;
  bytes: number;
  externalData?: { path: string; bytes: number; tensors: number };
}

const DEFAULT_THRESHOLD = 1024;
/** onnx aligns large external tensors to the page size so runtimes can memory-map them. */
const ALIGN_THRESHOLD = 1 << 20;
const PAGE = 4096;
const CHUNK = 16 << 20;

function* initializersOf(g: GraphProto): Generator<TensorProto> {
  yield* g.initializer;
  for (const n of g.node) {
    for (const a of n.attribute) {
      if (a.g) yield* initializersOf(a.g);
      for (const sub of a.graphs) yield* initializersOf(sub);
    }
  }
}

/** Streams a tensor's raw bytes into `fd` at `position`, chunk by chunk. */
function copyRawBytes(model: OnnxModel, t: TensorProto, fd: number, position: number, target: string): void {
  if (!isExternal(t)) {
    const raw = t.rawData!;
    writeAll(fd, raw, position, target);
    return;
  }
  const ref = externalRef(t, model.source);
  const length = model.rawByteLength(t)!;
  const src = openSync(model.externalPath(ref.location, t), 'r');
  try {
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(length, 1)));
    for (let done = 0; done < length; ) {
      const n = Math.min(buf.length, length - done);
      const view = buf.subarray(0, n);
      readFully(src, view, ref.offset + done);
      writeAll(fd, view, position + done, target);
      done += n;
    }
  } finally {
    closeSync(src);
  }
}

function writeAll(fd: number, data: Uint8Array, position: number, target: string): void {
  try {
    for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done, position + done);
  } catch (e) {
    throw writeError(target, e);
  }
}

function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return resolve(a) === resolve(b);
  }
}

function wouldExceedLimit(model: OnnxModel): boolean {
  let total = 0;
  for (const t of model.tensors()) total += model.rawByteLength(t) ?? 0;
  return total > PROTOBUF_LIMIT_BYTES * 0.95;
}

/** Writes the model (and its external data) atomically. Never writes over the model's own input files. */
export function saveModel(model: OnnxModel, path: string, options: SaveOptions = {}): SaveReport {
  const threshold = options.threshold ?? DEFAULT_THRESHOLD;
  if (!Number.isSafeInteger(threshold) || threshold < 0) throw new OptionError(`bad external-data threshold: ${threshold}`);
  const external = options.externalData ?? (model.externalFiles().length > 0 || wouldExceedLimit(model));
  const location = options.location ?? `${basename(path)}_data`;
  const dataPath = resolve(dirname(path), location);

  const inputs = [model.source, ...model.externalFiles().map((f) => model.externalPath(f))];
  for (const out of external ? [path, dataPath] : [path]) {
    if (inputs.some((i) => sameFile(i, out))) throw new OutputError(`${out}: refusing to overwrite an input of the model`);
  }

  const files = new AtomicFiles();
  try {
    const replaced = new Map<TensorProto, TensorProto>();
    let dataBytes = 0;
    let externalCount = 0;
    if (external) {
      let fd: number | undefined; // opened on the first tensor, so no empty data file is left behind
      for (const t of initializersOf(model.graph)) {
        const length = model.rawByteLength(t);
        if (length === undefined || length < threshold || replaced.has(t)) continue;
        if (length >= ALIGN_THRESHOLD) dataBytes = Math.ceil(dataBytes / PAGE) * PAGE;
        fd ??= files.open(dataPath);
        copyRawBytes(model, t, fd, dataBytes, dataPath);
        replaced.set(t, pointAt(t, location, dataBytes, length));
        dataBytes += length;
        externalCount++;
      }
    }
    // Whatever stays inline must carry its bytes, including tensors that were external in the source.
    for (const t of model.tensors()) {
      if (!replaced.has(t) && isExternal(t)) replaced.set(t, inline(t, model.rawBytes(t)!));
    }
    const bytes = encodeModel(model.proto, (t) => replaced.get(t) ?? t);
    if (bytes.length > PROTOBUF_LIMIT_BYTES) {
      throw new ModelError(`${path}: model would be ${bytes.length} bytes, over protobuf's 2 GiB limit; save it with external data`);
    }
    writeAll(files.open(path), bytes, 0, path);
    files.commit();
    return {
      path,
      bytes: bytes.length,
      ...(externalCount > 0 ? { externalData: { path: dataPath, bytes: dataBytes, tensors: externalCount } } : {}),
    };
  } catch (e) {
    files.abort();
    throw e;
  }
}

function pointAt(t: TensorProto, location: string, offset: number, length: number): TensorProto {
  const { rawData: _drop, ...rest } = t;
  return {
    ...rest,
    dataLocation: DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(length) },
    ],
  };
}

function inline(t: TensorProto, raw: Uint8Array): TensorProto {
  const { dataLocation: _loc, ...rest } = t;
  return { ...rest, externalData: [], rawData: raw };
}
