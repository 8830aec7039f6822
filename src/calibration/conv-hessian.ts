// H = XᵀX of a Conv's input as its weight sees it: over the im2col patches the kernel reads (the node's strides,
// pads or auto_pad, dilations), one K x K sum per group with K = C/group x kernel size, patch elements ordered as
// the weight [O, C/group, k1, ...] flattens after its first axis, so row o of the weight reshaped to [O, K] times a
// patch is output channel o at that position. This is what GPTQ needs to solve a Conv weight, in the same
// `Hessian` form as a MatMul's (hessian.ts), one per group. Memory is group x K² (a depthwise conv: C x kernel²),
// plus one bounded chunk of patches.
//
// The patches of one item and group are summed through hessian.ts's own accumulator (a [positions, K] matrix is
// exactly its 'rows' input), so both kinds share one XᵀX kernel.
import { attrInt, attrInts, attrString } from '../onnx/attributes.js';
import type { NodeProto } from '../onnx/types.js';
import { slidingWindow } from '../runtime/tf/ops/spatial.js';
import { OptionError } from '../errors.js';
import type { ActivationAccumulator } from './collect.js';
import { HessianAccumulator, type Hessian } from './hessian.js';

export interface ConvHessianRequest {
  /** What the Hessians are looked up by (the node's label); Convs with the same input and geometry share one sum. */
  key: string;
  node: NodeProto;
  /** The weight's dims [O, C/group, k1, ...]: the kernel's spatial size when kernel_shape is not given. */
  weightDims: readonly number[];
}

interface ConvSum {
  /** The first requesting node's label, for messages. */
  label: string;
  tensor: string;
  node: NodeProto;
  kernel: number[];
  group: number;
  /** Input channels per group. */
  channels: number;
  /** One 'rows' Hessian per group, keyed '0', '1', ... */
  sums: HessianAccumulator;
  hessians?: Hessian[];
}

/** Patches per chunk handed to the XᵀX kernel: bounds the im2col buffer (values), a multiple of its 16-row chunks. */
const CHUNK_VALUES = 1 << 20;

/** XᵀX over im2col patches per requested Conv, per group; give it to collectStatistics as an accumulator. */
export class ConvHessianAccumulator implements ActivationAccumulator {
  readonly targets: readonly string[];
  private readonly byKey = new Map<string, ConvSum>();
  private readonly byTensor = new Map<string, ConvSum[]>();

  constructor(requests: readonly ConvHessianRequest[]) {
    const bySignature = new Map<string, ConvSum>();
    for (const r of requests) {
      const tensor = r.node.input[0]!;
      const kernel = r.weightDims.slice(2);
      const group = attrInt(r.node, 'group', 1);
      const label = `Conv Hessian: node ${r.key}`;
      if (r.weightDims.length < 3) throw new OptionError(`${label}: weight is ${r.weightDims.length}-D; a Conv weight is [O, C/group, k1, ...]`);
      if (r.weightDims[0] % group !== 0) throw new OptionError(`${label}: ${r.weightDims[0]} output channels do not split into ${group} groups`);
      const shape = attrInts(r.node, 'kernel_shape', kernel);
      if (shape.join() !== kernel.join()) throw new OptionError(`${label}: kernel_shape [${shape.join(', ')}] disagrees with its weight's [${kernel.join(', ')}]`);
      const geometry = JSON.stringify([
        tensor,
        kernel,
        group,
        attrInts(r.node, 'strides', []),
        attrInts(r.node, 'dilations', []),
        attrInts(r.node, 'pads', []),
        attrString(r.node, 'auto_pad', 'NOTSET'),
      ]);
      let sum = bySignature.get(geometry);
      if (!sum) {
        const sums = new HessianAccumulator(Array.from({ length: group }, (_, g) => ({ tensor: String(g), unit: 'rows' as const })));
        sum = { label: r.key, tensor, node: r.node, kernel, group, channels: r.weightDims[1], sums };
        bySignature.set(geometry, sum);
        const list = this.byTensor.get(tensor) ?? [];
        list.push(sum);
        this.byTensor.set(tensor, list);
      }
      this.byKey.set(r.key, sum);
    }
    this.targets = [...this.byTensor.keys()];
  }

  add(name: string, values: Float32Array, dims: readonly number[]): void {
    for (const s of this.byTensor.get(name) ?? []) accumulate(s, values, dims);
  }

  finish(): void {
    for (const s of new Set(this.byKey.values())) {
      s.sums.finish();
      const hessians = Array.from({ length: s.group }, (_, g) => s.sums.get(String(g)));
      if (hessians.every((h) => h !== undefined)) s.hessians = hessians.map((h) => ({ ...h!, tensor: s.tensor }));
    }
  }

  /** The per-group Hessians (index g: the input of output channels g·O/group ...), after finish(); undefined when never seen. */
  get(key: string): Hessian[] | undefined {
    return this.byKey.get(key)?.hessians;
  }

  /** Bytes the finished sums hold. */
  get bytes(): number {
    let n = 0;
    for (const s of new Set(this.byKey.values())) for (const h of s.hessians ?? []) n += h.h.byteLength + h.sum.byteLength;
    return n;
  }
}

/** Where each patch element reads the input: per output position and kernel tap, the spatial offset or -1 (padding). */
interface Taps {
  positions: number;
  /** Kernel taps (product of the kernel). */
  size: number;
  offsets: Int32Array;
}

function taps(s: ConvSum, inSizes: readonly number[]): Taps {
  let window;
  try {
    window = slidingWindow(s.node, inSizes, s.kernel);
  } catch (e) {
    throw new OptionError(`Conv Hessian: node ${s.label}: ${(e as Error).message}`);
  }
  const rank = inSizes.length;
  const { strides, dilations, before, after } = window;
  const outSizes = inSizes.map((n, i) => Math.max(0, Math.floor((n + before[i] + after[i] - ((s.kernel[i] - 1) * dilations[i] + 1)) / strides[i]) + 1));
  const positions = outSizes.reduce((a, b) => a * b, 1);
  const size = s.kernel.reduce((a, b) => a * b, 1);
  const offsets = new Int32Array(positions * size);
  const out = new Array<number>(rank).fill(0);
  const tap = new Array<number>(rank).fill(0);
  for (let p = 0; p < positions; p++) {
    for (let q = 0; q < size; q++) {
      let offset = 0;
      for (let i = 0; i < rank; i++) {
        const at = out[i] * strides[i] - before[i] + tap[i] * dilations[i];
        if (at < 0 || at >= inSizes[i]) {
          offset = -1;
          break;
        }
        offset = offset * inSizes[i] + at;
      }
      offsets[p * size + q] = offset;
      step(tap, s.kernel);
    }
    step(out, outSizes);
  }
  return { positions, size, offsets };
}

/** Next index of a row-major odometer over `sizes` (wraps to zeros after the last). */
function step(index: number[], sizes: readonly number[]): void {
  for (let i = index.length - 1; i >= 0; i--) {
    if (++index[i] < sizes[i]) return;
    index[i] = 0;
  }
}

function accumulate(s: ConvSum, values: Float32Array, dims: readonly number[]): void {
  const where = `Conv Hessian: node ${s.label}: input '${s.tensor}'`;
  if (dims.length !== s.kernel.length + 2) throw new OptionError(`${where} is ${dims.length}-D; its ${s.kernel.length}-D kernel needs ${s.kernel.length + 2}-D (N, C, ...)`);
  const [items, channels] = dims;
  if (channels !== s.channels * s.group) throw new OptionError(`${where} has ${channels} channels; the weight reads ${s.channels} x ${s.group} groups`);
  const inSizes = dims.slice(2);
  const plane = inSizes.reduce((a, b) => a * b, 1);
  const t = taps(s, inSizes);
  const k = s.channels * t.size;
  if (t.positions === 0 || k === 0) return;
  const chunk = Math.min(t.positions, Math.max(16, Math.floor(CHUNK_VALUES / k / 16) * 16));
  const patches = new Float32Array(chunk * k);
  for (let n = 0; n < items; n++) {
    for (let g = 0; g < s.group; g++) {
      const first = (n * channels + g * s.channels) * plane;
      for (let p0 = 0; p0 < t.positions; p0 += chunk) {
        const rows = Math.min(chunk, t.positions - p0);
        for (let r = 0; r < rows; r++) {
          const tapRow = (p0 + r) * t.size;
          for (let c = 0; c < s.channels; c++) {
            const base = first + c * plane;
            const out = r * k + c * t.size;
            for (let q = 0; q < t.size; q++) {
              const offset = t.offsets[tapRow + q];
              patches[out + q] = offset < 0 ? 0 : values[base + offset];
            }
          }
        }
        s.sums.add(String(g), patches.subarray(0, rows * k), [rows, k]);
      }
    }
  }
}
