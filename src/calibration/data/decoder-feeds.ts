// Model-ready feeds for a decoder language model from a batch of token windows. Only `input_ids` comes from the
// data; every other input the optimum decoder layout has is derived from it, following the model's signature:
//   attention_mask  ones [batch, sequence] (no padding: every window is whole)
//   position_ids    0..sequence-1 on every row
//   past key/values an empty cache [batch, kv_heads, 0, head_dim]
//   use_cache_branch false (merged decoders: take the no-cache branch)
// Each tensor takes the element type the model declares (int64 or int32 ids, float16 caches...).
import type { Tensor } from 'onnxruntime-node';
import type { DecoderSummary } from '../../onnx/decoder-info.js';
import { dtypeInfo, dtypeName } from '../../onnx/dtypes.js';
import type { OnnxModel } from '../../onnx/model.js';
import { zeroValues, type DecodedTensor } from '../../onnx/tensor.js';
import { DataType } from '../../onnx/types.js';
import { toOrtTensor } from '../../runtime/ort-tensor.js';
import type { Feeds } from '../../runtime/session.js';
import { CalibrationDataError } from './errors.js';
import { describeInput, requiredInputs, type ModelInput } from './model-inputs.js';

export const IDS_INPUT = 'input_ids';

export interface DecoderFeeder {
  /** A fixed batch size the model declares on input_ids, if any. */
  readonly fixedBatch?: number;
  /** A fixed sequence length the model declares on input_ids, if any. */
  readonly fixedSequence?: number;
  /** Feeds for windows of equal length, one row per window. */
  feeds(windows: readonly (readonly number[])[]): Feeds;
}

/** Makes one input's tensor for a batch of windows (all of one length). */
type Filler = (windows: readonly (readonly number[])[]) => Tensor;

/**
 * Plans the feeds once per model, so that a bad signature is reported before any data is read. `summary` is
 * describeDecoder's view of the model (cache inputs, kv heads, head size), null when it sees no decoder.
 */
export function decoderFeeder(model: OnnxModel, summary: DecoderSummary | null): DecoderFeeder {
  const inputs = requiredInputs(model);
  const ids = inputs.find((i) => i.name === IDS_INPUT);
  if (!ids) {
    throw new CalibrationDataError(
      `${model.source}: token sets need a model with an '${IDS_INPUT}' input (inputs: ${inputs.map((i) => i.name).join(', ')}); use a tensor set`,
    );
  }
  if (ids.dtype !== DataType.INT64 && ids.dtype !== DataType.INT32) {
    throw new CalibrationDataError(`${model.source}: input '${IDS_INPUT}' is ${describeInput(ids)}; token ids need int64 or int32`);
  }
  const fillers = new Map<string, Filler>();
  for (const input of inputs) fillers.set(input.name, fillerFor(model, input, summary));
  const [batchDim, sequenceDim] = ids.dims ?? [];
  return {
    ...(batchDim ? { fixedBatch: batchDim } : {}),
    ...(sequenceDim ? { fixedSequence: sequenceDim } : {}),
    feeds(windows) {
      const feeds: Feeds = {};
      for (const [name, fill] of fillers) feeds[name] = fill(windows);
      return feeds;
    },
  };
}

function fillerFor(model: OnnxModel, input: ModelInput, summary: DecoderSummary | null): Filler {
  const { name, dtype } = input;
  const numeric = (what: string) => {
    const info = dtypeInfo(dtype);
    if (info.ort === null || info.kind === 'string' || info.kind === 'complex') {
      throw new CalibrationDataError(`${model.source}: input '${name}' is ${dtypeName(dtype)}, which cannot hold ${what}`);
    }
  };
  if (name === IDS_INPUT) {
    return (windows) => filled(dtype, [windows.length, windows[0].length], (row, column) => windows[row][column]);
  }
  if (name === 'attention_mask') {
    numeric('an attention mask');
    return (windows) => filled(dtype, [windows.length, windows[0].length], () => 1);
  }
  if (name === 'position_ids') {
    numeric('position ids');
    return (windows) => filled(dtype, [windows.length, windows[0].length], (_, column) => column);
  }
  if (name === 'use_cache_branch') {
    numeric('a flag');
    return () => filled(dtype, [1], () => 0);
  }
  if (summary?.kvCacheInputs.includes(name)) {
    numeric('a key/value cache');
    const [heads, headDim] = cacheDims(model, input, summary);
    return (windows) => filled(dtype, [windows.length, heads, 0, headDim], () => 0);
  }
  throw new CalibrationDataError(
    `${model.source}: input '${name}' cannot be filled from a token set (a decoder's inputs are input_ids, attention_mask, position_ids, past key/values and use_cache_branch)`,
  );
}

/** kv heads and head size of a cache input: its own fixed dims first, then describeDecoder's figures. */
function cacheDims(model: OnnxModel, input: ModelInput, summary: DecoderSummary): [number, number] {
  if (input.dims && input.dims.length !== 4) {
    throw new CalibrationDataError(`${model.source}: cache input '${input.name}' is ${describeInput(input)}; expected [batch, kv_heads, past, head_dim]`);
  }
  const heads = input.dims?.[1] ?? summary.kvHeads;
  const headDim = input.dims?.[3] ?? summary.headDim;
  if (heads === null || headDim === null) {
    throw new CalibrationDataError(
      `${model.source}: cache input '${input.name}' has no fixed kv_heads/head_dim and the model gives none (add them to config.json)`,
    );
  }
  return [heads, headDim];
}

/**
 * An ORT tensor of `dtype` built in tensor.ts's value containers; valueAt(row, column) gives each element, with
 * the last axis as the column.
 */
function filled(dtype: number, dims: number[], valueAt: (row: number, column: number) => number): Tensor {
  const count = dims.reduce((a, b) => a * b, 1);
  const columns = dims.at(-1) || 1;
  const data = zeroValues(dtype, count);
  const big = data instanceof BigInt64Array || data instanceof BigUint64Array;
  const out = data as unknown as (number | bigint)[];
  for (let i = 0; i < count; i++) {
    const value = valueAt(Math.floor(i / columns), i % columns);
    out[i] = big ? BigInt(value) : value;
  }
  const decoded: DecodedTensor = { dtype, dims, data };
  return toOrtTensor(decoded);
}
