// A model with nothing a scheme can quantize is refused with that reason first: a w8a8 run with --clip once said
// "--clip: scheme w8a8 quantizes no activation", sending the user after the flag instead of the model.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { OnnxModel } from '../src/onnx/model.js';
import { saveModel } from '../src/onnx/save.js';
import { DataType } from '../src/onnx/types.js';
import { quantizePass as quantizeStep, type QuantizeOptions } from '../src/passes/quantize.js';
import { runSteps } from '../src/passes/runner.js';
import { clipChoice } from '../src/quantization/ranges.js';

const dir = mkdtempSync(join(tmpdir(), 'quantize-no-node-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** a [4, 8] x b [8, 4] -> MatMul: both operands are inputs, so no node has a constant weight. */
function noWeights(): string {
  const b = new GraphBuilder('no-weights');
  b.input('a', DataType.FLOAT, [4, 8]);
  b.input('b', DataType.FLOAT, [8, 4]);
  b.node('MatMul', ['a', 'b'], ['y'], undefined, { name: 'product' });
  b.output('y', DataType.FLOAT, [4, 4]);
  const path = join(dir, 'no-weights.onnx');
  saveModel(new OnnxModel(modelFrom(b.graph, { opsets: { '': 13 } }), undefined, 'no-weights'), path);
  return path;
}

describe('nothing to quantize', () => {
  const path = noWeights();
  const cases: [string, QuantizeOptions][] = [
    ['w8a8 with --clip minmax', { scheme: 'w8a8', clip: clipChoice('minmax') }],
    ['w8a8 with --clip percentile', { scheme: 'w8a8', clip: clipChoice('percentile', 99.9) }],
    ['w8a8 without --clip', { scheme: 'w8a8' }],
  ];
  for (const [what, options] of cases) {
    it(`${what}: the no-node error, naming the model, before anything about clipping or calibration`, async () => {
      await assert.rejects(
        runSteps(path, [{ pass: quantizeStep, options, where: 'quantize' }], { out: join(dir, 'out.onnx') }),
        (e: Error) => {
          assert.match(e.message, /no node to quantize with scheme w8a8/);
          assert.ok(e.message.includes(path), e.message);
          assert.doesNotMatch(e.message, /--clip|calibration/, e.message);
          return true;
        },
      );
    });
  }
});
