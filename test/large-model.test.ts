// A model over protobuf's 2 GiB limit, made on the fly (sparse source file, so it costs little disk),
// opened and re-saved with peak memory far below its size. The copy writes 2.5 GiB (about 10 s here), so the
// test steps aside on a disk without room for it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, statfsSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeModel } from '../src/onnx/codec.js';
import { DataLocation, type ModelProto, type TensorProto } from '../src/onnx/types.js';

const TENSORS = 5;
const ROWS = 131072;
const COLS = 1024; // 512 MiB of float32 per tensor, 2.5 GiB in all
const TENSOR_BYTES = ROWS * COLS * 4;

function externalTensor(i: number): TensorProto {
  return {
    name: `w${i}`,
    dims: [ROWS, COLS],
    dataType: 1,
    dataLocation: DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: 'weights.bin' },
      { key: 'offset', value: String(i * TENSOR_BYTES) },
      { key: 'length', value: String(TENSOR_BYTES) },
    ],
    floatData: [], int32Data: [], stringData: [], int64Data: [], doubleData: [], uint64Data: [], metadataProps: [],
  };
}

function largeModel(): ModelProto {
  const names = Array.from({ length: TENSORS }, (_, i) => `w${i}`);
  return {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    metadataProps: [], trainingInfo: [], functions: [], configuration: [],
    graph: {
      name: 'large',
      node: [{ opType: 'Sum', input: names, output: ['y'], attribute: [], metadataProps: [], deviceConfigurations: [] }],
      initializer: names.map((_, i) => externalTensor(i)),
      sparseInitializer: [], input: [], valueInfo: [], quantizationAnnotation: [], metadataProps: [],
      output: [{ name: 'y', metadataProps: [], type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: ROWS }, { dimValue: COLS }] } } } }],
    },
  };
}

const marker = (i: number) => Buffer.from(`tensor-${i}-marker`);

function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}
const needed = 2 * TENSORS * TENSOR_BYTES;
const lowDisk = freeBytes(tmpdir()) < needed && `needs ${needed / 2 ** 30} GiB free in ${tmpdir()}`;

test('a model over 2 GiB opens and re-saves with bounded memory', { skip: lowDisk }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'onnx-compress-large-'));
  try {
    const fd = openSync(join(dir, 'weights.bin'), 'w');
    ftruncateSync(fd, TENSORS * TENSOR_BYTES);
    // Markers at each tensor's start and end prove the copy moved the right ranges.
    for (let i = 0; i < TENSORS; i++) {
      writeSync(fd, marker(i), 0, marker(i).length, i * TENSOR_BYTES);
      writeSync(fd, marker(i), 0, marker(i).length, (i + 1) * TENSOR_BYTES - marker(i).length);
    }
    closeSync(fd);
    writeFileSync(join(dir, 'large.onnx'), encodeModel(largeModel()));

    const child = fileURLToPath(new URL('./support/resave-child.js', import.meta.url));
    const out = JSON.parse(execFileSync(process.execPath, [child, join(dir, 'large.onnx'), join(dir, 'copy.onnx')], { encoding: 'utf8' }));
    t.diagnostic(`model ${(out.bytes / 2 ** 30).toFixed(2)} GiB, peak RSS ${(out.maxRssBytes / 2 ** 20).toFixed(0)} MiB, ${out.seconds} s`);
    assert.equal(out.bytes, TENSORS * TENSOR_BYTES);
    assert.ok(out.maxRssBytes < 256 * 2 ** 20, `peak RSS ${out.maxRssBytes} should stay under 256 MiB`);

    const copy = join(dir, 'copy.onnx_data');
    assert.equal(statSync(copy).size, TENSORS * TENSOR_BYTES);
    const cfd = openSync(copy, 'r');
    try {
      for (let i = 0; i < TENSORS; i++) {
        const head = Buffer.alloc(marker(i).length);
        readSync(cfd, head, 0, head.length, i * TENSOR_BYTES);
        assert.deepEqual(head, marker(i));
        readSync(cfd, head, 0, head.length, (i + 1) * TENSOR_BYTES - head.length);
        assert.deepEqual(head, marker(i));
      }
    } finally {
      closeSync(cfd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
