// The documents a decoder is scored on: a JSONL text set read by src/calibration/data, tokenised with the
// model's codec, each starting with the model's BOS so that every token of the text is predicted from something
// (as lm-evaluation-harness's rolling log-likelihood does), and cut to a token budget if one is given.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonlDocuments } from '../calibration/data/jsonl.js';
import { missingSetError } from '../calibration/missing-set.js';
import { resolveSetPath } from '../calibration/shipped-sets.js';
import { CalibrationDataError } from '../calibration/data/errors.js';
import type { TextCodec } from './text-codec.js';

/**
 * A set's evaluation file from what a user typed: a .jsonl file, a set folder (its evaluation.jsonl), or the name
 * of a shipped set (`prose`, `code`...).
 */
export function resolveTextSet(spec: string): string {
  const path = resolveSetPath(spec);
  if (existsSync(path)) {
    if (!statSync(path).isDirectory()) return path;
    const file = join(path, 'evaluation.jsonl');
    if (existsSync(file)) return file;
    throw new CalibrationDataError(`${spec}: folder has no evaluation.jsonl`);
  }
  throw missingSetError(spec);
}

export interface ScoringDocument {
  /** The ids a model reads; every one after the first is a scored prediction. */
  ids: number[];
  /** UTF-8 bytes of the text the scored ids stand for. */
  bytes: number;
}

export interface ScoringSet {
  path: string;
  documents: ScoringDocument[];
  /** Scored tokens (each document's ids less its first). */
  tokens: number;
  bytes: number;
}

export interface ScoringSetOptions {
  /** The model's BOS id, put first when the tokenizer has not; null when the model has none. */
  bos: number | null;
  /** Stop once this many tokens are scored (the last document is cut). */
  maxTokens?: number;
}

export async function readScoringSet(path: string, codec: TextCodec, options: ScoringSetOptions): Promise<ScoringSet> {
  const { bos, maxTokens = Infinity } = options;
  const documents: ScoringDocument[] = [];
  let tokens = 0;
  let bytes = 0;
  for await (const record of readJsonlDocuments(path)) {
    if (tokens >= maxTokens) break;
    let ids = record.text !== undefined ? codec.encode(record.text) : tokenIds(record.ids, path, record.line);
    const hadBos = bos !== null && ids[0] === bos;
    if (bos !== null && !hadBos) ids = [bos, ...ids];
    if (ids.length < 2) continue; // nothing to predict
    const cut = ids.length - 1 > maxTokens - tokens;
    if (cut) ids = ids.slice(0, maxTokens - tokens + 1);
    // A whole text behind a BOS is scored byte for byte; otherwise count what the scored ids stand for.
    const docBytes = record.text !== undefined && bos !== null && !cut ? Buffer.byteLength(record.text) : codec.byteLength(ids.slice(1));
    documents.push({ ids, bytes: docBytes });
    tokens += ids.length - 1;
    bytes += docBytes;
  }
  if (documents.length === 0) throw new CalibrationDataError(`${path}: no document with at least one token to score`);
  return { path, documents, tokens, bytes };
}

function tokenIds(ids: readonly unknown[], path: string, line: number): number[] {
  for (const id of ids) if (!Number.isSafeInteger(id) || (id as number) < 0) throw new CalibrationDataError(`${path}:${line}: "input_ids" must hold whole numbers >= 0, found ${JSON.stringify(id)}`);
  return ids as number[];
}
