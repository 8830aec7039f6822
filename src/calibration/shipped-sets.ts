// The text sets shipped in calibration-sets/ can be named on the command line (`--data prose`) as well as given
// by path; this is the one place that maps a name to its folder.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SHIPPED_SETS = ['prose', 'code', 'email', 'nonsense', 'nonsense-bytes'] as const;

/** calibration-sets/ of this installation (from src/ when run with a loader, from dist/src/ when built). */
export function shippedSetsDir(): string {
  for (const up of ['../../../calibration-sets', '../../calibration-sets']) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(dir)) return dir;
  }
  return resolve('calibration-sets');
}

/** What the user typed, as a path: an existing file or folder as is, a shipped set's name as its folder. */
export function resolveSetPath(spec: string): string {
  if (existsSync(spec)) return spec;
  const shipped = join(shippedSetsDir(), spec);
  if (/^[\w-]+$/.test(spec) && existsSync(shipped)) return shipped;
  return spec;
}
