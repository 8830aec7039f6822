// Kernels registered on top of tfjs's backends:
//   - UnsortedSegmentSum (the gradient of Gather, so of every embedding lookup) as a plain loop over rows, for
//     wasm, which lacks it, and for cpu, whose own runs one masked sum per segment (O(segments x rows): over a
//     second for one backward pass of the tiny decoder's 1024-row rotary tables);
//   - the kernels wasm lacks for convolution gradients, and the few wasm kernels that compute wrong results,
//     both delegated to the cpu backend's kernel on the inputs' values read out of wasm memory (exact, at the
//     cost of a copy each way).
import * as tf from '@tensorflow/tfjs-core';

/** Kernels tfjs-backend-wasm 4.22.0 does not have, run by the cpu backend's. */
export const WASM_MISSING_KERNELS = ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput'] as const;

/** Kernels tfjs-backend-wasm 4.22.0 has but gets wrong (found by the conformance and gradient tests). */
export const WASM_BROKEN_KERNELS: Readonly<Record<string, string>> = {
  // 3-D transposed convolution (ConvTranspose 3-D, and the input gradient of Conv 3-D).
  Conv3DBackpropInputV2: 'results differ from the cpu kernel and the ONNX reference',
  // The filter gradient of Conv 3-D.
  Conv3DBackpropFilterV2: 'wrong with unequal strides (part of the filter gradient is zero)',
  MaxPool3D: 'starts its running maximum at the smallest positive float, so all-negative windows give 1.2e-38',
  // The gradient of MaxPool: seen with channels-last data of 2 channels.
  MaxPoolGrad: 'loses part of the gradient for some inputs',
};

/** Backends whose UnsortedSegmentSum is replaced by the row loop. */
export const SEGMENT_SUM_BACKENDS = ['wasm', 'cpu'] as const;

interface DataBackend {
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  write(values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): tf.DataId;
  disposeData(dataId: tf.DataId): boolean;
}

/**
 * An output tensor holding host values. The backends name this differently (and cpu's own makeOutput takes
 * other arguments than wasm's), so it goes by backend name.
 */
function output(backendName: string, backend: unknown, shape: number[], dtype: tf.DataType, values: tf.backend_util.BackendValues): tf.TensorInfo {
  if (backendName === 'wasm') {
    const wasm = backend as { makeOutput(s: number[], d: tf.DataType, offset: undefined, v: tf.backend_util.BackendValues): tf.TensorInfo };
    return wasm.makeOutput(shape, dtype, undefined, values);
  }
  const cpu = backend as { makeTensorInfo(s: number[], d: tf.DataType, v: tf.backend_util.BackendValues): tf.TensorInfo };
  return cpu.makeTensorInfo(shape, dtype, values);
}

/** out[segmentIds[i], ...] += x[i, ...]; rows with an id outside [0, numSegments) are dropped, as in TF. */
function segmentSum(backendName: string): tf.KernelConfig {
  return {
    kernelName: 'UnsortedSegmentSum',
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const data = backend as unknown as DataBackend;
      const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
      const numSegments = attrs?.numSegments as number;
      const values = data.readSync(x.dataId) as Float32Array | Int32Array;
      const ids = data.readSync(segmentIds.dataId) as Int32Array;
      const rowSize = ids.length === 0 ? 0 : values.length / ids.length;
      const out = x.dtype === 'int32' ? new Int32Array(numSegments * rowSize) : new Float32Array(numSegments * rowSize);
      for (let row = 0; row < ids.length; row++) {
        const id = ids[row];
        if (id < 0 || id >= numSegments) continue;
        const from = row * rowSize;
        const to = id * rowSize;
        for (let k = 0; k < rowSize; k++) out[to + k] += values[from + k];
      }
      return output(backendName, backend, [numSegments, ...x.shape.slice(segmentIds.shape.length)], x.dtype, out);
    },
  };
}

function delegateToCpu(kernelName: string): tf.KernelConfig {
  return {
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as unknown as DataBackend;
      const cpu = tf.findBackend('cpu') as unknown as DataBackend & tf.KernelBackend;
      const cpuKernel = tf.getKernel(kernelName, 'cpu');
      if (!cpu || !cpuKernel) throw new Error(`${kernelName} on wasm needs the cpu backend's kernel, which is not registered`);
      const moved: tf.NamedTensorInfoMap = {};
      for (const [name, t] of Object.entries(inputs)) {
        if (t) moved[name] = { dataId: cpu.write(wasm.readSync(t.dataId), t.shape, t.dtype), shape: t.shape, dtype: t.dtype };
      }
      try {
        const out = cpuKernel.kernelFunc({ inputs: moved, backend: cpu, attrs });
        const back = (o: tf.TensorInfo): tf.TensorInfo => {
          const result = output('wasm', wasm, o.shape, o.dtype, cpu.readSync(o.dataId));
          cpu.disposeData(o.dataId);
          return result;
        };
        return Array.isArray(out) ? out.map(back) : back(out);
      } finally {
        for (const t of Object.values(moved)) if (t) cpu.disposeData(t.dataId);
      }
    },
  };
}

let registered = false;

/** Registers the kernels above (once per process), replacing the backends' own where they have one. */
export function registerKernels(): void {
  if (registered) return;
  registered = true;
  const replace = (config: tf.KernelConfig) => {
    if (tf.getKernel(config.kernelName, config.backendName)) tf.unregisterKernel(config.kernelName, config.backendName);
    tf.registerKernel(config);
  };
  for (const backendName of SEGMENT_SUM_BACKENDS) replace(segmentSum(backendName));
  for (const name of [...WASM_MISSING_KERNELS, ...Object.keys(WASM_BROKEN_KERNELS)]) replace(delegateToCpu(name));
}
