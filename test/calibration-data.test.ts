// Calibration data loading: every layout on tiny fixtures (test/fixtures/calibration, see its README) and on the
// shipped sets with tiny-llama, feeds checked by running them in ONNX Runtime; seeded selection; streaming; and
// each kind of bad input with its one-line message.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Tensor } from 'onnxruntime-node';
import { CalibrationDataError, openCalibrationSet, type CalibrationOptions, type CalibrationSet } from '../src/calibration/data/index.js';
import { readNpyHeader, readNpyRows } from '../src/calibration/data/npy.js';
import { selectIndices } from '../src/calibration/data/selection.js';
import { isByteLevel } from '../src/calibration/data/tokenizers.js';
import { GraphBuilder, modelFrom, type Dim } from '../src/onnx/builder.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import { DataType } from '../src/onnx/types.js';
import type { Feeds } from '../src/runtime/session.js';
import { Session } from '../src/runtime/session.js';
import { mulberry32 } from './support/prng.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(ROOT, 'test/fixtures/calibration');
const SETS = join(ROOT, 'calibration-sets');
const TINY_LLAMA = join(ROOT, 'models/tiny-llama/onnx/model.onnx');
const tinyLlama = loadModel(TINY_LLAMA);
const tiny = JSON.parse(readFileSync(join(ROOT, 'models/tiny-llama/config.json'), 'utf8')) as Record<string, number>;
const BOS = tiny.bos_token_id;
const EOS = tiny.eos_token_id;

const dir = mkdtempSync(join(tmpdir(), 'calibration-data-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// --- helpers ------------------------------------------------------------------------------------------------

async function collect(set: CalibrationSet): Promise<Feeds[]> {
  const out: Feeds[] = [];
  for await (const feeds of set.batches()) out.push(feeds);
  return out;
}

/** Rows of a [batch, n] integer tensor as plain numbers. */
function rows(t: Tensor): number[][] {
  const [batch, n] = t.dims;
  const flat = Array.from(t.data as ArrayLike<number | bigint>, Number);
  return Array.from({ length: batch }, (_, r) => flat.slice(r * n, (r + 1) * n));
}

async function windowsOf(set: CalibrationSet): Promise<number[][]> {
  return (await collect(set)).flatMap((f) => rows(f.input_ids));
}

/** name: type[dims] for every feed, sorted, to compare signatures at a glance. */
function signature(feeds: Feeds): string[] {
  return Object.entries(feeds)
    .map(([name, t]) => `${name}: ${t.type}[${t.dims.join(',')}]`)
    .sort();
}

/** Asserts a CalibrationDataError whose message matches and is one line. */
async function rejectsWith(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof CalibrationDataError, `expected a CalibrationDataError, got ${e}`);
    assert.match(e.message, pattern);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
}

async function runAll(model: OnnxModel | string, set: CalibrationSet, fetch: string): Promise<Tensor[]> {
  const session = await Session.create(model);
  try {
    const out: Tensor[] = [];
    for await (const feeds of set.batches()) out.push((await session.run(feeds, [fetch]))[fetch]);
    return out;
  } finally {
    await session.dispose();
  }
}

/** The byte-level stream tiny-llama sees for text documents: BOS, UTF-8 bytes, EOS after each. */
function byteStream(...texts: string[]): number[] {
  return texts.flatMap((t) => [BOS, ...Buffer.from(t, 'utf8'), EOS]);
}

/** A model with inputs x float32 [batch, 3] and ids int64 [batch, 2]; outputs y = x + x and z = ids. */
function tensorModel(xDims: Dim[] = ['batch', 3]): OnnxModel {
  const b = new GraphBuilder('tensor-model');
  b.input('x', DataType.FLOAT, xDims);
  b.input('ids', DataType.INT64, ['batch', 2]);
  b.node('Add', ['x', 'x'], ['y']);
  b.node('Identity', ['ids'], ['z']);
  b.output('y', DataType.FLOAT, xDims);
  b.output('z', DataType.INT64, ['batch', 2]);
  return new OnnxModel(modelFrom(b.graph), undefined, 'tensor-model');
}

interface DecoderShape {
  idsType?: DataType;
  /** Declared [batch, sequence] of input_ids. */
  idsDims?: Dim[];
  /** Cache inputs' element type and declared shape; none when absent. */
  cache?: { dtype: DataType; dims: Dim[] };
  useCacheBranch?: boolean;
  extraInput?: string;
  /** Written as config.json beside the model. */
  config?: Record<string, unknown>;
}

/** A decoder-shaped model (the optimum input layout, one layer) whose output is its input_ids; runs in ORT. */
function decoderModel(name: string, shape: DecoderShape = {}): OnnxModel {
  const folder = join(dir, name);
  mkdirSync(folder, { recursive: true });
  const idsType = shape.idsType ?? DataType.INT64;
  const b = new GraphBuilder(name);
  b.input('input_ids', idsType, shape.idsDims ?? ['batch', 'sequence']);
  b.input('attention_mask', idsType, ['batch', 'total']);
  b.input('position_ids', idsType, shape.idsDims ?? ['batch', 'sequence']);
  if (shape.cache) for (const kind of ['key', 'value']) b.input(`past_key_values.0.${kind}`, shape.cache.dtype, shape.cache.dims);
  if (shape.useCacheBranch) b.input('use_cache_branch', DataType.BOOL, [1]);
  if (shape.extraInput) b.input(shape.extraInput, DataType.INT64, ['batch', 'sequence']);
  b.node('Identity', ['input_ids'], ['logits']);
  b.output('logits', idsType, ['batch', 'sequence']);
  if (shape.config) writeFileSync(join(folder, 'config.json'), JSON.stringify(shape.config));
  return new OnnxModel(modelFrom(b.graph), folder, join(folder, 'model.onnx'));
}

const CAUSAL = { architectures: ['LlamaForCausalLM'] };

// --- token sets ---------------------------------------------------------------------------------------------

describe('token sets (JSONL) for decoder language models', () => {
  it('a shipped text set gives tiny-llama its full signature and runs in ONNX Runtime', async () => {
    const set = await openCalibrationSet(join(SETS, 'prose'), tinyLlama, { samples: 3, sequenceLength: 32, batchSize: 2 });
    assert.equal(set.kind, 'text');
    assert.equal(set.source, join(SETS, 'prose', 'calibration.jsonl'));
    assert.equal(set.sampleCount, 3);
    assert.equal(set.tokenCount, 96);
    const batches = await collect(set);
    assert.deepEqual(batches.map((f) => f.input_ids.dims), [[2, 32], [1, 32]]);
    const cache = [0, 1, 2, 3].flatMap((i) => [`past_key_values.${i}.key: float32[2,2,0,32]`, `past_key_values.${i}.value: float32[2,2,0,32]`]);
    assert.deepEqual(signature(batches[0]), ['attention_mask: int64[2,32]', 'input_ids: int64[2,32]', ...cache, 'position_ids: int64[2,32]'].sort());
    assert.deepEqual(rows(batches[0].attention_mask), [Array(32).fill(1), Array(32).fill(1)]);
    assert.deepEqual(rows(batches[0].position_ids)[1], Array.from({ length: 32 }, (_, i) => i));
    const logits = await runAll(tinyLlama, set, 'logits');
    assert.deepEqual(logits.map((t) => t.dims), [[2, 32, 259], [1, 32, 259]]);
  });

  it('a shipped set can be given by name, and reads the same as its folder', async () => {
    const byName = await openCalibrationSet('prose', tinyLlama, { samples: 2, sequenceLength: 16 });
    const byPath = await openCalibrationSet(join(SETS, 'prose'), tinyLlama, { samples: 2, sequenceLength: 16 });
    assert.equal(byName.source, byPath.source);
    assert.deepEqual(rows((await collect(byName))[0].input_ids), rows((await collect(byPath))[0].input_ids));
  });

  it('text is tokenised as BOS + UTF-8 bytes, documents end with EOS, and chunks cut the stream in order', async () => {
    const set = await openCalibrationSet(join(FIXTURES, 'jsonl/tiny.jsonl'), tinyLlama, { sequenceLength: 8, batchSize: 3 });
    const stream = [...byteStream('Call me Ishmael.', 'Some years ago, never mind how long precisely.'), 104, 105, 33, EOS];
    const expected = Array.from({ length: Math.floor(stream.length / 8) }, (_, k) => stream.slice(8 * k, 8 * k + 8));
    assert.equal(set.kind, 'text', 'a set with any text record is a text set');
    assert.equal(set.sampleCount, expected.length);
    assert.deepEqual(await windowsOf(set), expected);
  });

  it('sliding windows start every stride tokens; stride alone selects sliding windows', async () => {
    const stream = [...byteStream('Call me Ishmael.', 'Some years ago, never mind how long precisely.'), 104, 105, 33, EOS];
    const expected: number[][] = [];
    for (let s = 0; s + 10 <= stream.length; s += 3) expected.push(stream.slice(s, s + 10));
    for (const options of [{ windowing: 'sliding', stride: 3 }, { stride: 3 }] as CalibrationOptions[]) {
      const set = await openCalibrationSet(join(FIXTURES, 'jsonl/tiny.jsonl'), tinyLlama, { sequenceLength: 10, batchSize: 4, ...options });
      assert.deepEqual(await windowsOf(set), expected);
    }
    const halfStride = await openCalibrationSet(join(FIXTURES, 'jsonl/tiny.jsonl'), tinyLlama, { sequenceLength: 10, windowing: 'sliding' });
    assert.deepEqual((await windowsOf(halfStride))[1], stream.slice(5, 15), 'the default stride is half a window');
  });

  it('input_ids records are used as they are (no BOS), with EOS between documents', async () => {
    const first = JSON.parse(readFileSync(join(SETS, 'nonsense-bytes/calibration.jsonl'), 'utf8').split('\n')[0]).input_ids as number[];
    const all = await openCalibrationSet(join(SETS, 'nonsense-bytes'), tinyLlama, { sequenceLength: first.length + 8, batchSize: 64 });
    assert.equal(all.kind, 'tokens');
    const [window0] = await windowsOf(all);
    assert.deepEqual(window0.slice(0, first.length), first);
    assert.equal(window0[first.length], EOS);
    const one = await openCalibrationSet(join(SETS, 'nonsense-bytes'), tinyLlama, { sequenceLength: first.length + 8, samples: 1 });
    const logits = await runAll(tinyLlama, one, 'logits');
    assert.deepEqual(logits[0].dims, [1, first.length + 8, 259]);
  });

  it('opens every split of every shipped set with the default sequence length (512 for tiny-llama)', async () => {
    for (const name of ['prose', 'code', 'email', 'nonsense', 'nonsense-bytes']) {
      for (const split of ['calibration', 'selection', 'evaluation']) {
        const set = await openCalibrationSet(join(SETS, name), tinyLlama, { split, samples: 4 });
        assert.equal(set.source, join(SETS, name, `${split}.jsonl`));
        assert.equal(set.kind, name === 'nonsense-bytes' ? 'tokens' : 'text');
        assert.equal(set.sampleCount, 4);
        assert.equal(set.tokenCount, 4 * 512);
      }
    }
  });

  it('a Hugging Face tokenizer.json beside the model (or one folder up) tokenises text, EOS from tokenizer_config.json', async () => {
    // Ids by construction of the fixture's BPE: <s>=0 </s>=1, hello=13 world=17 !=18, hell=12 wo=14 l=5 d=9.
    const stream = [0, 13, 17, 18, 1, 0, 12, 14, 5, 9, 1];
    for (const layout of ['beside', 'one-up']) {
      const top = join(dir, `hf-${layout}`);
      const modelDir = layout === 'beside' ? top : join(top, 'onnx');
      mkdirSync(modelDir, { recursive: true });
      copyFileSync(TINY_LLAMA, join(modelDir, 'model.onnx'));
      for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(FIXTURES, 'tokenizer', f), join(top, f));
      // No eos_token_id in config.json: the end-of-sequence id comes from tokenizer_config.json's eos_token.
      const { bos_token_id: _b, eos_token_id: _e, tokenizer: _t, ...config } = tiny as typeof tiny & { tokenizer?: string };
      writeFileSync(join(top, 'config.json'), JSON.stringify(config));
      const model = loadModel(join(modelDir, 'model.onnx'));
      const whole = await openCalibrationSet(join(FIXTURES, 'jsonl/hello.jsonl'), model, { sequenceLength: stream.length });
      assert.deepEqual(await windowsOf(whole), [stream], layout);
      const sliding = await openCalibrationSet(join(FIXTURES, 'jsonl/hello.jsonl'), model, { sequenceLength: 4, stride: 2, batchSize: 4 });
      assert.deepEqual(await windowsOf(sliding), [0, 2, 4, 6].map((s) => stream.slice(s, s + 4)));
      const logits = await runAll(join(modelDir, 'model.onnx'), sliding, 'logits');
      assert.deepEqual(logits[0].dims, [4, 4, 259]);
    }
  });

  it('config.json "tokenizer": "bytes" makes any vocabulary byte-level, with BOS from bos_token_id', async () => {
    const model = decoderModel('bytes-hint', { config: { ...CAUSAL, tokenizer: 'bytes', vocab_size: 1000, bos_token_id: 999, eos_token_id: 998 } });
    const set = await openCalibrationSet(join(FIXTURES, 'jsonl/hello.jsonl'), model, { sequenceLength: 6 });
    assert.deepEqual((await windowsOf(set))[0], [999, ...Buffer.from('hello')]);
  });

  it('isByteLevel: the hint, else no tokenizer.json and 256 bytes + a few specials numbered after them', () => {
    assert.equal(isByteLevel({ bos_token_id: 256, eos_token_id: 257, pad_token_id: 258 }, 259, false), true, 'tiny-llama');
    assert.equal(isByteLevel({}, 259, false), true, 'no config.json: the vocabulary alone');
    assert.equal(isByteLevel({ bos_token_id: 256 }, 259, true), false, 'a tokenizer.json wins over the vocabulary');
    assert.equal(isByteLevel({ tokenizer: 'bytes' }, 50000, true), true, 'the hint wins over everything');
    assert.equal(isByteLevel({ pad_token_id: 0, eos_token_id: 1 }, 259, false), false, 'ByT5-style: specials first, bytes shifted');
    assert.equal(isByteLevel({ eos_token_id: [257, 0] }, 259, false), false, 'a list of eos ids counts too');
    assert.equal(isByteLevel({}, 32000, false), false, 'a subword vocabulary');
    assert.equal(isByteLevel({}, null, false), false, 'unknown vocabulary');
  });

  it('a model with no tokenizer.json and a subword-sized vocabulary takes input_ids records only', async () => {
    const model = decoderModel('no-tokenizer', { config: { ...CAUSAL, vocab_size: 32000, eos_token_id: 2 } });
    await rejectsWith(
      openCalibrationSet(join(FIXTURES, 'jsonl/hello.jsonl'), model, { sequenceLength: 4 }),
      /hello\.jsonl:1: a "text" record, but .*no-tokenizer.* has no tokenizer .*give "input_ids" instead/,
    );
    const set = await openCalibrationSet(join(SETS, 'nonsense-bytes'), model, { sequenceLength: 16, samples: 2 });
    assert.equal(set.sampleCount, 2);
  });

  it('fills inputs from the signature: int32 ids, float16 cache with fixed dims, use_cache_branch', async () => {
    const model = decoderModel('int32-fp16', {
      idsType: DataType.INT32,
      cache: { dtype: DataType.FLOAT16, dims: ['batch', 3, 'past', 8] },
      useCacheBranch: true,
      config: { ...CAUSAL, vocab_size: 259, bos_token_id: 256, eos_token_id: 257 },
    });
    const set = await openCalibrationSet(join(FIXTURES, 'jsonl/tiny.jsonl'), model, { sequenceLength: 5, batchSize: 2, samples: 2 });
    const [feeds] = await collect(set);
    assert.deepEqual(signature(feeds), [
      'attention_mask: int32[2,5]',
      'input_ids: int32[2,5]',
      'past_key_values.0.key: float16[2,3,0,8]',
      'past_key_values.0.value: float16[2,3,0,8]',
      'position_ids: int32[2,5]',
      'use_cache_branch: bool[1]',
    ]);
    assert.deepEqual(Array.from(feeds.use_cache_branch.data as Uint8Array), [0]);
    const [out] = await runAll(model, set, 'logits');
    assert.deepEqual(rows(out), rows(feeds.input_ids));
  });

  it('takes cache dims the graph leaves open from config.json', async () => {
    const model = decoderModel('cache-from-config', {
      cache: { dtype: DataType.FLOAT, dims: ['batch', 'heads', 'past', 'head_dim'] },
      config: { ...CAUSAL, vocab_size: 259, num_attention_heads: 4, num_key_value_heads: 2, hidden_size: 64, eos_token_id: 257 },
    });
    const [feeds] = await collect(await openCalibrationSet(join(FIXTURES, 'jsonl/tiny.jsonl'), model, { sequenceLength: 4, samples: 1 }));
    assert.deepEqual(feeds['past_key_values.0.key'].dims, [1, 2, 0, 16]);
    await runAll(model, await openCalibrationSet(join(FIXTURES, 'jsonl/tiny.jsonl'), model, { sequenceLength: 4, samples: 1 }), 'logits');
  });

  it('follows a fixed input_ids shape: its sequence length by default, its batch size required', async () => {
    const model = decoderModel('fixed', { idsDims: [2, 6], config: { ...CAUSAL, vocab_size: 259, eos_token_id: 257 } });
    const set = await openCalibrationSet(join(FIXTURES, 'jsonl/tiny.jsonl'), model, { batchSize: 2, samples: 4 });
    assert.equal(set.tokenCount, 24);
    assert.deepEqual((await collect(set)).map((f) => f.input_ids.dims), [[2, 6], [2, 6]]);
    await rejectsWith(openCalibrationSet(join(FIXTURES, 'jsonl/tiny.jsonl'), model, { batchSize: 1 }), /fixed batch of 2; set batchSize to 2, not 1/);
    await rejectsWith(
      openCalibrationSet(join(FIXTURES, 'jsonl/tiny.jsonl'), model, { batchSize: 2, sequenceLength: 8 }),
      /fixed sequence length of 6; sequenceLength 8 does not fit it/,
    );
  });

  it('refuses a decoder input it cannot derive, and a model without input_ids, naming the input', async () => {
    const extra = decoderModel('extra-input', { extraInput: 'token_type_ids', config: { ...CAUSAL, vocab_size: 259 } });
    await rejectsWith(openCalibrationSet(join(FIXTURES, 'jsonl/tiny.jsonl'), extra, { sequenceLength: 4 }), /input 'token_type_ids' cannot be filled from a token set/);
    await rejectsWith(openCalibrationSet(join(FIXTURES, 'jsonl/tiny.jsonl'), tensorModel()), /tensor-model: token sets need a model with an 'input_ids' input \(inputs: x, ids\)/);
  });
});

// --- tensor sets --------------------------------------------------------------------------------------------

describe('tensor sets (.npy files, ONNX test-data .pb folders)', () => {
  it('<input>.npy files with samples along the batch axis batch up and run', async () => {
    const model = tensorModel();
    const set = await openCalibrationSet(join(FIXTURES, 'npy/set'), model, { batchSize: 3 });
    assert.equal(set.kind, 'tensors');
    assert.equal(set.sampleCount, 4);
    assert.equal(set.tokenCount, 0);
    const batches = await collect(set);
    assert.deepEqual(batches.map(signature), [
      ['ids: int64[3,2]', 'x: float32[3,3]'],
      ['ids: int64[1,2]', 'x: float32[1,3]'],
    ]);
    assert.deepEqual(Array.from(batches[1].x.data as Float32Array), [4.5, 5, 5.5]);
    assert.deepEqual(Array.from(batches[1].ids.data as BigInt64Array), [6n, 7n]);
    const y = await runAll(model, set, 'y');
    assert.deepEqual(Array.from(y[0].data as Float32Array), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('an .npy file one rank above its input has an extra sample axis first', async () => {
    const b = new GraphBuilder('no-batch');
    b.input('v', DataType.FLOAT, [3]);
    b.node('Neg', ['v'], ['w']);
    b.output('w', DataType.FLOAT, [3]);
    const model = new OnnxModel(modelFrom(b.graph), undefined, 'no-batch');
    const set = await openCalibrationSet(join(FIXTURES, 'npy/sample-axis'), model);
    assert.equal(set.sampleCount, 4);
    const w = await runAll(model, set, 'w');
    assert.deepEqual(Array.from(w[3].data as Float32Array), [-4.5, -5, -5.5]);
    await rejectsWith(openCalibrationSet(join(FIXTURES, 'npy/sample-axis'), model, { batchSize: 2 }), /input 'v' is float32 \[3\], with no batch axis to stack samples on; use batchSize 1/);
  });

  it('test_data_set_<n>/input_<k>.pb folders are one sample each, matched to inputs by tensor name', async () => {
    const model = tensorModel();
    const set = await openCalibrationSet(join(FIXTURES, 'pb/set'), model, { batchSize: 2 });
    assert.equal(set.sampleCount, 3);
    const batches = await collect(set);
    assert.deepEqual(batches.map((f) => f.x.dims), [[2, 3], [1, 3]]);
    assert.deepEqual(Array.from(batches[0].ids.data as BigInt64Array), [0n, 1n, 2n, 3n]);
    const z = await runAll(model, set, 'z');
    assert.deepEqual(Array.from(z[1].data as BigInt64Array), [4n, 5n]);
  });

  it('input_<k>.pb directly in the folder is one sample; unnamed tensors go to inputs by position', async () => {
    const set = await openCalibrationSet(join(FIXTURES, 'pb/flat'), tensorModel());
    assert.equal(set.sampleCount, 1);
    const [feeds] = await collect(set);
    assert.deepEqual(signature(feeds), ['ids: int64[2,2]', 'x: float32[2,3]']);
  });

  it('reads a conformance-suite test folder as it is', { skip: !existsSync('/usr/share/libonnx-testdata/data/node/test_add') && 'libonnx-testdata not installed' }, async () => {
    const folder = '/usr/share/libonnx-testdata/data/node/test_add';
    const model = loadModel(join(folder, 'model.onnx'));
    const set = await openCalibrationSet(folder, model);
    const [sum] = await runAll(model, set, model.graph.output[0].name!);
    assert.deepEqual(sum.dims, [3, 4, 5]);
  });

  it('selects samples with the seed', async () => {
    const pick = async (seed: number) =>
      (await collect(await openCalibrationSet(join(FIXTURES, 'npy/set'), tensorModel(), { samples: 2, seed }))).map((f) => Number((f.ids.data as BigInt64Array)[0]) / 2);
    assert.deepEqual(await pick(1), await pick(1));
    const picks = new Set<string>();
    for (let seed = 0; seed < 8; seed++) picks.add(JSON.stringify(await pick(seed)));
    assert.ok(picks.size > 1, 'different seeds choose different samples');
  });
});

// --- the .npy reader ----------------------------------------------------------------------------------------

describe('.npy reader', () => {
  it('reads every supported element type (NumPy-written files)', () => {
    const expected: Record<string, DataType> = {
      f2: DataType.FLOAT16,
      f4: DataType.FLOAT,
      f8: DataType.DOUBLE,
      i1: DataType.INT8,
      i2: DataType.INT16,
      i4: DataType.INT32,
      i8: DataType.INT64,
      u1: DataType.UINT8,
      u2: DataType.UINT16,
      u4: DataType.UINT32,
      u8: DataType.UINT64,
      b1: DataType.BOOL,
    };
    for (const [code, dtype] of Object.entries(expected)) {
      const array = readNpyHeader(join(FIXTURES, `npy/dtypes/${code}.npy`));
      assert.equal(array.dtype, dtype, code);
      assert.deepEqual(array.shape, [2, 3], code);
      const values = Array.from(readNpyRows(array, 0, 2).data as ArrayLike<number | bigint>, Number);
      assert.deepEqual(values, code === 'b1' ? [0, 1, 0, 1, 0, 1] : [0, 1, 2, 3, 4, 5], code);
      assert.deepEqual(Array.from(readNpyRows(array, 1, 1).data as ArrayLike<number | bigint>, Number), code === 'b1' ? [1, 0, 1] : [3, 4, 5], code);
    }
  });

  it('reads format versions 2.0 and 3.0 headers', () => {
    for (const v of ['v2', 'v3']) {
      const array = readNpyHeader(join(FIXTURES, `npy/versions/${v}.npy`));
      assert.deepEqual(Array.from(readNpyRows(array, 0, 2).data as Float32Array), [0, 1, 2, 3, 4, 5]);
    }
  });

  it('refuses Fortran order, big-endian, complex, non-.npy and truncated files with a way out', () => {
    const refused = (file: string, pattern: RegExp) =>
      assert.throws(() => readNpyHeader(file), (e: unknown) => e instanceof CalibrationDataError && pattern.test(e.message) && !e.message.includes('\n'));
    refused(join(FIXTURES, 'npy/refused/fortran.npy'), /fortran\.npy: array is in Fortran order; save it in C order \(numpy\.ascontiguousarray\)/);
    refused(join(FIXTURES, 'npy/refused/big-endian.npy'), /big-endian\.npy: array is big-endian \('>f4'\); save it little-endian/);
    refused(join(FIXTURES, 'npy/refused/complex.npy'), /complex\.npy: unsupported element type '<c8'/);
    refused(join(FIXTURES, 'tokenizer/tokenizer.json'), /tokenizer\.json: not a \.npy file/);
    const truncated = join(dir, 'truncated.npy');
    writeFileSync(truncated, readFileSync(join(FIXTURES, 'npy/set/x.npy')).subarray(0, -4));
    refused(truncated, /truncated\.npy: truncated: shape \(4, 3\) needs 176 bytes, the file has 172/);
  });
});

// --- selection and streaming --------------------------------------------------------------------------------

describe('selection and streaming', () => {
  it('selectIndices: all in order without a count, else count distinct ascending indices, fixed by the seed', () => {
    assert.deepEqual(selectIndices(5, undefined, 1), [0, 1, 2, 3, 4]);
    assert.deepEqual(selectIndices(5, 9, 1), [0, 1, 2, 3, 4]);
    const a = selectIndices(1000, 50, 7);
    assert.equal(new Set(a).size, 50);
    assert.deepEqual(a, [...a].sort((x, y) => x - y));
    assert.ok(a.every((i) => i >= 0 && i < 1000));
    assert.deepEqual(selectIndices(1000, 50, 7), a);
    assert.notDeepEqual(selectIndices(1000, 50, 8), a);
  });

  it('the same seed gives the same batches, a pass repeats itself, another seed another selection', async () => {
    const options = { samples: 6, sequenceLength: 48, batchSize: 4 };
    const one = await openCalibrationSet(join(SETS, 'code'), tinyLlama, { ...options, seed: 11 });
    const again = await openCalibrationSet(join(SETS, 'code'), tinyLlama, { ...options, seed: 11 });
    const other = await openCalibrationSet(join(SETS, 'code'), tinyLlama, { ...options, seed: 12 });
    const first = await windowsOf(one);
    assert.equal(first.length, 6);
    assert.deepEqual(await windowsOf(one), first, 'a second pass over the same set');
    assert.deepEqual(await windowsOf(again), first, 'a set opened again with the same seed');
    assert.notDeepEqual(await windowsOf(other), first);
  });

  it('streams a large JSONL twice without memory growing with the file', async () => {
    // ~8 MB of text in 40,000 records: held whole it would take 8 MB of heap as strings, over 60 MB as token arrays.
    const file = join(dir, 'large.jsonl');
    const random = mulberry32(5);
    const pool = Array.from({ length: 64 }, () => Array.from({ length: 200 }, () => String.fromCharCode(32 + Math.floor(random() * 95))).join(''));
    const lines = Array.from({ length: 40_000 }, (_, r) => `${JSON.stringify({ text: `${r} ${pool[r % pool.length]}` })}\n`);
    writeFileSync(file, lines.join(''));
    lines.length = 0;

    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const set = await openCalibrationSet(file, tinyLlama, { sequenceLength: 128, samples: 200, batchSize: 16, seed: 3 });
    gc();
    const baseline = process.memoryUsage().heapUsed;
    let peak = 0;
    assert.ok(set.sampleCount === 200);
    const passes: number[][][] = [];
    for (let pass = 0; pass < 2; pass++) {
      const seen: number[][] = [];
      for await (const feeds of set.batches()) {
        seen.push(rows(feeds.input_ids)[0]);
        gc();
        peak = Math.max(peak, process.memoryUsage().heapUsed - baseline);
      }
      passes.push(seen);
    }
    assert.equal(passes[0].length, Math.ceil(200 / 16));
    assert.deepEqual(passes[1], passes[0]);
    assert.ok(peak < 6 * 2 ** 20, `heap grew by ${(peak / 2 ** 20).toFixed(1)} MiB while streaming`);
  });
});

// --- bad input ----------------------------------------------------------------------------------------------

describe('bad input: one-line CalibrationDataErrors naming the file and line or tensor', () => {
  const jsonl = (name: string) => join(FIXTURES, 'jsonl', name);
  const open = (path: string, options: CalibrationOptions = {}, model: OnnxModel = tinyLlama) => openCalibrationSet(path, model, options);

  it('empty sets, and paths that are not a set', async () => {
    await rejectsWith(open(jsonl('empty.jsonl')), /empty\.jsonl: empty set \(no records\)/);
    const emptyDir = join(dir, 'empty-folder');
    mkdirSync(emptyDir, { recursive: true });
    await rejectsWith(open(emptyDir), /empty-folder: empty set \(no calibration\.jsonl, input_<k>\.pb, test_data_set_<n>\/ or <input>\.npy files\)/);
    await rejectsWith(open(join(FIXTURES, 'only-evaluation')), /only-evaluation: no calibration\.jsonl in the set \(it has evaluation\.jsonl\)/);
    await rejectsWith(open(join(dir, 'no-such-set')), /no-such-set: no such file or folder/);
    await rejectsWith(open(join(FIXTURES, 'npy/set/x.npy'), {}, tensorModel()), /x\.npy: a tensor set is a folder .*; give the folder/);
  });

  it('unreadable or meaningless JSONL records, with file and line', async () => {
    await rejectsWith(open(jsonl('broken.jsonl')), /broken\.jsonl:3: not valid JSON/);
    await rejectsWith(open(jsonl('neither.jsonl')), /neither\.jsonl:2: record has neither "text" nor "input_ids"/);
    await rejectsWith(open(jsonl('not-object.jsonl')), /not-object\.jsonl:1: a record must be a JSON object with "text" or "input_ids"/);
    await rejectsWith(open(jsonl('not-ids.jsonl')), /not-ids\.jsonl:1: input_ids\[1\] is not a token id \("two"\)/);
  });

  it('a token id outside the vocabulary', async () => {
    await rejectsWith(
      open(jsonl('out-of-vocab.jsonl'), { sequenceLength: 2 }),
      /out-of-vocab\.jsonl:2: input_ids\[2\]: token id 259 is outside the vocabulary of .*tiny-llama\/onnx\/model\.onnx \(0\.\.258\)/,
    );
  });

  it('sequences longer than the model allows, or than the set holds', async () => {
    await rejectsWith(open(jsonl('tiny.jsonl'), { sequenceLength: 2048 }), /sequences of 2048 tokens are longer than the model allows \(1024 positions\)/);
    await rejectsWith(open(jsonl('tiny.jsonl'), { sequenceLength: 1000 }), /tiny\.jsonl: the set has \d+ tokens, fewer than one window of 1000/);
  });

  it('NaN or infinity in a tensor set, with file, tensor and first index', async () => {
    await rejectsWith(open(join(FIXTURES, 'npy/nan'), {}, tensorModel()), /nan\/x\.npy: tensor 'x' has NaN at \[2, 1\]/);
    await rejectsWith(open(join(FIXTURES, 'pb/inf'), {}, tensorModel()), /inf\/test_data_set_0\/input_0\.pb: tensor 'x' has Infinity at \[0, 2\]/);
  });

  it('a tensor whose dtype or shape does not fit its input, naming both', async () => {
    const model = tensorModel();
    await rejectsWith(open(join(FIXTURES, 'npy/wrong-dtype'), {}, model), /wrong-dtype\/x\.npy: tensor 'x' is float64 \[1,3\] but model input 'x' is float32 \[batch,3\]/);
    await rejectsWith(open(join(FIXTURES, 'npy/wrong-shape'), {}, model), /wrong-shape\/x\.npy: tensor 'x' is float32 \[1,5\] but model input 'x' is float32 \[batch,3\]/);
    await rejectsWith(
      open(join(FIXTURES, 'pb/wrong-dtype'), {}, model),
      /wrong-dtype\/test_data_set_0\/input_1\.pb: tensor 'ids' is int32 \[1,2\] but model input 'ids' is int64 \[batch,2\]/,
    );
    await rejectsWith(
      open(join(FIXTURES, 'npy/set'), {}, tensorModel(['batch', 3, 1, 1])),
      /set\/x\.npy: array float32 \(4, 3\) does not fit model input 'x' float32 \[batch,3,1,1\]: it needs rank 4 \(samples along the batch axis\) or 5/,
    );
  });

  it('tensors that match no input, inputs with no tensor, files that are not tensors', async () => {
    const model = tensorModel();
    await rejectsWith(open(join(FIXTURES, 'npy/unknown-input'), {}, model), /unknown-input\/mask\.npy: 'mask' is not an input of the model \(inputs: x, ids\); name each file <input>\.npy/);
    await rejectsWith(open(join(FIXTURES, 'npy/sample-count'), {}, model), /sample-count\/x\.npy: holds 4 samples along axis 0, but ids\.npy holds 3/);
    await rejectsWith(open(join(FIXTURES, 'pb/unknown-name'), {}, model), /unknown-name\/input_0\.pb: tensor 'y' is not an input of the model \(inputs: x, ids\)/);
    await rejectsWith(open(join(FIXTURES, 'pb/missing-input'), {}, model), /missing-input: sample 0 has no tensor for model input 'ids'/);
    await rejectsWith(open(join(FIXTURES, 'pb/not-a-tensor'), {}, model), /not-a-tensor\/input_0\.pb: not a serialized ONNX TensorProto/);
  });

  it('bad options', async () => {
    await rejectsWith(open(jsonl('tiny.jsonl'), { samples: 0 }), /calibration option samples must be a positive integer, not 0/);
    await rejectsWith(open(jsonl('tiny.jsonl'), { windowing: 'random' as 'chunk' }), /windowing must be 'chunk' or 'sliding', not 'random'/);
    await rejectsWith(open(jsonl('tiny.jsonl'), { windowing: 'chunk', stride: 3 }), /stride applies to sliding windows/);
    await rejectsWith(open(SETS + '/prose', { split: '../code/calibration' }), /split must be a file name without folders/);
  });
});
