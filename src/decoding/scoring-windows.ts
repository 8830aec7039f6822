// Sliding-window scoring, the one routine behind perplexity and model comparison. A document longer than the
// model's window is read in windows `stride` tokens apart; each window predicts only the tokens no earlier window
// has scored, with the rest of the window as context (the Hugging Face perplexity guide's scheme). Every token
// after a document's first is scored exactly once, with at least `window - stride` tokens of context once the
// first window is past.
import type { DecoderSession } from './decoder-session.js';
import { OptionError } from '../errors.js';

export interface WindowPlan {
  /** Tokens per model run. */
  window: number;
  /** Distance between window starts; below `window`, so that each window starts with context. */
  stride: number;
}

export interface ScoringWindow {
  /** The window is ids [start, end). */
  start: number;
  end: number;
  /** Tokens [scoreFrom, end) are scored here; token j is predicted by the logits at window position j - 1 - start. */
  scoreFrom: number;
}

export function checkWindowPlan(plan: WindowPlan): void {
  const { window, stride } = plan;
  if (!Number.isInteger(window) || window < 2) throw new OptionError(`the window must be a whole number >= 2, got ${window}`);
  if (!Number.isInteger(stride) || stride < 1 || stride >= window) {
    throw new OptionError(`the stride must be a whole number from 1 to window - 1 (${window - 1}), got ${stride}`);
  }
}

/** How many windows scoring these documents takes (for progress). */
export function windowCount(documents: readonly { ids: readonly number[] }[], plan: WindowPlan): number {
  return documents.reduce((n, d) => n + scoringWindows(d.ids.length, plan).length, 0);
}

/** The windows over a document of `length` ids. */
export function scoringWindows(length: number, plan: WindowPlan): ScoringWindow[] {
  checkWindowPlan(plan);
  const out: ScoringWindow[] = [];
  let scoredTo = 1; // the first id has nothing before it
  for (let start = 0; scoredTo < length; start += plan.stride) {
    const end = Math.min(start + plan.window, length);
    out.push({ start, end, scoreFrom: scoredTo });
    scoredTo = end;
  }
  return out;
}

/** One scored token: what it is, and each model's logits predicting it (views, valid during the callback only). */
export interface ScoredToken {
  document: number;
  position: number;
  target: number;
  logits: Float32Array[];
}

/**
 * Runs every model over the same windows of every document and calls `visit` once per scored token, in order.
 * Logits are consumed as they come, so memory is one window's logits per model whatever the set's size.
 */
export async function forEachScoredToken(
  models: readonly DecoderSession[],
  documents: readonly { ids: readonly number[] }[],
  plan: WindowPlan,
  visit: (token: ScoredToken) => void,
  /** Called after each window with the number of windows run so far. */
  onWindow?: (windows: number) => void,
): Promise<{ windows: number }> {
  let windows = 0;
  for (const [document, { ids }] of documents.entries()) {
    for (const w of scoringWindows(ids.length, plan)) {
      const input = [ids.slice(w.start, w.end)];
      const logits = [];
      for (const model of models) logits.push(await model.logitsOf(input));
      for (let position = w.scoreFrom; position < w.end; position++) {
        visit({ document, position, target: ids[position], logits: logits.map((l) => l.at(0, position - 1 - w.start)) });
      }
      windows++;
      onWindow?.(windows);
    }
  }
  return { windows };
}
