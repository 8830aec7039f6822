// The files a command writes itself (around the pass runner, which claims a run's --out): claimed before any
// work — checked writable, missing folders made, locked against another run — and released when the command
// ends, so a read-only or busy destination fails in a second instead of after the calibration.
import { claimOutputs } from '../util/output-lock.js';

/** Runs `work` holding every given output path (undefined ones skipped); releases them however it ends. */
export async function writingTo<T>(paths: readonly (string | undefined)[], work: () => Promise<T> | T): Promise<T> {
  const claim = claimOutputs(paths);
  let written = false;
  try {
    const result = await work();
    written = true;
    return result;
  } finally {
    claim.release(written);
  }
}
