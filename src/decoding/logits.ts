// Logits as the decoders use them: a [batch, length, vocab] float32 block with row views, and the few pieces
// of arithmetic every consumer needs (log-softmax in float64, argmax).
import type { Tensor } from 'onnxruntime-node';
import { fromBits } from '../onnx/tensor.js';
import { DataType } from '../onnx/types.js';
import { ModelError } from '../onnx/model.js';

export class Logits {
  constructor(
    readonly data: Float32Array,
    readonly batch: number,
    readonly length: number,
    readonly vocab: number,
  ) {}

  /** Reads ORT's logits output; float16 models give half bits, widened here so every consumer sees float32. */
  static fromTensor(t: Tensor, what: string): Logits {
    if (t.dims.length !== 3) throw new ModelError(`${what}: logits must be [batch, sequence, vocab], got [${t.dims.join(',')}]`);
    const [batch, length, vocab] = t.dims;
    let data: Float32Array;
    if (t.type === 'float32') data = t.data as Float32Array;
    else if (t.type === 'float16') data = fromBits(DataType.FLOAT16, t.data as Uint16Array);
    else throw new ModelError(`${what}: logits are ${t.type}; only float32 and float16 are supported`);
    return new Logits(data, batch, length, vocab);
  }

  /** The logits at one position of one row (a view, not a copy). */
  at(row: number, position: number): Float32Array {
    const start = (row * this.length + position) * this.vocab;
    return this.data.subarray(start, start + this.vocab);
  }

  /** The logits after a row's last input token: what predicts the next one. */
  last(row: number): Float32Array {
    return this.at(row, this.length - 1);
  }
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/**
 * log(softmax(logits)) in float64: differences of float32 log-probabilities would lose the small KL divergences
 * a good compression leaves, and summed NLLs over 10^5 tokens need the precision too.
 */
export function logSoftmax(logits: ArrayLike<number>, out: Float64Array = new Float64Array(logits.length)): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const logZ = max + Math.log(sum);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - logZ;
  return out;
}
