// The quality-gate flags (--min-cosine, --min-top1, --no-gate) that every command writing a verified model takes,
// read one way: as the verify settings laid over the defaults (or over a recipe's own verify steps).
import type { VerifyOptions } from '../quantization/verify.js';
import { fraction } from './options.js';

export interface GateFlags {
  minCosine?: string;
  minTop1?: string;
  /** False under --no-gate (commander's negated option). */
  gate?: boolean;
}

export type GateSettings = Pick<VerifyOptions, 'minCosine' | 'minTop1Agreement' | 'gate'>;

/** The settings the flags give, checked; empty when none was given. */
export function gateSettings(flags: GateFlags): GateSettings {
  return {
    ...(flags.minCosine !== undefined ? { minCosine: fraction(flags.minCosine, '--min-cosine') } : {}),
    ...(flags.minTop1 !== undefined ? { minTop1Agreement: fraction(flags.minTop1, '--min-top1') } : {}),
    ...(flags.gate === false ? { gate: false } : {}),
  };
}
