// What structured pruning keeps: per decoder layer, the attention units (whole GQA groups: a key/value head and
// the query heads that read it) and the MLP neurons that survive. Scoring methods produce it, surgery applies it.

export interface LayerKeep {
  /** Indices (ascending) of the kept key/value groups, 0 <= g < kvHeads; at least one. */
  groups: number[];
  /** Indices (ascending) of the kept MLP neurons, 0 <= n < width. */
  neurons: number[];
  /**
   * FLAP-style bias compensation: a vector of length `hidden` added to the output of the o projection and/or the
   * down projection (the mean contribution of the removed units), when the method asks for it.
   */
  compensation?: { attention?: Float32Array; mlp?: Float32Array };
}

/** One entry per decoder layer, in layer order. */
export type PruneSelection = LayerKeep[];
