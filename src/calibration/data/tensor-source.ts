// What a tensor-set layout (ONNX test-data .pb folders, .npy files) hands to tensor-set.ts: a number of samples,
// each a tensor per model input, read from disk on demand.
import type { DecodedTensor } from '../../onnx/tensor.js';

export interface SampleTensor {
  /** The model input this tensor feeds. */
  input: string;
  /** The file it was read from, and its name for the tensor, for messages. */
  file: string;
  name: string;
  tensor: DecodedTensor;
  /** Where element `index` of `tensor` sits in the file (a .npy sample is one slice of a bigger array). */
  fileIndex(index: readonly number[]): number[];
}

export interface TensorSource {
  readonly sampleCount: number;
  /** The tensors of one sample, read now. */
  readSample(index: number): SampleTensor[];
}
