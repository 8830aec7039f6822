// Typed access to NodeProto attributes. Readers check the attribute's type so a pass that expects an INT
// never silently reads the `i` field of a FLOAT attribute; constructors set `type` so the file is valid for
// checkers that refuse an attribute without one.
import { ModelError } from './model.js';
import { AttributeType, type AttributeProto, type GraphProto, type NodeProto, type TensorProto } from './types.js';

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** A fresh AttributeProto with every repeated field present, as the codec produces them. */
export function emptyAttribute(name: string, type: AttributeType): AttributeProto {
  return { name, type, floats: [], ints: [], strings: [], tensors: [], graphs: [], sparseTensors: [], typeProtos: [] };
}

export function intAttr(name: string, v: number | bigint): AttributeProto {
  return { ...emptyAttribute(name, AttributeType.INT), i: toBigInt(v, name) };
}

export function intsAttr(name: string, v: readonly (number | bigint)[]): AttributeProto {
  return { ...emptyAttribute(name, AttributeType.INTS), ints: v.map((x) => toBigInt(x, name)) };
}

/** A FLOAT attribute; use it for integral values (`alpha: 1.0`) that a plain object would map to INT. */
export function floatAttr(name: string, v: number): AttributeProto {
  return { ...emptyAttribute(name, AttributeType.FLOAT), f: v };
}

export function floatsAttr(name: string, v: readonly number[]): AttributeProto {
  return { ...emptyAttribute(name, AttributeType.FLOATS), floats: [...v] };
}

export function stringAttr(name: string, v: string | Uint8Array): AttributeProto {
  return { ...emptyAttribute(name, AttributeType.STRING), s: typeof v === 'string' ? utf8.encode(v) : v };
}

export function stringsAttr(name: string, v: readonly (string | Uint8Array)[]): AttributeProto {
  return {
    ...emptyAttribute(name, AttributeType.STRINGS),
    strings: v.map((s) => (typeof s === 'string' ? utf8.encode(s) : s)),
  };
}

export function tensorAttr(name: string, t: TensorProto): AttributeProto {
  return { ...emptyAttribute(name, AttributeType.TENSOR), t };
}

export function tensorsAttr(name: string, ts: readonly TensorProto[]): AttributeProto {
  return { ...emptyAttribute(name, AttributeType.TENSORS), tensors: [...ts] };
}

export function graphAttr(name: string, g: GraphProto): AttributeProto {
  return { ...emptyAttribute(name, AttributeType.GRAPH), g };
}

export function graphsAttr(name: string, gs: readonly GraphProto[]): AttributeProto {
  return { ...emptyAttribute(name, AttributeType.GRAPHS), graphs: [...gs] };
}

function toBigInt(v: number | bigint, name: string): bigint {
  if (typeof v === 'bigint') return v;
  if (!Number.isInteger(v)) throw new RangeError(`attribute '${name}': ${v} is not an integer`);
  return BigInt(v);
}

/** A value in a plain attribute object; see `toAttributes` for how each maps to an AttributeType. */
export type AttrValue =
  | number
  | bigint
  | boolean
  | string
  | Uint8Array
  | readonly number[]
  | readonly bigint[]
  | readonly string[]
  | TensorProto
  | GraphProto
  | AttributeProto;

export type AttrInput = Readonly<Record<string, AttrValue>> | readonly AttributeProto[];

/**
 * Attributes from a plain object, in key order. The mapping is by JS value, never by op schema:
 * integers, bigints and booleans -> INT; other numbers -> FLOAT; strings and bytes -> STRING; arrays the same
 * per element (an array with any non-integer number is FLOATS, so `[1, 0.5]` is FLOATS); TensorProto -> TENSOR;
 * GraphProto -> GRAPH; an AttributeProto (from `floatAttr` etc.) is used as is, renamed to its key. So a float
 * attribute whose value happens to be integral (`alpha: 1.0` is the number 1) needs `floatAttr`, and an empty
 * list needs an explicit constructor because its type cannot be guessed. An array is accepted as is.
 */
export function toAttributes(attrs: AttrInput | undefined): AttributeProto[] {
  if (!attrs) return [];
  if (Array.isArray(attrs)) return [...(attrs as readonly AttributeProto[])];
  return Object.entries(attrs as Record<string, AttrValue>).map(([name, v]) => toAttribute(name, v));
}

function toAttribute(name: string, v: AttrValue): AttributeProto {
  if (typeof v === 'number') return Number.isInteger(v) ? intAttr(name, v) : floatAttr(name, v);
  if (typeof v === 'bigint') return intAttr(name, v);
  if (typeof v === 'boolean') return intAttr(name, v ? 1 : 0);
  if (typeof v === 'string' || v instanceof Uint8Array) return stringAttr(name, v);
  if (Array.isArray(v)) {
    const arr = v as readonly (number | bigint | string)[];
    if (arr.length === 0) throw new TypeError(`attribute '${name}': an empty list has no type; use intsAttr/floatsAttr/...`);
    if (arr.every((x) => typeof x === 'string')) return stringsAttr(name, arr as string[]);
    if (arr.every((x) => typeof x === 'bigint' || (typeof x === 'number' && Number.isInteger(x)))) {
      return intsAttr(name, arr as (number | bigint)[]);
    }
    if (arr.every((x) => typeof x === 'number')) return floatsAttr(name, arr as number[]);
    throw new TypeError(`attribute '${name}': a list mixes strings, bigints and non-integers`);
  }
  const obj = v as object;
  if ('floats' in obj && 'ints' in obj && 'graphs' in obj) return { ...(v as AttributeProto), name };
  if ('node' in obj) return graphAttr(name, v as GraphProto);
  if ('dims' in obj) return tensorAttr(name, v as TensorProto);
  throw new TypeError(`attribute '${name}': unsupported value`);
}

// --- reading ---------------------------------------------------------------------------------------------

export function findAttr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

/** Replaces the node's attribute of the same name, or appends it. */
export function setAttr(node: NodeProto, attr: AttributeProto): void {
  const i = node.attribute.findIndex((a) => a.name === attr.name);
  if (i >= 0) node.attribute[i] = attr;
  else node.attribute.push(attr);
}

export function removeAttr(node: NodeProto, name: string): void {
  node.attribute = node.attribute.filter((a) => a.name !== name);
}

/** The attribute's type; files from old exporters may leave `type` unset, so it is inferred from the field set. */
export function attributeType(a: AttributeProto): AttributeType {
  if (a.type !== undefined && a.type !== AttributeType.UNDEFINED) return a.type;
  if (a.f !== undefined) return AttributeType.FLOAT;
  if (a.i !== undefined) return AttributeType.INT;
  if (a.s !== undefined) return AttributeType.STRING;
  if (a.t !== undefined) return AttributeType.TENSOR;
  if (a.g !== undefined) return AttributeType.GRAPH;
  if (a.floats.length) return AttributeType.FLOATS;
  if (a.ints.length) return AttributeType.INTS;
  if (a.strings.length) return AttributeType.STRINGS;
  if (a.tensors.length) return AttributeType.TENSORS;
  if (a.graphs.length) return AttributeType.GRAPHS;
  return AttributeType.UNDEFINED;
}

function describe(node: NodeProto): string {
  return `node '${node.name ?? ''}' (${node.opType ?? '?'})`;
}

/** The attribute when present with the expected type; a present attribute of another type is an error. */
function typed(node: NodeProto, name: string, want: AttributeType): AttributeProto | undefined {
  const a = findAttr(node, name);
  if (!a) return undefined;
  const got = attributeType(a);
  // An empty list is stored with no values, so an untyped empty attribute reads as an empty list of any type.
  if (got !== want && !(got === AttributeType.UNDEFINED && want >= AttributeType.FLOATS)) {
    throw new ModelError(`${describe(node)}: attribute '${name}' is ${AttributeType[got]}, expected ${AttributeType[want]}`);
  }
  return a;
}

function missing<T>(node: NodeProto, name: string, dflt: T | undefined): T {
  if (dflt === undefined) throw new ModelError(`${describe(node)}: required attribute '${name}' is missing`);
  return dflt;
}

/** An INT attribute as a number; values beyond 2^53 (INT64_MAX sentinels) round, use `attrBigInt` for those. */
export function attrInt(node: NodeProto, name: string, dflt?: number): number {
  const a = typed(node, name, AttributeType.INT);
  return a ? Number(a.i ?? 0n) : missing(node, name, dflt);
}

export function attrBigInt(node: NodeProto, name: string, dflt?: bigint): bigint {
  const a = typed(node, name, AttributeType.INT);
  return a ? (a.i ?? 0n) : missing(node, name, dflt);
}

export function attrInts(node: NodeProto, name: string, dflt?: readonly number[]): number[] {
  const a = typed(node, name, AttributeType.INTS);
  return a ? a.ints.map(Number) : [...missing(node, name, dflt)];
}

export function attrFloat(node: NodeProto, name: string, dflt?: number): number {
  const a = typed(node, name, AttributeType.FLOAT);
  return a ? (a.f ?? 0) : missing(node, name, dflt);
}

export function attrFloats(node: NodeProto, name: string, dflt?: readonly number[]): number[] {
  const a = typed(node, name, AttributeType.FLOATS);
  return a ? [...a.floats] : [...missing(node, name, dflt)];
}

export function attrString(node: NodeProto, name: string, dflt?: string): string {
  const a = typed(node, name, AttributeType.STRING);
  return a ? fromUtf8.decode(a.s ?? new Uint8Array()) : missing(node, name, dflt);
}

export function attrStrings(node: NodeProto, name: string, dflt?: readonly string[]): string[] {
  const a = typed(node, name, AttributeType.STRINGS);
  return a ? a.strings.map((s) => fromUtf8.decode(s)) : [...missing(node, name, dflt)];
}

/** A TENSOR attribute (Constant's `value`); undefined when absent, since tensors have no useful default. */
export function attrTensor(node: NodeProto, name: string): TensorProto | undefined {
  return typed(node, name, AttributeType.TENSOR)?.t;
}

export function attrTensors(node: NodeProto, name: string): TensorProto[] {
  return typed(node, name, AttributeType.TENSORS)?.tensors ?? [];
}

/** A GRAPH attribute (If's branches, Loop's and Scan's body); undefined when absent. */
export function attrGraph(node: NodeProto, name: string): GraphProto | undefined {
  return typed(node, name, AttributeType.GRAPH)?.g;
}

export function attrGraphs(node: NodeProto, name: string): GraphProto[] {
  return typed(node, name, AttributeType.GRAPHS)?.graphs ?? [];
}

/** Every subgraph a node holds, in attribute order, with the attribute it came from. */
export function subgraphsOf(node: NodeProto): { attribute: string; graph: GraphProto }[] {
  const out: { attribute: string; graph: GraphProto }[] = [];
  for (const a of node.attribute) {
    if (a.g) out.push({ attribute: a.name ?? '', graph: a.g });
    for (const g of a.graphs) out.push({ attribute: a.name ?? '', graph: g });
  }
  return out;
}
