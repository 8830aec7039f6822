// Outputs are written beside their destination under a temporary name and renamed into place only when
// complete, so an interrupted run never leaves a half-written model where a finished one is expected.
//
// Library code installs no process-wide handlers: it only keeps a registry of the temporary paths it has open
// and of the folders it created for an output. Whoever owns the process (the CLI, src/cli/main.ts
// installProcessCleanup) removes them on exit and on SIGINT/SIGTERM/SIGHUP by calling removePendingTemporaries;
// an embedding application may do the same.
//
// Every write failure becomes one OutputError, "cannot write PATH: REASON", naming the path the user asked for
// (never a temporary name) and the reason in words (never a raw system message).
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, lstatSync, mkdirSync, mkdtempSync, openSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { OutputError } from '../errors.js';

const pending = new Set<string>();
/** Folders created for outputs that are not finished yet, in creation order (parents first). */
const createdFolders: string[] = [];

/** The temporary files and folders written but not yet renamed into place or removed, oldest first. */
export function pendingTemporaries(): string[] {
  return [...pending];
}

/**
 * Removes every pending temporary file and folder now, then the folders created for unfinished outputs while
 * they are empty (best effort: one that cannot be removed is skipped). Synchronous, so it can run in a process
 * 'exit' handler.
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
  for (const dir of createdFolders.splice(0).reverse()) {
    try {
      rmdirSync(dir);
    } catch {
      // not empty (something else was written there) or already gone: leave it
    }
  }
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

const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for the file system',
  EISDIR: 'it is a folder',
  ENOENT: 'no such folder and cannot create it',
  ENOTDIR: 'no such folder and cannot create it',
  ENAMETOOLONG: 'name too long',
  EIO: 'input/output error',
  EMFILE: 'too many open files',
};

/** A write failure as one line naming the path the user asked for and the reason in words. */
export function writeError(path: string, e: unknown): OutputError {
  if (e instanceof OutputError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  return new OutputError(`cannot write ${path}: ${(code && REASONS[code]) ?? `failed (${code ?? 'unknown error'})`}`);
}

/** The entry at `path` (a dangling link counts), or undefined when there is none or a file stands where a folder should. */
function existing(path: string): ReturnType<typeof statSync> | undefined {
  try {
    return statSync(path);
  } catch {
    try {
      return lstatSync(path);
    } catch {
      return undefined;
    }
  }
}

/** Creates and removes an empty file in `dir`: the one test of writability that also holds for root (/sys, /proc). */
function probe(dir: string): void {
  const p = join(dir, `.onnx-compress-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  closeSync(openSync(p, 'wx'));
  unlinkSync(p);
}

/**
 * Throws an OutputError ("cannot write PATH: ...") unless a file can be written at `path`: it is not a folder,
 * and its folder, or the nearest existing folder above it when the folder is missing, accepts a new file.
 * Creates nothing that outlives the call, so a run can check before its work. (`what` is no longer part of the
 * message, which names the path; kept for callers that pass it.)
 */
export function checkWritable(path: string, what?: string): void {
  void what;
  const file = resolve(path);
  if (existing(file)?.isDirectory()) throw writeError(path, { code: 'EISDIR' });
  let dir = dirname(file);
  let missing = false;
  for (; !existing(dir) && dirname(dir) !== dir; dir = dirname(dir)) missing = true;
  try {
    if (!existing(dir)?.isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
    probe(dir);
  } catch (e) {
    throw missing ? writeError(path, { code: 'ENOENT' }) : writeError(path, e);
  }
}

export interface CreatedFolders {
  /** The folders created, parents first. */
  readonly created: readonly string[];
  /** The output is in place: the folders stay (and are no longer removed on exit or interrupt). */
  keep(): void;
  /** The output was not written: removes the created folders that are still empty. */
  remove(): void;
}

/**
 * Creates the missing folders above the file `path`, the same way for every output; until keep() or remove()
 * they are registered, so an interrupted run leaves no empty folder of its own behind.
 */
export function makeFolders(path: string): CreatedFolders {
  const created: string[] = [];
  for (let dir = dirname(resolve(path)); !existing(dir); dir = dirname(dir)) created.unshift(dir);
  const unregister = () => {
    for (const dir of created) {
      const i = createdFolders.indexOf(dir);
      if (i >= 0) createdFolders.splice(i, 1);
    }
  };
  const remove = () => {
    unregister();
    for (const dir of [...created].reverse()) {
      try {
        rmdirSync(dir);
      } catch {
        return; // not empty (something else wrote there meanwhile): leave it
      }
    }
  };
  for (const dir of created) {
    try {
      mkdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && existing(dir)?.isDirectory()) continue; // made meanwhile by another run
      remove();
      throw writeError(path, { code: 'ENOENT' });
    }
    createdFolders.push(dir);
  }
  return { created, keep: unregister, remove };
}

/** A fresh, registered staging folder beside `finalPath` (hidden), for a result checked before it is renamed into place. */
export function makeStagingFolder(finalPath: string): { path: string; remove: () => void } {
  let path: string;
  try {
    path = mkdtempSync(join(dirname(resolve(finalPath)), `.${basename(finalPath)}.onnx-compress-`));
  } catch (e) {
    throw writeError(finalPath, e);
  }
  return { path, remove: temporaryUntilDone(path) };
}

/** Renames a finished temporary into place; a failure names the destination. */
export function moveIntoPlace(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (e) {
    throw writeError(to, e);
  }
}

/** A set of files written together: each goes to `<path>.tmp-<pid>` and all are renamed at commit. */
export class AtomicFiles {
  private readonly files: { final: string; temp: string; fd?: number }[] = [];
  private readonly folders: CreatedFolders[] = [];

  /** Opens a temporary file for `finalPath` (creating its folder if missing) and returns its descriptor. */
  open(finalPath: string): number {
    if (existing(finalPath)?.isDirectory()) throw writeError(finalPath, { code: 'EISDIR' });
    this.folders.push(makeFolders(finalPath));
    const temp = `${finalPath}.tmp-${process.pid}`;
    let fd: number;
    try {
      fd = openSync(temp, 'w');
    } catch (e) {
      throw writeError(finalPath, e);
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
          throw writeError(f.final, e);
        }
        closeSync(f.fd);
        f.fd = undefined;
      }
    }
    for (const f of this.files) {
      moveIntoPlace(f.temp, f.final);
      pending.delete(f.temp);
    }
    this.files.length = 0;
    for (const folders of this.folders.splice(0)) folders.keep();
  }

  /** Removes every temporary file and the folders opened files created; safe to call after commit. */
  abort(): void {
    for (const f of this.files) {
      if (f.fd !== undefined) closeSync(f.fd);
      rmSync(f.temp, { force: true });
      pending.delete(f.temp);
    }
    this.files.length = 0;
    for (const folders of this.folders.splice(0).reverse()) folders.remove();
  }
}

/** Writes one text file atomically (temporary file, fsync, rename), creating its folder if missing. */
export function writeTextAtomically(path: string, text: string): void {
  const files = new AtomicFiles();
  try {
    const fd = files.open(path);
    try {
      writeSync(fd, text);
    } catch (e) {
      throw writeError(path, e);
    }
    files.commit();
  } catch (e) {
    files.abort();
    throw e;
  }
}
