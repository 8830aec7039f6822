// Sizes and counts as people read them, shared by the command line and the HTML report so a file is "1.27 MiB"
// everywhere: binary units with three significant digits (bytes under 1024 stay exact), and counts exact with
// thousands separators (never rounded, never in exponent form).

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

export type ByteUnit = (typeof BYTE_UNITS)[number];

/** '512 B', '1.50 KiB', '821 KiB', '3.13 MiB', '2.50 GiB'. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const { unit, divisor } = byteUnit(Math.abs(n));
  if (unit === 'B') return `${Math.round(n)} B`;
  const v = n / divisor;
  const a = Math.abs(v);
  return `${v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2)} ${unit}`;
}

/** The largest unit that keeps `n` at 1 or more (bytes under 1024), and its size in bytes. */
export function byteUnit(n: number): { unit: ByteUnit; divisor: number } {
  let i = 0;
  // 1023.5 KiB would print as '1024 KiB': step up before rounding can reach the next unit.
  while (i < BYTE_UNITS.length - 1 && Math.abs(n) >= 1024 ** (i + 1) * (i === 0 ? 1 : 0.9995)) i++;
  return { unit: BYTE_UNITS[i], divisor: 1024 ** i };
}

/** An exact count with thousands separators: 925,100 (rounded to an integer only if it is not one). */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  return Math.round(n).toLocaleString('en-US');
}
