// Locations of Debian's libonnx-testdata (the ONNX backend conformance suite), which .ci/run installs.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const TESTDATA_ROOT = '/usr/share/libonnx-testdata/data';
export const SUITES = ['node', 'pytorch-converted', 'pytorch-operator', 'simple'] as const;

/** Every conformance model path, sorted, across the suites (throws when the package is not installed). */
export function conformanceModels(suites: readonly string[] = SUITES): string[] {
  if (!existsSync(TESTDATA_ROOT)) {
    throw new Error(`${TESTDATA_ROOT} is missing: install Debian's libonnx-testdata (apt-get install libonnx-testdata)`);
  }
  const out: string[] = [];
  for (const suite of suites) {
    const dir = join(TESTDATA_ROOT, suite);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      const file = join(dir, name, 'model.onnx');
      if (existsSync(file)) out.push(file);
    }
  }
  return out;
}
