// A folder of .npy files as a tensor set: one file per model input, named `<input>.npy`, holding every sample
// stacked along axis 0. For an input of rank r the file has rank
//   r:     axis 0 is the model's batch axis, and sample i is the slice [i:i+1] (a batch of one), or
//   r + 1: axis 0 is an extra sample axis, and sample i is arr[i] (for inputs without a batch axis).
// An input whose rank the model leaves unknown is read the first way. All files must hold as many samples.
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { dtypeName } from '../../onnx/dtypes.js';
import { CalibrationDataError } from './errors.js';
import { describeInput, type ModelInput } from './model-inputs.js';
import { readNpyHeader, readNpyRows, type NpyArray } from './npy.js';
import type { SampleTensor, TensorSource } from './tensor-source.js';

export function isNpyFolder(entries: readonly string[]): boolean {
  return entries.some((e) => e.endsWith('.npy'));
}

interface InputFile {
  input: ModelInput;
  array: NpyArray;
  /** Whether axis 0 is an extra sample axis (rank r + 1) rather than the batch axis. */
  sampleAxis: boolean;
}

export function openNpyFolder(dir: string, inputs: readonly ModelInput[]): TensorSource {
  const files = readdirSync(dir)
    .filter((e) => e.endsWith('.npy'))
    .sort()
    .map((name) => inputFile(join(dir, name), inputs));
  const counts = files.map((f) => f.array.shape[0]);
  const mismatch = counts.findIndex((c) => c !== counts[0]);
  if (mismatch > 0) {
    throw new CalibrationDataError(
      `${files[mismatch].array.path}: holds ${counts[mismatch]} samples along axis 0, but ${basename(files[0].array.path)} holds ${counts[0]}`,
    );
  }
  return {
    sampleCount: counts[0] ?? 0,
    readSample: (index) => files.map((f) => readSample(f, index)),
  };
}

function inputFile(path: string, inputs: readonly ModelInput[]): InputFile {
  const name = basename(path, '.npy');
  const input = inputs.find((i) => i.name === name);
  if (!input) {
    throw new CalibrationDataError(`${path}: '${name}' is not an input of the model (inputs: ${inputs.map((i) => i.name).join(', ')}); name each file <input>.npy`);
  }
  const array = readNpyHeader(path);
  const rank = input.dims?.length ?? array.shape.length;
  if (array.shape.length === 0 || (array.shape.length !== rank && array.shape.length !== rank + 1)) {
    throw new CalibrationDataError(
      `${path}: array ${dtypeName(array.dtype)} (${array.shape.join(', ')}) does not fit model input '${name}' ${describeInput(input)}: ` +
        `it needs rank ${rank} (samples along the batch axis) or ${rank + 1} (an extra sample axis first)`,
    );
  }
  return { input, array, sampleAxis: array.shape.length === rank + 1 };
}

function readSample(file: InputFile, index: number): SampleTensor {
  const rows = readNpyRows(file.array, index, 1);
  const tensor = file.sampleAxis ? { ...rows, dims: rows.dims.slice(1) } : rows;
  return {
    input: file.input.name,
    file: file.array.path,
    name: file.input.name,
    tensor,
    fileIndex: file.sampleAxis ? (at) => [index, ...at] : (at) => [index + at[0], ...at.slice(1)],
  };
}
