// A small ResNet-style image classifier for the benches that need a multi-layer CNN: Debian's conformance suite
// has only single-layer Conv models (its `real` ResNet/SqueezeNet folders are download pointers), and a bit
// allocation over one layer has nothing to choose. Weights are He-initialised from a fixed seed with a
// heavy-tailed (Laplace) draw and a per-layer gain, so layers differ in size and in how much quantization hurts
// them, as trained layers do; inputs are written as ONNX test-data folders, the layout `--calib` reads.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, modelFrom } from '../../src/onnx/builder.js';
import { encodeTensor } from '../../src/onnx/codec.js';
import { OnnxModel } from '../../src/onnx/model.js';
import { saveModel } from '../../src/onnx/save.js';
import { makeTensor } from '../../src/onnx/tensor.js';
import { DataType } from '../../src/onnx/types.js';
import { seededRandom } from '../../src/util/prng.js';

export const CNN_INPUT = 'image';
export const CNN_SIZE = 32;
export const CNN_CLASSES = 10;

function laplace(random: () => number, n: number, std: number): Float32Array {
  // Laplace with scale b has standard deviation b·√2.
  const b = std / Math.SQRT2;
  return Float32Array.from({ length: n }, () => {
    const u = random() - 0.5;
    return -b * Math.sign(u) * Math.log(1 - 2 * Math.abs(u));
  });
}

/** The classifier: stem, two residual stages with strided downsampling, global pooling, a fully connected head. */
export function smallCnn(seed = 7): OnnxModel {
  const random = seededRandom(seed);
  const b = new GraphBuilder('small_resnet');
  b.input(CNN_INPUT, DataType.FLOAT, ['batch', 3, CNN_SIZE, CNN_SIZE]);
  let layer = 0;
  const conv = (x: string, cin: number, cout: number, stride = 1): string => {
    const name = `conv${layer++}`;
    const gain = 0.6 + 0.8 * random();
    const w = b.initializer(`${name}.weight`, DataType.FLOAT, [cout, cin, 3, 3], laplace(random, cout * cin * 9, gain * Math.sqrt(2 / (cin * 9))));
    const bias = b.initializer(`${name}.bias`, DataType.FLOAT, [cout], laplace(random, cout, 0.05));
    return b.op('Conv', [x, w, bias], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [stride, stride] }, { name: `/${name}/Conv` });
  };
  const relu = (x: string): string => b.op('Relu', [x]);
  const residual = (x: string, c: number): string => relu(b.op('Add', [x, conv(relu(conv(x, c, c)), c, c)]));
  let x = relu(conv(CNN_INPUT, 3, 16));
  x = residual(x, 16);
  x = relu(conv(x, 16, 32, 2));
  x = residual(x, 32);
  x = relu(conv(x, 32, 64, 2));
  x = residual(x, 64);
  const flat = b.op('Flatten', [b.op('GlobalAveragePool', [x])]);
  const fc = b.initializer('fc.weight', DataType.FLOAT, [CNN_CLASSES, 64], laplace(random, CNN_CLASSES * 64, Math.sqrt(1 / 64)));
  const fcBias = b.initializer('fc.bias', DataType.FLOAT, [CNN_CLASSES], new Float32Array(CNN_CLASSES));
  b.output('logits', DataType.FLOAT, ['batch', CNN_CLASSES]);
  b.node('Gemm', [flat, fc, fcBias], ['logits'], { transB: 1 }, { name: '/fc/Gemm' });
  return new OnnxModel(modelFrom(b.graph, { opsets: { '': 17 } }), undefined, 'small-resnet');
}

/**
 * Writes the model and `count` generated images (smooth random fields plus noise, seeded) as test_data_set_<n>
 * folders under `dir`; returns the model's path and the data folder.
 */
export function writeSmallCnn(dir: string, count: number, seed = 11): { model: string; data: string } {
  mkdirSync(dir, { recursive: true });
  const model = join(dir, 'model.onnx');
  saveModel(smallCnn(), model);
  const data = join(dir, 'images');
  const random = seededRandom(seed);
  const n = CNN_SIZE;
  for (let s = 0; s < count; s++) {
    const folder = join(data, `test_data_set_${s}`);
    mkdirSync(folder, { recursive: true });
    const pixels = new Float32Array(3 * n * n);
    for (let c = 0; c < 3; c++) {
      // A few random plane waves per channel: images with structure at several scales, not white noise.
      const waves = Array.from({ length: 4 }, () => ({ fx: 6 * random() - 3, fy: 6 * random() - 3, phase: 2 * Math.PI * random(), amp: random() }));
      for (let y = 0; y < n; y++) {
        for (let x = 0; x < n; x++) {
          let v = 0.2 * (random() - 0.5);
          for (const w of waves) v += w.amp * Math.sin((2 * Math.PI * (w.fx * x + w.fy * y)) / n + w.phase);
          pixels[c * n * n + y * n + x] = v;
        }
      }
    }
    writeFileSync(join(folder, 'input_0.pb'), encodeTensor(makeTensor(CNN_INPUT, DataType.FLOAT, [1, 3, n, n], pixels)));
  }
  return { model, data };
}
