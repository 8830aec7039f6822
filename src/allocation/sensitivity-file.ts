// The sensitivity file: a measured table (sensitivity.ts) saved as JSON, reused by later runs on the same model,
// method, data and candidates. A file measured on another model (by sha256) or with another method is refused
// with one line, never silently reused; one for other data or candidates is measured again.
import { readFileSync } from 'node:fs';
import { OnnxCompressError } from '../errors.js';
import { writeTextAtomically } from '../util/atomic.js';
import { SENSITIVITY_FORMAT, SENSITIVITY_VERSION, type SelectionData, type SensitivityTable } from './sensitivity.js';

export class SensitivityFileError extends OnnxCompressError {
  constructor(message: string) {
    super('bad-data', message);
  }
}

export interface SensitivityKey {
  sha256: string;
  method: string;
  data: Pick<SelectionData, 'source' | 'split' | 'samples' | 'seed'> & { sequenceLength?: number };
  candidates: string[];
}

/** The table in `path` when it matches the key; undefined (with the reason) when it is for other data or candidates; throws for another model or method. */
export function readSensitivityFile(path: string, key: SensitivityKey): { table?: SensitivityTable; stale?: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new SensitivityFileError(`${path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  let table: SensitivityTable;
  try {
    table = JSON.parse(text) as SensitivityTable;
  } catch (e) {
    throw new SensitivityFileError(`${path}: not JSON (${(e as Error).message})`);
  }
  if (table?.format !== SENSITIVITY_FORMAT || table.version !== SENSITIVITY_VERSION) {
    throw new SensitivityFileError(`${path}: not a sensitivity file of version ${SENSITIVITY_VERSION} (format '${String(table?.format)}', version ${String(table?.version)})`);
  }
  if (table.model?.sha256 !== key.sha256) {
    throw new SensitivityFileError(`${path}: measured on ${table.model?.path} (sha256 ${String(table.model?.sha256).slice(0, 12)}...), not on this model (sha256 ${key.sha256.slice(0, 12)}...)`);
  }
  if (table.method !== key.method) throw new SensitivityFileError(`${path}: measured with --method ${table.method}, not ${key.method}`);
  const d = table.data;
  const same = d.source === key.data.source && d.split === key.data.split && d.samples === key.data.samples && d.seed === key.data.seed && d.sequenceLength === key.data.sequenceLength;
  if (!same) return { stale: `${path} was measured on other data (${d.source} ${d.split}, ${d.samples} samples, seed ${d.seed}): measured again` };
  if (table.candidates.join(',') !== key.candidates.join(',')) return { stale: `${path} was measured for candidates ${table.candidates.join(', ')}: measured again` };
  return { table };
}

export function writeSensitivityFile(path: string, table: SensitivityTable): void {
  writeTextAtomically(path, `${JSON.stringify(table, null, 1)}\n`);
}
