// The sample total a calibration progress bar shows is the count the collector reaches: a conformance
// test_data_set whose tensors hold a batch of 2 rows once read "calibrating: 2/1 samples". The oracle for the
// rows is the .pb files themselves, decoded here, not the set's own count.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { collectStatistics, type CollectProgress } from '../src/calibration/collect.js';
import { openCalibrationSet } from '../src/calibration/data/index.js';
import { decodeTensor } from '../src/onnx/codec.js';
import { loadModel } from '../src/onnx/model.js';
import { TESTDATA_ROOT } from './support/testdata.js';

/** Axis 0 of input_0.pb in every test_data_set folder of a conformance model. */
function rowsOnDisk(folder: string): number[] {
  return readdirSync(folder)
    .filter((f) => /^test_data_set_\d+$/.test(f))
    .map((f) => decodeTensor(readFileSync(join(folder, f, 'input_0.pb'))).dims[0]);
}

describe('calibration progress on tensor sets', () => {
  // A batch-of-2 sample (the case that overflowed) and a batch-of-1 one (where rows and files agree).
  for (const [suite, name] of [
    ['pytorch-converted', 'test_Conv2d'],
    ['node', 'test_conv_with_strides_padding'],
  ] as const) {
    it(`${suite}/${name}: the reported total equals the samples the collector counts`, async () => {
      const folder = join(TESTDATA_ROOT, suite, name);
      const rows = rowsOnDisk(folder);
      assert.ok(rows.length > 0, 'the folder has test_data_set samples');
      const model = loadModel(join(folder, 'model.onnx'));
      const set = await openCalibrationSet(folder, model);
      assert.equal(set.sampleCount, rows.length, 'a test_data_set folder is one sample, whatever its batch');
      const seen: CollectProgress[] = [];
      const stats = await collectStatistics(model, set, { onProgress: (p) => seen.push(p), session: { intraOpThreads: 1 } });
      const last = seen.at(-1)!;
      const expected = rows.reduce((a, b) => a + b, 0);
      assert.equal(stats.samples, expected, 'the collector counts the rows on disk');
      assert.equal(last.samples, expected);
      assert.equal(last.totalSamples, expected, `progress ends at ${last.samples}/${last.totalSamples}`);
      assert.ok(seen.every((p) => p.samples <= p.totalSamples), 'never past the total');
    });
  }
});
