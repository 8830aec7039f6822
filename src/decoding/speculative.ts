// Speculative decoding on two decoders with KV caches (batch 1): each step the draft proposes up to γ tokens one
// forward at a time, the target scores all of them in one forward, the longest acceptable prefix is kept with one
// token of the target's own after it, and both caches are cut back to what was kept. Greedy output is the
// target's greedy output token for token; sampled output follows the target's sampling distribution exactly
// (speculative-verify.ts). γ is fixed, or adaptive: drafting stops early when the draft's most likely token falls
// below a probability threshold, since a draft unsure of its token is likely to be rejected there.
import { OptionError } from '../errors.js';
import type { DecoderSession, DecoderState } from './decoder-session.js';
import type { StopReason } from './generate.js';
import { logSoftmax, argmax } from './logits.js';
import { samplingSettings, type SamplingOptions } from './sampling.js';
import { denseDistribution, drawDense, verifyGreedy, verifySampled, type Processing, type SampledVerifier, type Verdict } from './speculative-verify.js';
import { seededRandom } from '../util/prng.js';

export const MIN_GAMMA = 1;
export const MAX_GAMMA = 16;
/** Adaptive γ: drafting stops when the draft's top probability falls below this, or at this many tokens. */
export const DEFAULT_THRESHOLD = 0.5;
export const DEFAULT_AUTO_MAX_GAMMA = 8;

export type Gamma = number | 'auto';

export interface SpeculativeOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Draft tokens per step (1..16), or 'auto' for adaptive drafting. */
  gamma: Gamma;
  /** Adaptive γ: the draft's top probability under which drafting stops (default 0.5). */
  threshold?: number;
  /** Adaptive γ: the most draft tokens per step (default 8). */
  maxGamma?: number;
  /** Tokens that end generation; the target's end-of-sequence ids when absent. */
  stopTokens?: readonly number[];
  onToken?: (token: number) => void;
  /** The sampled acceptance rule; the exact one unless a test swaps in a wrong one to show it is caught. */
  verifier?: SampledVerifier;
}

export interface StepTimes {
  /** Forward runs (draft: one per proposed token; target: one per verification). */
  count: number;
  seconds: number;
  /** Milliseconds per run. */
  meanMs: number | null;
}

export interface PositionAcceptance {
  /** 1-based position of the draft token within a step. */
  position: number;
  /** Steps where the target judged a draft token at this position (every earlier one was accepted). */
  reached: number;
  accepted: number;
  rate: number | null;
}

export interface SpeculativeStats {
  gamma: Gamma;
  /** Target verification forwards. */
  steps: number;
  drafted: number;
  accepted: number;
  /** Steps that ended at a rejected draft token (the rest accepted every token drafted). */
  rejected: number;
  /** Per-token acceptance α: accepted / (accepted + rejected), the tokens the target actually judged. */
  alpha: number | null;
  /** Accepted / drafted (draft tokens after a rejection count as not accepted). */
  acceptanceRate: number | null;
  /** τ: tokens committed per target forward, the target's own token included (1 for plain decoding). */
  tau: number | null;
  /** Mean draft tokens per step (γ itself when fixed and nothing cut it short). */
  meanGamma: number | null;
  byPosition: PositionAcceptance[];
  draftSteps: StepTimes;
  targetSteps: StepTimes;
  prefillSeconds: number;
}

export interface SpeculativeResult {
  tokens: number[];
  stopReason: StopReason;
  /** Wall-clock seconds of the whole generation, prefill included. */
  seconds: number;
  stats: SpeculativeStats;
}

/** Checks γ: a whole number in 1..16 or 'auto'; `what` names the flag or option in the message. */
export function checkGamma(gamma: unknown, what = 'gamma'): Gamma {
  if (gamma === 'auto') return gamma;
  if (typeof gamma !== 'number' || !Number.isInteger(gamma) || gamma < MIN_GAMMA || gamma > MAX_GAMMA) {
    throw new OptionError(`${what} must be a whole number from ${MIN_GAMMA} to ${MAX_GAMMA} or 'auto', got ${String(gamma)}`);
  }
  return gamma;
}

/** Throws a one-line OptionError when the draft cannot stand in for the target: another vocabulary or other special tokens. */
export function checkDraftFits(target: DecoderSession, draft: DecoderSession): void {
  const where = `draft ${draft.source} for target ${target.source}`;
  if (draft.vocab !== target.vocab) throw new OptionError(`${where}: vocabularies differ (${draft.vocab} vs ${target.vocab} tokens); a draft must share the target's tokenizer`);
  const a = target.special;
  const b = draft.special;
  const eos = (s: typeof a) => [...s.eos].sort((x, y) => x - y).join(',') || 'none';
  if (a.bos !== b.bos || eos(a) !== eos(b)) {
    throw new OptionError(`${where}: special tokens differ (draft BOS ${b.bos ?? 'none'} / EOS ${eos(b)}, target BOS ${a.bos ?? 'none'} / EOS ${eos(a)}); a draft must share the target's tokenizer`);
  }
}

/** Throws when the prompt does not leave room for one new token in either model. */
export function checkPromptFits(prompt: readonly number[], ...decoders: DecoderSession[]): void {
  if (prompt.length === 0) throw new OptionError('the prompt is empty: speculative decoding needs at least one token');
  for (const d of decoders) {
    if (d.maxPositions !== null && prompt.length > d.maxPositions) throw new OptionError(`${d.source}: a prompt of ${prompt.length} tokens is longer than the model's ${d.maxPositions} positions`);
  }
}

class Timer {
  count = 0;
  seconds = 0;
  async time<T>(run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const out = await run();
    this.seconds += (performance.now() - started) / 1000;
    this.count++;
    return out;
  }
  get result(): StepTimes {
    return { count: this.count, seconds: this.seconds, meanMs: this.count ? (1000 * this.seconds) / this.count : null };
  }
}

/** The first `length` tokens of a batch-1 state, cache included. */
function rollback(state: DecoderState, length: number): DecoderState {
  if (state.tokens[0].length === length) return state;
  return { tokens: [state.tokens[0].slice(0, length)], mask: [state.mask[0].slice(0, length)], cache: state.cache ? state.cache.truncate(length) : null };
}

/** The probability of the most likely token. */
function topProbability(logits: Float32Array, q: Float64Array | null): number {
  if (q) return q.reduce((m, v) => (v > m ? v : m), 0);
  const logp = logSoftmax(logits);
  return Math.exp(logp[argmax(logp)]);
}

/**
 * Continues one prompt (token ids, batch 1: `[prompt]`) with the target, drafting with `draft`. The draft must
 * share the target's vocabulary and special tokens (checkDraftFits).
 */
export async function speculativeGenerate(
  target: DecoderSession,
  draft: DecoderSession,
  prompts: readonly (readonly number[])[],
  options: SpeculativeOptions,
): Promise<SpeculativeResult> {
  if (prompts.length !== 1) throw new OptionError(`speculative decoding runs one prompt at a time (batch 1), got ${prompts.length}`);
  const prompt = prompts[0];
  const { maxNewTokens, onToken, verifier = verifySampled } = options;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new OptionError(`max new tokens must be a whole number >= 0, got ${maxNewTokens}`);
  const gamma = checkGamma(options.gamma);
  const threshold = options.threshold ?? DEFAULT_THRESHOLD;
  if (!(threshold >= 0 && threshold <= 1)) throw new OptionError(`the adaptive drafting threshold must be in [0, 1], got ${threshold}`);
  const maxGamma = gamma === 'auto' ? checkGamma(options.maxGamma ?? DEFAULT_AUTO_MAX_GAMMA, 'the adaptive maximum γ') as number : gamma;
  const { temperature, topK, topP, seed } = samplingSettings(options);
  const processing: Processing = { temperature, topK, topP };
  const greedy = temperature === 0;
  const random = seededRandom(seed);
  checkDraftFits(target, draft);
  checkPromptFits(prompt, target, draft);
  const stop = new Set(options.stopTokens ?? target.special.eos);
  const targetMax = target.maxPositions ?? Infinity;
  const draftMax = draft.maxPositions ?? Infinity;

  const draftTimer = new Timer();
  const targetTimer = new Timer();
  const reached: number[] = [];
  const acceptedAt: number[] = [];
  let drafted = 0;
  let accepted = 0;
  let rejected = 0;
  const started = performance.now();

  // Both models hold all but the last prompt token; each step feeds each model what its cache lacks.
  const committed = [...prompt];
  let targetState: DecoderState | undefined;
  let draftState: DecoderState | undefined;
  if (prompt.length > 1) {
    const head = [prompt.slice(0, -1)];
    targetState = (await target.forward(head)).state;
    draftState = (await draft.forward(head)).state;
  }
  const prefillSeconds = (performance.now() - started) / 1000;
  const fed = (s: DecoderState | undefined) => s?.tokens[0].length ?? 0;
  const forward = (model: DecoderSession, tokens: number[], state: DecoderState | undefined) => (state ? model.forward([tokens], state) : model.forward([tokens]));

  const tokens: number[] = [];
  let stopReason: StopReason | null = maxNewTokens === 0 ? 'max-new-tokens' : null;
  while (stopReason === null) {
    const c = committed.length;
    // The target scores c + g positions; the draft runs over c + g - 1; the step yields up to g + 1 tokens.
    const g = Math.max(0, Math.min(maxGamma, maxNewTokens - tokens.length - 1, targetMax - c, draftMax - c + 1));

    const proposal: number[] = [];
    const q: Float64Array[] = [];
    if (g > 0) {
      let step = await draftTimer.time(() => forward(draft, committed.slice(fed(draftState)), draftState));
      for (;;) {
        const logits = step.logits.last(0);
        const qi = greedy ? null : denseDistribution(logits, processing);
        if (gamma === 'auto' && proposal.length > 0 && topProbability(logits, qi) < threshold) break;
        proposal.push(qi ? drawDense(qi, random()) : argmax(logits));
        if (qi) q.push(qi);
        if (proposal.length === g) break;
        const last = proposal[proposal.length - 1];
        step = await draftTimer.time(() => draft.forward([[last]], step.state));
      }
      draftState = step.state;
    }

    const fresh = committed.slice(fed(targetState));
    const verified = await targetTimer.time(() => forward(target, [...fresh, ...proposal], targetState));
    const L = verified.logits.length;
    const targetLogits = Array.from({ length: proposal.length + 1 }, (_, i) => verified.logits.at(0, L - proposal.length - 1 + i));
    let verdict: Verdict;
    if (greedy) verdict = verifyGreedy(proposal, targetLogits);
    else verdict = verifier(proposal, targetLogits.map((l) => denseDistribution(l, processing)), q, random);

    drafted += proposal.length;
    accepted += verdict.accepted;
    if (verdict.accepted < proposal.length) rejected++;
    for (let i = 0; i < Math.min(verdict.accepted + 1, proposal.length); i++) {
      reached[i] = (reached[i] ?? 0) + 1;
      if (i < verdict.accepted) acceptedAt[i] = (acceptedAt[i] ?? 0) + 1;
    }

    targetState = rollback(verified.state, c + verdict.accepted);
    // The draft's cache holds the proposal up to its last token or two; keep what the target accepted of it.
    if (draftState) draftState = rollback(draftState, Math.min(fed(draftState), c + verdict.accepted));
    for (const token of [...proposal.slice(0, verdict.accepted), verdict.next]) {
      committed.push(token);
      tokens.push(token);
      onToken?.(token);
      // The order of generate's reasons: end of text, then the token budget, then the positions.
      if (stop.has(token)) stopReason = 'eos';
      else if (tokens.length >= maxNewTokens) stopReason = 'max-new-tokens';
      else if (committed.length > targetMax) stopReason = 'max-positions';
      if (stopReason) break;
    }
  }

  const steps = targetTimer.count;
  const judged = accepted + rejected;
  const stats: SpeculativeStats = {
    gamma,
    steps,
    drafted,
    accepted,
    rejected,
    alpha: judged ? accepted / judged : null,
    acceptanceRate: drafted ? accepted / drafted : null,
    tau: steps ? tokens.length / steps : null,
    meanGamma: steps ? drafted / steps : null,
    byPosition: reached.map((n, i) => ({ position: i + 1, reached: n, accepted: acceptedAt[i] ?? 0, rate: n ? (acceptedAt[i] ?? 0) / n : null })),
    draftSteps: draftTimer.result,
    targetSteps: targetTimer.result,
    prefillSeconds,
  };
  return { tokens, stopReason: stopReason!, seconds: (performance.now() - started) / 1000, stats };
}

/**
 * The speed-up speculative decoding should give (Leviathan et al.): tokens per target call over the cost of a
 * step, (1 - α^(γ+1)) / ((1 - α)(γc + 1)), with c the draft's step time over the target's.
 */
export function predictedSpeedup(alpha: number, gamma: number, c: number): number {
  const expected = alpha >= 1 ? gamma + 1 : (1 - alpha ** (gamma + 1)) / (1 - alpha);
  return expected / (gamma * c + 1);
}
