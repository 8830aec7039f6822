// Outputs are written beside their destination under a temporary name and renamed into place only when
// complete, so an interrupted run never leaves a half-written model where a finished one is expected.
import { closeSync, fsyncSync, openSync, renameSync, rmSync } from 'node:fs';

const pending = new Set<string>();
let hooked = false;

function cleanupPending(): void {
  for (const p of pending) rmSync(p, { recursive: true, force: true });
  pending.clear();
}

function hookSignals(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', cleanupPending);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      cleanupPending();
      process.kill(process.pid, sig);
    });
  }
}

/**
 * Marks a temporary file or folder for removal if the process exits or is interrupted (SIGINT, SIGTERM, SIGHUP)
 * first; returns the function that removes it now and unmarks it.
 */
export function temporaryUntilDone(path: string): () => void {
  hookSignals();
  pending.add(path);
  return () => {
    rmSync(path, { recursive: true, force: true });
    pending.delete(path);
  };
}

/** A set of files written together: each goes to `<path>.tmp-<pid>` and all are renamed at commit. */
export class AtomicFiles {
  private readonly files: { final: string; temp: string; fd?: number }[] = [];

  /** Opens a temporary file for `finalPath` and returns its descriptor. */
  open(finalPath: string): number {
    hookSignals();
    const temp = `${finalPath}.tmp-${process.pid}`;
    pending.add(temp);
    const fd = openSync(temp, 'w');
    this.files.push({ final: finalPath, temp, fd });
    return fd;
  }

  /** Flushes and renames every file into place, in the order opened (data before the model pointing at it). */
  commit(): void {
    for (const f of this.files) {
      if (f.fd !== undefined) {
        fsyncSync(f.fd);
        closeSync(f.fd);
        f.fd = undefined;
      }
    }
    for (const f of this.files) {
      renameSync(f.temp, f.final);
      pending.delete(f.temp);
    }
    this.files.length = 0;
  }

  /** Removes every temporary file; safe to call after commit. */
  abort(): void {
    for (const f of this.files) {
      if (f.fd !== undefined) closeSync(f.fd);
      rmSync(f.temp, { force: true });
      pending.delete(f.temp);
    }
    this.files.length = 0;
  }
}
