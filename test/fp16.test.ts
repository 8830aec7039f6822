// Float16 and bfloat16 models quantized as they are (scales in the graph's type, no float32 copy of a weight,
// files no larger than the original), and `--scheme fp16` (float32 -> float16 with float32 islands where values
// overflow). Every result is run in ONNX Runtime against the model it came from.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { encodeModel } from '../src/onnx/codec.js';
import { makeTensor } from '../src/onnx/tensor.js';
import { foldConstants } from '../src/onnx/fold-constants.js';
import { OnnxModel } from '../src/onnx/model.js';
import { DataType, type ModelProto } from '../src/onnx/types.js';
import { convertToFloat16 } from '../src/quantization/fp16.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { resolveScheme, type SchemeName } from '../src/quantization/schemes.js';
import { quantizeModel } from '../src/quantization/writers/index.js';
import { fromOrtTensor, toOrtTensor } from '../src/runtime/ort-tensor.js';
import { Session, type Feeds } from '../src/runtime/session.js';
import { mulberry32 } from './support/prng.js';
import { captureTensors } from '../src/runtime/capture.js';
import { cosine } from './support/similarity.js';

const dir = mkdtempSync(join(tmpdir(), 'fp16-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const WEIGHT_SCHEMES: readonly SchemeName[] = ['w8a8', 'w8', 'w4', 'w4a8', 'w4-qdq'];
// Smallest output cosine accepted: 8-bit and 4-bit weights (random Gaussian weights, so 4-bit is the harder case).
const MIN_COSINE: Record<string, number> = { w8a8: 0.995, w8: 0.995, w4: 0.97, w4a8: 0.97, 'w4-qdq': 0.97 };
const FLOAT32_MIN = -3.4028234663852886e38;

function gaussian(rand: () => number, n: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  return out;
}

function feedOf(name: string, dtype: DataType, dims: number[], seed: number): Feeds {
  return { [name]: toOrtTensor({ dtype, dims, data: gaussian(mulberry32(seed), dims.reduce((a, b) => a * b, 1), 1) }) };
}

async function run(proto: ModelProto, feeds: Feeds): Promise<Record<string, Float32Array>> {
  const s = await Session.create(new OnnxModel(proto, undefined, 'fixture'), { intraOpThreads: 1 });
  try {
    const out = await s.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, Float32Array.from(fromOrtTensor(t).data as Float32Array)]));
  } finally {
    await s.dispose();
  }
}


/**
 * Min/max of every MatMul/Gemm/Conv activation input over one run, taken in plain JavaScript from the tensors ONNX
 * Runtime returns (float16 ones decoded): the ranges a MinMax calibrator would give.
 */
async function minMaxRanges(model: OnnxModel, feeds: Feeds): Promise<Map<string, [number, number]>> {
  const names = [...new Set(model.graph.node.filter((n) => ['MatMul', 'Gemm', 'Conv'].includes(n.opType ?? '')).map((n) => n.input[0]))];
  const ranges = new Map<string, [number, number]>();
  for (const [name, t] of Object.entries(await captureTensors(model, names, feeds))) {
    const values = fromOrtTensor(t).data as Float32Array;
    ranges.set(name, [Math.min(...values), Math.max(...values)]);
  }
  return ranges;
}

function floatConstant(b: GraphBuilder, output: string, value: number): void {
  const t = makeTensor('', DataType.FLOAT, [], [value]);
  delete t.name;
  b.node('Constant', [], [output], { value: t });
}

function outputType(proto: ModelProto): number | undefined {
  return proto.graph!.output[0].type?.tensorType?.elemType;
}

/** fp16 x [2, 256] -> MatMul [256, 256] -> Gemm (transB, bias) [128] -> Reshape -> Conv 3x3 (bias) -> y fp16. */
function fp16Layers(): ModelProto {
  const rand = mulberry32(7);
  const b = new GraphBuilder('fp16-layers');
  const H = DataType.FLOAT16;
  b.input('x', H, [2, 256]);
  b.initializer('W1', H, [256, 256], gaussian(rand, 256 * 256, 0.06));
  b.initializer('W2', H, [128, 256], gaussian(rand, 128 * 256, 0.06));
  b.initializer('C2', H, [128], gaussian(rand, 128, 0.1));
  b.initializer('W3', H, [16, 8, 3, 3], gaussian(rand, 16 * 8 * 9, 0.1));
  b.initializer('B3', H, [16], gaussian(rand, 16, 0.1));
  b.initializer('shape', DataType.INT64, [4], [2n, 8n, 4n, 4n]);
  b.node('MatMul', ['x', 'W1'], ['h1'], undefined, { name: 'matmul' });
  b.node('Gemm', ['h1', 'W2', 'C2'], ['h2'], { transB: 1 }, { name: 'gemm' });
  b.node('Reshape', ['h2', 'shape'], ['h3']);
  b.node('Conv', ['h3', 'W3', 'B3'], ['y'], { pads: [1, 1, 1, 1] }, { name: 'conv' });
  b.output('y', H);
  return modelFrom(b.graph);
}

/** fp32 x -> MatMul with bf16 weights behind Cast(to float32), as exporters write them (ORT's CPU has no bf16 MatMul). */
function bf16CastWeights(): ModelProto {
  const rand = mulberry32(11);
  const b = new GraphBuilder('bf16-cast');
  b.input('x', DataType.FLOAT, [2, 256]);
  b.initializer('W', DataType.BFLOAT16, [256, 256], gaussian(rand, 256 * 256, 0.06));
  b.node('Cast', ['W'], ['W_float'], { to: DataType.FLOAT });
  b.node('MatMul', ['x', 'W_float'], ['y'], undefined, { name: 'matmul' });
  b.output('y', DataType.FLOAT);
  return modelFrom(b.graph);
}

/**
 * One attention head over 8 positions, computed in `dtype`, with a mask built from float32-min as exporters do
 * it, then cast to the graph's type when that is float16 (float32-min becomes -inf there):
 *   causal:  Where(future, float32-min, 0), a constant;
 *   keep:    (1 - keep) * float32-min from a float input `keep` (1 attend, 0 masked), as older exports write the
 *            padding mask; in float16, 0 * -inf is NaN.
 */
function maskedAttention(dtype: DataType, mask: 'causal' | 'keep'): ModelProto {
  const rand = mulberry32(13);
  const b = new GraphBuilder('masked-attention');
  b.input('x', dtype, [1, 8, 64]);
  for (const w of ['Wq', 'Wk', 'Wv', 'Wo']) b.initializer(w, dtype, [64, 64], gaussian(rand, 64 * 64, 0.12));
  floatConstant(b, 'min', FLOAT32_MIN);
  const min = dtype === DataType.FLOAT ? 'min' : 'min_cast';
  if (dtype !== DataType.FLOAT) b.node('Cast', ['min'], ['min_cast'], { to: dtype });
  if (mask === 'causal') {
    const future = Array.from({ length: 64 }, (_, i) => (i % 8 > Math.floor(i / 8) ? 1 : 0));
    b.initializer('future', DataType.BOOL, [8, 8], future);
    b.initializer('zero', dtype, [], [0]);
    b.node('Where', ['future', min, 'zero'], ['mask']);
  } else {
    b.input('keep', dtype, [8, 8]);
    b.initializer('one', dtype, [], [1]);
    b.node('Sub', ['one', 'keep'], ['dropped']);
    b.node('Mul', ['dropped', min], ['mask']);
  }
  b.node('MatMul', ['x', 'Wq'], ['q'], undefined, { name: 'q_proj' });
  b.node('MatMul', ['x', 'Wk'], ['k'], undefined, { name: 'k_proj' });
  b.node('MatMul', ['x', 'Wv'], ['v'], undefined, { name: 'v_proj' });
  b.node('Transpose', ['k'], ['kt'], { perm: [0, 2, 1] });
  b.node('MatMul', ['q', 'kt'], ['scores']);
  b.node('Add', ['scores', 'mask'], ['masked_scores']);
  b.node('Softmax', ['masked_scores'], ['probs'], { axis: -1 });
  b.node('MatMul', ['probs', 'v'], ['context']);
  b.node('MatMul', ['context', 'Wo'], ['y'], undefined, { name: 'o_proj' });
  b.output('y', dtype);
  return modelFrom(b.graph);
}

/** Causal positions, with query 5 padded out entirely: `keep` for maskedAttention(.., 'keep'). */
function keepFeed(dtype: DataType): Feeds {
  const keep = Float32Array.from({ length: 64 }, (_, i) => (i % 8 <= Math.floor(i / 8) && Math.floor(i / 8) !== 5 ? 1 : 0));
  return { keep: toOrtTensor({ dtype, dims: [8, 8], data: keep }) };
}

/** Each weight scheme on a fixture, checked in ORT against the original: cosine, the graph's type, the file size. */
async function checkSchemes(original: ModelProto, feeds: Feeds, fold: boolean, say: (line: string) => void): Promise<void> {
  let model = new OnnxModel(original, undefined, 'fixture');
  if (fold) model = (await foldConstants(model)).model;
  const reference = Object.values(await run(original, feeds))[0];
  const ranges = await minMaxRanges(model, feeds);
  const originalBytes = encodeModel(original).length;
  for (const scheme of WEIGHT_SCHEMES) {
    const params = resolveScheme(scheme);
    const written = quantizeModel(model, params, params.activations ? { activationRanges: ranges } : {});
    assert.ok(written.report.nodes.length > 0, `${scheme}: nothing quantized (skipped: ${JSON.stringify(written.report.skipped)})`);
    const proto = written.model.proto;
    const got = Object.values(await run(proto, feeds))[0];
    const c = cosine(reference, got);
    assert.ok(c >= MIN_COSINE[scheme], `${scheme}: output cosine ${c} < ${MIN_COSINE[scheme]}`);
    assert.equal(outputType(proto), outputType(original), `${scheme}: the output keeps the graph's type`);
    const bytes = encodeModel(proto).length;
    assert.ok(bytes <= originalBytes, `${scheme}: ${bytes} bytes written, more than the original's ${originalBytes}`);
    say(`${scheme}: cosine ${c.toFixed(5)}, ${bytes} bytes (original ${originalBytes})`);
    // No float32 copy of a weight: float32 initializers may only be small parameter tensors.
    for (const t of proto.graph!.initializer) {
      if (t.dataType !== DataType.FLOAT) continue;
      const n = t.dims.reduce((a, d) => a * d, 1);
      const weightSized = model.graph.initializer.some((w) => w.dims.reduce((a, d) => a * d, 1) === n && n > 256);
      assert.ok(!weightSized, `${scheme}: float32 initializer '${t.name}' [${t.dims.join(', ')}] is a copy of a weight`);
    }
  }
}

describe('float16 and bfloat16 models quantized as they are', () => {
  it('fp16 MatMul, Gemm and Conv: every scheme keeps float16, scales in float16, files smaller', async (t) => {
    const original = fp16Layers();
    await checkSchemes(original, feedOf('x', DataType.FLOAT16, [2, 256], 1), false, (l) => t.diagnostic(l));
    // The scales themselves are float16 (QDQ at opset >= 19, MatMulNBits' scales in A's type).
    const model = new OnnxModel(original, undefined, 'fixture');
    for (const scheme of ['w8a8', 'w4'] as const) {
      const params = resolveScheme(scheme);
      const ranges = await minMaxRanges(model, feedOf('x', DataType.FLOAT16, [2, 256], 1));
      const proto = quantizeModel(model, params, params.activations ? { activationRanges: ranges } : {}).model.proto;
      const scales = proto.graph!.initializer.filter((t) => /scale/.test(t.name ?? ''));
      assert.ok(scales.length > 0);
      for (const s of scales) assert.equal(s.dataType, DataType.FLOAT16, `${scheme}: ${s.name} is not float16`);
      if (scheme === 'w8a8') assert.ok((proto.opsetImport.find((o) => !o.domain)?.version ?? 0) >= 19, 'float16 scales need opset 19');
    }
  });

  it('bf16 weights behind Cast(to float32): folded, quantized, no float32 copy of the weight', async (t) => {
    await checkSchemes(bf16CastWeights(), feedOf('x', DataType.FLOAT, [2, 256], 2), true, (l) => t.diagnostic(l));
  });

  it('fp16 attention with a float32-min mask constant: every scheme', async (t) => {
    await checkSchemes(maskedAttention(DataType.FLOAT16, 'causal'), feedOf('x', DataType.FLOAT16, [1, 8, 64], 3), false, (l) => t.diagnostic(l));
  });

  it('dynamic int8 in a float16 graph is a float32 island: Cast in, DynamicQuantizeLinear, Cast out', async () => {
    const model = new OnnxModel(fp16Layers(), undefined, 'fixture');
    const proto = quantizeModel(model, 'w8').model.proto;
    const ops = proto.graph!.node.map((n) => n.opType);
    const dql = ops.indexOf('DynamicQuantizeLinear');
    assert.equal(ops[dql - 1], 'Cast', 'the fp16 activation is cast to float32 before DynamicQuantizeLinear');
    const casts = proto.graph!.node.filter((n) => n.opType === 'Cast').map((n) => Number(n.attribute[0].i));
    assert.ok(casts.includes(DataType.FLOAT16), 'the result is cast back to float16');
  });
});

describe('--scheme fp16', () => {
  it('keeps float32 where the mask overflows float16: (1 - keep) * float32-min stays finite and equal to the original', async () => {
    const original = maskedAttention(DataType.FLOAT, 'keep');
    const { model, report } = await convertToFloat16(new OnnxModel(original, undefined, 'fixture'));
    const kept = report.kept.map((k) => k.op);
    for (const op of ['Constant', 'Mul', 'Add', 'Softmax']) assert.ok(kept.includes(op), `${op} stays float32: ${JSON.stringify(report.kept)}`);
    assert.ok(!kept.includes('MatMul'), 'the matrix products run in float16');
    const feeds = { ...feedOf('x', DataType.FLOAT, [1, 8, 64], 4), ...keepFeed(DataType.FLOAT) };
    const a = (await run(original, feeds)).y;
    const b = (await run(model.proto, feeds)).y;
    assert.ok(b.every(Number.isFinite), 'no NaN or inf in the float16 model');
    assert.ok(cosine(a, b) > 0.999, `cosine ${cosine(a, b)}`);
    // Weights are float16; graph inputs and outputs stay float32.
    for (const t of model.graph.initializer) assert.notEqual(t.dataType, DataType.FLOAT, `${t.name} is still float32`);
    assert.equal(model.graph.input.find((i) => i.name === 'x')?.type?.tensorType?.elemType, DataType.FLOAT, 'graph inputs stay float32');
    assert.equal(outputType(model.proto), DataType.FLOAT, 'graph outputs stay float32');
  });

  it('control: the same attention computed all in float16 gives NaN (0 * -inf) where the islands keep float32', async () => {
    // Without this, the test above could pass on a model that never had the problem.
    const feeds = { ...feedOf('x', DataType.FLOAT16, [1, 8, 64], 4), ...keepFeed(DataType.FLOAT16) };
    const y = (await run(maskedAttention(DataType.FLOAT16, 'keep'), feeds)).y;
    assert.ok(y.some(Number.isNaN));
  });

  for (const name of ['tiny-llama', 'tiny-gpt2']) {
    it(`${name}: top-1 agreement and cosine in ORT, half the size, same bytes twice`, async (t) => {
      const input = `models/${name}/onnx/model.onnx`;
      const outs = [join(dir, `${name}-a.onnx`), join(dir, `${name}-b.onnx`)];
      const reports = [];
      for (const out of outs) reports.push(await quantizePass(input, 'fp16', { out, session: { intraOpThreads: 1 } }));
      const r = reports[0];
      const lm = r.verification.languageModel;
      assert.ok(lm, 'verified as a language model');
      assert.ok(lm.top1Agreement >= 0.99, `top-1 agreement ${lm.top1Agreement}`);
      assert.ok(r.verification.worst.cosine >= 0.999, `worst output cosine ${r.verification.worst.cosine}`);
      assert.ok(r.files.ratio > 0.45 && r.files.ratio < 0.6, `file ratio ${r.files.ratio}`);
      t.diagnostic(`top-1 ${lm.top1Agreement}, worst cosine ${r.verification.worst.cosine}, file ratio ${r.files.ratio.toFixed(3)}`);
      const hash = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
      assert.equal(hash(outs[0]), hash(outs[1]), 'a second run writes the same bytes');
    });
  }
});
