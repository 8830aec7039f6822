// Lower bounds for the allocation program, from its linear relaxation. With bytes the only budget, the multiple-choice
// knapsack LP is solved greedily: every layer starts at its smallest candidate and buys the steps of its lower convex
// hull of (bytes, loss) in order of loss saved per byte, across all layers, until the budget runs out (the last step
// fractional). A BOPs budget is moved into the objective with a multiplier mu >= 0 (loss + mu x BOPs, minus mu x the
// BOPs budget): a valid bound for every mu, the two-budget LP optimum at the best one. The exact solvers ask these
// bounds for the layers not yet decided, with the budgets those layers have left.
import type { Prepared, ReducedLayer } from './instance.js';

/** One layer's hull: candidate positions (into the reduced layer) in ascending bytes, falling cost, rising slope. */
function hull(layer: ReducedLayer, mu: number): number[] {
  const n = layer.bytes.length;
  const cost = (i: number): number => layer.loss[i] + mu * layer.bops[i];
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => layer.bytes[a] - layer.bytes[b] || cost(a) - cost(b) || a - b);
  const h: number[] = [];
  for (const i of order) {
    if (h.length > 0 && (cost(i) >= cost(h[h.length - 1]) || layer.bytes[i] === layer.bytes[h[h.length - 1]])) continue;
    // Drop the last point while it lies on or above the segment from the one before it to i.
    while (h.length >= 2) {
      const a = h[h.length - 2];
      const b = h[h.length - 1];
      if ((cost(b) - cost(a)) * (layer.bytes[i] - layer.bytes[b]) >= (cost(i) - cost(b)) * (layer.bytes[b] - layer.bytes[a])) h.pop();
      else break;
    }
    h.push(i);
  }
  return h;
}

/** Every layer's hull at one multiplier, and its steps sorted by slope (most loss saved per byte first). */
class Steps {
  readonly hulls: number[][];
  /** Per step: its layer, the hull index it reaches, and its bytes, cost, BOPs and slope; `sorted` orders them. */
  readonly layer: Int32Array;
  readonly to: Int32Array;
  readonly bytes: Float64Array;
  readonly cost: Float64Array;
  readonly bops: Float64Array;
  readonly slope: Float64Array;
  readonly sorted: Int32Array;
  /** Sums over layers of the hull's first (smallest) point. */
  readonly baseBytes: number;
  readonly baseCost: number;
  readonly baseBops: number;

  constructor(p: Prepared, mu: number) {
    this.hulls = p.layers.map((layer) => hull(layer, mu));
    const n = this.hulls.reduce((s, h) => s + h.length - 1, 0);
    this.layer = new Int32Array(n);
    this.to = new Int32Array(n);
    this.bytes = new Float64Array(n);
    this.cost = new Float64Array(n);
    this.bops = new Float64Array(n);
    this.slope = new Float64Array(n);
    let s = 0;
    let baseBytes = 0;
    let baseCost = 0;
    let baseBops = 0;
    p.layers.forEach((layer, l) => {
      const h = this.hulls[l];
      baseBytes += layer.bytes[h[0]];
      baseCost += layer.loss[h[0]] + mu * layer.bops[h[0]];
      baseBops += layer.bops[h[0]];
      for (let j = 1; j < h.length; j++, s++) {
        const a = h[j - 1];
        const b = h[j];
        this.layer[s] = l;
        this.to[s] = j;
        this.bytes[s] = layer.bytes[b] - layer.bytes[a];
        this.cost[s] = layer.loss[b] + mu * layer.bops[b] - (layer.loss[a] + mu * layer.bops[a]);
        this.bops[s] = layer.bops[b] - layer.bops[a];
        this.slope[s] = this.cost[s] / this.bytes[s];
      }
    });
    this.baseBytes = baseBytes;
    this.baseCost = baseCost;
    this.baseBops = baseBops;
    // Ties in slope: by layer then hull index, so a layer's steps stay in hull order.
    this.sorted = new Int32Array(n).map((_, i) => i);
    this.sorted.sort((a, b) => this.slope[a] - this.slope[b] || this.layer[a] - this.layer[b] || this.to[a] - this.to[b]);
  }
}

export interface LinearSolution {
  mu: number;
  /** The Lagrangian LP bound at mu (Infinity when not even the smallest candidates fit the bytes). */
  bound: number;
  /** Per layer, the reduced-layer position reached by whole steps: a rounding of the LP optimum that fits the bytes. */
  rounded: Int32Array;
  /** BOPs of the LP optimum (fractional step included). */
  bops: number;
  /** Loss saved per byte by the step the budget stopped at (0 when the budget buys every step): the bytes' dual price. */
  lambda: number;
}

/** The LP relaxation of all layers at multiplier mu. */
export function linearRelaxation(p: Prepared, mu: number): LinearSolution {
  const st = new Steps(p, mu);
  const reached = new Int32Array(p.layers.length);
  let cost = st.baseCost;
  let bops = st.baseBops;
  const penalty = p.hasBops && mu > 0 ? mu * p.bopsBudget : 0;
  const rounded = (): Int32Array => Int32Array.from(reached, (j, l) => st.hulls[l][j]);
  if (st.baseBytes > p.byteBudget) return { mu, bound: Infinity, rounded: rounded(), bops, lambda: 0 };
  let room = p.byteBudget - st.baseBytes;
  let lambda = 0;
  for (const s of st.sorted) {
    if (st.bytes[s] <= room) {
      room -= st.bytes[s];
      cost += st.cost[s];
      bops += st.bops[s];
      reached[st.layer[s]] = st.to[s];
    } else {
      const f = room / st.bytes[s];
      cost += f * st.cost[s];
      bops += f * st.bops[s];
      lambda = -st.slope[s];
      break;
    }
  }
  return { mu, bound: cost - penalty, rounded: rounded(), bops, lambda };
}

/**
 * The multiplier that maximises the Lagrangian bound, a concave piecewise-linear function of mu whose slope at mu is
 * the LP optimum's BOPs minus the budget: 0 when the bytes-only LP already keeps the BOPs budget, else found by
 * intersecting the lines through the best points on either side of the maximum (exact after a few dozen steps).
 */
export function bestMultiplier(p: Prepared): LinearSolution {
  const zero = linearRelaxation(p, 0);
  if (!p.hasBops || zero.bound === Infinity || zero.bops <= p.bopsBudget) return zero;
  let best = zero;
  let lo = zero;
  let hi: LinearSolution | null = null;
  for (let mu = initialMultiplier(p), i = 0; i < 200; i++, mu *= 4) {
    const s = linearRelaxation(p, mu);
    if (s.bound > best.bound) best = s;
    if (s.bops <= p.bopsBudget) {
      hi = s;
      break;
    }
    lo = s;
  }
  if (!hi) return best;
  for (let i = 0; i < 100; i++) {
    // Slopes of the bound at lo (> 0) and hi (<= 0); their lines meet above the maximum.
    const gLo = lo.bops - p.bopsBudget;
    const gHi = hi.bops - p.bopsBudget;
    let mu = gLo - gHi > 0 ? (hi.bound - lo.bound + gLo * lo.mu - gHi * hi.mu) / (gLo - gHi) : (lo.mu + hi.mu) / 2;
    if (!(mu > lo.mu && mu < hi.mu)) mu = (lo.mu + hi.mu) / 2;
    const s = linearRelaxation(p, mu);
    if (s.bound > best.bound) best = s;
    const top = lo.bound + gLo * (mu - lo.mu);
    if (top - s.bound <= 1e-12 * Math.abs(top) || hi.mu - lo.mu <= 1e-12 * hi.mu) break;
    if (s.bops > p.bopsBudget) lo = s;
    else hi = s;
  }
  return best;
}

/** Loss per BOP at the scale of the data, where the search for the multiplier starts. */
function initialMultiplier(p: Prepared): number {
  let loss = 0;
  let bops = 0;
  for (const layer of p.layers) {
    loss += Math.max(...layer.loss) - Math.min(...layer.loss);
    bops += Math.max(...layer.bops) - Math.min(...layer.bops);
  }
  return loss > 0 && bops > 0 ? (1e-3 * loss) / bops : 1;
}

/**
 * The LP bound of the layers order[k..] for every k, in O(log n) per query: those layers' steps in slope order, with
 * running sums of bytes and cost, kept for every k in one flat array.
 */
export class SuffixBounds {
  private readonly baseBytes: Float64Array;
  private readonly baseCost: Float64Array;
  private readonly minBops: Float64Array;
  /** Suffix k's steps occupy [offset[k], offset[k] + count[k]) of slope, and count[k] + 1 sums from offset[k] + n - k. */
  private readonly offset: Int32Array;
  private readonly count: Int32Array;
  private readonly cumBytes: Float64Array;
  private readonly cumCost: Float64Array;
  private readonly slope: Float64Array;
  /** Scale of the costs summed: errors of the bounds' floating-point sums stay far below it. */
  readonly tolerance: number;

  constructor(
    p: Prepared,
    order: Int32Array,
    readonly mu: number,
  ) {
    const n = order.length;
    const st = new Steps(p, mu);
    const position = new Int32Array(n);
    order.forEach((l, k) => (position[l] = k));
    this.baseBytes = new Float64Array(n + 1);
    this.baseCost = new Float64Array(n + 1);
    this.minBops = new Float64Array(n + 1);
    let scale = mu > 0 && Number.isFinite(p.bopsBudget) ? mu * p.bopsBudget : 0;
    for (let k = n - 1; k >= 0; k--) {
      const l = order[k];
      const layer = p.layers[l];
      const b = st.hulls[l][0];
      this.baseBytes[k] = this.baseBytes[k + 1] + layer.bytes[b];
      this.baseCost[k] = this.baseCost[k + 1] + layer.loss[b] + mu * layer.bops[b];
      let least = Infinity;
      for (let i = 0; i < layer.loss.length; i++) {
        least = Math.min(least, layer.bops[i]);
        scale += Math.abs(layer.loss[i] + mu * layer.bops[i]);
      }
      this.minBops[k] = this.minBops[k + 1] + least;
    }
    // The steps in slope order, as plain arrays of their layer's position, bytes, cost and slope (all slopes are < 0:
    // hull costs fall).
    const m = st.sorted.length;
    const sp = new Int32Array(m);
    const sb = new Float64Array(m);
    const sc = new Float64Array(m);
    const ss = new Float64Array(m);
    st.sorted.forEach((s, i) => {
      sp[i] = position[st.layer[s]];
      sb[i] = st.bytes[s];
      sc[i] = st.cost[s];
      ss[i] = st.slope[s];
    });
    this.offset = new Int32Array(n + 1);
    this.count = new Int32Array(n + 1);
    const perPosition = new Int32Array(n + 1);
    for (let i = 0; i < m; i++) perPosition[sp[i]]++;
    let total = 0;
    for (let k = n; k >= 0; k--) {
      this.count[k] = (k < n ? this.count[k + 1] : 0) + perPosition[k];
      this.offset[k] = total;
      total += this.count[k];
    }
    this.slope = new Float64Array(total);
    this.cumBytes = new Float64Array(total + n + 1);
    this.cumCost = new Float64Array(total + n + 1);
    const slope = this.slope;
    const cumBytes = this.cumBytes;
    const cumCost = this.cumCost;
    for (let k = 0; k <= n; k++) {
      let o = this.offset[k];
      let c = this.offset[k] + n - k;
      let bytes = 0;
      let cost = 0;
      cumBytes[c] = 0;
      cumCost[c] = 0;
      for (let i = 0; i < m; i++) {
        if (sp[i] < k) continue;
        slope[o++] = ss[i];
        bytes += sb[i];
        cost += sc[i];
        cumBytes[++c] = bytes;
        cumCost[c] = cost;
      }
    }
    this.tolerance = 1e-10 * scale + Number.MIN_VALUE;
  }

  /** Fewest bytes the layers order[k..] can take. */
  minimumBytes(k: number): number {
    return this.baseBytes[k];
  }

  /** Lower bound on the summed loss of layers order[k..] given `bytes` and `bops` left; Infinity when they cannot fit. */
  bound(k: number, bytes: number, bops: number): number {
    if (bytes < this.baseBytes[k] || bops < this.minBops[k]) return Infinity;
    const room = bytes - this.baseBytes[k];
    const o = this.offset[k];
    const c0 = o + this.offset.length - 1 - k;
    const cb = this.cumBytes;
    // Largest j <= count with cb[c0 + j] <= room: the steps bought whole.
    let lo = 0;
    let hi = this.count[k];
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (cb[c0 + mid] <= room) lo = mid;
      else hi = mid - 1;
    }
    let value = this.baseCost[k] + this.cumCost[c0 + lo];
    if (lo < this.count[k]) value += (room - cb[c0 + lo]) * this.slope[o + lo];
    if (this.mu > 0) value -= this.mu * bops;
    return value;
  }
}
