// Learning-rate schedules: linear warmup then cosine decay to a floor, as in GPT-2 / LLaMA training recipes.

export interface CosineSchedule {
  /** Peak learning rate, reached at the end of warmup. */
  peak: number;
  /** Steps of linear warmup from peak / warmup (step 0) to peak. */
  warmup: number;
  /** Total steps; the rate reaches `floor` at the last one. */
  total: number;
  /** Final learning rate (default peak / 10). */
  floor?: number;
}

/** The learning rate for step `step` (0-based). */
export function cosineLearningRate(s: CosineSchedule, step: number): number {
  const floor = s.floor ?? s.peak / 10;
  if (step < s.warmup) return (s.peak * (step + 1)) / s.warmup;
  const span = Math.max(1, s.total - 1 - s.warmup);
  const progress = Math.min(1, (step - s.warmup) / span);
  return floor + 0.5 * (s.peak - floor) * (1 + Math.cos(Math.PI * progress));
}
