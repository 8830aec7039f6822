// The exact search behind mckp-dp: dynamic programming over the layers on exact costs, where the state list after each
// layer holds only partial assignments that no other beats in bytes, BOPs and loss at once (a Pareto list, not a dense
// array over a byte grid, so nothing is rounded), and drops every partial assignment whose loss plus the LP bound of the
// layers still open (relaxation.ts) exceeds `limit`. Every complete assignment with loss <= limit therefore survives
// (or one the tie-break prefers that beats it in every respect does). Exact ties between partial assignments keep the
// one the tie-break prefers (instance.ts: the lower candidate index at the first layer where they differ).
import { compareAssignments, score, type Prepared, type Score } from './instance.js';
import type { SuffixBounds } from './relaxation.js';

export interface SearchLimits {
  /** performance.now() after which the search stops. */
  deadline: number;
  /** Most partial assignments kept after one layer. */
  maxStates: number;
}

export interface Survivor extends Score {
  /** Positions into the reduced layers, in layer order. */
  pos: Int32Array;
  choice: number[];
}

export type SearchResult =
  /** The best complete assignment that survived (null: none did, so every assignment's loss exceeds the limit). */
  | { stopped: false; best: Survivor | null }
  /** Stopped at a limit; `bound` is the least bound of the partial assignments still open. */
  | { stopped: true; bound: number };

interface Stage {
  parent: Int32Array;
  pos: Int32Array;
}

export function paretoSearch(p: Prepared, order: Int32Array, bounds: SuffixBounds, limit: number, limits: SearchLimits): SearchResult {
  const n = order.length;
  const stages: Stage[] = [{ parent: Int32Array.of(-1), pos: Int32Array.of(-1) }];
  let w = Float64Array.of(0);
  let v = Float64Array.of(0);
  let d = Float64Array.of(0);
  const stopped = (k: number): SearchResult => {
    let bound = Infinity;
    for (let s = 0; s < d.length; s++) bound = Math.min(bound, d[s] + bounds.bound(k, p.byteBudget - w[s], p.bopsBudget - v[s]));
    return { stopped: true, bound };
  };

  // Lexicographic comparison of two partial assignments after `depth` layers, through their parent links.
  const lexCompare = (depth: number, pa: number, ca: number, pb: number, cb: number): number => {
    let firstLayer = Infinity;
    let sign = 0;
    const note = (k: number, a: number, b: number): void => {
      const l = order[k];
      if (a !== b && l < firstLayer) {
        firstLayer = l;
        sign = p.layers[l].index[a] - p.layers[l].index[b];
      }
    };
    note(depth - 1, ca, cb);
    for (let k = depth - 1; k > 0 && pa !== pb; k--) {
      const st = stages[k];
      note(k - 1, st.pos[pa], st.pos[pb]);
      pa = st.parent[pa];
      pb = st.parent[pb];
    }
    return sign;
  };

  for (let k = 0; k < n; k++) {
    if (performance.now() > limits.deadline) return stopped(k);
    const layer = p.layers[order[k]];
    const m = layer.loss.length;
    // Per candidate, the states whose child passes the bound, in state order (sorted by bytes, BOPs, loss).
    const lists: Int32Array[] = [];
    let total = 0;
    for (let j = 0; j < m; j++) {
      const list = new Int32Array(d.length);
      let c = 0;
      for (let s = 0; s < d.length; s++) {
        const nw = w[s] + layer.bytes[j];
        const nv = v[s] + layer.bops[j];
        const rest = bounds.bound(k + 1, p.byteBudget - nw, p.bopsBudget - nv);
        if (rest !== Infinity && d[s] + layer.loss[j] + rest <= limit) list[c++] = s;
      }
      lists.push(list.subarray(0, c));
      total += c;
    }
    const cw = new Float64Array(total);
    const cv = new Float64Array(total);
    const cd = new Float64Array(total);
    const cpar = new Int32Array(total);
    const cpos = new Int32Array(total);
    mergeChildren(lists, w, v, d, layer.bytes, layer.bops, layer.loss, cw, cv, cd, cpar, cpos);
    const keep = p.hasBops ? paretoTwo(cw, cv, cd) : paretoOne(cw, cd);
    // A group of exactly equal (bytes, BOPs, loss) was kept as its first member: keep the tie-break's choice instead.
    const kept = keep.map((first) => {
      let best = first;
      for (let i = first + 1; i < total && cw[i] === cw[first] && cv[i] === cv[first] && cd[i] === cd[first]; i++) {
        if (lexCompare(k + 1, cpar[i], cpos[i], cpar[best], cpos[best]) < 0) best = i;
      }
      return best;
    });
    if (kept.length > limits.maxStates) return stopped(k);
    stages.push({ parent: Int32Array.from(kept, (i) => cpar[i]), pos: Int32Array.from(kept, (i) => cpos[i]) });
    w = Float64Array.from(kept, (i) => cw[i]);
    v = Float64Array.from(kept, (i) => cv[i]);
    d = Float64Array.from(kept, (i) => cd[i]);
  }

  // Every survivor is complete; the layer-order score decides among near ties (the search summed in its own order).
  let best: Survivor | null = null;
  let minD = Infinity;
  for (let s = 0; s < d.length; s++) minD = Math.min(minD, d[s]);
  for (let s = 0; s < d.length; s++) {
    if (d[s] > minD + bounds.tolerance) continue;
    const pos = new Int32Array(n);
    for (let k = n, i = s; k > 0; k--) {
      pos[order[k - 1]] = stages[k].pos[i];
      i = stages[k].parent[i];
    }
    const choice = Array.from(pos, (j, l) => p.layers[l].index[j]);
    const candidate = { ...score(p.problem, choice), pos, choice };
    if (!best || compareAssignments(candidate, best) < 0) best = candidate;
  }
  return { stopped: false, best };
}

/**
 * Merges the per-candidate child lists (each already in (bytes, BOPs, loss) order, since adding one candidate's costs
 * keeps the parents' order) into one list in that order.
 */
function mergeChildren(
  lists: Int32Array[],
  w: Float64Array,
  v: Float64Array,
  d: Float64Array,
  bytes: Float64Array,
  bops: Float64Array,
  loss: Float64Array,
  cw: Float64Array,
  cv: Float64Array,
  cd: Float64Array,
  cpar: Int32Array,
  cpos: Int32Array,
): void {
  const m = lists.length;
  const head = new Int32Array(m);
  for (let out = 0; out < cw.length; out++) {
    let pick = -1;
    let pw = 0;
    let pv = 0;
    let pd = 0;
    for (let j = 0; j < m; j++) {
      if (head[j] >= lists[j].length) continue;
      const s = lists[j][head[j]];
      const x = w[s] + bytes[j];
      const y = v[s] + bops[j];
      const z = d[s] + loss[j];
      if (pick < 0 || x < pw || (x === pw && (y < pv || (y === pv && z < pd)))) {
        pick = j;
        pw = x;
        pv = y;
        pd = z;
      }
    }
    cw[out] = pw;
    cv[out] = pv;
    cd[out] = pd;
    cpar[out] = lists[pick][head[pick]++];
    cpos[out] = pick;
  }
}

/** Indices (into children sorted by bytes, then loss) of the first member of each group not beaten, bytes the only budget. */
function paretoOne(w: Float64Array, d: Float64Array): number[] {
  const keep: number[] = [];
  let bestD = Infinity;
  for (let i = 0; i < w.length; i++) {
    if (i > 0 && w[i] === w[i - 1] && d[i] === d[i - 1]) continue;
    if (d[i] < bestD) {
      bestD = d[i];
      keep.push(i);
    }
  }
  return keep;
}

/** The same with BOPs too (sorted by bytes, BOPs, loss): a prefix-minimum tree over BOPs ranks holds the least loss seen. */
function paretoTwo(w: Float64Array, v: Float64Array, d: Float64Array): number[] {
  const values = Float64Array.from(v).sort();
  let u = 0;
  for (let i = 0; i < values.length; i++) if (u === 0 || values[i] !== values[u - 1]) values[u++] = values[i];
  const ranks = values.subarray(0, u);
  const tree = new Float64Array(u + 1).fill(Infinity);
  const keep: number[] = [];
  for (let i = 0; i < w.length; i++) {
    if (i > 0 && w[i] === w[i - 1] && v[i] === v[i - 1] && d[i] === d[i - 1]) continue;
    let lo = 0;
    let hi = u - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ranks[mid] < v[i]) lo = mid + 1;
      else hi = mid;
    }
    const r = lo + 1;
    let least = Infinity;
    for (let j = r; j > 0; j -= j & -j) least = Math.min(least, tree[j]);
    if (least <= d[i]) continue;
    keep.push(i);
    for (let j = r; j <= u; j += j & -j) tree[j] = Math.min(tree[j], d[i]);
  }
  return keep;
}
