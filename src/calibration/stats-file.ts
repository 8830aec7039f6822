// Activation statistics on disk, for the quantizer and later runs to reload: a JSON file with everything a person
// or a script reads (what was calibrated, on which data, with which options, and each tensor's scalar
// statistics), and beside it a binary file with each tensor's histogram and per-channel maxima, which the JSON
// indexes by byte offset. Both are written under temporary names and renamed together (util/atomic.ts).
//
// JSON (format "onnx-compress.activation-statistics", version 1):
//   model        { path, sha256, bytes } of the .onnx file (so a reader can refuse statistics of another model)
//   data         { source, kind, sampleCount, tokenCount } of the calibration set
//   calibration  the options the set was opened with (samples, sequenceLength, batchSize, seed...)
//   options      { targets, stats }: which tensors, histogram and outlier settings
//   run          { samples, tokens, batches, seconds, timing { openSeconds, streamSeconds, finalizeSeconds } }
//   binary       { file (relative to the JSON), bytes, sha256 }
//   tensors[]    { name, producer?, dtype, shape, count, min, max, absMax, mean, std, kurtosis (null when
//                  undefined), outliers, absPercentiles, percentileResolution, entropy (divergence null when
//                  infinite), histogram { bins, range, countsOffset, edgesOffset }, channelAbsMax { channels, offset } }
//                with options.observe 'ranges' or 'minmax' (range-only statistics), each entry has only
//                { name, producer?, dtype, shape, count, min, max, absMax, channelAbsMax ('ranges' only) }: what was
//                not computed is absent, and a reader asking for it (quantization/ranges.ts) says so
//   skipped[]    { name, reason }
// Binary, little-endian: "OCSTATS1", uint32 version, uint32 tensor count, then for each tensor in order its
// counts (bins float64), edges (bins + 1 float64, -range to range) and channel maxima (float32, padded to 8 bytes);
// a range-only tensor has its channel maxima alone.
// float64 counts are exact up to 2^53 values per bin; edges are redundant with bins and range but let a reader
// use the file without this code, and are checked against them on reading.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ModelError } from '../onnx/model.js';
import { AtomicFiles } from '../util/atomic.js';
import type { AnyActivationStatistics, TensorRecord } from './collect.js';
import type { CalibrationOptions } from './data/index.js';
import { binEdges, type HistogramState } from './observers/histogram.js';
import { isFullStats, type AnyTensorStats, type RangeStats, type TensorStats } from './observers/tensor-stats.js';

export const STATS_FORMAT = 'onnx-compress.activation-statistics';
export const STATS_VERSION = 1;
const MAGIC = 'OCSTATS1';
const HEADER_BYTES = 16;

/** A statistics file that cannot be used: missing, of another format or version, or damaged. */
export class StatsFileError extends ModelError {}

export interface ModelFingerprint {
  path: string;
  sha256: string;
  bytes: number;
}

export interface StatsFile {
  model: ModelFingerprint;
  calibration: CalibrationOptions;
  /** Full or range-only statistics, as the file holds (options.observe says which). */
  statistics: AnyActivationStatistics;
}

export interface WrittenStats {
  json: string;
  binary: string;
  bytes: number;
}

/** The binary file beside a JSON path: `stats.json` -> `stats.bin`, anything else gets `.bin` appended. */
export function binaryPathFor(jsonPath: string): string {
  return jsonPath.endsWith('.json') ? `${jsonPath.slice(0, -5)}.bin` : `${jsonPath}.bin`;
}

export function writeStatsFile(
  jsonPath: string,
  statistics: AnyActivationStatistics,
  source: { modelPath: string; calibration?: CalibrationOptions },
): WrittenStats {
  const model = fingerprint(source.modelPath);
  const binaryPath = binaryPathFor(jsonPath);
  const layout = layOut(statistics.tensors);
  const files = new AtomicFiles();
  try {
    const hash = createHash('sha256');
    const fd = files.open(binaryPath);
    const put = (bytes: Uint8Array): void => {
      writeSync(fd, bytes);
      hash.update(bytes);
    };
    const header = Buffer.alloc(HEADER_BYTES);
    header.write(MAGIC, 0, 'latin1');
    header.writeUInt32LE(STATS_VERSION, 8);
    header.writeUInt32LE(statistics.tensors.length, 12);
    put(header);
    for (const t of statistics.tensors) {
      if (isFullStats(t.stats)) {
        put(float64Bytes(t.stats.histogram.counts));
        put(float64Bytes(binEdges(t.stats.histogram)));
      }
      if (t.stats.channelAbsMax) put(float32Bytes(t.stats.channelAbsMax, padded(t.stats.channelAbsMax.length * 4)));
    }
    const binary = { file: basename(binaryPath), bytes: layout.bytes, sha256: hash.digest('hex') };
    const json = {
      format: STATS_FORMAT,
      version: STATS_VERSION,
      model,
      data: statistics.data,
      calibration: source.calibration ?? {},
      options: statistics.options,
      run: {
        samples: statistics.samples,
        tokens: statistics.tokens,
        batches: statistics.batches,
        observerWorkers: statistics.observerWorkers,
        seconds: statistics.seconds,
        timing: statistics.timing,
      },
      binary,
      tensors: statistics.tensors.map((t, i) => tensorEntry(t, layout.offsets[i])),
      skipped: statistics.skipped,
    };
    writeSync(files.open(jsonPath), `${JSON.stringify(json, null, 1)}\n`);
    files.commit();
    return { json: jsonPath, binary: binaryPath, bytes: layout.bytes };
  } catch (e) {
    files.abort();
    throw e;
  }
}

export function readStatsFile(jsonPath: string): StatsFile {
  let json: StatsJson;
  try {
    json = JSON.parse(readFileSync(jsonPath, 'utf8')) as StatsJson;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new StatsFileError(`${jsonPath}: ${code === 'ENOENT' ? 'no such file' : code ? `cannot be read (${code})` : 'not JSON'}`);
  }
  if (json?.format !== STATS_FORMAT) throw new StatsFileError(`${jsonPath}: not an activation statistics file (format ${json?.format})`);
  if (json.version !== STATS_VERSION) throw new StatsFileError(`${jsonPath}: statistics format version ${json.version}; this build reads ${STATS_VERSION}`);
  if (typeof json.binary?.file !== 'string' || basename(json.binary.file) !== json.binary.file) {
    throw new StatsFileError(`${jsonPath}: its binary file must be a file name beside it, not ${JSON.stringify(json.binary?.file)}`);
  }
  const binaryPath = join(dirname(jsonPath), json.binary.file);
  let binary: Buffer;
  try {
    binary = readFileSync(binaryPath);
  } catch {
    throw new StatsFileError(`${jsonPath}: its binary file ${binaryPath} cannot be read`);
  }
  if (binary.length !== json.binary.bytes || createHash('sha256').update(binary).digest('hex') !== json.binary.sha256) {
    throw new StatsFileError(`${binaryPath}: does not match ${jsonPath} (size or sha256 differs)`);
  }
  if (binary.toString('latin1', 0, 8) !== MAGIC || binary.readUInt32LE(8) !== STATS_VERSION || binary.readUInt32LE(12) !== json.tensors.length) {
    throw new StatsFileError(`${binaryPath}: bad header`);
  }
  const tensors = json.tensors.map((entry) => tensorRecord(entry, binary, binaryPath));
  return {
    model: json.model,
    calibration: json.calibration,
    statistics: {
      model: json.model.path,
      data: json.data,
      options: { ...json.options, observe: json.options.observe ?? 'full' }, // not recorded before it existed
      ...json.run,
      observerWorkers: json.run.observerWorkers ?? 0, // not recorded before it existed
      tensors,
      skipped: json.skipped,
    },
  };
}

/** Throws unless the statistics were collected on exactly this model file. */
export function checkModelMatches(file: StatsFile, modelPath: string, statsPath = 'statistics'): void {
  const { sha256 } = fingerprint(modelPath);
  if (sha256 !== file.model.sha256) {
    throw new StatsFileError(`${statsPath}: collected on ${file.model.path} (sha256 ${file.model.sha256.slice(0, 12)}...), not on ${modelPath}`);
  }
}

/** sha256 and size of a file, read in chunks so a large model is never in memory at once. */
export function fingerprint(path: string): ModelFingerprint {
  const hash = createHash('sha256');
  const chunk = Buffer.allocUnsafe(16 << 20);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    throw new ModelError(`${path}: cannot be read`);
  }
  try {
    for (let n; (n = readSync(fd, chunk, 0, chunk.length, null)) > 0; ) hash.update(chunk.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return { path, sha256: hash.digest('hex'), bytes: statSync(path).size };
}

// --- layout ---

interface Offsets {
  counts: number;
  edges: number;
  channels: number;
}

function layOut(tensors: readonly TensorRecord<AnyTensorStats>[]): { offsets: Offsets[]; bytes: number } {
  let at = HEADER_BYTES;
  const offsets = tensors.map((t) => {
    const bins = isFullStats(t.stats) ? t.stats.histogram.bins : -1; // -1: no counts, no edges
    const o = bins < 0 ? { counts: at, edges: at, channels: at } : { counts: at, edges: at + bins * 8, channels: at + bins * 8 + (bins + 1) * 8 };
    at = o.channels + padded((t.stats.channelAbsMax?.length ?? 0) * 4);
    return o;
  });
  return { offsets, bytes: at };
}

const padded = (bytes: number): number => Math.ceil(bytes / 8) * 8;

function float64Bytes(values: Float64Array): Uint8Array {
  const out = Buffer.alloc(values.length * 8);
  for (let i = 0; i < values.length; i++) out.writeDoubleLE(values[i], i * 8);
  return out;
}

function float32Bytes(values: Float32Array, bytes: number): Uint8Array {
  const out = Buffer.alloc(bytes);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i], i * 4);
  return out;
}

// --- JSON entries ---

type ScalarStats = Omit<TensorStats, 'histogram' | 'channelAbsMax' | 'kurtosis' | 'entropy'> & {
  kurtosis: number | null;
  entropy: Omit<TensorStats['entropy'], 'divergence'> & { divergence: number | null };
};

interface TensorEntry extends Omit<TensorRecord, 'stats'>, ScalarStats {
  histogram: { bins: number; range: number; countsOffset: number; edgesOffset: number };
  channelAbsMax: { channels: number; offset: number };
}

/** A range-only tensor's entry. */
interface RangeEntry extends Omit<TensorRecord, 'stats'>, Omit<RangeStats, 'channelAbsMax'> {
  /** Absent when the per-channel maxima were not computed (observe 'minmax'). */
  channelAbsMax?: { channels: number; offset: number };
}

interface StatsJson {
  format: string;
  version: number;
  model: ModelFingerprint;
  data: AnyActivationStatistics['data'];
  calibration: CalibrationOptions;
  options: Omit<AnyActivationStatistics['options'], 'observe'> & { observe?: AnyActivationStatistics['options']['observe'] };
  run: Pick<AnyActivationStatistics, 'samples' | 'tokens' | 'batches' | 'seconds' | 'timing'> & { observerWorkers?: number };
  binary: { file: string; bytes: number; sha256: string };
  tensors: (TensorEntry | RangeEntry)[];
  skipped: AnyActivationStatistics['skipped'];
}

function tensorEntry(t: TensorRecord<AnyTensorStats>, at: Offsets): TensorEntry | RangeEntry {
  if (!isFullStats(t.stats)) {
    const { count, min, max, absMax, channelAbsMax } = t.stats;
    return {
      name: t.name,
      ...(t.producer ? { producer: t.producer } : {}),
      dtype: t.dtype,
      shape: t.shape,
      count,
      min,
      max,
      absMax,
      ...(channelAbsMax ? { channelAbsMax: { channels: channelAbsMax.length, offset: at.channels } } : {}),
    };
  }
  const { histogram, channelAbsMax, kurtosis, entropy, ...scalars } = t.stats;
  return {
    name: t.name,
    ...(t.producer ? { producer: t.producer } : {}),
    dtype: t.dtype,
    shape: t.shape,
    ...scalars,
    kurtosis: Number.isNaN(kurtosis) ? null : kurtosis,
    entropy: { ...entropy, divergence: Number.isFinite(entropy.divergence) ? entropy.divergence : null },
    histogram: { bins: histogram.bins, range: histogram.range, countsOffset: at.counts, edgesOffset: at.edges },
    channelAbsMax: { channels: channelAbsMax.length, offset: at.channels },
  };
}

function tensorRecord(entry: TensorEntry | RangeEntry, binary: Buffer, binaryPath: string): TensorRecord<AnyTensorStats> {
  const end = (offset: number, bytes: number): void => {
    if (!(offset >= HEADER_BYTES && offset + bytes <= binary.length)) throw new StatsFileError(`${binaryPath}: tensor '${entry.name}' points outside the file`);
  };
  if (!('histogram' in entry)) {
    const { name, producer, dtype, shape, count, min, max, absMax, channelAbsMax: c } = entry;
    if (c) end(c.offset, c.channels * 4);
    const stats: RangeStats = { count, min: min ?? NaN, max: max ?? NaN, absMax: absMax ?? NaN, ...(c ? { channelAbsMax: readChannels(binary, c) } : {}) };
    return { name, ...(producer ? { producer } : {}), dtype, shape, stats };
  }
  const { name, producer, dtype, shape, histogram: h, channelAbsMax: c, kurtosis, entropy, ...scalars } = entry;
  end(h.countsOffset, h.bins * 8);
  end(h.edgesOffset, (h.bins + 1) * 8);
  end(c.offset, c.channels * 4);
  const histogram: HistogramState = { bins: h.bins, range: h.range, counts: readFloat64(binary, h.countsOffset, h.bins) };
  const edges = readFloat64(binary, h.edgesOffset, h.bins + 1);
  const expected = binEdges(histogram);
  if (edges.some((e, i) => e !== expected[i])) throw new StatsFileError(`${binaryPath}: histogram edges of '${name}' disagree with its range`);
  const channelAbsMax = readChannels(binary, c);
  return {
    name,
    ...(producer ? { producer } : {}),
    dtype,
    shape,
    stats: {
      ...scalars,
      kurtosis: kurtosis ?? NaN,
      entropy: { ...entropy, divergence: entropy.divergence ?? Infinity },
      channelAbsMax,
      histogram,
    },
  };
}

function readChannels(binary: Buffer, c: { channels: number; offset: number }): Float32Array {
  const out = new Float32Array(c.channels);
  for (let i = 0; i < c.channels; i++) out[i] = binary.readFloatLE(c.offset + i * 4);
  return out;
}

function readFloat64(binary: Buffer, offset: number, length: number): Float64Array {
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++) out[i] = binary.readDoubleLE(offset + i * 8);
  return out;
}
