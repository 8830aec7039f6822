// The files that travel with a model: config.json, generation_config.json, tokenizer.json and
// tokenizer_config.json. Each is looked for in the model's own metadata_props first (a plain .onnx written by this
// tool carries them there, under `onnx_compress.<file name>`, since no sidecar can travel with a lone file), then
// beside the .onnx file, then one folder up (transformers.js's `<folder>/onnx/model.onnx` layout keeps them in
// `<folder>`). The embedded copy wins: it was written with this exact model, where a file beside it may belong to
// another. This is the one module that finds and reads them: every file is found, read and parsed at most once per
// model object, and the decoder description (which reads config.json) is computed once per graph, so every caller
// sharing a model shares the reads.
//
// A companion file that exists but is unreadable, not JSON or not a JSON object is a ModelError naming the file:
// it belongs to the model, and guessing around it would silently change dimensions or special tokens.
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { analyseDecoder, type DecoderSummary } from './decoder-info.js';
import { ModelError, OnnxModel } from './model.js';
import type { GraphProto } from './types.js';

/** A parsed JSON object, as read from a companion file. Shared by every caller: treat it as read-only. */
export type JsonObject = Readonly<Record<string, unknown>>;

/** The companion files `files()` lists by default, in this order. */
export const COMPANION_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'] as const;

/** The metadata_props key a companion file is embedded under in a plain .onnx: `onnx_compress.config.json`... */
export function embeddedKey(name: string): string {
  return `${EMBEDDED_PREFIX}${name}`;
}

const EMBEDDED_PREFIX = 'onnx_compress.';

export interface CompanionFile {
  /** The file's name ('config.json'...), the name to give the copy. */
  name: string;
  /** Where it is: a file's path, or `<model> metadata_props[onnx_compress.<name>]` for an embedded copy. */
  path: string;
  /** Embedded in the model's metadata_props rather than a file of its own. */
  embedded: boolean;
  /** Its exact bytes (a file is read when asked). */
  bytes(): Buffer;
}

export interface ModelFolder {
  /** The model the folder belongs to (its source), for messages. */
  readonly source: string;
  /**
   * The folder holding the model's companion files, as an absolute path: for a Hugging Face folder the one above
   * `onnx/`, otherwise the model's own folder; undefined for an in-memory model. The paths below are joined to
   * the model's baseDir (absolute for a loaded model).
   */
  readonly root: string | undefined;
  /** The model is `<root>/onnx/<name>.onnx` with a config.json in `<root>` or in `onnx/`. */
  readonly isHuggingFaceFolder: boolean;
  readonly configPath: string | undefined;
  /** config.json, parsed; undefined when there is none. */
  readonly config: JsonObject | undefined;
  readonly generationConfigPath: string | undefined;
  readonly generationConfig: JsonObject | undefined;
  readonly tokenizerPath: string | undefined;
  /** tokenizer.json, parsed. Prefer `tokenizer`, which is built from it once. */
  readonly tokenizerJson: JsonObject | undefined;
  readonly tokenizerConfigPath: string | undefined;
  readonly tokenizerConfig: JsonObject | undefined;
  /** tokenizer.json (+ tokenizer_config.json) loaded by @huggingface/tokenizers; undefined without a tokenizer.json. */
  readonly tokenizer: Tokenizer | undefined;
  /** The decoder language model's description (config.json over the graph), or null when it is not one. */
  readonly decoder: DecoderSummary | null;
  /**
   * Where companion file `name` is: embedded in the model (a description, see CompanionFile.path), beside the model
   * or one folder up; undefined when there is none.
   */
  find(name: string): string | undefined;
  /** A companion JSON object by file name (read once), or undefined when the file is absent. */
  json(name: string): JsonObject | undefined;
  /** The companion files that exist (default: COMPANION_FILES), to write with a model made from this one. */
  files(names?: readonly string[]): CompanionFile[];
}

/** The folder of a model: one object per model object, so its reads are shared by every caller. */
export function modelFolder(model: OnnxModel): ModelFolder {
  let folder = folders.get(model);
  if (!folder) {
    folder = new Folder(model);
    folders.set(model, folder);
  }
  return folder;
}

const folders = new WeakMap<OnnxModel, Folder>();

/** The path of `name` in `dir` or the folder above it, or undefined. */
export function findCompanionFile(dir: string, name: string): string | undefined {
  for (const d of [dir, dirname(dir)]) {
    const path = join(d, name);
    if (existsSync(path)) return path;
  }
  return undefined;
}

export interface HuggingFaceLayout {
  /** The folder holding config.json and onnx/. */
  root: string;
  /** The onnx/ folder the model is in. */
  onnxDir: string;
  /** Its config.json (in root, or else in onnx/). */
  config: string;
}

/** The Hugging Face folder a model file sits in (`<root>/onnx/<file>` with a config.json), or null. */
export function huggingFaceLayout(modelPath: string): HuggingFaceLayout | null {
  return layoutOfFolder(dirname(resolve(modelPath)));
}

function layoutOfFolder(onnxDir: string): HuggingFaceLayout | null {
  if (basename(onnxDir) !== 'onnx') return null;
  const root = dirname(onnxDir);
  for (const config of [join(root, 'config.json'), join(onnxDir, 'config.json')]) {
    if (existsSync(config)) return { root, onnxDir, config };
  }
  return null;
}

/** A JSON object from a file (a fresh one per call); unreadable, not JSON or not an object is a ModelError naming the file. */
export function readJsonFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ModelError(`${path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? oneLine(e)})`);
  }
  return parseJson(text, path);
}

/** A JSON object from text read at `where`; not JSON or not an object is a ModelError naming it. */
function parseJson(text: string, where: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ModelError(`${where}: not valid JSON (${oneLine(e)})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ModelError(`${where}: expected a JSON object`);
  return value as Record<string, unknown>;
}

class Folder implements ModelFolder {
  readonly source: string;
  private readonly dir: string | undefined;
  private readonly found = new Map<string, CompanionFile | undefined>();
  private readonly parsed = new Map<string, JsonObject | undefined>();
  private layout: HuggingFaceLayout | null | undefined;
  private hf: { tokenizer: Tokenizer | undefined } | undefined;
  private described: { graph: GraphProto; decoder: DecoderSummary | null } | undefined;

  constructor(private readonly model: OnnxModel) {
    this.source = model.source;
    this.dir = model.baseDir;
  }

  find(name: string): string | undefined {
    return this.companion(name)?.path;
  }

  json(name: string): JsonObject | undefined {
    if (!this.parsed.has(name)) {
      const file = this.companion(name);
      this.parsed.set(name, file === undefined ? undefined : Object.freeze(file.embedded ? parseJson(file.bytes().toString('utf8'), file.path) : readJsonFile(file.path)));
    }
    return this.parsed.get(name);
  }

  files(names: readonly string[] = COMPANION_FILES): CompanionFile[] {
    return names.flatMap((name) => {
      const file = this.companion(name);
      return file === undefined ? [] : [file];
    });
  }

  private companion(name: string): CompanionFile | undefined {
    if (!this.found.has(name)) {
      const key = embeddedKey(name);
      const entry = (this.model.proto.metadataProps ?? []).find((e) => e.key === key);
      let file: CompanionFile | undefined;
      if (entry !== undefined) {
        const bytes = Buffer.from(entry.value ?? '', 'utf8');
        file = { name, path: `${this.source} metadata_props[${key}]`, embedded: true, bytes: () => bytes };
      } else {
        const path = this.dir === undefined ? undefined : findCompanionFile(this.dir, name);
        if (path !== undefined) file = { name, path, embedded: false, bytes: () => readFileSync(path) };
      }
      this.found.set(name, file);
    }
    return this.found.get(name);
  }

  private get hfLayout(): HuggingFaceLayout | null {
    if (this.layout === undefined) this.layout = this.dir ? layoutOfFolder(resolve(this.dir)) : null;
    return this.layout;
  }

  get root(): string | undefined {
    return this.hfLayout?.root ?? (this.dir === undefined ? undefined : resolve(this.dir));
  }

  get isHuggingFaceFolder(): boolean {
    return this.hfLayout !== null;
  }

  get configPath(): string | undefined {
    return this.find('config.json');
  }

  get config(): JsonObject | undefined {
    return this.json('config.json');
  }

  get generationConfigPath(): string | undefined {
    return this.find('generation_config.json');
  }

  get generationConfig(): JsonObject | undefined {
    return this.json('generation_config.json');
  }

  get tokenizerPath(): string | undefined {
    return this.find('tokenizer.json');
  }

  get tokenizerJson(): JsonObject | undefined {
    return this.json('tokenizer.json');
  }

  get tokenizerConfigPath(): string | undefined {
    return this.find('tokenizer_config.json');
  }

  get tokenizerConfig(): JsonObject | undefined {
    return this.json('tokenizer_config.json');
  }

  get tokenizer(): Tokenizer | undefined {
    if (!this.hf) {
      const path = this.tokenizerPath;
      if (path === undefined) {
        this.hf = { tokenizer: undefined };
      } else {
        // The library keeps (and may extend) the objects it is given: each Tokenizer gets its own copies.
        const json = structuredClone(this.tokenizerJson!) as Record<string, unknown>;
        const config = structuredClone(this.tokenizerConfig ?? {}) as Record<string, unknown>;
        try {
          this.hf = { tokenizer: new Tokenizer(json, config) };
        } catch (e) {
          throw new ModelError(`${path}: @huggingface/tokenizers cannot load it (${oneLine(e)})`);
        }
      }
    }
    return this.hf.tokenizer;
  }

  get decoder(): DecoderSummary | null {
    // Keyed by the graph too: a model object whose proto is replaced is described again (files are not re-read).
    const graph = this.model.graph;
    if (this.described?.graph !== graph) {
      const path = this.configPath;
      const config = path === undefined ? undefined : { path, json: this.config! };
      this.described = { graph, decoder: freeze(analyseDecoder(graph, config)) };
    }
    return this.described.decoder;
  }
}

function freeze(d: DecoderSummary | null): DecoderSummary | null {
  if (d) {
    Object.freeze(d.kvCacheInputs);
    Object.freeze(d);
  }
  return d;
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').trim();
}

/**
 * The model with `files` embedded in its metadata_props (for a plain .onnx, which nothing can travel beside), in
 * COMPANION_FILES order after the model's other entries; earlier embedded copies are replaced.
 */
export function embedCompanions(model: OnnxModel, files: readonly CompanionFile[]): OnnxModel {
  const entries = files.map((f) => ({ key: embeddedKey(f.name), value: f.bytes().toString('utf8') }));
  return withMetadata(model, [...othersOf(model), ...entries]);
}

/** The model without embedded companion files: for one written into a folder, where the files lie beside it. */
export function stripCompanions(model: OnnxModel): OnnxModel {
  const others = othersOf(model);
  return others.length === (model.proto.metadataProps ?? []).length ? model : withMetadata(model, others);
}

function othersOf(model: OnnxModel) {
  return (model.proto.metadataProps ?? []).filter((e) => !(e.key ?? '').startsWith(EMBEDDED_PREFIX));
}

function withMetadata(model: OnnxModel, metadataProps: OnnxModel['proto']['metadataProps']): OnnxModel {
  return new OnnxModel({ ...model.proto, metadataProps }, model.baseDir, model.source);
}

/** The model carrying its own companion files (wherever they were found) embedded: for re-saving it as a lone file. */
export function withCompanionsEmbedded(model: OnnxModel): OnnxModel {
  return embedCompanions(model, modelFolder(model).files());
}
