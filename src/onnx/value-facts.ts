// What a graph says about its values without running it: the rank and element type of graph inputs, outputs,
// value_info entries, initializers and Constant outputs, and the element type carried through the ops whose
// output type follows from their inputs or attributes. The opset upgrade needs no more than this (a rank to
// tell whether Softmax's axis is the last one, a type for values that became typed inputs); a caller with
// real shapes (from ONNX Runtime) passes them as ValueFacts and they take precedence.
import { findAttr } from './attributes.js';
import { DataType, type GraphProto, type NodeProto, type TensorProto, type ValueInfoProto } from './types.js';

/** Lookups a caller may supply; undefined means unknown. */
export interface ValueFacts {
  rankOf?(name: string): number | undefined;
  elemTypeOf?(name: string): DataType | undefined;
}

/** Ops whose every output has the element type of their first input. */
const SAME_AS_FIRST = new Set(
  (
    'Abs Acos Acosh Add AveragePool BatchNormalization Asin Asinh Atan Atanh Ceil Celu Clip Compress Concat Conv ConvTranspose ' +
    'Cos Cosh CumSum DepthToSpace Div Dropout Einsum Elu Erf Exp Expand Flatten Floor Gather GatherElements GatherND Gelu Gemm ' +
    'GlobalAveragePool GlobalLpPool GlobalMaxPool GroupNormalization HardSigmoid HardSwish Hardmax Identity InstanceNormalization ' +
    'LRN LayerNormalization LeakyRelu Log LogSoftmax LpNormalization LpPool MatMul Max MaxPool MaxRoiPool Mean ' +
    'MeanVarianceNormalization Min Mish Mod Mul Neg PRelu Pad Pow Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ' +
    'ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RoiAlign Round ' +
    'Scatter ScatterElements ScatterND Selu Shrink Sigmoid Sign Sin Sinh Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt ' +
    'Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample'
  ).split(' '),
);
/** Ops whose other outputs are int64 indices (the first follows the input). */
const INDEX_OUTPUTS = new Set(['MaxPool', 'TopK', 'Unique']);
const INT64_OUT = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin', 'NonMaxSuppression']);
const BOOL_OUT = new Set(['Equal', 'Greater', 'GreaterOrEqual', 'Less', 'LessOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);

interface Fact {
  rank?: number;
  type?: DataType;
}

/** The declared facts of one graph, falling back to those of the graphs around it (for subgraphs). */
export class GraphFacts {
  private readonly facts = new Map<string, Fact>();

  constructor(
    graph: GraphProto,
    private readonly outer?: GraphFacts,
  ) {
    for (const v of [...graph.input, ...graph.output, ...graph.valueInfo]) this.declare(v);
    for (const t of graph.initializer) if (t.name) this.set(t.name, { rank: t.dims.length, type: t.dataType });
    for (const node of graph.node) this.follow(node);
  }

  rank(name: string): number | undefined {
    return this.facts.get(name)?.rank ?? this.outer?.rank(name);
  }

  elemType(name: string): DataType | undefined {
    return this.facts.get(name)?.type ?? this.outer?.elemType(name);
  }

  private set(name: string, fact: Fact): void {
    const had = this.facts.get(name) ?? {};
    this.facts.set(name, { rank: had.rank ?? fact.rank, type: had.type ?? fact.type });
  }

  private declare(v: ValueInfoProto): void {
    const t = v.type?.tensorType;
    if (!v.name || !t) return;
    const type = t.elemType ? (t.elemType as DataType) : undefined;
    this.set(v.name, { type, ...(t.shape ? { rank: t.shape.dim.length } : {}) });
  }

  private follow(node: NodeProto): void {
    const op = node.opType ?? '';
    if (node.domain && node.domain !== 'ai.onnx') return;
    const out = node.output;
    const typeOf = (i: number): DataType | undefined => (node.input[i] ? this.elemType(node.input[i]) : undefined);
    if (op === 'Constant') {
      const c = constantFact(node);
      if (c && out[0]) this.set(out[0], c);
      return;
    }
    let type: DataType | undefined;
    if (op === 'Cast') type = findAttr(node, 'to')?.i !== undefined ? (Number(findAttr(node, 'to')!.i) as DataType) : undefined;
    else if (op === 'CastLike' || op === 'Where') type = typeOf(1);
    else if (op === 'ConstantOfShape') type = findAttr(node, 'value')?.t?.dataType ?? DataType.FLOAT;
    else if (op === 'DequantizeLinear') type = typeOf(1);
    else if (op === 'QuantizeLinear') type = typeOf(2) ?? DataType.UINT8;
    else if (INT64_OUT.has(op)) type = DataType.INT64;
    else if (BOOL_OUT.has(op)) type = DataType.BOOL;
    else if (SAME_AS_FIRST.has(op)) type = typeOf(0);
    if (type === undefined) return;
    out.forEach((name, i) => {
      if (!name) return;
      const indices = i > 0 && INDEX_OUTPUTS.has(op);
      // Dropout's mask is bool from opset 10; the opset upgrade types it itself, so it is left unknown here.
      if (i > 0 && op === 'Dropout') return;
      this.set(name, { type: indices ? DataType.INT64 : type });
    });
  }
}

function constantFact(node: NodeProto): Fact | undefined {
  for (const a of node.attribute) {
    switch (a.name) {
      case 'value':
        return a.t ? tensorFact(a.t) : undefined;
      case 'value_float':
        return { rank: 0, type: DataType.FLOAT };
      case 'value_floats':
        return { rank: 1, type: DataType.FLOAT };
      case 'value_int':
        return { rank: 0, type: DataType.INT64 };
      case 'value_ints':
        return { rank: 1, type: DataType.INT64 };
      case 'value_string':
        return { rank: 0, type: DataType.STRING };
      case 'value_strings':
        return { rank: 1, type: DataType.STRING };
      case 'sparse_value':
        return a.sparseTensor?.dims ? { rank: a.sparseTensor.dims.length, ...(a.sparseTensor.values?.dataType ? { type: a.sparseTensor.values.dataType } : {}) } : undefined;
    }
  }
  return undefined;
}

function tensorFact(t: TensorProto): Fact {
  return { rank: t.dims.length, ...(t.dataType ? { type: t.dataType as DataType } : {}) };
}
