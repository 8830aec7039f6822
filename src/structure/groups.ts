// Which query heads belong to a GQA group (one key/value head): the unit structured pruning keeps or removes.
import type { Attention } from './decoder-structure.js';

/** The query heads that read key/value head `group`, ascending. */
export function queryHeadsOf(a: Pick<Attention, 'heads' | 'kvHeads' | 'groupLayout'>, group: number): number[] {
  const rep = a.heads / a.kvHeads;
  const heads = Array.from({ length: rep }, (_, r) => (a.groupLayout === 'strided' ? group + r * a.kvHeads : group * rep + r));
  return heads;
}
