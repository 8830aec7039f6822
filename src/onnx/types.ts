// The in-memory ONNX model: plain objects mirroring onnx.proto (camelCase field names). Only `codec.ts`
// touches protobuf; everything else in the project edits these objects.
//
// 64-bit integers: values that can legitimately exceed 2^53 (attribute ints such as Slice's INT64_MAX ends,
// int64/uint64 tensor data) are `bigint`; the rest (dims, versions, shape dims) are `number` and the codec
// refuses a model whose value would not fit exactly. Optional scalar fields are absent when the file did not
// carry them, which keeps "set to the default" distinct from "not set" across a round trip.

export interface StringStringEntry {
  key?: string;
  value?: string;
}

export enum AttributeType {
  UNDEFINED = 0,
  FLOAT = 1,
  INT = 2,
  STRING = 3,
  TENSOR = 4,
  GRAPH = 5,
  FLOATS = 6,
  INTS = 7,
  STRINGS = 8,
  TENSORS = 9,
  GRAPHS = 10,
  SPARSE_TENSOR = 11,
  SPARSE_TENSORS = 12,
  TYPE_PROTO = 13,
  TYPE_PROTOS = 14,
}

export interface AttributeProto {
  name?: string;
  refAttrName?: string;
  docString?: string;
  type?: AttributeType;
  f?: number;
  i?: bigint;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  sparseTensor?: SparseTensorProto;
  tp?: TypeProto;
  floats: number[];
  ints: bigint[];
  strings: Uint8Array[];
  tensors: TensorProto[];
  graphs: GraphProto[];
  sparseTensors: SparseTensorProto[];
  typeProtos: TypeProto[];
}

export interface ValueInfoProto {
  name?: string;
  type?: TypeProto;
  docString?: string;
  metadataProps: StringStringEntry[];
}

export interface NodeProto {
  input: string[];
  output: string[];
  name?: string;
  opType?: string;
  domain?: string;
  overload?: string;
  attribute: AttributeProto[];
  docString?: string;
  metadataProps: StringStringEntry[];
  deviceConfigurations: NodeDeviceConfigurationProto[];
}

export interface IntIntListEntryProto {
  key?: number;
  value: number[];
}

export interface NodeDeviceConfigurationProto {
  configurationId?: string;
  shardingSpec: ShardingSpecProto[];
  pipelineStage?: number;
}

export interface ShardingSpecProto {
  tensorName?: string;
  device: number[];
  indexToDeviceGroupMap: IntIntListEntryProto[];
  shardedDim: ShardedDimProto[];
}

export interface ShardedDimProto {
  axis?: number;
  simpleSharding: SimpleShardedDimProto[];
}

export interface SimpleShardedDimProto {
  dimValue?: number;
  dimParam?: string;
  numShards?: number;
}

export interface TrainingInfoProto {
  initialization?: GraphProto;
  algorithm?: GraphProto;
  initializationBinding: StringStringEntry[];
  updateBinding: StringStringEntry[];
}

export interface OperatorSetIdProto {
  domain?: string;
  version?: number;
}

export interface DeviceConfigurationProto {
  name?: string;
  numDevices?: number;
  device: string[];
}

export interface ModelProto {
  irVersion?: number;
  opsetImport: OperatorSetIdProto[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: number;
  docString?: string;
  graph?: GraphProto;
  metadataProps: StringStringEntry[];
  trainingInfo: TrainingInfoProto[];
  functions: FunctionProto[];
  configuration: DeviceConfigurationProto[];
}

export interface TensorAnnotation {
  tensorName?: string;
  quantParameterTensorNames: StringStringEntry[];
}

export interface GraphProto {
  node: NodeProto[];
  name?: string;
  initializer: TensorProto[];
  sparseInitializer: SparseTensorProto[];
  docString?: string;
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo: ValueInfoProto[];
  quantizationAnnotation: TensorAnnotation[];
  metadataProps: StringStringEntry[];
}

export enum DataLocation {
  DEFAULT = 0,
  EXTERNAL = 1,
}

export interface TensorProto {
  dims: number[];
  dataType?: number;
  segment?: { begin?: number; end?: number };
  floatData: number[];
  int32Data: number[];
  stringData: Uint8Array[];
  int64Data: bigint[];
  name?: string;
  docString?: string;
  rawData?: Uint8Array;
  externalData: StringStringEntry[];
  dataLocation?: DataLocation;
  doubleData: number[];
  uint64Data: bigint[];
  metadataProps: StringStringEntry[];
}

export interface SparseTensorProto {
  values?: TensorProto;
  indices?: TensorProto;
  dims: number[];
}

export interface TensorShapeDimension {
  dimValue?: number;
  dimParam?: string;
  denotation?: string;
}

export interface TensorShapeProto {
  dim: TensorShapeDimension[];
}

export interface TypeProto {
  tensorType?: { elemType?: number; shape?: TensorShapeProto };
  sequenceType?: { elemType?: TypeProto };
  mapType?: { keyType?: number; valueType?: TypeProto };
  optionalType?: { elemType?: TypeProto };
  sparseTensorType?: { elemType?: number; shape?: TensorShapeProto };
  opaqueType?: { domain?: string; name?: string };
  denotation?: string;
}

export interface FunctionProto {
  name?: string;
  input: string[];
  output: string[];
  attribute: string[];
  attributeProto: AttributeProto[];
  node: NodeProto[];
  docString?: string;
  opsetImport: OperatorSetIdProto[];
  domain?: string;
  overload?: string;
  valueInfo: ValueInfoProto[];
  metadataProps: StringStringEntry[];
}

/** ONNX TensorProto.DataType codes, including the types newer than IR 8. */
export enum DataType {
  UNDEFINED = 0,
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  UINT16 = 4,
  INT16 = 5,
  INT32 = 6,
  INT64 = 7,
  STRING = 8,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  UINT32 = 12,
  UINT64 = 13,
  COMPLEX64 = 14,
  COMPLEX128 = 15,
  BFLOAT16 = 16,
  FLOAT8E4M3FN = 17,
  FLOAT8E4M3FNUZ = 18,
  FLOAT8E5M2 = 19,
  FLOAT8E5M2FNUZ = 20,
  UINT4 = 21,
  INT4 = 22,
  FLOAT4E2M1 = 23,
  FLOAT8E8M0 = 24,
  UINT2 = 25,
  INT2 = 26,
}
