// One run at a time per output path. Two runs writing the same file would both succeed, the last rename would
// win and the other run's report would describe a file that no longer exists; so a run takes a lock file beside
// its output (created with O_EXCL, holding the run's pid, command line and start time) before any work, and the
// second run fails at once naming the first. The lock is a registered temporary (src/util/atomic.ts): released
// by the run (library calls in `finally`), or on exit and interrupt by the CLI's handlers. A lock whose process
// is gone (killed with SIGKILL, a crashed machine) is stale and taken over.
import { closeSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync, linkSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { OutputError } from '../errors.js';
import { checkWritable, makeFolders, temporaryUntilDone, writeError } from './atomic.js';

/** What a lock file holds. */
export interface LockHolder {
  pid: number;
  host: string;
  command: string;
  started: string;
}

export interface OutputLock {
  /** The lock file. */
  readonly file: string;
  release(): void;
}

/** Lock files this process holds, so a second claim of the same path in one process is refused too. */
const held = new Set<string>();

/** A lock file whose writer may still be filling it is given this long before it counts as abandoned. */
const UNREADABLE_GRACE_MS = 5_000;

/** The lock file of an output: hidden, beside it, named like the run's staging folders. */
export function lockFileFor(path: string): string {
  const file = resolve(path);
  return join(dirname(file), `.${basename(file)}.onnx-compress-lock`);
}

function thisProcess(): LockHolder {
  const script = process.argv[1] ? basename(process.argv[1]) : 'node';
  const command = [script, ...process.argv.slice(2)].join(' ');
  return { pid: process.pid, host: hostname(), command: command.length > 300 ? `${command.slice(0, 297)}...` : command, started: new Date().toISOString() };
}

function readHolder(file: string): { holder: LockHolder | null; raw: string } | undefined {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch {
    return undefined; // released meanwhile
  }
  try {
    const h = JSON.parse(raw) as LockHolder;
    return { holder: Number.isSafeInteger(h.pid) ? h : null, raw };
  } catch {
    return { holder: null, raw };
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by another user
  }
}

/** Whether a lock can be taken over: its process is gone (this process, when it does not hold it, is a recycled pid). */
function stale(file: string, holder: LockHolder | null): boolean {
  if (holder === null) {
    try {
      return Date.now() - statSync(file).mtimeMs > UNREADABLE_GRACE_MS;
    } catch {
      return false;
    }
  }
  if (holder.host !== hostname()) return false; // another machine's process cannot be checked from here
  if (holder.pid === process.pid) return !held.has(file);
  return !alive(holder.pid);
}

/**
 * Moves a stale lock aside and removes it. Two runs may find the same stale lock: the rename lets only one of
 * them have it, and one that finds it moved a fresh lock (the other run's, taken meanwhile) puts it back.
 */
function takeOver(file: string, staleRaw: string): void {
  const aside = `${file}.stale-${process.pid}`;
  try {
    renameSync(file, aside);
  } catch {
    return; // someone else moved it first
  }
  if (readHolder(aside)?.raw !== staleRaw) {
    try {
      linkSync(aside, file);
    } catch {
      // a third run took the path meanwhile: it holds the lock then
    }
  }
  try {
    unlinkSync(aside);
  } catch {
    // already gone
  }
}

function describe(h: LockHolder | null): string {
  if (!h) return 'a run that is still starting';
  return `pid ${h.pid}${h.host !== hostname() ? ` on ${h.host}` : ''} (${h.command}), started ${h.started}`;
}

/**
 * Takes the lock of `path` for this run, or throws an OutputError naming the process that holds it. The folder
 * of `path` must exist.
 */
export function lockOutput(path: string): OutputLock {
  const file = lockFileFor(path);
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw writeError(path, e);
      const found = readHolder(file);
      if (!found) continue;
      if (held.has(file)) throw new OutputError(`cannot write ${path}: this run writes it already (given twice?)`);
      if (!stale(file, found.holder)) {
        throw new OutputError(`cannot write ${path}: another run is writing it, ${describe(found.holder)}; if that process is gone, remove ${file}`);
      }
      takeOver(file, found.raw);
      continue;
    }
    const removeFile = temporaryUntilDone(file);
    try {
      writeSync(fd, `${JSON.stringify(thisProcess())}\n`);
    } catch (e) {
      removeFile();
      throw writeError(path, e);
    } finally {
      closeSync(fd);
    }
    held.add(file);
    let released = false;
    return {
      file,
      release() {
        if (released) return;
        released = true;
        held.delete(file);
        removeFile();
      },
    };
  }
  throw new OutputError(`cannot write ${path}: its lock file ${file} keeps changing hands; another run is starting on it`);
}

/** An output reserved for a run: checked writable, its missing folders made, locked. */
export interface OutputClaim {
  readonly path: string;
  /** Unlocks; `written` false also removes the folders the claim created while they are empty. */
  release(written: boolean): void;
}

/**
 * Reserves the output file `path` before any work: throws "cannot write PATH: ..." when it cannot be written
 * or another run holds it. Release it however the run ends.
 */
export function claimOutput(path: string): OutputClaim {
  checkWritable(path);
  const folders = makeFolders(path);
  let lock: OutputLock;
  try {
    lock = lockOutput(path);
  } catch (e) {
    folders.remove();
    throw e;
  }
  return {
    path,
    release(written) {
      lock.release();
      if (written) folders.keep();
      else folders.remove();
    },
  };
}

/** Claims several outputs at once (all or none); a path given twice is claimed once. */
export function claimOutputs(paths: readonly (string | undefined)[]): { release(written: boolean): void } {
  const claims: OutputClaim[] = [];
  const seen = new Set<string>();
  const releaseAll = (written: boolean) => {
    for (const c of claims.splice(0).reverse()) c.release(written);
  };
  try {
    for (const p of paths) {
      if (p === undefined || seen.has(resolve(p))) continue;
      seen.add(resolve(p));
      claims.push(claimOutput(p));
    }
  } catch (e) {
    releaseAll(false);
    throw e;
  }
  return { release: releaseAll };
}

/**
 * Runs `work` holding every given output path (undefined ones skipped): checked writable, missing folders made and
 * locked before any work, released however it ends (folders the claim made stay only when the work finished).
 */
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
