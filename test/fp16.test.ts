// Float16 and bfloat16 models quantized as they are (scales in the graph's type, no float32 copy of a weight,
// files no larger than the original), and `--scheme fp16` (float32 -> float16 with float32 islands where values
// overflow). Every result is run in ONNX Runtime against the model it came from.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { GraphBuilder, modelFrom } from '../src/onnx/builder.js';
import { encodeModel } from '../src/onnx/codec.js';
import { makeTensor, roundTo } from '../src/onnx/tensor.js';
import { foldConstants } from '../src/onnx/fold-constants.js';
import { loadModel, OnnxModel } from '../src/onnx/model.js';
import { saveModel } from '../src/onnx/save.js';
import { quantizePass as quantizeStep, type QuantizeOptions, type QuantizeReport } from '../src/passes/quantize.js';
import { runSteps } from '../src/passes/runner.js';
import { planFromScheme } from '../src/quantization/plan.js';
import { DataType, type ModelProto } from '../src/onnx/types.js';
import { convertToFloat16 } from '../src/quantization/fp16.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { resolveScheme, type SchemeName } from '../src/quantization/schemes.js';
import { packMatMulNBits, quantizeModel } from '../src/quantization/writers/index.js';
import { roundToNearest, type WeightSolver } from '../src/quantization/solvers.js';
import { fromOrtTensor, toOrtTensor } from '../src/runtime/ort-tensor.js';
import { Session, type Feeds } from '../src/runtime/session.js';
import { mulberry32 } from './support/prng.js';
import { cosine } from './support/similarity.js';
import { minMaxRanges } from './support/ranges.js';

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

  it("a layer-wise solver's codes are written as solved in a float16 graph (only its scales are rounded)", () => {
    const model = new OnnxModel(fp16Layers(), undefined, 'fixture');
    // A solver whose codes differ from round to nearest's wherever a step up fits, as GPTQ's do.
    const shifted: WeightSolver = {
      name: 'shifted',
      solve(r) {
        const q = roundToNearest.solve(r);
        const top = 2 ** q.spec.bits - 1;
        return { ...q, codes: q.codes.map((c) => (c < top ? c + 1 : c)) };
      },
    };
    let expected: Uint8Array | undefined;
    const recording: WeightSolver = {
      name: 'shifted',
      solve(r) {
        const q = shifted.solve(r);
        if (r.node === 'matmul') expected = packMatMulNBits(q, 0).b;
        return q;
      },
    };
    const proto = quantizeModel(model, 'w4', { select: { include: ['matmul'] }, solver: recording }).model.proto;
    const node = proto.graph!.node.find((n) => n.opType === 'MatMulNBits')!;
    const b = proto.graph!.initializer.find((t) => t.name === node.input[1])!;
    assert.ok(expected, 'the solver saw the MatMul');
    assert.deepEqual(Buffer.from(b.rawData!), Buffer.from(expected!), "the written codes are the solver's");
    const rtn = quantizeModel(model, 'w4', { select: { include: ['matmul'] } }).model.proto;
    const bRtn = rtn.graph!.initializer.find((t) => t.name === node.input[1])!;
    assert.notDeepEqual(Buffer.from(bRtn.rawData!), Buffer.from(expected!), 'control: round to nearest writes other codes');
  });

  it('bf16 weights behind Cast(to float32): folded, quantized, no float32 copy of the weight', async (t) => {
    await checkSchemes(bf16CastWeights(), feedOf('x', DataType.FLOAT, [2, 256], 2), true, (l) => t.diagnostic(l));
  });

  it('fp16 attention with a float32-min mask constant: every scheme', async (t) => {
    await checkSchemes(maskedAttention(DataType.FLOAT16, 'causal'), feedOf('x', DataType.FLOAT16, [1, 8, 64], 3), false, (l) => t.diagnostic(l));
  });

  it('the ranges oracle (test/support/ranges.ts) reads float16 activations as values, not 16-bit codes', async () => {
    const values = gaussian(mulberry32(1), 2 * 256, 1);
    const feeds = { x: toOrtTensor({ dtype: DataType.FLOAT16, dims: [2, 256], data: values }) };
    const ranges = await minMaxRanges(new OnnxModel(fp16Layers(), undefined, 'fixture'), feeds);
    const halves = roundTo(DataType.FLOAT16, values);
    assert.deepEqual(ranges.get('x'), [Math.min(...halves), Math.max(...halves)]);
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

/** Weights stored as float16 behind Cast(to float32), as exporters of half-precision checkpoints write them. */
function castWeight(b: GraphBuilder, name: string, dims: number[], rand: () => number, scale: number): string {
  b.initializer(name, DataType.FLOAT16, dims, gaussian(rand, dims.reduce((a, d) => a * d, 1), scale));
  b.node('Cast', [name], [`${name}_float`], { to: DataType.FLOAT });
  return `${name}_float`;
}

/** fp32 x [2, 256] -> MatMul 'mm1' -> y1 and MatMul 'mm2' -> y2, both weights float16 behind Cast. */
function twoCastMatMuls(): ModelProto {
  const rand = mulberry32(17);
  const b = new GraphBuilder('cast-matmuls');
  b.input('x', DataType.FLOAT, [2, 256]);
  b.node('MatMul', ['x', castWeight(b, 'W1', [256, 256], rand, 0.06)], ['y1'], undefined, { name: 'mm1' });
  b.node('MatMul', ['x', castWeight(b, 'W2', [256, 256], rand, 0.06)], ['y2'], undefined, { name: 'mm2' });
  b.output('y1', DataType.FLOAT);
  b.output('y2', DataType.FLOAT);
  return modelFrom(b.graph, { opsets: { '': 17 } });
}

/** img [1, 32, 8, 8] -> Conv 'conv' -> yc, and x [2, 64] -> MatMul 'mm' -> ym; weights float16 behind Cast. */
function castConvAndMatMul(): ModelProto {
  const rand = mulberry32(19);
  const b = new GraphBuilder('cast-conv-matmul');
  b.input('img', DataType.FLOAT, [1, 32, 8, 8]);
  b.input('x', DataType.FLOAT, [2, 64]);
  b.node('Conv', ['img', castWeight(b, 'Wc', [64, 32, 3, 3], rand, 0.06)], ['yc'], { pads: [1, 1, 1, 1] }, { name: 'conv' });
  b.node('MatMul', ['x', castWeight(b, 'Wm', [64, 64], rand, 0.12)], ['ym'], undefined, { name: 'mm' });
  b.output('yc', DataType.FLOAT);
  b.output('ym', DataType.FLOAT);
  return modelFrom(b.graph, { opsets: { '': 17 } });
}

/**
 * Quantizes a fixture from its file through the quantize pass (folding included) and checks what folding must
 * not do: grow the file, or change what a node left in float computes. `float` names the outputs of the nodes
 * left in float (bit for bit equal to the original's in ONNX Runtime); the others must stay close.
 */
async function quantizeFolded(name: string, proto: ModelProto, options: QuantizeOptions, feeds: Feeds, float: readonly string[], say: (line: string) => void): Promise<QuantizeReport> {
  const path = join(dir, `${name}.onnx`);
  const out = join(dir, `${name}-q.onnx`);
  saveModel(new OnnxModel(proto, undefined, name), path);
  const steps = await runSteps(path, [{ pass: quantizeStep, options, where: 'quantize' }], { out, session: { intraOpThreads: 1 } });
  const report = steps.passes[0].report as QuantizeReport;
  const [before, after] = [statSync(path).size, statSync(out).size];
  assert.ok(after <= before, `${name}: ${after} bytes written, more than the original's ${before}`);
  say(`${name}: ${after} bytes written, original ${before}`);
  const reference = await run(proto, feeds);
  const got = await run(loadModel(out).proto, feeds);
  for (const [output, ref] of Object.entries(reference)) {
    if (float.includes(output)) assert.deepEqual(got[output], ref, `${name}: ${output} (float node) changed`);
    else assert.ok(cosine(ref, got[output]) > 0.99, `${name}: ${output} cosine ${cosine(ref, got[output])}`);
  }
  // The weight of every float node is still the original float16 initializer behind its Cast.
  const written = loadModel(out).graph;
  for (const n of written.node.filter((x) => float.includes(x.output[0]))) {
    const cast = written.node.find((c) => c.output[0] === n.input[1]);
    assert.equal(cast?.opType, 'Cast', `${name}: ${n.name} reads its weight through the Cast again`);
    assert.equal(written.initializer.find((t) => t.name === cast!.input[0])?.dataType, DataType.FLOAT16);
  }
  return report;
}

describe('folding leaves float16 weights alone where nothing quantized reads them', () => {
  it('one MatMul excluded: its fp16 weight keeps its Cast, the file is no larger, its output is unchanged', async (t) => {
    const r = await quantizeFolded('excluded', twoCastMatMuls(), { scheme: 'w8', select: { exclude: ['mm2'] } }, feedOf('x', DataType.FLOAT, [2, 256], 5), ['y2'], (l) => t.diagnostic(l));
    assert.equal(r.nodes.quantized, 1);
    assert.deepEqual(r.folded?.values.map((v) => v.from), ['W1_float'], 'only the quantized weight is folded');
  });

  it('w4 rewrites MatMul only: the Conv weight behind Cast stays float16', async (t) => {
    const feeds = { ...feedOf('img', DataType.FLOAT, [1, 32, 8, 8], 6), ...feedOf('x', DataType.FLOAT, [2, 64], 7) };
    const r = await quantizeFolded('conv-w4', castConvAndMatMul(), { scheme: 'w4' }, feeds, ['yc'], (l) => t.diagnostic(l));
    assert.deepEqual(r.nodes.list.map((n) => n.node), ['mm']);
    assert.deepEqual(r.folded?.values.map((v) => v.from), ['Wm_float']);
  });
});

/** ids [1, 8] -> Gather(table [256, 64] of `dtype`) -> emb -> MatMul [64, 64] -> y (bf16: Cast to float32 first). */
function embeddingModel(dtype: DataType.FLOAT16 | DataType.BFLOAT16): ModelProto {
  const rand = mulberry32(23);
  const b = new GraphBuilder('embedding');
  b.input('ids', DataType.INT64, [1, 8]);
  b.initializer('table', dtype, [256, 64], gaussian(rand, 256 * 64, 0.5));
  b.node('Gather', ['table', 'ids'], ['emb'], undefined, { name: 'embed' });
  // ORT's CPU has no bfloat16 MatMul: a bf16 model computes in float32 after the lookup.
  const wtype = dtype === DataType.FLOAT16 ? DataType.FLOAT16 : DataType.FLOAT;
  if (dtype === DataType.BFLOAT16) b.node('Cast', ['emb'], ['emb_float'], { to: DataType.FLOAT });
  b.initializer('W', wtype, [64, 64], gaussian(rand, 64 * 64, 0.12));
  b.node('MatMul', [dtype === DataType.FLOAT16 ? 'emb' : 'emb_float', 'W'], ['y'], undefined, { name: 'proj' });
  // onnxruntime-node hands no bfloat16 tensor back: only the fp16 model returns the lookup itself.
  if (dtype === DataType.FLOAT16) b.output('emb', dtype);
  b.output('y', wtype);
  return modelFrom(b.graph, { opsets: { '': 17 } });
}

describe('float16 embedding tables', () => {
  const ids = { ids: toOrtTensor({ dtype: DataType.INT64, dims: [1, 8], data: BigInt64Array.from([0n, 3n, 255n, 17n, 3n, 128n, 64n, 1n]) }) };

  for (const scheme of ['w4', 'w4a8'] as const) {
    it(`${scheme}: an fp16 Gather becomes GatherBlockQuantized with float16 scales, rows close to the table's in ORT`, async (t) => {
      const original = embeddingModel(DataType.FLOAT16);
      const model = new OnnxModel(original, undefined, 'fixture');
      const params = resolveScheme(scheme);
      const written = quantizeModel(model, params, params.activations ? { activationRanges: await minMaxRanges(model, ids) } : {});
      const gather = written.report.nodes.find((n) => n.op === 'Gather');
      assert.ok(gather, `the table is quantized (skipped: ${JSON.stringify(written.report.skipped)})`);
      assert.equal(gather.format, 'gather-block');
      const proto = written.model.proto;
      const node = proto.graph!.node.find((n) => n.opType === 'GatherBlockQuantized');
      assert.ok(node, 'a GatherBlockQuantized node');
      assert.equal(proto.graph!.initializer.find((i) => i.name === node.input[2])?.dataType, DataType.FLOAT16, 'scales in the table type');
      assert.ok(!proto.graph!.initializer.some((i) => i.name === 'table'), 'the float16 table is gone');
      const [a, b] = [await run(original, ids), await run(proto, ids)];
      for (const name of ['emb', 'y']) {
        const c = cosine(a[name], b[name]);
        assert.ok(c >= MIN_COSINE[scheme], `${name}: cosine ${c}`);
        t.diagnostic(`${scheme} ${name}: cosine ${c.toFixed(5)}`);
      }
      assert.equal(outputType(proto), DataType.FLOAT16, 'the lookup still gives float16');
      assert.ok(encodeModel(proto).length < encodeModel(original).length / 2);
    });
  }

  it('a bfloat16 table is reported skipped (ORT has no bfloat16 GatherBlockQuantized) and the model still runs', async () => {
    const original = embeddingModel(DataType.BFLOAT16);
    const model = new OnnxModel(original, undefined, 'fixture');
    const plan = planFromScheme(model, resolveScheme('w4'));
    assert.deepEqual(plan.nodes.map((n) => n.target.label), ['proj']);
    assert.equal(plan.skipped.length, 1);
    assert.match(plan.skipped[0].reason, /bfloat16 table/);
    const proto = quantizeModel(model, 'w4').model.proto;
    assert.ok(proto.graph!.node.some((n) => n.opType === 'Gather'));
    const [a, b] = [await run(original, ids), await run(proto, ids)];
    assert.ok(cosine(a.y, b.y) >= MIN_COSINE.w4);
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
