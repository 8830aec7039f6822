// A tensor calibration set for any model: samples from a TensorSource (.pb folders, .npy files), each checked
// against the model's inputs (every input present, element type and shape as declared, floats finite), a seeded
// selection of them, and batches stacked along axis 0. Opening reads the selected samples once to check them;
// each pass of batches() reads them again, one batch at a time.
import type { Tensor } from 'onnxruntime-node';
import { dtypeInfo, dtypeName } from '../../onnx/dtypes.js';
import type { OnnxModel } from '../../onnx/model.js';
import { concatAxis0, toOrtTensor } from '../../runtime/ort-tensor.js';
import type { Feeds } from '../../runtime/session.js';
import type { CalibrationOptions, CalibrationSet } from './calibration-set.js';
import { CalibrationDataError } from './errors.js';
import { describeInput, fitsShape, requiredInputs, type ModelInput } from './model-inputs.js';
import { selectIndices } from './selection.js';
import type { SampleTensor, TensorSource } from './tensor-source.js';

export type TensorLayout = (dir: string, inputs: readonly ModelInput[]) => TensorSource;

/** Token-window options (sequenceLength, windowing, stride) do not apply here and are ignored. */
export async function openTensorSet(dir: string, layout: TensorLayout, model: OnnxModel, options: CalibrationOptions): Promise<CalibrationSet> {
  const inputs = requiredInputs(model);
  const batchSize = options.batchSize ?? 1;
  if (batchSize > 1) {
    // Samples are stacked along axis 0, which must be free to grow.
    const fixed = inputs.find((i) => i.dims !== undefined && (i.dims.length === 0 || i.dims[0] !== null));
    if (fixed) {
      throw new CalibrationDataError(`${model.source}: input '${fixed.name}' is ${describeInput(fixed)}, with no batch axis to stack samples on; use batchSize 1`);
    }
  }
  const source = layout(dir, inputs);
  if (source.sampleCount === 0) throw new CalibrationDataError(`${dir}: empty set (no samples)`);
  const selected = selectIndices(source.sampleCount, options.samples, options.seed ?? 0);
  const readChecked = (index: number) => checkedSample(source.readSample(index), inputs, dir, index);
  let rows = 0;
  for (const index of selected) rows += sampleRows(readChecked(index), inputs);

  return {
    source: dir,
    kind: 'tensors',
    sampleCount: selected.length,
    // A sample may hold several rows along its batch axis (a conformance test_data_set of batch 2), which the
    // collector counts one by one: without this its progress read "2/1 samples".
    ...(rows !== selected.length ? { rowCount: rows } : {}),
    tokenCount: 0,
    async *batches(): AsyncGenerator<Feeds> {
      for (let start = 0; start < selected.length; start += batchSize) {
        const samples = selected.slice(start, start + batchSize).map(readChecked);
        const feeds: Feeds = {};
        for (const input of inputs) {
          const parts = samples.map((s) => s.get(input.name)!);
          feeds[input.name] = parts.length === 1 ? parts[0] : concatAxis0(parts, input.name);
        }
        yield feeds;
      }
    },
  };
}

/** Rows a sample holds as the statistics collector counts them: the first axis of the first input with one, else 1. */
function sampleRows(sample: ReadonlyMap<string, Tensor>, inputs: readonly ModelInput[]): number {
  for (const input of inputs) {
    const dims = sample.get(input.name)!.dims;
    if (dims.length > 0) return dims[0];
  }
  return 1;
}

/** One sample as ORT tensors by input name, after checking it feeds each input exactly once and fits it. */
function checkedSample(tensors: SampleTensor[], inputs: readonly ModelInput[], dir: string, index: number): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const t of tensors) {
    const input = inputs.find((i) => i.name === t.input)!;
    if (out.has(t.input)) throw new CalibrationDataError(`${t.file}: a second tensor for model input '${t.input}' in sample ${index}`);
    checkFits(t, input);
    checkFinite(t);
    out.set(t.input, toOrtTensor(t.tensor, `${t.file}: tensor '${t.name}'`));
  }
  const missing = inputs.find((i) => !out.has(i.name));
  if (missing) throw new CalibrationDataError(`${dir}: sample ${index} has no tensor for model input '${missing.name}'`);
  return out;
}

function checkFits(t: SampleTensor, input: ModelInput): void {
  if (t.tensor.dtype !== input.dtype || !fitsShape(input, t.tensor.dims)) {
    throw new CalibrationDataError(
      `${t.file}: tensor '${t.name}' is ${dtypeName(t.tensor.dtype)} [${t.tensor.dims.join(',')}] but model input '${input.name}' is ${describeInput(input)}`,
    );
  }
}

/** NaN or infinity in calibration data would poison every statistic downstream. */
function checkFinite(t: SampleTensor): void {
  if (dtypeInfo(t.tensor.dtype).kind !== 'float') return;
  const data = t.tensor.data as Float32Array | Float64Array;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      const at = t.fileIndex(unflatten(i, t.tensor.dims));
      throw new CalibrationDataError(`${t.file}: tensor '${t.name}' has ${data[i]} at [${at.join(', ')}]`);
    }
  }
}

/** Row-major flat index -> one index per axis. */
function unflatten(flat: number, dims: readonly number[]): number[] {
  const index = new Array<number>(dims.length);
  for (let axis = dims.length - 1; axis >= 0; axis--) {
    index[axis] = flat % dims[axis];
    flat = Math.floor(flat / dims[axis]);
  }
  return index;
}
