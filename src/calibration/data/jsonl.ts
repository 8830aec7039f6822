// Streams the documents of a JSON Lines calibration file, one line in memory at a time. A record is an object
// with `input_ids` (token ids, used as they are) or `text` (to be tokenised); other keys (`source`...) are
// ignored, as calibration-sets/README.md asks of readers. Blank lines are skipped.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { CalibrationDataError } from './errors.js';

export type JsonlDocument =
  | { line: number; text: string; ids?: undefined }
  | { line: number; ids: readonly unknown[]; text?: undefined };

export async function* readJsonlDocuments(path: string): AsyncGenerator<JsonlDocument> {
  const input = createReadStream(path);
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of lines) {
      line++;
      // Editors on Windows may start the file with a byte-order mark, which JSON.parse refuses.
      const raw = line === 1 ? text.replace(/^\uFEFF/, '') : text;
      if (raw.trim() === '') continue;
      yield parseRecord(raw, path, line);
    }
  } catch (e) {
    if (e instanceof CalibrationDataError) throw e;
    throw new CalibrationDataError(`${path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  } finally {
    // A consumer that stops early (the last selected window came before the end) must not leave the file open.
    lines.close();
    input.destroy();
  }
}

function parseRecord(raw: string, path: string, line: number): JsonlDocument {
  let record: unknown;
  try {
    record = JSON.parse(raw);
  } catch (e) {
    throw new CalibrationDataError(`${path}:${line}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof record !== 'object' || record === null || Array.isArray(record)) {
    throw new CalibrationDataError(`${path}:${line}: a record must be a JSON object with "text" or "input_ids"`);
  }
  const { text, input_ids: ids } = record as { text?: unknown; input_ids?: unknown };
  if (ids !== undefined) {
    if (!Array.isArray(ids)) throw new CalibrationDataError(`${path}:${line}: "input_ids" must be an array of token ids`);
    return { line, ids };
  }
  if (text !== undefined) {
    if (typeof text !== 'string') throw new CalibrationDataError(`${path}:${line}: "text" must be a string`);
    return { line, text };
  }
  throw new CalibrationDataError(`${path}:${line}: record has neither "text" nor "input_ids"`);
}
