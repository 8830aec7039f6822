// The ONNX backend conformance data (node tests: one small model, recorded inputs and the reference outputs)
// run through the TensorFlow.js executor. A test takes part when every node resolves in the registry; it then
// either matches the reference outputs, or is excluded — by rule when its tensors have element types tfjs does
// not hold, or by name in EXCLUDED with the reason written down. test/tf-conformance.test.ts asserts that
// nothing else fails and that every written exclusion still fails; scripts/gen-op-table.ts reports the counts.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeTensor } from '../../onnx/codec.js';
import { dtypeInfo, dtypeName } from '../../onnx/dtypes.js';
import { loadModel, type OnnxModel } from '../../onnx/model.js';
import { type DecodedTensor, tensorValues } from '../../onnx/tensor.js';
import { DataType, type TypeProto } from '../../onnx/types.js';
import { TfModel } from './interpreter.js';
import type { OpDef, OpRegistry } from './registry.js';
import { opsetFor } from './support.js';

// Exact in tfjs (float32, int32, bool, and the narrower integers within int32) plus int64, which ONNX uses
// for every index and shape and which the executor narrows to int32 by design (see dtypes.ts).
const HELD_EXACTLY = new Set<number>([DataType.FLOAT, DataType.INT32, DataType.BOOL, DataType.INT8, DataType.UINT8, DataType.INT16, DataType.UINT16, DataType.INT64]);

export const TOLERANCE = { rtol: 1e-3, atol: 1e-5 };

const RANDOM = 'the op draws random numbers; the reference comes from numpy\'s generator';

/** Tests that use only registered ops but do not match, each with the reason. */
const REFUSED = 'refused at load time:';
const ALIGN_CORNERS =
  "the ONNX 1.12 reference takes align_corners' output length as input length x scale, unrounded; the executor uses the integer output size, as ONNX Runtime does (ORT's own conformance run lists the same two tests)";

export const EXCLUDED: Readonly<Record<string, string>> = {
  test_training_dropout: RANDOM,
  test_training_dropout_default: RANDOM,
  test_training_dropout_default_mask: RANDOM,
  test_training_dropout_mask: RANDOM,
  test_gathernd_example_int32_batch_dim1: `${REFUSED} GatherND with batch_dims > 0 is not implemented`,
  test_maxpool_with_argmax_2d_precomputed_pads: `${REFUSED} MaxPool's Indices output is not implemented`,
  test_maxpool_with_argmax_2d_precomputed_strides: `${REFUSED} MaxPool's Indices output is not implemented`,
  test_scatternd_multiply: `${REFUSED} ScatterND's 'mul' reduction is not implemented`,
  test_resize_downsample_scales_cubic_align_corners: ALIGN_CORNERS,
  test_resize_downsample_scales_linear_align_corners: ALIGN_CORNERS,
};

export type Outcome =
  | { status: 'passed' }
  | { status: 'failed'; detail: string }
  | { status: 'excluded'; reason: string; detail?: string }
  /** Some node's op (at its opset) is not in the registry: the test does not take part. */
  | { status: 'not-covered'; ops: string[] };

export interface TestResult {
  name: string;
  /** Op types of the test's nodes (domain-qualified outside the default domain). */
  ops: string[];
  /** The registry entries its nodes resolve to (empty when some node has none). */
  entries: OpDef[];
  outcome: Outcome;
}

function qualified(domain: string | undefined, opType: string | undefined): string {
  return domain && domain !== 'ai.onnx' ? `${domain}:${opType}` : (opType ?? '?');
}

/** The registry entries the model's nodes resolve to, and the ops that resolve to none. */
function resolveAll(model: OnnxModel, registry: OpRegistry): { entries: OpDef[]; missing: string[] } {
  const entries = new Set<OpDef>();
  const missing = new Set<string>();
  for (const n of model.graph.node) {
    const def = registry.resolve(n.domain, n.opType ?? '', opsetFor(model, n.domain));
    if (def) entries.add(def);
    else missing.add(qualified(n.domain, n.opType));
  }
  return { entries: [...entries], missing: [...missing] };
}

function unheldType(types: (TypeProto | undefined)[], initializers: (number | undefined)[]): string | undefined {
  for (const t of types) {
    if (!t?.tensorType) return 'a value that is not a tensor (sequence, map or optional)';
    const elem = t.tensorType.elemType;
    if (elem !== undefined && !HELD_EXACTLY.has(elem)) return typeReason(elem);
  }
  for (const elem of initializers) if (elem !== undefined && !HELD_EXACTLY.has(elem)) return typeReason(elem);
  return undefined;
}

function typeReason(elem: number): string {
  const name = dtypeName(elem);
  switch (elem) {
    case DataType.DOUBLE:
      return `${name} tensors: tfjs computes them in float32`;
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return `${name} tensors: tfjs has no 16-bit floats (computed in float32, rounded only on output)`;
    case DataType.UINT32:
    case DataType.UINT64:
      return `${name} tensors: their values exceed the int32 range tfjs computes integers in`;
    default:
      return `${name} tensors: tfjs holds numeric tensors only`;
  }
}

function tensorFiles(dir: string, prefix: string): DecodedTensor[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.pb'))
    .sort((a, b) => Number(a.slice(prefix.length, -3)) - Number(b.slice(prefix.length, -3)))
    .map((f) => tensorValues(decodeTensor(readFileSync(join(dir, f)))));
}

/** Why `got` differs from `want` beyond tolerance, or undefined when it matches. */
export function mismatch(got: DecodedTensor | undefined, want: DecodedTensor): string | undefined {
  if (!got) return 'missing';
  if (got.dims.join(',') !== want.dims.join(',')) return `shape [${got.dims}], want [${want.dims}]`;
  const isFloat = dtypeInfo(want.dtype).kind === 'float';
  let bad = 0;
  let first = -1;
  for (let i = 0; i < want.data.length; i++) {
    const a = Number(got.data[i]);
    const b = Number(want.data[i]);
    const ok = isFloat ? (Number.isNaN(a) && Number.isNaN(b)) || a === b || Math.abs(a - b) <= TOLERANCE.atol + TOLERANCE.rtol * Math.abs(b) : a === b;
    if (!ok && bad++ === 0) first = i;
  }
  return bad ? `${bad}/${want.data.length} elements differ, first at ${first}: ${got.data[first]} vs ${want.data[first]}` : undefined;
}

function runCase(model: OnnxModel, dir: string, registry: OpRegistry): string | undefined {
  const compiled = TfModel.compile(model, { registry });
  try {
    const problems: string[] = [];
    for (const set of readdirSync(dir).filter((f) => f.startsWith('test_data_set_')).sort()) {
      const inputs = tensorFiles(join(dir, set), 'input_');
      const feeds = Object.fromEntries(inputs.map((t, i) => [compiled.inputNames[i], t]));
      const got = compiled.run(feeds);
      tensorFiles(join(dir, set), 'output_').forEach((want, i) => {
        const name = compiled.outputNames[i];
        const why = mismatch(got[name], want);
        if (why) problems.push(`${set} ${name}: ${why}`);
      });
    }
    return problems.length ? problems.join('; ') : undefined;
  } finally {
    compiled.dispose();
  }
}

/** Runs one node test directory (model.onnx + test_data_set_*) with the active backend. */
export function runNodeTest(dir: string, registry: OpRegistry, name = dir): TestResult {
  const model = loadModel(join(dir, 'model.onnx'));
  const ops = [...new Set(model.graph.node.map((n) => qualified(n.domain, n.opType)))];
  const resolved = resolveAll(model, registry);
  if (resolved.missing.length) return { name, ops, entries: [], outcome: { status: 'not-covered', ops: resolved.missing } };
  const entries = resolved.entries;
  const graph = model.graph;
  const typeReason = unheldType([...graph.input, ...graph.output].map((v) => v.type), graph.initializer.map((t) => t.dataType));
  if (typeReason) return { name, ops, entries, outcome: { status: 'excluded', reason: `element types: ${typeReason}` } };
  let detail: string | undefined;
  try {
    detail = runCase(model, dir, registry);
  } catch (e) {
    detail = `error: ${(e as Error).message}`;
  }
  const written = EXCLUDED[name];
  if (written) return { name, ops, entries, outcome: { status: 'excluded', reason: written, ...(detail ? { detail } : {}) } };
  return { name, ops, entries, outcome: detail ? { status: 'failed', detail } : { status: 'passed' } };
}

/** Every node test under `root` (…/data/node), in name order. */
export function runNodeTests(root: string, registry: OpRegistry): TestResult[] {
  return readdirSync(root)
    .sort()
    .filter((name) => existsSync(join(root, name, 'model.onnx')))
    .map((name) => runNodeTest(join(root, name), registry, name));
}
