// Making a draft model for speculative decoding with the project's own compression, and judging it *as a draft*:
// each candidate (a recipe, or a scheme / sparsity given as flags) runs through the pass runner like `compress`
// (verified behind the quality gate), then decodes a small prompt set with the target for every γ of a sweep:
// acceptance α and τ, acceptance by position, the cost ratio c, predicted and measured speed-up against the
// target alone. Candidates are ranked by measured tokens per second and only the best is renamed to the output.
import { existsSync, mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readJsonlDocuments } from '../calibration/data/jsonl.js';
import { CalibrationDataError } from '../calibration/data/errors.js';
import { OptionError } from '../errors.js';
import { loadModel } from '../onnx/model.js';
import { runSteps, type CompressReport, type RunOptions } from '../passes/runner.js';
import type { Step } from '../passes/types.js';
import { makeStagingFolder, moveIntoPlace } from '../util/atomic.js';
import { claimOutput } from '../util/output-lock.js';
import { DecoderSession } from './decoder-session.js';
import { measureSpeculative, targetOnly, warmUp, type SpeculativeMeasurement } from './speculative-measure.js';
import { checkDraftFits, checkGamma, type Gamma } from './speculative.js';
import { promptIds, textCodecFor } from './text-codec.js';
import { resolveTextSet } from './text-set.js';

export const DRAFT_REPORT_FORMAT = 'onnx-compress.draft-report';
/** The default prompt set: the first records of these shipped sets' evaluation splits (held out from training). */
export const DEFAULT_PROMPT_SETS = ['prose', 'code', 'email'];
export const DEFAULT_PROMPTS_PER_SET = 2;
export const DEFAULT_PROMPT_TOKENS = 32;

export interface DraftCandidate {
  /** How the candidate is named in the report ('recipe r.json', 'scheme w4'). */
  label: string;
  steps: Step[];
}

export interface DraftOptions {
  out: string;
  candidates: DraftCandidate[];
  gammas: Gamma[];
  /** Prompt sets (.jsonl files, set folders or shipped names) and how much of each to read. */
  promptSets?: string[];
  promptsPerSet?: number;
  promptTokens?: number;
  maxNewTokens: number;
  session?: RunOptions['session'];
  verify?: RunOptions['verify'];
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface DraftCandidateReport {
  label: string;
  /** The compression run that made it (passes, verification, file sizes). */
  compress: CompressReport;
  sweep: SpeculativeMeasurement[];
  /** The γ with the highest measured tokens per second. */
  best: SpeculativeMeasurement;
}

export interface DraftReport {
  format: typeof DRAFT_REPORT_FORMAT;
  target: string;
  out: string;
  prompts: { sets: string[]; count: number; tokensEach: number; maxNewTokens: number };
  targetOnly: { tokensPerSecond: number; stepMs: number | null };
  candidates: DraftCandidateReport[];
  /** The candidate written to `out`. */
  chosen: string;
}

/** The first records of each set, cut to `tokens` ids after the target's BOS. */
export async function readPrompts(model: string, vocab: number, bos: number | null, sets: readonly string[], perSet: number, tokens: number): Promise<number[][]> {
  const codec = textCodecFor(loadModel(model), vocab);
  const prompts: number[][] = [];
  for (const set of sets) {
    const path = resolveTextSet(set);
    let n = 0;
    for await (const record of readJsonlDocuments(path)) {
      if (n >= perSet) break;
      if (record.text === undefined) throw new CalibrationDataError(`${path}:${record.line}: a prompt set needs "text" records`);
      const ids = promptIds(codec, record.text, bos);
      if (ids.length < 2) continue;
      prompts.push(ids.slice(0, tokens + (bos !== null ? 1 : 0)));
      n++;
    }
    if (n === 0) throw new CalibrationDataError(`${path}: no record with text to use as a prompt`);
  }
  return prompts;
}

export async function makeDraft(targetPath: string, options: DraftOptions): Promise<DraftReport> {
  const { out, candidates, maxNewTokens } = options;
  if (candidates.length === 0) throw new OptionError('no draft candidate: give --recipe, --scheme or --sparsity');
  if (!out.endsWith('.onnx')) throw new OptionError(`--out ${out}: a draft is written as one .onnx file (its config and tokenizer embedded)`);
  const gammas = options.gammas.map((g) => checkGamma(g));
  const sets = options.promptSets ?? DEFAULT_PROMPT_SETS;
  const perSet = options.promptsPerSet ?? DEFAULT_PROMPTS_PER_SET;
  const promptTokens = options.promptTokens ?? DEFAULT_PROMPT_TOKENS;
  const session = options.session ?? {};

  const claim = claimOutput(out);
  const staging = makeStagingFolder(out);
  let written = false;
  try {
    const target = await DecoderSession.open(targetPath, session);
    const reports: DraftCandidateReport[] = [];
    let targetReport: DraftReport['targetOnly'];
    try {
      const prompts = await readPrompts(targetPath, target.vocab, target.special.bos, sets, perSet, promptTokens);
      await warmUp(prompts[0], target);
      const reference = await targetOnly(target, prompts, { maxNewTokens });
      for (const [i, candidate] of candidates.entries()) {
        // Each candidate in a folder of its own under the output's name, so external data keeps its file name.
        const folder = join(staging.path, String(i));
        mkdirSync(folder);
        const path = join(folder, basename(out));
        const compress = await runSteps(targetPath, candidate.steps, {
          out: path,
          session,
          recipe: { name: candidate.label },
          ...(options.verify ? { verify: options.verify } : {}),
          ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        });
        const draft = await DecoderSession.open(path, session);
        try {
          checkDraftFits(target, draft);
          await warmUp(prompts[0], target, draft);
          // The reference is measured again next to each candidate, so that drift in the machine's speed over a
          // long run does not favour the candidates measured first.
          const again = await targetOnly(target, prompts, { maxNewTokens });
          const sweep: SpeculativeMeasurement[] = [];
          for (const [k, gamma] of gammas.entries()) {
            options.onProgress?.(`draft ${candidate.label}`, k, gammas.length);
            sweep.push(await measureSpeculative(target, draft, prompts, gamma, again, { maxNewTokens }));
          }
          options.onProgress?.(`draft ${candidate.label}`, gammas.length, gammas.length);
          const best = sweep.reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));
          reports.push({ label: candidate.label, compress, sweep, best });
        } finally {
          await draft.dispose();
        }
      }
      const tokens = reference.reduce((a, r) => a + r.tokens.length, 0);
      const seconds = reference.reduce((a, r) => a + r.seconds, 0);
      const steps = reference.reduce((a, r) => a + r.steps, 0);
      targetReport = { tokensPerSecond: tokens / seconds, stepMs: steps ? (1000 * reference.reduce((a, r) => a + r.stepSeconds, 0)) / steps : null };
      const prompts_ = { sets: [...sets], count: prompts.length, tokensEach: promptTokens, maxNewTokens };
      const chosenIndex = reports.reduce((bi, r, i) => (r.best.tokensPerSecond > reports[bi].best.tokensPerSecond ? i : bi), 0);
      const from = join(staging.path, String(chosenIndex), basename(out));
      if (existsSync(`${from}_data`)) moveIntoPlace(`${from}_data`, `${out}_data`);
      moveIntoPlace(from, out);
      written = true;
      // Only the chosen candidate's file exists after the run: the others' staging paths are not reported.
      const named = reports.map((r, i) => ({ ...r, compress: { ...r.compress, output: r.compress.output && { ...r.compress.output, path: i === chosenIndex ? out : '(not kept)' } } }));
      return { format: DRAFT_REPORT_FORMAT, target: targetPath, out, prompts: prompts_, targetOnly: targetReport, candidates: named, chosen: reports[chosenIndex].label };
    } finally {
      await target.dispose();
    }
  } finally {
    staging.remove();
    claim.release(written);
  }
}
