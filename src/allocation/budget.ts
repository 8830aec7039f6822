// The size budget a user gives (`--budget 0.25x | 4.25bits | 40MB`) as the bytes the allocated layers may take.
// Every form is first a size of the whole model's weights (initializer bytes): a fraction of the float size, an
// average width over the allocated layers' weights (the rest of the model counted as it is), or an absolute size.
// The layers' share is that minus what stays as it is (embeddings, norms, biases: `fixedBytes`).
import { OptionError } from '../errors.js';

export type Budget = { kind: 'fraction'; value: number } | { kind: 'bits'; value: number } | { kind: 'bytes'; value: number };

const UNITS: Readonly<Record<string, number>> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30 };

export function parseBudget(text: string, flag = '--budget'): Budget {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(x|bits?|b|kb|mb|gb|kib|mib|gib)?\s*$/i.exec(text);
  if (!m) throw new OptionError(`${flag}: '${text}' is not a budget (e.g. 0.25x of the float size, 4.25bits per weight, 40MB)`);
  const value = Number(m[1]);
  const unit = (m[2] ?? 'B').toUpperCase();
  if (!(value > 0)) throw new OptionError(`${flag}: '${text}' must be positive`);
  if (unit === 'X') return { kind: 'fraction', value };
  if (unit === 'BIT' || unit === 'BITS') return { kind: 'bits', value };
  return { kind: 'bytes', value: Math.floor(value * UNITS[unit]) };
}

/** Sizes of the model a budget is measured against. */
export interface ModelSizes {
  /** Initializer bytes of the float model. */
  floatBytes: number;
  /** Of those, the bytes outside the allocated layers (kept as they are). */
  fixedBytes: number;
  /** Weights (elements) of the allocated layers. */
  layerWeights: number;
}

/** The whole model's weight bytes a budget allows. */
export function budgetTotalBytes(b: Budget, sizes: ModelSizes): number {
  switch (b.kind) {
    case 'fraction':
      return Math.floor(b.value * sizes.floatBytes);
    case 'bits':
      return sizes.fixedBytes + Math.floor((b.value * sizes.layerWeights) / 8);
    case 'bytes':
      return b.value;
  }
}

export function describeBudget(b: Budget): string {
  return b.kind === 'fraction' ? `${b.value}x` : b.kind === 'bits' ? `${b.value} bits` : `${b.value} bytes`;
}
