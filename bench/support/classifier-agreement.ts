// How closely a quantized classifier follows its float original on the same images: the cosine of their logits
// (outputAgreement, over the whole batch) and the share of images whose top class is the same.
import { argmax } from '../../src/decoding/logits.js';
import { outputAgreement } from '../../src/decoding/output-agreement.js';
import type { Feeds, Session } from '../../src/runtime/session.js';

export async function classifierAgreement(reference: Session, candidate: Session, batches: readonly Feeds[], output: string): Promise<{ cosine: number; top1: number }> {
  const cosine = (await outputAgreement(reference, candidate, batches)).outputs[0].cosine;
  let agree = 0;
  let rows = 0;
  for (const feeds of batches) {
    const [r, c] = [(await reference.run(feeds, [output]))[output], (await candidate.run(feeds, [output]))[output]];
    const classes = r.dims[r.dims.length - 1];
    for (let at = 0; at < r.data.length; at += classes) {
      agree += argmax((r.data as Float32Array).subarray(at, at + classes)) === argmax((c.data as Float32Array).subarray(at, at + classes)) ? 1 : 0;
      rows++;
    }
  }
  return { cosine, top1: agree / rows };
}
