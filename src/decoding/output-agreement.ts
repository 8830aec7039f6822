// For models that are not language models: how closely a candidate's outputs follow the reference's on the same
// inputs, per output, over every sample: the largest absolute difference and the cosine similarity.
import { fromOrtTensor } from '../runtime/ort-tensor.js';
import type { Feeds, Session } from '../runtime/session.js';
import { ModelError } from '../onnx/model.js';

export interface OutputAgreement {
  output: string;
  elements: number;
  maxAbsDiff: number;
  /** Cosine similarity of all the output's values, every sample concatenated (1 when both are all zeros). */
  cosine: number;
}

export interface AgreementReport {
  /** Runs made (batches of feeds). */
  samples: number;
  outputs: OutputAgreement[];
}

/**
 * How the candidate differs in signature from the reference (a pruned decoder: fewer key/value heads in some
 * layers): its own version of each batch's feeds, and the outputs the two share in meaning and shape.
 */
export interface AgreementAdaptation {
  candidateFeeds?: (feeds: Feeds) => Feeds;
  outputs?: readonly string[];
}

/** `batches`: feeds to run both models on, e.g. a tensor set's batches from src/calibration/data. */
export async function outputAgreement(
  reference: Session,
  candidate: Session,
  batches: AsyncIterable<Feeds> | Iterable<Feeds>,
  adapt: AgreementAdaptation = {},
): Promise<AgreementReport> {
  const names = adapt.outputs ?? reference.outputNames;
  const missing = names.filter((n) => !candidate.outputNames.includes(n));
  if (missing.length) throw new ModelError(`${candidate.source}: has no output ${missing.map((n) => `'${n}'`).join(', ')} (the reference ${reference.source} has)`);
  const sums = new Map(names.map((n) => [n, { elements: 0, maxAbsDiff: 0, dot: 0, refSq: 0, candSq: 0 }]));
  let index = 0;
  for await (const feeds of batches) {
    const r = await reference.run(feeds);
    const c = await candidate.run(adapt.candidateFeeds ? adapt.candidateFeeds(feeds) : feeds);
    for (const name of names) {
      const a = numbers(fromOrtTensor(r[name]).data);
      const b = numbers(fromOrtTensor(c[name]).data);
      if (a.length !== b.length) throw new ModelError(`${candidate.source}: output '${name}' has ${b.length} values on sample ${index}, the reference ${a.length}`);
      const s = sums.get(name)!;
      for (let i = 0; i < a.length; i++) {
        s.maxAbsDiff = Math.max(s.maxAbsDiff, Math.abs(a[i] - b[i]));
        s.dot += a[i] * b[i];
        s.refSq += a[i] * a[i];
        s.candSq += b[i] * b[i];
      }
      s.elements += a.length;
    }
    index++;
  }
  return {
    samples: index,
    outputs: names.map((output) => {
      const s = sums.get(output)!;
      // sqrt of the product, not a product of square roots: identical outputs then give exactly 1.
      const norms = Math.sqrt(s.refSq * s.candSq);
      const cosine = norms === 0 ? (s.refSq === s.candSq ? 1 : 0) : Math.min(1, Math.max(-1, s.dot / norms));
      return { output, elements: s.elements, maxAbsDiff: s.maxAbsDiff, cosine };
    }),
  };
}

function numbers(data: ArrayLike<unknown>): Float64Array {
  return Float64Array.from(data as ArrayLike<number>, (v) => Number(v));
}
