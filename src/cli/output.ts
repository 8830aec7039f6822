// How a command's report reaches the user: JSON for scripts, text for people.
export interface OutputOptions {
  json?: boolean;
}

/** Prints the report as JSON (bigints as strings) or through the command's text formatter. */
export function emit<T>(report: T, options: OutputOptions, toText: (report: T) => string): void {
  const text = options.json
    ? JSON.stringify(report, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2)
    : toText(report);
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export { formatBytes } from '../util/units.js';

/** Left-aligned text table; numbers right-aligned. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  return cells
    .map((r, ri) =>
      r
        .map((cell, c) => (ri > 0 && typeof rows[ri - 1][c] === 'number' ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
