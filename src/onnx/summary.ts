// What `inspect` reports about a model: signature, operators, parameters by element type, the largest
// weights and where external data lives. Reads no weight bytes (sizes come from dims and external lengths).
import { basename } from 'node:path';
import { byteSize, dtypeName } from './dtypes.js';
import { allNodes } from './graph.js';
import { externalRef, isExternal, type OnnxModel } from './model.js';
import type { DecoderSummary } from './decoder-info.js';
import { modelFolder } from './model-folder.js';
import type { TensorProto, TypeProto, ValueInfoProto } from './types.js';

export type Dim = number | string | null;

export interface ValueSummary {
  name: string;
  dtype: string;
  shape: Dim[] | null;
}

export interface TensorSummary {
  name: string;
  dtype: string;
  shape: number[];
  bytes: number;
  external: boolean;
}

export interface ModelSummary {
  file: string;
  irVersion: number | null;
  producer: string | null;
  opsets: { domain: string; version: number }[];
  inputs: ValueSummary[];
  outputs: ValueSummary[];
  nodes: number;
  ops: { op: string; count: number }[];
  parameters: { count: number; bytes: number; byDtype: { dtype: string; count: number; bytes: number }[] };
  largest: TensorSummary[];
  externalData: { file: string; tensors: number; bytes: number }[];
  decoder: DecoderSummary | null;
}

export function valueSummary(v: ValueInfoProto): ValueSummary {
  return { name: v.name ?? '', ...typeSummary(v.type) };
}

function typeSummary(t: TypeProto | undefined): { dtype: string; shape: Dim[] | null } {
  if (t?.tensorType) {
    const dims = t.tensorType.shape?.dim;
    return {
      dtype: nameOf(t.tensorType.elemType),
      shape: dims ? dims.map((d) => d.dimValue ?? d.dimParam ?? null) : null,
    };
  }
  if (t?.sequenceType) return { dtype: `sequence<${typeSummary(t.sequenceType.elemType).dtype}>`, shape: null };
  if (t?.optionalType) return { dtype: `optional<${typeSummary(t.optionalType.elemType).dtype}>`, shape: null };
  if (t?.mapType) return { dtype: 'map', shape: null };
  if (t?.sparseTensorType) return { dtype: 'sparse_tensor', shape: null };
  return { dtype: 'unknown', shape: null };
}

function elementCount(t: TensorProto): number {
  return t.dims.reduce((a, b) => a * b, 1);
}

/** A model with an element type newer than this build is still worth inspecting, so unknown codes get a label. */
function nameOf(code: number | undefined): string {
  try {
    return dtypeName(code);
  } catch {
    return `unknown(${code ?? 'missing'})`;
  }
}

export function tensorBytes(model: OnnxModel, t: TensorProto): number {
  const raw = model.rawByteLength(t);
  if (raw !== undefined) return raw;
  if (t.stringData.length) return t.stringData.reduce((a, s) => a + s.length, 0);
  const count = elementCount(t);
  try {
    return byteSize(t.dataType ?? 0, count);
  } catch {
    return 0; // unknown element type or nonsensical dims: nothing sensible to count
  }
}

export function summarize(model: OnnxModel, largestCount = 10): ModelSummary {
  const graph = model.graph;
  const initializerNames = new Set(graph.initializer.map((t) => t.name));

  const opCounts = new Map<string, number>();
  let nodes = 0;
  for (const { node } of allNodes(graph)) {
    const op = node.domain && node.domain !== 'ai.onnx' ? `${node.domain}.${node.opType}` : (node.opType ?? '');
    opCounts.set(op, (opCounts.get(op) ?? 0) + 1);
    nodes++;
  }

  const byDtype = new Map<string, { dtype: string; count: number; bytes: number }>();
  const tensors: TensorSummary[] = [];
  const external = new Map<string, { file: string; tensors: number; bytes: number }>();
  for (const t of model.tensors()) {
    const dtype = nameOf(t.dataType);
    const bytes = tensorBytes(model, t);
    const entry = byDtype.get(dtype) ?? { dtype, count: 0, bytes: 0 };
    entry.count += elementCount(t);
    entry.bytes += bytes;
    byDtype.set(dtype, entry);
    tensors.push({ name: t.name ?? '', dtype, shape: t.dims, bytes, external: isExternal(t) });
    if (isExternal(t)) {
      const file = externalRef(t, model.source).location;
      const e = external.get(file) ?? { file, tensors: 0, bytes: 0 };
      e.tensors++;
      e.bytes += bytes;
      external.set(file, e);
    }
  }
  const dtypes = [...byDtype.values()].sort((a, b) => b.bytes - a.bytes);

  return {
    file: basename(model.source),
    irVersion: model.proto.irVersion ?? null,
    producer: [model.proto.producerName, model.proto.producerVersion].filter(Boolean).join(' ') || null,
    opsets: model.proto.opsetImport.map((o) => ({ domain: o.domain || 'ai.onnx', version: o.version ?? 0 })),
    inputs: graph.input.filter((v) => !initializerNames.has(v.name)).map(valueSummary),
    outputs: graph.output.map(valueSummary),
    nodes,
    ops: [...opCounts].map(([op, count]) => ({ op, count })).sort((a, b) => b.count - a.count || a.op.localeCompare(b.op)),
    parameters: {
      count: dtypes.reduce((a, d) => a + d.count, 0),
      bytes: dtypes.reduce((a, d) => a + d.bytes, 0),
      byDtype: dtypes,
    },
    largest: tensors.sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name)).slice(0, largestCount),
    externalData: [...external.values()],
    decoder: modelFolder(model).decoder,
  };
}
