// The installed package's version, for --version: read from package.json, which sits two folders above this
// file when run from src/ with a loader and three above it when built into dist/src/.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function packageVersion(): string {
  for (const up of ['../../../package.json', '../../package.json']) {
    const path = fileURLToPath(new URL(up, import.meta.url));
    if (!existsSync(path)) continue;
    const pkg = JSON.parse(readFileSync(path, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'onnx-compress' && pkg.version) return pkg.version;
  }
  return 'unknown';
}
