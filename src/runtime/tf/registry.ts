// The operator registry of the TensorFlow.js executor: one entry per (domain, op type, opset range), each a
// plain function from input tensors to output tensors. The interpreter asks it which function runs a node; the
// op table in docs/tf-ops.md is generated from it. Op categories live in ops/<category>.ts; adding an op is one
// entry there.
import type * as tf from '@tensorflow/tfjs-core';
import type { NodeProto } from '../../onnx/types.js';

/** An op's inputs in node order; an omitted optional input ('' in the node) is undefined. */
export type OpInputs = readonly (tf.Tensor | undefined)[];

export interface OpContext {
  /** The opset version the model imports for the node's domain. */
  readonly opset: number;
}

/**
 * Runs one node. Returns its outputs in order (a single tensor for one output); an op may return fewer outputs
 * than the node names only when the missing ones are optional and unused (the interpreter checks).
 */
export type OpFn = (inputs: OpInputs, node: NodeProto, ctx: OpContext) => tf.Tensor | tf.Tensor[];

export interface OpDef {
  opType: string;
  /** '' for the default ONNX domain. */
  domain: string;
  /** First opset version this entry implements. */
  since: number;
  /** Last opset version it implements (inclusive); open-ended when absent. */
  until?: number;
  /** Whether gradients flow through its float inputs (false: integer, boolean or piecewise-constant results). */
  differentiable: boolean;
  run: OpFn;
  /**
   * Why this node cannot run here (an attribute value or output the implementation does not cover), checked
   * when the model is compiled; undefined when it can.
   */
  unsupported?: (node: NodeProto, opset: number) => string | undefined;
}

export interface OpOptions {
  domain?: string;
  since?: number;
  until?: number;
  /** Default true. */
  differentiable?: boolean;
  unsupported?: OpDef['unsupported'];
}

/** Shorthand for an entry: `op('Relu', run)`, `op('ReduceSum', run, { since: 13 })`. */
export function op(opType: string, run: OpFn, options: OpOptions = {}): OpDef {
  return {
    opType,
    domain: normalizeDomain(options.domain ?? ''),
    since: options.since ?? 1,
    ...(options.until !== undefined ? { until: options.until } : {}),
    differentiable: options.differentiable ?? true,
    run,
    ...(options.unsupported ? { unsupported: options.unsupported } : {}),
  };
}

/** 'ai.onnx' is the default domain's long name. */
export function normalizeDomain(domain: string | undefined): string {
  return !domain || domain === 'ai.onnx' ? '' : domain;
}

function key(domain: string, opType: string): string {
  return `${normalizeDomain(domain)}::${opType}`;
}

export class OpRegistry {
  private readonly byKey = new Map<string, OpDef[]>();

  constructor(defs: Iterable<OpDef> = []) {
    for (const d of defs) this.add(d);
  }

  /** Adds an entry; overlapping opset ranges for the same op are a programming error. */
  add(def: OpDef): this {
    const k = key(def.domain, def.opType);
    const list = this.byKey.get(k) ?? [];
    const overlap = list.find((d) => d.since <= (def.until ?? Infinity) && def.since <= (d.until ?? Infinity));
    if (overlap) throw new Error(`op ${k} registered twice for overlapping opsets (${def.since}-${def.until ?? ''} and ${overlap.since}-${overlap.until ?? ''})`);
    list.push(def);
    list.sort((a, b) => a.since - b.since);
    this.byKey.set(k, list);
    return this;
  }

  /** The entry implementing an op at the given opset version, if any. */
  resolve(domain: string | undefined, opType: string, opset: number): OpDef | undefined {
    return this.byKey.get(key(domain ?? '', opType))?.find((d) => d.since <= opset && opset <= (d.until ?? Infinity));
  }

  /** Whether any opset version of the op is registered (to tell "unknown op" from "opset not covered"). */
  has(domain: string | undefined, opType: string): boolean {
    return this.byKey.has(key(domain ?? '', opType));
  }

  /** Every entry, sorted by domain, op type and opset. */
  entries(): OpDef[] {
    return [...this.byKey.values()].flat().sort((a, b) => a.domain.localeCompare(b.domain) || a.opType.localeCompare(b.opType) || a.since - b.since);
  }
}
