// Parsing of numeric flags, shared by every command so that bad values get the same one-line message.
import { OptionError } from '../errors.js';

/** A flag's value as a whole number >= 0, or an error naming the flag. */
export function wholeNumber(value: string, flag: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new OptionError(`${flag} must be a whole number, got '${value}'`);
  return n;
}

/** A flag's value as a finite number >= 0, or an error naming the flag. */
export function decimal(value: string, flag: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new OptionError(`${flag} must be a number >= 0, got '${value}'`);
  return n;
}
