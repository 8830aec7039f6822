// Outputs are written beside their destination under a temporary name and renamed into place only when
// complete, so an interrupted run never leaves a half-written model where a finished one is expected.
//
// Library code installs no process-wide handlers: it only keeps a registry of the temporary paths it has open.
// Whoever owns the process (the CLI, src/cli/main.ts installProcessCleanup) removes them on exit and on
// SIGINT/SIGTERM/SIGHUP by calling removePendingTemporaries; an embedding application may do the same.
import { accessSync, closeSync, constants, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { OutputError } from '../errors.js';

const pending = new Set<string>();

/** The temporary files and folders written but not yet renamed into place or removed, oldest first. */
export function pendingTemporaries(): string[] {
  return [...pending];
}

/**
 * Removes every pending temporary file and folder now (best effort: one that cannot be removed is skipped).
 * Synchronous, so it can run in a process 'exit' handler.
 */
export function removePendingTemporaries(): void {
  for (const p of pending) {
    try {
      rmSync(p, { recursive: true, force: true });
    } catch {
      // best effort: an exit or signal handler must not throw
    }
  }
  pending.clear();
}

/**
 * Marks a temporary file or folder as pending, so removePendingTemporaries removes it if the process exits or
 * is interrupted first; returns the function that removes it now and unmarks it.
 */
export function temporaryUntilDone(path: string): () => void {
  pending.add(path);
  return () => {
    rmSync(path, { recursive: true, force: true });
    pending.delete(path);
  };
}

function ioError(path: string, e: unknown): OutputError {
  return new OutputError(`${path}: cannot be written (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
}

/** A set of files written together: each goes to `<path>.tmp-<pid>` and all are renamed at commit. */
export class AtomicFiles {
  private readonly files: { final: string; temp: string; fd?: number }[] = [];

  /** Opens a temporary file for `finalPath` and returns its descriptor. */
  open(finalPath: string): number {
    const temp = `${finalPath}.tmp-${process.pid}`;
    let fd: number;
    try {
      fd = openSync(temp, 'w');
    } catch (e) {
      throw ioError(finalPath, e);
    }
    pending.add(temp);
    this.files.push({ final: finalPath, temp, fd });
    return fd;
  }

  /** Flushes and renames every file into place, in the order opened (data before the model pointing at it). */
  commit(): void {
    for (const f of this.files) {
      if (f.fd !== undefined) {
        try {
          fsyncSync(f.fd);
        } catch (e) {
          throw ioError(f.final, e);
        }
        closeSync(f.fd);
        f.fd = undefined;
      }
    }
    for (const f of this.files) {
      try {
        renameSync(f.temp, f.final);
      } catch (e) {
        throw ioError(f.final, e);
      }
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

/** Writes one text file atomically (temporary file, fsync, rename), creating its folder if missing. */
export function writeTextAtomically(path: string, text: string): void {
  const files = new AtomicFiles();
  try {
    try {
      mkdirSync(dirname(resolve(path)), { recursive: true });
    } catch (e) {
      throw ioError(path, e);
    }
    const fd = files.open(path);
    try {
      writeSync(fd, text);
    } catch (e) {
      throw ioError(path, e);
    }
    files.commit();
  } catch (e) {
    files.abort();
    throw e;
  }
}

/**
 * Throws an OutputError (naming `what`, e.g. '--out stats.json') unless `path` can be written: its folder, or the
 * nearest existing folder above it, is a writable folder. Creates nothing, so a run can check before its work.
 */
export function checkWritable(path: string, what: string): void {
  let dir = dirname(resolve(path));
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new OutputError(`${what}: cannot write into ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (existsSync(path) && statSync(path).isDirectory()) throw new OutputError(`${what}: is a folder`);
}
