// The ONNX test-data layout as a tensor set: `input_<k>.pb` files (serialized TensorProtos) directly in the folder
// are one sample; `test_data_set_<n>/input_<k>.pb` subfolders are one sample each. A tensor feeds the model
// input its TensorProto names, or, when unnamed, the k-th input the model needs (as ONNX's test runner does).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { decodeTensor } from '../../onnx/codec.js';
import { tensorValues } from '../../onnx/tensor.js';
import type { TensorProto } from '../../onnx/types.js';
import { CalibrationDataError } from './errors.js';
import type { ModelInput } from './model-inputs.js';
import type { SampleTensor, TensorSource } from './tensor-source.js';

const INPUT_FILE = /^input_(\d+)\.pb$/;
const SAMPLE_FOLDER = /^test_data_set_(\d+)$/;

/** Whether a folder is in the test-data layout. */
export function isPbFolder(entries: readonly string[]): boolean {
  return entries.some((e) => INPUT_FILE.test(e) || SAMPLE_FOLDER.test(e));
}

export function openPbFolder(dir: string, inputs: readonly ModelInput[]): TensorSource {
  const subfolders = numbered(readdirSync(dir), SAMPLE_FOLDER).filter((name) => statSync(join(dir, name)).isDirectory());
  const samples = (subfolders.length > 0 ? subfolders.map((name) => join(dir, name)) : [dir]).map((folder) => {
    const files = numbered(readdirSync(folder), INPUT_FILE);
    if (files.length === 0) throw new CalibrationDataError(`${folder}: empty sample (no input_<k>.pb files)`);
    return files.map((name) => join(folder, name));
  });
  return {
    sampleCount: samples.length,
    readSample: (index) => samples[index].map((file, position) => readInputFile(file, position, inputs)),
  };
}

/** Entries matching `pattern`, in the order of their number (input_10 after input_9). */
function numbered(entries: readonly string[], pattern: RegExp): string[] {
  return entries
    .filter((e) => pattern.test(e))
    .sort((a, b) => Number(pattern.exec(a)![1]) - Number(pattern.exec(b)![1]));
}

function readInputFile(file: string, position: number, inputs: readonly ModelInput[]): SampleTensor {
  let proto: TensorProto;
  try {
    proto = decodeTensor(readFileSync(file));
  } catch (e) {
    throw new CalibrationDataError(`${file}: not a serialized ONNX TensorProto (${(e as Error).message})`);
  }
  const input = proto.name ? inputs.find((i) => i.name === proto.name) : inputs[position];
  if (!input) {
    const known = inputs.map((i) => i.name).join(', ');
    throw new CalibrationDataError(
      proto.name
        ? `${file}: tensor '${proto.name}' is not an input of the model (inputs: ${known})`
        : `${file}: unnamed tensor ${position} has no model input at that position (inputs: ${known})`,
    );
  }
  const name = proto.name || input.name;
  try {
    return { input: input.name, file, name, tensor: tensorValues(proto), fileIndex: (index) => [...index] };
  } catch (e) {
    throw new CalibrationDataError(`${file}: tensor '${name}' cannot be decoded (${(e as Error).message})`);
  }
}
