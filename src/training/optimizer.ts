// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization") on plain Float32Arrays, and global-norm
// gradient clipping. Pure JS and deterministic: the same parameters, gradients and learning rates give the same
// bits on every machine, whatever tfjs backend computed the gradients.

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay coefficient (multiplied by the learning rate, as torch.optim.AdamW does). */
  weightDecay?: number;
  /** Which parameters decay (default: those with two or more dimensions: matrices and embeddings, not norms). */
  decays?: (name: string, dims: readonly number[]) => boolean;
}

export interface Parameter {
  dims: readonly number[];
  data: Float32Array;
}

interface State {
  m: Float64Array;
  v: Float64Array;
  decay: boolean;
}

/**
 * torch.optim.AdamW's update, per element, at step t (from 1):
 *   p <- p - lr * wd * p                       (decoupled decay, before the Adam step)
 *   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
 *   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * Moments are kept in float64, the parameters in float32 (as they are stored in the model).
 */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly state = new Map<string, State>();
  private t = 0;

  constructor(
    private readonly params: ReadonlyMap<string, Parameter>,
    options: AdamWOptions = {},
  ) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    const decays = options.decays ?? ((_: string, dims: readonly number[]) => dims.length >= 2);
    for (const [name, p] of params) {
      this.state.set(name, { m: new Float64Array(p.data.length), v: new Float64Array(p.data.length), decay: decays(name, p.dims) });
    }
  }

  /** Steps taken so far. */
  get steps(): number {
    return this.t;
  }

  /** Whether a parameter is decayed. */
  decays(name: string): boolean {
    return this.stateOf(name).decay;
  }

  /** One update of every parameter that has a gradient; `grads` are shaped like the parameters. */
  step(grads: ReadonlyMap<string, Float32Array>, lr: number): void {
    this.t++;
    const { beta1: b1, beta2: b2, eps } = this;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    for (const [name, g] of grads) {
      const p = this.params.get(name);
      // Plain errors: the caller's gradients and the optimizer's parameters come from the same model, so a
      // mismatch is a bug in the calling code, not bad input.
      if (!p) throw new Error(`AdamW: no parameter '${name}'`);
      if (g.length !== p.data.length) throw new Error(`AdamW: gradient of '${name}' has ${g.length} values, the parameter ${p.data.length}`);
      const s = this.stateOf(name);
      const shrink = s.decay ? 1 - lr * this.weightDecay : 1;
      const { m, v } = s;
      const w = p.data;
      for (let i = 0; i < w.length; i++) {
        const gi = g[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        w[i] = w[i] * shrink - (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + eps);
      }
    }
  }

  private stateOf(name: string): State {
    const s = this.state.get(name);
    if (!s) throw new Error(`AdamW: no parameter '${name}'`);
    return s;
  }
}

/** The L2 norm of all gradients together. */
export function globalNorm(grads: Iterable<Float32Array>): number {
  let sum = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  return Math.sqrt(sum);
}

/**
 * Scales every gradient in place so that their global norm is at most `maxNorm` (torch's clip_grad_norm_:
 * factor maxNorm / (norm + 1e-6) when it is below 1). Returns the norm before clipping.
 */
export function clipGlobalNorm(grads: Iterable<Float32Array>, maxNorm: number): number {
  const list = [...grads];
  const norm = globalNorm(list);
  const factor = maxNorm / (norm + 1e-6);
  if (factor < 1) for (const g of list) for (let i = 0; i < g.length; i++) g[i] *= factor;
  return norm;
}
