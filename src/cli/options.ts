// Parsing of numeric flags: one validator per kind of flag, shared by every command, so that a flag gets the
// same one-line message for every bad value in every command. Numbers are written in digits only ('100', '0.5'):
// JavaScript's Number() would also take '1e2', '0x10', ' 7 ' or '', which nobody means on a command line.
import { OptionError } from '../errors.js';

const DIGITS = /^\d+$/;
const DECIMAL = /^(\d+(\.\d*)?|\.\d+)$/;

// One message per kind, whatever is wrong with the value (not a number, negative, exponent form, too large).
function integer(value: string, flag: string, least: number, what: string): number {
  const n = DIGITS.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < least) throw new OptionError(`${flag} ${what}, got '${value}'`);
  return n;
}

function real(value: string, flag: string, ok: (x: number) => boolean, what: string): number {
  const x = DECIMAL.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(x) || !ok(x)) throw new OptionError(`${flag} ${what}, got '${value}'`);
  return x;
}

/** A count of things (samples, tokens, threads...): a whole number >= 1. */
export function positiveWholeNumber(value: string, flag: string): number {
  return integer(value, flag, 1, 'must be a whole number >= 1');
}

/** A whole number >= 0 (seeds, sizes, levels; 0 where it means "none" or "off"). */
export function wholeNumber(value: string, flag: string): number {
  return integer(value, flag, 0, 'must be a whole number');
}

/** A number >= 0, e.g. a temperature. */
export function decimal(value: string, flag: string): number {
  return real(value, flag, (x) => x >= 0, 'must be a number >= 0');
}

/** A number from 0 to 1 (thresholds such as --min-cosine, --min-top1, --top-p). */
export function fraction(value: string, flag: string): number {
  return real(value, flag, (x) => x <= 1, 'must lie in [0, 1]');
}

/** A percentile: above 0 and at most 100. */
export function percentile(value: string, flag: string): number {
  return real(value, flag, (x) => x > 0 && x <= 100, 'must lie in (0, 100]');
}
