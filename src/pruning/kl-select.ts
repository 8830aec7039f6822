// KL-selected calibration data: prune once with each candidate calibration set, score KL(dense || pruned) of the
// next-token distributions on a separate selection split, keep the candidate with the lowest KL. Every candidate's
// KL and its perplexity on an evaluation split are reported, so a user can see whether the choice paid off (the
// reference code has no such loop). Candidates are shipped domains or set paths, optionally a seeded draw: `SET@SEED`.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CalibrationDataError } from '../calibration/data/errors.js';
import { resolveSetPath } from '../calibration/shipped-sets.js';
import { evaluateModel } from '../decoding/evaluate.js';
import { OptionError } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';

export interface Candidate {
  /** As the user wrote it. */
  name: string;
  data: string;
  /** Seed of the window draw from the set. */
  seed: number;
}

/** `SET` (seed 0) or `SET@SEED`. */
export function parseCandidate(spec: string): Candidate {
  const m = /^(.+?)(?:@(\d+))?$/.exec(spec);
  if (!m || m[1] === '') throw new OptionError(`--calib-candidates: '${spec}' is not SET or SET@SEED`);
  return { name: spec, data: m[1], seed: m[2] === undefined ? 0 : Number(m[2]) };
}

export function parseCandidates(specs: readonly string[]): Candidate[] {
  if (specs.length < 2) throw new OptionError(`--calib-candidates needs at least two candidates to choose between, got ${specs.length}`);
  const seen = new Set<string>();
  return specs.map((s) => {
    const c = parseCandidate(s);
    const key = `${c.data}@${c.seed}`;
    if (seen.has(key)) throw new OptionError(`--calib-candidates: '${s}' is listed twice`);
    seen.add(key);
    return c;
  });
}

/** The selection split of a set folder (selection.jsonl), or a .jsonl file as it is. */
export function selectionFile(spec: string): string {
  const path = resolveSetPath(spec);
  if (!existsSync(path)) throw new CalibrationDataError(`${spec}: no such file, folder or shipped set for the KL selection split`);
  if (!statSync(path).isDirectory()) return path;
  const file = join(path, 'selection.jsonl');
  if (!existsSync(file)) throw new CalibrationDataError(`${spec}: folder has no selection.jsonl; give the selection split as a .jsonl file`);
  return file;
}

export interface KlOptions {
  /** Selection split: a set (its selection.jsonl) or a .jsonl file. */
  selection: string;
  /** Evaluation split for each candidate's perplexity: a set (its evaluation.jsonl) or a .jsonl file. */
  evaluation: string;
  /** Tokens scored on each split (reference selection set: 128 x 64 = 8192). */
  maxTokens?: number;
  /** Window of the KL scoring, each window scoring window - 1 new tokens; the reference's selection samples are 64 tokens. */
  window?: number;
  /** Window of the evaluation perplexity (default 128: the sample models were trained on short contexts). */
  evaluationWindow?: number;
  threads?: number;
  onCandidate?: (done: number, total: number) => void;
}

export interface CandidateResult {
  candidate: string;
  /** KL(dense || pruned) per token on the selection split, nats. */
  kl: { mean: number; p95: number; max: number };
  top1Agreement: number;
  /** Perplexity of the pruned model on the evaluation split. */
  perplexity: number;
  bitsPerByte: number;
  chosen: boolean;
  seconds: number;
}

export interface KlSelection<T> {
  chosen: T;
  chosenIndex: number;
  results: CandidateResult[];
  selectionFile: string;
}

/** Prunes with every candidate through `prune`, keeping only the best result in memory. */
export async function selectByKl<T extends { model: OnnxModel }>(
  dense: OnnxModel,
  candidates: readonly Candidate[],
  prune: (candidate: Candidate) => Promise<T>,
  options: KlOptions,
): Promise<KlSelection<T>> {
  const selection = selectionFile(options.selection);
  const maxTokens = options.maxTokens ?? 8192;
  const window = options.window ?? 65;
  const threads = options.threads !== undefined ? { threads: options.threads } : {};
  let best: { result: T; index: number; kl: number } | undefined;
  const results: CandidateResult[] = [];
  for (const [i, candidate] of candidates.entries()) {
    const started = performance.now();
    const pruned = await prune(candidate);
    const kl = await evaluateModel(pruned.model, { data: selection, reference: dense, window, stride: window - 1, maxTokens, ...threads });
    if (!kl.comparison) throw new OptionError(`candidate ${candidate.name}: the pruned model could not be compared with the dense one (${kl.comparisonSkipped ?? 'no comparison'})`);
    const evalWindow = options.evaluationWindow ?? 128;
    const evaluation = await evaluateModel(pruned.model, { data: options.evaluation, window: evalWindow, stride: Math.max(1, Math.floor(evalWindow / 2)), maxTokens, ...threads });
    const ppl = evaluation.candidate.perplexity!;
    results.push({
      candidate: candidate.name,
      kl: kl.comparison.kl,
      top1Agreement: kl.comparison.top1Agreement,
      perplexity: ppl.perplexity,
      bitsPerByte: ppl.bitsPerByte,
      chosen: false,
      seconds: (performance.now() - started) / 1000,
    });
    // Ties keep the earlier candidate, so the order given decides them.
    if (!best || kl.comparison.kl.mean < best.kl) best = { result: pruned, index: i, kl: kl.comparison.kl.mean };
    options.onCandidate?.(i + 1, candidates.length);
  }
  results[best!.index].chosen = true;
  return { chosen: best!.result, chosenIndex: best!.index, results, selectionFile: selection };
}
