// Corrupted and truncated models must give a model or a clean, one-line error: never an unexpected exception
// type (a crash in a user's terms) and never a hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadModel, ModelError } from '../src/onnx/model.js';
import { summarize } from '../src/onnx/summary.js';
import { DTypeError } from '../src/onnx/dtypes.js';
import { TESTDATA_ROOT } from './support/testdata.js';
import { mulberry32 } from './support/prng.js';

const ATTEMPTS = 1000;
// Weights, a subgraph-free conv model from the pytorch exporter, and a model with Loop/If subgraphs.
const SEEDS = ['pytorch-converted/test_ConvTranspose2d/model.onnx', 'node/test_loop13_seq/model.onnx', 'node/test_if/model.onnx'];

type Mutation = (b: Buffer, rnd: () => number) => Buffer;
const int = (rnd: () => number, n: number) => Math.floor(rnd() * n);
const MUTATIONS: Mutation[] = [
  (b, rnd) => b.subarray(0, int(rnd, b.length)), // truncate
  (b, rnd) => {
    const c = Buffer.from(b);
    for (let i = 0, n = 1 + int(rnd, 8); i < n; i++) c[int(rnd, c.length)] = int(rnd, 256); // overwrite bytes
    return c;
  },
  (b, rnd) => {
    const c = Buffer.from(b);
    c[int(rnd, c.length)] ^= 1 << int(rnd, 8); // flip one bit
    return c;
  },
  (b, rnd) => {
    const at = int(rnd, b.length); // insert random bytes
    const junk = Buffer.from(Array.from({ length: 1 + int(rnd, 16) }, () => int(rnd, 256)));
    return Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]);
  },
  (b, rnd) => {
    const at = int(rnd, b.length); // delete a span
    return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + int(rnd, 16))]);
  },
  (b, rnd) => {
    const c = Buffer.from(b); // a huge varint, as a length or a dimension
    const at = int(rnd, c.length - 5);
    c.set([0xff, 0xff, 0xff, 0xff, 0x0f], at);
    return c;
  },
];

test(`${ATTEMPTS} mutated models give a model or a clean error`, (t) => {
  const rnd = mulberry32(20261127);
  const seeds = SEEDS.map((s) => readFileSync(`${TESTDATA_ROOT}/${s}`));
  let loaded = 0;
  let rejected = 0;
  const started = Date.now();
  for (let i = 0; i < ATTEMPTS; i++) {
    const seed = seeds[i % seeds.length];
    const mutated = MUTATIONS[int(rnd, MUTATIONS.length)](seed, rnd);
    const attemptStart = Date.now();
    try {
      summarize(loadModel(mutated, { name: `mutant-${i}.onnx` }));
      loaded++;
    } catch (e) {
      if (!(e instanceof ModelError || e instanceof DTypeError)) {
        assert.fail(`attempt ${i}: unexpected ${(e as Error).constructor.name}: ${(e as Error).message}`);
      }
      assert.ok(!(e as Error).message.includes('\n'), `attempt ${i}: multi-line message`);
      rejected++;
    }
    assert.ok(Date.now() - attemptStart < 2000, `attempt ${i} took too long`);
  }
  t.diagnostic(`${ATTEMPTS} attempts: ${loaded} loaded, ${rejected} rejected cleanly, ${Date.now() - started} ms`);
  assert.equal(loaded + rejected, ATTEMPTS);
  assert.ok(rejected > ATTEMPTS / 10, 'the mutations should break a fair share of models');
});
