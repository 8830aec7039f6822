// Short names for charts: exporters' node and tensor names repeat a '/model/' prefix and an op or '_output_0'
// suffix that take half a label's room and tell the reader nothing; the tables keep the names whole.

/** '/model/layers.0/self_attn/q_proj/MatMul' -> 'layers.0/self_attn/q_proj'. */
export function layerName(node: string): string {
  return stripModel(node).replace(/\/(MatMul|Gemm|Conv)(_\d+)?$/, '') || node;
}

/** layerName of each node, or the names unchanged where two would become one (see allOrNone). */
export function layerNames(nodes: readonly string[]): string[] {
  return allOrNone(nodes, nodes.map(layerName));
}

/** '/model/layers.0/mlp/Mul_output_0' -> 'layers.0/mlp/Mul', or the names unchanged (see allOrNone). */
export function shortTensorNames(names: readonly string[]): string[] {
  return allOrNone(names, names.map((n) => stripModel(n).replace(/_output_0$/, '') || n));
}

/** The whole list is shortened or none of it: a chart must not merge two tensors' bars under one label. */
function allOrNone(names: readonly string[], short: string[]): string[] {
  return new Set(short).size === new Set(names).size ? short : [...names];
}

function stripModel(name: string): string {
  return name.replace(/^\/?model\//, '').replace(/^\//, '');
}
