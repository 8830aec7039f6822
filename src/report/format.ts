// How the report writes numbers: one place for every table, fact and label, so a size is in KiB/MiB wherever it
// appears, a count is exact, and no number is written in exponent form unless it is tiny (below 0.001).
import { formatBytes, formatCount } from '../util/units.js';
import type { NumberFormat } from './types.js';

export { formatBytes, formatCount };

export function formatNumber(x: number, format?: NumberFormat): string {
  if (Number.isNaN(x)) return '-';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '-∞';
  switch (format) {
    case 'int':
      return formatCount(x);
    case 'bytes':
      return formatBytes(x);
    case 'percent':
      return formatPercent(x);
    case 'exp2':
      return x.toExponential(2);
    case 'sig4':
      return sig4(x);
    case undefined:
      return Number.isInteger(x) ? formatCount(x) : sig4(x);
    default:
      return x.toFixed(Number(format.slice(5)));
  }
}

/** A share as a percentage: 25.0%, 0.12% (two decimals under 10%). */
export function formatPercent(share: number): string {
  return `${(100 * share).toFixed(Math.abs(share) < 0.1 ? 2 : 1)}%`;
}

/**
 * Four significant digits; large values as integers with separators (1,234,568, not 1.235e+6), values under
 * 0.001 in exponent form (1.230e-4), where a fixed number of decimals would show nothing.
 */
export function sig4(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e4) return formatCount(x);
  if (a < 1e-3) return x.toExponential(3);
  return String(Number(x.toPrecision(4)));
}

/** 'n thing' or 'n things'. */
export function plural(n: number, thing: string): string {
  return `${formatCount(n)} ${thing}${n === 1 ? '' : 's'}`;
}
