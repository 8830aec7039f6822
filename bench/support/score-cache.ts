// Unit scores on disk, so a gradient run (minutes on byte-llama-12m) is paid once across bench processes. The key
// must name everything the scores depend on (model, method, calibration samples); the file format is the one
// bench/pruning-variants.ts writes to /tmp/h13-scores-*.json.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { UnitScores } from '../../src/pruning/units.js';

export interface CachedScores {
  scores: UnitScores;
  seconds: number;
}

export function readScoreCache(file: string): CachedScores | undefined {
  if (!existsSync(file)) return undefined;
  const c = JSON.parse(readFileSync(file, 'utf8')) as { scores: { attention: number[][]; mlp: number[][] }; seconds: number };
  return { scores: { attention: c.scores.attention.map((a) => Float64Array.from(a)), mlp: c.scores.mlp.map((a) => Float64Array.from(a)) }, seconds: c.seconds };
}

export function writeScoreCache(file: string, c: CachedScores): void {
  writeFileSync(file, JSON.stringify({ scores: { attention: c.scores.attention.map((a) => Array.from(a)), mlp: c.scores.mlp.map((a) => Array.from(a)) }, seconds: c.seconds }));
}
