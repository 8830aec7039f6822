// The optimized decoder against the original, both in ONNX Runtime: the same seeded prompt, then a few cached
// one-token steps and a multi-token step (what speculative decoding's verification runs), logits compared at
// every position. A fused graph that moves any logit further than float tolerance is refused, never written.
import { DecoderSession } from '../decoding/decoder-session.js';
import type { Logits } from '../decoding/logits.js';
import { argmax } from '../decoding/logits.js';
import type { OnnxModel } from '../onnx/model.js';
import type { SessionOptions } from '../runtime/session.js';
import { seededRandom } from '../util/prng.js';
import { attrInt } from '../onnx/attributes.js';

export interface LogitsCheck {
  /** Positions compared (prompt, cached steps and the multi-token step). */
  positions: number;
  maxAbsDiff: number;
  /** The largest |logit| of the original, which the difference is relative to. */
  maxAbsLogit: number;
  relative: number;
  /** Positions whose greedy (argmax) token differs. */
  argmaxChanges: number;
  tolerance: number;
  passed: boolean;
}

/** float32 reassociation inside fused kernels moves logits by ~1e-6 relative; a wrong graph by far more. */
export const LOGITS_TOLERANCE = 1e-4;
/**
 * Models that quantize activations at run time (MatMulNBits accuracy_level 4, dynamic or static int8) round
 * every activation to a step of ~1/255 of its range: a float-level difference upstream flips some roundings, so
 * their logits legitimately move by about one such step (measured: 3.5e-3 on a w4a8 12.8 M LLaMA).
 */
export const QUANTIZED_ACTIVATIONS_TOLERANCE = 1e-2;

/** The tolerance the check uses for a model: looser where activations are quantized (see above). */
export function logitsTolerance(model: OnnxModel): number {
  const quantizes = model.graph.node.some(
    (n) =>
      (n.opType === 'MatMulNBits' && attrInt(n, 'accuracy_level', 0) === 4) ||
      n.opType === 'DynamicQuantizeLinear' ||
      n.opType === 'DynamicQuantizeMatMul' ||
      n.opType === 'MatMulInteger' ||
      (n.opType === 'QuantizeLinear' && !model.graph.initializer.some((t) => t.name === n.input[0])),
  );
  return quantizes ? QUANTIZED_ACTIVATIONS_TOLERANCE : LOGITS_TOLERANCE;
}

export async function compareLogits(original: OnnxModel, optimized: OnnxModel, session: SessionOptions = {}, promptLength = 12, steps = 3): Promise<LogitsCheck> {
  const tolerance = logitsTolerance(original);
  const a = await DecoderSession.open(original, session);
  let b: DecoderSession | undefined;
  try {
    b = await DecoderSession.open(optimized, session);
    const random = seededRandom(15);
    const max = a.maxPositions ?? Infinity;
    const length = Math.max(1, Math.min(promptLength, max - steps - 3));
    const prompt = Array.from({ length }, () => Math.floor(random() * a.vocab));
    const check: LogitsCheck = { positions: 0, maxAbsDiff: 0, maxAbsLogit: 0, relative: 0, argmaxChanges: 0, tolerance, passed: true };
    let sa = await a.forward([prompt]);
    let sb = await b.forward([prompt]);
    compare(sa.logits, sb.logits, check);
    for (let n = 0; n < steps; n++) {
      const next = [[argmax(sa.logits.last(0))]];
      sa = await a.forward(next, sa.state);
      sb = await b.forward(next, sb.state);
      compare(sa.logits, sb.logits, check);
    }
    const several = [[1, 2, 3].map((i) => (argmax(sa.logits.last(0)) + i) % a.vocab)];
    compare((await a.forward(several, sa.state)).logits, (await b.forward(several, sb.state)).logits, check);
    check.relative = check.maxAbsDiff / Math.max(check.maxAbsLogit, Number.MIN_VALUE);
    check.passed = check.relative <= check.tolerance && check.argmaxChanges === 0;
    return check;
  } finally {
    await a.dispose();
    await b?.dispose();
  }
}

function compare(x: Logits, y: Logits, into: LogitsCheck): void {
  for (let p = 0; p < x.length; p++) {
    const u = x.at(0, p);
    const v = y.at(0, p);
    for (let i = 0; i < u.length; i++) {
      const d = Math.abs(u[i] - v[i]);
      if (!(d <= into.maxAbsDiff)) into.maxAbsDiff = Number.isNaN(d) ? Infinity : d;
      into.maxAbsLogit = Math.max(into.maxAbsLogit, Math.abs(u[i]));
    }
    // Ties within tolerance may flip; only a clear change of the greedy token counts.
    const ia = argmax(u);
    const ib = argmax(v);
    if (ia !== ib && Math.abs(u[ia] - u[ib]) > into.tolerance * Math.max(1, Math.abs(u[ia]))) into.argmaxChanges++;
    into.positions++;
  }
}
