// Reading intermediate tensors: ORT only returns graph outputs, so the names are added to graph.output on a copy
// of the model and fetched like any output.
//
// Type info for an added output comes from value_info, the graph inputs or the initializers when the model has
// it. When it has none the output is added without a type: onnxruntime-node 1.30 infers it (checked in
// test/runtime.test.ts), so no propagation or first pass is needed. A wrong type would be refused, which is why
// nothing is guessed.
import { loadModel, ModelError, OnnxModel } from '../onnx/model.js';
import type { GraphProto, ModelProto, TypeProto, ValueInfoProto } from '../onnx/types.js';
import { type Feeds, type Outputs, Session, type SessionOptions } from './session.js';

export interface CaptureOptions extends SessionOptions {
  /**
   * Default 'disabled': fusions and constant folding would compute the captured tensors differently, or not at
   * all, from the graph as written. Graph outputs themselves survive any level.
   */
  graphOptimization?: SessionOptions['graphOptimization'];
}

/** The model's proto with `names` appended to graph.output; the given proto is not modified. */
export function withOutputs(proto: ModelProto, names: readonly string[], source = 'model'): ModelProto {
  const graph = proto.graph;
  if (!graph) throw new ModelError(`${source}: model has no graph`);
  const have = new Set(graph.output.map((o) => o.name));
  const types = knownTypes(graph);
  const produced = new Set([...graph.input.map((v) => v.name), ...graph.initializer.map((t) => t.name)]);
  for (const n of graph.node) for (const o of n.output) produced.add(o);
  const added: ValueInfoProto[] = [];
  for (const name of new Set(names)) {
    if (have.has(name)) continue;
    if (!name || !produced.has(name)) {
      throw new ModelError(`${source}: cannot capture '${name}': no node, input or initializer of the main graph produces it`);
    }
    const type = types.get(name);
    added.push({ name, metadataProps: [], ...(type ? { type: structuredClone(type) } : {}) });
  }
  // Shallow copies down to the output list: the (possibly large) initializers stay shared, never edited.
  return { ...proto, graph: { ...graph, output: [...graph.output, ...added] } };
}

function knownTypes(graph: GraphProto): Map<string, TypeProto> {
  const types = new Map<string, TypeProto>();
  for (const t of graph.initializer) {
    if (t.name && t.dataType) {
      types.set(t.name, { tensorType: { elemType: t.dataType, shape: { dim: t.dims.map((d) => ({ dimValue: d })) } } });
    }
  }
  // An initializer's own element type and dims are exact; declared value info and inputs fill in the rest.
  for (const v of [...graph.valueInfo, ...graph.input]) if (v.name && v.type && !types.has(v.name)) types.set(v.name, v.type);
  return types;
}

/** A session over a copy of the model whose outputs include the captured tensors. */
export class Capture {
  private constructor(
    private readonly session: Session,
    /** The captured names, in the order asked for, without repeats. */
    readonly names: readonly string[],
  ) {}

  static async open(model: string | OnnxModel, names: readonly string[], options: CaptureOptions = {}): Promise<Capture> {
    const m = typeof model === 'string' ? loadModel(model) : model;
    const copy = new OnnxModel(withOutputs(m.proto, names, m.source), m.baseDir, m.source);
    const session = await Session.create(copy, { ...options, graphOptimization: options.graphOptimization ?? 'disabled' });
    return new Capture(session, [...new Set(names)]);
  }

  /** The captured tensors for one set of feeds, by name. */
  async run(feeds: Feeds): Promise<Outputs> {
    return this.session.run(feeds, this.names);
  }

  /** Session.runBatched over the captured tensors (all must have the batch on axis 0). */
  async runBatched(samples: readonly Feeds[], batchSize = 1): Promise<Outputs> {
    return this.session.runBatched(samples, batchSize, this.names);
  }

  async dispose(): Promise<void> {
    await this.session.dispose();
  }
}

/** One-shot capture: opens, runs once, closes. */
export async function captureTensors(
  model: string | OnnxModel,
  names: readonly string[],
  feeds: Feeds,
  options: CaptureOptions = {},
): Promise<Outputs> {
  const capture = await Capture.open(model, names, options);
  try {
    return await capture.run(feeds);
  } finally {
    await capture.dispose();
  }
}
