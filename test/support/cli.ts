// Runs the built CLI the way a user does, capturing exit code and both streams.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../../bin/onnx-compress', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function cli(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Asserts the CLI failed with exactly one line on stderr and no stack trace. */
export function oneLineError(r: CliResult): string {
  if (r.code === 0) throw new Error(`expected failure, got success: ${r.stdout}`);
  const lines = r.stderr.trimEnd().split('\n');
  if (lines.length !== 1 || /^\s+at /m.test(r.stderr)) throw new Error(`expected one error line, got:\n${r.stderr}`);
  return lines[0];
}

/** Runs the CLI in this process (faster than a child), capturing stderr (a failing command prints nothing on stdout). */
export async function cliInProcess(...args: string[]): Promise<CliResult> {
  const { main } = await import('../../src/cli/main.js');
  const write = process.stderr.write;
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await main(['node', 'onnx-compress', ...args]);
    return { code, stdout: '', stderr };
  } finally {
    process.stderr.write = write;
  }
}
