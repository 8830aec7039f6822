// One progress bar per stage of a long run that reports (stage, done, total): a new stage finishes the bar before
// it and starts its own. The command finishes the last bar when the run returns, or abandons it when the run throws
// so the error stays one line.
import { Progress } from './progress.js';

export interface StageProgress {
  /** The callback to hand the run as its onProgress. */
  readonly onProgress: (stage: string, done: number, total: number) => void;
  finish(): void;
  abandon(): void;
}

/** Bars labelled and counted as `describe` says per stage (default: the stage's name, in steps). */
export function stageProgress(describe: (stage: string) => { label?: string; unit: string } = () => ({ unit: 'steps' })): StageProgress {
  let current: { stage: string; bar: Progress } | undefined;
  return {
    onProgress(stage, done, total) {
      if (current?.stage !== stage) {
        current?.bar.finish();
        const { label = stage, unit } = describe(stage);
        current = { stage, bar: new Progress({ label, total, unit }) };
      }
      current.bar.update(done);
    },
    finish: () => current?.bar.finish(),
    abandon: () => current?.bar.abandon(),
  };
}

/** Runs `work` with a stage progress display, or with none (`undefined` callback) under --json. */
export async function withStageProgress<T>(
  json: boolean | undefined,
  describe: Parameters<typeof stageProgress>[0],
  work: (onProgress: StageProgress['onProgress'] | undefined) => Promise<T>,
): Promise<T> {
  if (json) return work(undefined);
  const progress = stageProgress(describe);
  try {
    const result = await work(progress.onProgress);
    progress.finish();
    return result;
  } catch (e) {
    progress.abandon();
    throw e;
  }
}
