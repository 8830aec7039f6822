// Recipes: a JSON list of passes with their options, run in order on one model by the runner.
//
//   {
//     "format": "onnx-compress.recipe", "version": 1,          (both optional)
//     "name": "w8a8 on prose", "description": "...",            (optional)
//     "passes": [
//       { "pass": "calibrate", "data": "prose", "samples": 128, "seqLen": 128 },
//       { "pass": "quantize", "scheme": "w8a8" },
//       { "pass": "verify", "minTop1": 0.9 },
//       { "pass": "evaluate", "data": "prose", "maxTokens": 20000 }
//     ]
//   }
//
// Paths inside a recipe (data sets, plan and statistics files) are relative to the current directory, as on the
// command line. Every mistake is one line naming the recipe and the step (passes[i]).
import { readFileSync } from 'node:fs';
import { OptionError } from '../errors.js';
import { PASSES, PASS_NAMES } from './registry.js';
import type { Step } from './types.js';

export const RECIPE_FORMAT = 'onnx-compress.recipe';
export const RECIPE_VERSION = 1;

export interface Recipe {
  name?: string;
  description?: string;
  /** The file it was read from. */
  path?: string;
  steps: Step[];
}

const KEYS = new Set(['format', 'version', 'name', 'description', 'passes']);

export function readRecipe(path: string): Recipe {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new OptionError(`--recipe ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${code ?? e})`}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new OptionError(`recipe ${path}: not JSON (${(e as Error).message})`);
  }
  return { ...parseRecipe(json, `recipe ${path}`), path };
}

/** A recipe's JSON checked and its steps' options parsed; `source` starts every message ('recipe r.json'). */
export function parseRecipe(json: unknown, source: string): Recipe {
  const fail = (why: string): never => {
    throw new OptionError(`${source}: ${why}`);
  };
  if (!json || typeof json !== 'object' || Array.isArray(json)) fail('expected a JSON object with "passes"');
  const o = json as Record<string, unknown>;
  for (const key of Object.keys(o)) if (!KEYS.has(key)) fail(`unknown key '${key}' (known: ${[...KEYS].join(', ')})`);
  if (o.format !== undefined && o.format !== RECIPE_FORMAT) fail(`format is '${String(o.format)}', expected '${RECIPE_FORMAT}'`);
  if (o.version !== undefined && o.version !== RECIPE_VERSION) fail(`version ${String(o.version)}; this build reads version ${RECIPE_VERSION}`);
  if (o.name !== undefined && typeof o.name !== 'string') fail('"name" must be a string');
  if (o.description !== undefined && typeof o.description !== 'string') fail('"description" must be a string');
  if (!Array.isArray(o.passes) || o.passes.length === 0) fail('"passes" must be a non-empty list of steps such as { "pass": "quantize", "scheme": "w4" }');
  const steps = (o.passes as unknown[]).map((raw, i): Step => {
    const at = `${source}: passes[${i}]`;
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new OptionError(`${at}: expected an object with "pass"`);
    const step = raw as Record<string, unknown>;
    const name = step.pass;
    if (typeof name !== 'string') throw new OptionError(`${at}: "pass" must name a pass (${PASS_NAMES.join(', ')})`);
    const pass = PASSES[name];
    if (!pass) throw new OptionError(`${at}: unknown pass '${name}' (known: ${PASS_NAMES.join(', ')})`);
    const where = `${at} (${name})`;
    return { pass, options: pass.parse(step, where), where };
  });
  return { ...(typeof o.name === 'string' ? { name: o.name } : {}), ...(typeof o.description === 'string' ? { description: o.description } : {}), steps };
}
