// Pearson's chi-square goodness-of-fit test: observed counts against expected probabilities, cells with small
// expectations pooled (the chi-square approximation needs about 5 expected per cell), and the p-value from the
// regularised upper incomplete gamma function (Numerical Recipes' series and continued fraction).

export interface ChiSquare {
  statistic: number;
  degreesOfFreedom: number;
  pValue: number;
}

export function chiSquareTest(observed: readonly number[], expected: readonly number[], minExpected = 5): ChiSquare {
  const n = observed.reduce((a, b) => a + b, 0);
  const total = expected.reduce((a, b) => a + b, 0);
  const cells: { o: number; e: number }[] = [];
  let pooled = { o: 0, e: 0 };
  // Largest expectations first, so that the small ones are pooled into one cell at the end.
  const order = expected.map((_, i) => i).sort((a, b) => expected[b] - expected[a]);
  for (const i of order) {
    const e = (n * expected[i]) / total;
    if (e >= minExpected) cells.push({ o: observed[i], e });
    else pooled = { o: pooled.o + observed[i], e: pooled.e + e };
  }
  if (pooled.e > 0 || pooled.o > 0) {
    if (pooled.e >= minExpected || cells.length === 0) cells.push(pooled);
    else cells[cells.length - 1] = { o: cells[cells.length - 1].o + pooled.o, e: cells[cells.length - 1].e + pooled.e };
  }
  const statistic = cells.reduce((a, c) => a + (c.e > 0 ? (c.o - c.e) ** 2 / c.e : c.o > 0 ? Infinity : 0), 0);
  const degreesOfFreedom = cells.length - 1;
  return { statistic, degreesOfFreedom, pValue: degreesOfFreedom > 0 ? upperGamma(degreesOfFreedom / 2, statistic / 2) : 1 };
}

/** Q(a, x) = Γ(a, x) / Γ(a). */
function upperGamma(a: number, x: number): number {
  if (!Number.isFinite(x)) return 0;
  if (x <= 0) return 1;
  const lnFront = -x + a * Math.log(x) - logGamma(a);
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let k = 1; k < 1000; k++) {
      term *= x / (a + k);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return 1 - sum * Math.exp(lnFront);
  }
  // Lentz's continued fraction.
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return Math.exp(lnFront) * h;
}

/** Lanczos approximation of ln Γ(x), x > 0. */
function logGamma(x: number): number {
  const g = [76.18009172947146, -86.50532032941677, 24.01409824083091, -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5];
  let y = x;
  const tmp = x + 5.5 - (x + 0.5) * Math.log(x + 5.5);
  let ser = 1.000000000190015;
  for (const c of g) ser += c / ++y;
  return -tmp + Math.log((2.5066282746310005 * ser) / x);
}
