// Runs a list of passes on one model, once: checks the order and the output before any work, loads the model,
// runs the analysis and transform passes in order, then — only here, for every command — saves the result into
// a fresh staging folder beside the output, runs the check passes on the saved files (verification always, with
// its defaults when the recipe does not list it), and renames the result into place. A run that fails at any
// point leaves nothing at the output path.
import { realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { modelSize } from '../decoding/model-size.js';
import { OptionError, OutputError } from '../errors.js';
import { loadModel, type OnnxModel } from '../onnx/model.js';
import { modelFolder } from '../onnx/model-folder.js';
import { saveModel } from '../onnx/save.js';
import { resolveOutput, type OutputTarget } from '../quantization/output-names.js';
import type { QuantParams } from '../quantization/schemes.js';
import { engineInfo, VerificationError, type EngineInfo, type VerificationReport } from '../quantization/verify.js';
import { makeStagingFolder, moveIntoPlace } from '../util/atomic.js';
import { claimOutput, type OutputClaim } from '../util/output-lock.js';
import type { Pass, PassEnv, PassKind, PassState, SessionChoice, Step } from './types.js';
import { verifyPass, type VerifyPassOptions } from './verify.js';
import { checkFolderOutput, placeCompanions, stageCompanions, withCompanionsFor } from './output-companions.js';

export const COMPRESS_REPORT_FORMAT = 'onnx-compress.compress-report';
export const COMPRESS_REPORT_VERSION = 1;

/** The `where` of the verification the runner adds when a run writes a model and lists no verify pass. */
const IMPLICIT_VERIFICATION = 'verification';

export interface FileFacts {
  path: string;
  /** The .onnx plus its external data. */
  bytes: number;
  externalData?: { path: string; bytes: number };
  irVersion?: number;
  opsets: { domain: string; version: number }[];
}

export interface PassRecord {
  pass: string;
  kind: PassKind;
  where: string;
  seconds: number;
  report: unknown;
}

export interface CompressReport {
  format: typeof COMPRESS_REPORT_FORMAT;
  version: typeof COMPRESS_REPORT_VERSION;
  date: string;
  recipe: { name?: string; path?: string };
  model: FileFacts & { languageModel: boolean };
  /** The written model; null when no pass changed the model (analysis and evaluation only). */
  output: (FileFacts & { naming: OutputTarget['naming'] }) | null;
  engine: EngineInfo;
  passes: PassRecord[];
  /** Verification of the written model (also among `passes`); null when nothing was written. */
  verification: VerificationReport | null;
  notes: string[];
  timing: { saveSeconds: number; totalSeconds: number };
}

export interface RunOptions {
  /** Output file, or a Hugging Face folder (transformers.js naming from the quantize pass's scheme). */
  out?: string;
  session?: SessionChoice;
  onProgress?: PassEnv['onProgress'];
  recipe?: { name?: string; path?: string };
  /**
   * Quality-gate settings laid over every verification of the run (the recipe's verify steps and the implicit
   * one): what a command's --min-cosine, --min-top1 and --no-gate set.
   */
  verify?: Pick<VerifyPassOptions, 'minCosine' | 'minTop1Agreement' | 'gate'>;
  /**
   * Applied to the final model before it is saved and verified; exists for tests (a broken writer must not
   * leave a file) and experiments, not for normal use.
   */
  transform?: (model: OnnxModel) => OnnxModel;
}

/** Throws an OptionError naming the step when the steps cannot run in this order. */
export function checkOrder(steps: readonly Step[], options: Pick<RunOptions, 'out'>): void {
  let lastTransform: Step | undefined;
  let firstCheck: Step | undefined;
  const seen = new Map<string, Step>();
  for (const step of steps) {
    const { pass } = step;
    if (pass.kind === 'transform') {
      if (firstCheck) throw new OptionError(`${step.where}: ${pass.name} changes the model after ${firstCheck.where} checked it; checks run on the final model, so list them last`);
      const before = seen.get(pass.name);
      if (before) throw new OptionError(`${step.where}: ${pass.name} again, after ${before.where}: a model is ${pass.name}d once (the second would stack on the first)`);
      lastTransform = step;
    }
    if (pass.kind === 'check') firstCheck ??= step;
    const needed = pass.requires?.(step.options);
    if (needed && !seen.has(needed)) throw new OptionError(`${step.where}: ${pass.name} with these options takes what the ${needed} pass leaves, and no ${needed} step comes before it`);
    if (pass.readsInputFile && lastTransform) {
      throw new OptionError(`${step.where}: ${pass.name} works on the input model file, so it must come before ${lastTransform.where}`);
    }
    seen.set(pass.name, step);
  }
  if (lastTransform && !options.out) throw new OptionError(`${lastTransform.where}: ${lastTransform.pass.name} changes the model: give --out for the result`);
  if (!lastTransform && options.out) {
    const kinds = steps.map((s) => `${s.where} ${s.pass.kind === 'check' ? 'checks' : 'reads'} it`).join('; ');
    throw new OptionError(`--out ${options.out}: no pass changes the model (${kinds}), so there is nothing to write`);
  }
}

export async function runSteps(modelPath: string, steps: readonly Step[], options: RunOptions = {}): Promise<CompressReport> {
  // The output is claimed (checked writable, its folders made, locked) for the whole run, and released however
  // the run ends; the folders it made stay only when the result was written.
  const claims: OutputClaim[] = [];
  let written = false;
  try {
    const report = await runClaimed(modelPath, steps, options, claims);
    written = true;
    return report;
  } finally {
    for (const c of claims) c.release(written);
  }
}

async function runClaimed(modelPath: string, steps: readonly Step[], options: RunOptions, claims: OutputClaim[]): Promise<CompressReport> {
  const started = performance.now();
  checkOrder(steps, options);
  const session = options.session ?? {};
  const original = loadModel(modelPath);
  const transforms = steps.filter((s) => s.pass.kind === 'transform');
  const scheme = transforms.map((s) => s.pass.outputScheme?.(s.options)).find((p) => p !== undefined);
  const target = options.out !== undefined ? checkOutput(original, modelPath, options.out, scheme) : undefined;
  if (target) claims.push(claimOutput(target.path));

  // What can be checked against the input model (a plan file's node names...) is, before any pass runs.
  const first = steps.findIndex((s) => s.pass.kind === 'transform');
  for (const step of first < 0 ? steps : steps.slice(0, first + 1)) {
    try {
      step.pass.precheck?.(step.options, original);
    } catch (e) {
      throw namedAfter(step, e);
    }
  }
  const env: PassEnv = { modelPath, original, session, ...(options.onProgress ? { onProgress: options.onProgress } : {}) };
  let state: PassState = { model: original, notes: [] };
  const records: PassRecord[] = [];
  const run = async (step: Step): Promise<void> => {
    const t = performance.now();
    let outcome: Awaited<ReturnType<Pass['run']>>;
    try {
      outcome = await step.pass.run(state, step.options, env);
    } catch (e) {
      throw namedAfter(step, e);
    }
    state = outcome.state;
    records.push({ pass: step.pass.name, kind: step.pass.kind, where: step.where, seconds: (performance.now() - t) / 1000, report: outcome.report });
  };
  for (const step of steps) if (step.pass.kind !== 'check') await run(step);
  const checks = steps.filter((s) => s.pass.kind === 'check');
  const base = {
    format: COMPRESS_REPORT_FORMAT,
    version: COMPRESS_REPORT_VERSION,
    date: new Date().toISOString(),
    recipe: options.recipe ?? {},
    model: { ...fileFacts(original, modelPath), languageModel: modelFolder(original).decoder !== null },
    engine: engineInfo(session),
  } as const;

  if (!target) {
    state = { ...state, file: modelPath };
    for (const step of checks) await run(step);
    return { ...base, output: null, passes: records, verification: null, notes: state.notes, timing: { saveSeconds: 0, totalSeconds: (performance.now() - started) / 1000 } };
  }

  const finalDir = dirname(resolve(target.path));
  const { path: staging, remove: removeStaging } = makeStagingFolder(target.path); // also removed on Ctrl-C (the CLI's handlers)
  const stagedPath = join(staging, basename(target.path));
  try {
    const model = options.transform ? options.transform(state.model) : state.model;
    let t = performance.now();
    // The input's config and tokenizer files travel with the result (output-companions.ts): the checks read the
    // staged copy with them, as users will read the result.
    const saved = saveModel(withCompanionsFor(target, model, original), stagedPath);
    const companions = stageCompanions(target, original, staging, model);
    const saveSeconds = (performance.now() - t) / 1000;

    state = { ...state, model, file: stagedPath };
    const gated = (step: Step): Step => (step.pass === verifyPass && options.verify ? { ...step, options: { ...(step.options as VerifyPassOptions), ...options.verify } } : step);
    if (!checks.some((s) => s.pass === verifyPass)) await run(gated({ pass: verifyPass, options: {}, where: IMPLICIT_VERIFICATION }));
    for (const step of checks) await run(gated(step));

    // Into place: external data first, then the model that points at it.
    const dataPath = saved.externalData ? join(finalDir, basename(saved.externalData.path)) : undefined;
    placeCompanions(companions);
    if (saved.externalData) moveIntoPlace(saved.externalData.path, dataPath!);
    moveIntoPlace(stagedPath, target.path);
    removeStaging();
    const output: FileFacts & { naming: OutputTarget['naming'] } = {
      path: target.path,
      bytes: saved.bytes + (saved.externalData?.bytes ?? 0),
      ...(dataPath ? { externalData: { path: dataPath, bytes: saved.externalData!.bytes } } : {}),
      ...(model.proto.irVersion !== undefined ? { irVersion: model.proto.irVersion } : {}),
      opsets: opsetsOf(model),
      naming: target.naming,
    };
    // Reports (evaluate's candidate, notes) name the output the user asked for, not the staging copy they checked.
    const renames: [string, string][] = [...(dataPath ? [[saved.externalData!.path, dataPath] as [string, string]] : []), [stagedPath, target.path]];
    const passes = records.map((r) => ({ ...r, report: renamePaths(r.report, renames) }));
    const verification = passes.find((r) => r.pass === verifyPass.name)!.report as VerificationReport;
    return { ...base, output, passes, verification, notes: renamePaths(state.notes, renames), timing: { saveSeconds, totalSeconds: (performance.now() - started) / 1000 } };
  } catch (e) {
    removeStaging();
    // Messages name the output the user asked for, not the staging copy that was checked.
    if (e instanceof VerificationError) {
      // "nothing was written" goes before the advice on how to accept the model, which ends the line.
      const message = e.message.split(stagedPath).join(target.path);
      const advice = e.override !== undefined && message.endsWith(`; ${e.override}`) ? e.override : undefined;
      const what = advice ? message.slice(0, -(advice.length + 2)) : message;
      throw new VerificationError(`${what}; nothing was written${advice ? `; ${advice}` : ''}`, e.figures, e.code === 'runtime' ? 'runtime' : 'quality-gate', e.override);
    }
    if (e instanceof Error) e.message = e.message.split(stagedPath).join(target.path).split(staging).join(finalDir);
    throw e;
  }
}

/**
 * A recipe's failures name the step (passes[i]); the single-purpose commands' steps are named by the pass alone
 * and keep their messages as they were.
 */
function namedAfter(step: Step, e: unknown): unknown {
  if (e instanceof Error && step.where !== step.pass.name && step.where !== IMPLICIT_VERIFICATION && !e.message.startsWith(step.where)) {
    e.message = `${step.where}: ${e.message}`;
  }
  return e;
}

/** The output path, checked before any work: not the input (its folder is checked writable when it is claimed). */
function checkOutput(model: OnnxModel, modelPath: string, out: string, scheme: QuantParams | undefined): OutputTarget {
  // A file, or a Hugging Face folder for any input (output-names.ts names the model in it).
  const target = resolveOutput(modelPath, out, scheme);
  checkFolderOutput(target, model);
  const inputs = [modelPath, ...model.externalFiles().map((f) => model.externalPath(f))];
  for (const path of [target.path, `${target.path}_data`]) {
    const clash = inputs.find((i) => samePath(i, path));
    if (clash) {
      throw new OutputError(
        `--out ${target.path}: ${path === target.path ? 'is the input model' : `its external data file ${path} is the input's`} (${clash}); refusing to overwrite the input, choose another output`,
      );
    }
  }
  return target;
}

/** A copy of a plain-JSON value with every string's occurrences of each `from` path replaced by its `to`. */
function renamePaths<T>(value: T, renames: readonly [string, string][]): T {
  if (typeof value === 'string') return renames.reduce((s: string, [from, to]) => s.split(from).join(to), value) as T;
  if (Array.isArray(value)) return value.map((v) => renamePaths(v, renames)) as T;
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renamePaths(v, renames)])) as T;
  }
  return value;
}

function samePath(a: string, b: string): boolean {
  const real = (p: string): string => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  return real(a) === real(b);
}

export function fileFacts(model: OnnxModel, path: string): FileFacts {
  const size = modelSize(model);
  const external = model.externalFiles();
  const externalBytes = external.reduce((a, f) => a + statSync(model.externalPath(f)).size, 0);
  return {
    path,
    bytes: size.fileBytes ?? statSync(path).size,
    ...(external.length ? { externalData: { path: external.map((f) => model.externalPath(f)).join(', '), bytes: externalBytes } } : {}),
    ...(model.proto.irVersion !== undefined ? { irVersion: model.proto.irVersion } : {}),
    opsets: opsetsOf(model),
  };
}

function opsetsOf(model: Pick<OnnxModel, 'proto'>): { domain: string; version: number }[] {
  return model.proto.opsetImport.map((o) => ({ domain: o.domain || 'ai.onnx', version: o.version ?? 0 }));
}

/** One pass through the runner (as the single-purpose commands run theirs): its report. */
export async function runPass<O, R>(modelPath: string, pass: Pass<O, R>, options: O, run: RunOptions = {}): Promise<R> {
  const report = await runSteps(modelPath, [{ pass, options, where: pass.name }], run);
  return report.passes.find((p) => p.pass === pass.name)!.report as R;
}
