// The differentiable ONNX executor on TensorFlow.js. A model is compiled once: support is checked for every
// node up front (one error listing everything missing), initializers become tf.Variables (float, so gradients
// can be taken with respect to them) or constant tensors, Constant nodes and whatever depends only on them are
// evaluated once, and the nodes are put in topological order. Each run executes the nodes a set of fetched
// values needs, each inside tf.tidy, and frees every intermediate as soon as its last reader has run.
//
// Values cross the API as DecodedTensor (typed arrays + dims, src/onnx/tensor.ts) so callers need not touch
// tfjs; the one exception is a gradient objective, which is built from the outputs with tfjs ops.
import * as tf from '@tensorflow/tfjs-core';
import { OnnxCompressError } from '../../errors.js';
import { dtypeName } from '../../onnx/dtypes.js';
import { GraphIndex, nodeLabel, topologicalOrder } from '../../onnx/graph.js';
import { ModelError, type OnnxModel } from '../../onnx/model.js';
import { type DecodedTensor, tensorValues } from '../../onnx/tensor.js';
import { DataType, type NodeProto, type ValueInfoProto } from '../../onnx/types.js';
import { backendSelected } from './backend.js';
import { fromTfTensor, onnxTypeOfTf, tfTypeOf, toTfTensor } from './dtypes.js';
import { defaultRegistry } from './ops/index.js';
import { OpError } from './ops/util.js';
import type { OpDef, OpRegistry } from './registry.js';
import { opsetFor, supportProblems, UnsupportedModelError } from './support.js';

/** A value fed to the model: typed array + dims; dtype defaults to the graph input's declared type. */
export type TensorInput = Omit<DecodedTensor, 'dtype'> & { dtype?: DecodedTensor['dtype'] };

export type Feeds = Record<string, TensorInput>;
export type Outputs = Record<string, DecodedTensor>;

/** A scalar built from the fetched values with tfjs ops (`ops` is tfjs itself, so callers need not import it). */
export type Objective = (outputs: Record<string, tf.Tensor>, ops: typeof tf) => tf.Tensor;

export interface GradientRequest {
  feeds: Feeds;
  objective: Objective;
  /** Float initializers to differentiate with respect to. */
  weights?: readonly string[];
  /** Float graph inputs to differentiate with respect to. */
  inputs?: readonly string[];
  /** Values the objective reads (graph outputs or any intermediate); default: the graph outputs. */
  fetches?: readonly string[];
}

export interface GradientResult {
  /** The objective's value. */
  objective: number;
  /** d objective / d weight, shaped like each weight. */
  weights: Outputs;
  /** d objective / d input, shaped like each input. */
  inputs: Outputs;
}

export interface CompileOptions {
  /** Operator set to run with (default: every built-in op). */
  registry?: OpRegistry;
}

/** A failure while running a node or handling feeds; the message names the model and the node or value. */
export class TfExecutionError extends ModelError {}

/** A node with the registry entry that runs it. */
interface Compiled {
  node: NodeProto;
  def: OpDef;
  opset: number;
  label: string;
}

interface Step extends Compiled {
  /** Values whose last reader is this step (freed after it). */
  release: string[];
}

/** The steps that compute a set of fetched values. */
interface Plan {
  steps: Step[];
  fetches: string[];
}

export class TfModel {
  private readonly variables = new Map<string, tf.Variable>();
  /** Non-float initializers, Constant outputs and everything folded from them. */
  private readonly constants = new Map<string, tf.Tensor>();
  private readonly nodes: Compiled[] = [];
  private readonly producers = new Map<string, number>();
  private readonly declared = new Map<string, ValueInfoProto>();
  private readonly plans = new Map<string, Plan>();
  private disposed = false;

  /** Graph inputs a caller must feed (initializer-backed inputs excluded). */
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];

  private constructor(
    private readonly model: OnnxModel,
    registry: OpRegistry,
  ) {
    const graph = model.graph;
    const problems = supportProblems(model, registry);
    if (problems.length) throw new UnsupportedModelError(model.source, problems);
    const index = new GraphIndex(graph);
    const initializers = new Set(graph.initializer.map((t) => t.name ?? ''));
    this.inputNames = graph.input.map((v) => v.name ?? '').filter((n) => !initializers.has(n));
    this.outputNames = graph.output.map((v) => v.name ?? '');
    for (const v of [...graph.valueInfo, ...graph.input, ...graph.output]) if (v.name) this.declared.set(v.name, v);
    const overridable = new Set(graph.input.map((v) => v.name ?? ''));
    try {
      this.loadInitializers(overridable);
      for (const node of topologicalOrder(graph, { index })) {
        const opset = opsetFor(model, node.domain);
        const def = registry.resolve(node.domain, node.opType ?? '', opset)!;
        const compiled = { node, def, opset, label: nodeLabel(node, graph) };
        if (!this.foldIfConstant(compiled)) {
          node.output.forEach((o) => o && this.producers.set(o, this.nodes.length));
          this.nodes.push(compiled);
        }
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** Compiles a model for the active tfjs backend; selectBackend (backend.ts) must have run. */
  static compile(model: OnnxModel, options: CompileOptions = {}): TfModel {
    if (!backendSelected()) throw new TfExecutionError(`${model.source}: no TensorFlow.js backend is ready: await selectBackend() first`);
    return new TfModel(model, options.registry ?? defaultRegistry());
  }

  /** Float initializers, the weights gradients can be taken with respect to. */
  get weightNames(): string[] {
    return [...this.variables].filter(([, v]) => v.dtype === 'float32').map(([name]) => name);
  }

  /** Runs the model; `fetches` may name graph outputs or any intermediate value (default: the graph outputs). */
  run(feeds: Feeds, fetches: readonly string[] = this.outputNames): Outputs {
    this.checkLive();
    const fed = this.convertFeeds(feeds);
    try {
      const values = this.execute(fed, fetches);
      try {
        return Object.fromEntries(Object.entries(values).map(([name, t]) => [name, fromTfTensor(t, this.outputType(name, t), name)]));
      } finally {
        tf.dispose(Object.values(values));
      }
    } finally {
      tf.dispose([...fed.values()]);
    }
  }

  /**
   * Gradients of a scalar objective of the fetched values with respect to chosen weights and inputs, from one
   * forward and one backward pass.
   */
  gradients(request: GradientRequest): GradientResult {
    this.checkLive();
    const weightNames = [...(request.weights ?? [])];
    const inputNames = [...(request.inputs ?? [])];
    const fed = this.convertFeeds(request.feeds);
    try {
      const targets = [
        ...weightNames.map((n) => this.variable(n)),
        ...inputNames.map((n) => {
          const t = fed.get(n);
          if (!t) throw new TfExecutionError(`${this.model.source}: '${n}' is not a fed input`);
          if (t.dtype !== 'float32') throw new TfExecutionError(`${this.model.source}: input '${n}' is not a float tensor, so it has no gradient`);
          return t;
        }),
      ];
      if (targets.length === 0) throw new TfExecutionError(`${this.model.source}: name at least one weight or input to differentiate with respect to`);
      const overridden = new Map(fed);
      weightNames.forEach((n, i) => overridden.set(n, targets[i]));
      const f = (): tf.Scalar => {
        const values = this.execute(overridden, request.fetches ?? this.outputNames);
        const objective = request.objective(values, tf);
        if (objective.size !== 1) throw new TfExecutionError(`${this.model.source}: the objective must be a scalar, got shape [${objective.shape.join(', ')}]`);
        return tf.reshape(objective, []) as tf.Scalar;
      };
      let result: { value: tf.Scalar; grads: (tf.Tensor | null)[] };
      try {
        // allowNoGradients: a weight the objective does not depend on gets zeros rather than an error.
        result = tf.engine().gradients(f, targets, undefined, true);
      } catch (e) {
        if (e instanceof ModelError) throw e;
        throw new TfExecutionError(`${this.model.source}: gradient: ${(e as Error).message.split('\n')[0]}`, e instanceof OnnxCompressError ? e.code : 'runtime');
      }
      try {
        const decode = (names: string[], offset: number) =>
          Object.fromEntries(
            names.map((n, i) => {
              const g = result.grads[offset + i];
              return [n, g ? fromTfTensor(g, DataType.FLOAT, n) : { name: n, dtype: DataType.FLOAT, dims: [...targets[offset + i].shape], data: new Float32Array(targets[offset + i].size) }];
            }),
          );
        return { objective: result.value.dataSync()[0], weights: decode(weightNames, 0), inputs: decode(inputNames, weightNames.length) };
      } finally {
        tf.dispose([result.value, ...result.grads.filter((g): g is tf.Tensor => g !== null)]);
      }
    } finally {
      tf.dispose([...fed.values()]);
    }
  }

  /** A weight's current value. */
  readWeight(name: string): DecodedTensor {
    return fromTfTensor(this.variable(name), this.initializerType(name), name);
  }

  /** Replaces a weight's value (same shape), e.g. with its quantized version. */
  assignWeight(name: string, value: TensorInput): void {
    const v = this.variable(name);
    const t = toTfTensor({ ...value, dtype: value.dtype ?? this.initializerType(name) }, 'throw', `weight '${name}'`);
    try {
      if (t.shape.join(',') !== v.shape.join(',')) {
        throw new TfExecutionError(`${this.model.source}: weight '${name}' has shape [${v.shape.join(', ')}], got [${t.shape.join(', ')}]`);
      }
      v.assign(t);
    } finally {
      t.dispose();
    }
  }

  /** Frees every tensor the model holds; the model cannot run afterwards. */
  dispose(): void {
    this.disposed = true;
    tf.dispose([...this.variables.values(), ...this.constants.values()]);
    this.variables.clear();
    this.constants.clear();
  }

  // --- compilation ---------------------------------------------------------------------------------------

  private loadInitializers(overridable: Set<string>): void {
    for (const t of this.model.graph.initializer) {
      const name = t.name ?? '';
      const tensor = toTfTensor(tensorValues(t, this.model.rawBytes(t)), 'clamp', `initializer '${name}'`);
      // A float initializer that is also a graph input may be fed instead, so it is never folded.
      if (tensor.dtype === 'float32' || overridable.has(name)) {
        this.variables.set(name, tf.variable(tensor, tensor.dtype === 'float32'));
        tensor.dispose();
      } else {
        this.constants.set(name, tensor);
      }
    }
  }

  /** Evaluates a node once when all it reads is constant; returns whether it did. */
  private foldIfConstant(c: Compiled): boolean {
    const present = c.node.input.filter((n) => n !== '');
    if (!present.every((n) => this.constants.has(n))) return false;
    const outputs = this.runNode(c, (n) => this.constants.get(n));
    c.node.output.forEach((o, i) => {
      if (o) this.constants.set(o, outputs[i]);
      else outputs[i]?.dispose();
    });
    return true;
  }

  // --- execution -----------------------------------------------------------------------------------------

  /**
   * Runs the steps `fetches` need with `fed` (feeds and any overrides) and returns the fetched tensors, owned
   * by the caller. Feeds are never freed here: they belong to the caller (and gradients need them alive).
   */
  private execute(fed: ReadonlyMap<string, tf.Tensor>, fetches: readonly string[]): Record<string, tf.Tensor> {
    const plan = this.plan(fetches);
    const live = new Map<string, tf.Tensor>();
    const lookup = (name: string) => fed.get(name) ?? live.get(name) ?? this.variables.get(name) ?? this.constants.get(name);
    try {
      for (const step of plan.steps) {
        const outputs = this.runNode(step, lookup);
        step.node.output.forEach((o, i) => {
          if (o && outputs[i]) live.set(o, outputs[i]);
          else outputs[i]?.dispose();
        });
        for (const name of step.release) {
          live.get(name)?.dispose();
          live.delete(name);
        }
      }
      const result: Record<string, tf.Tensor> = {};
      for (const name of plan.fetches) {
        const t = live.get(name) ?? lookup(name);
        if (!t) throw new TfExecutionError(`${this.model.source}: value '${name}' was not computed`);
        // Fetched values the run did not produce (feeds, weights, constants) are handed out as copies.
        result[name] = live.has(name) ? t : tf.clone(t);
        live.delete(name);
      }
      return result;
    } finally {
      tf.dispose([...live.values()]);
    }
  }

  private runNode(c: Compiled, lookup: (name: string) => tf.Tensor | undefined): tf.Tensor[] {
    const inputs = c.node.input.map((name) => {
      if (name === '') return undefined;
      const t = lookup(name);
      if (!t) throw new TfExecutionError(`${this.model.source}: node ${c.label} reads '${name}', which has no value (is it fed?)`);
      return t;
    });
    try {
      return tf.tidy(() => {
        const result = c.def.run(inputs, c.node, { opset: c.opset });
        const list = Array.isArray(result) ? result : [result];
        if (c.node.output.slice(list.length).some((o) => o !== '')) {
          throw new OpError(`the implementation produces ${list.length} outputs, the node names ${c.node.output.length}`);
        }
        // An output that is one of the inputs must be a tensor of its own, or freeing one would free both.
        return list.map((t) => (inputs.includes(t) ? tf.clone(t) : t));
      });
    } catch (e) {
      if (e instanceof TfExecutionError) throw e;
      // An OpError is a malformed node (bad model); anything else TensorFlow.js threw is a runtime failure.
      throw new TfExecutionError(`${this.model.source}: node ${c.label}: ${(e as Error).message.split('\n')[0]}`, e instanceof OnnxCompressError ? e.code : 'runtime');
    }
  }

  /** The steps that compute `fetches`, with each intermediate released after its last reader; cached. */
  private plan(requested: readonly string[]): Plan {
    const fetches = [...new Set(requested)];
    const key = fetches.join('\u0000');
    const cached = this.plans.get(key);
    if (cached) return cached;
    for (const name of fetches) {
      if (!this.producers.has(name) && !this.isSource(name)) throw new TfExecutionError(`${this.model.source}: no value named '${name}'`);
    }
    const needed = new Set<number>();
    const stack = fetches.map((n) => this.producers.get(n)).filter((i): i is number => i !== undefined);
    while (stack.length) {
      const i = stack.pop()!;
      if (needed.has(i)) continue;
      needed.add(i);
      for (const name of this.nodes[i].node.input) {
        const p = this.producers.get(name);
        if (p !== undefined) stack.push(p);
      }
    }
    const order = [...needed].sort((a, b) => a - b);
    const lastReader = new Map<string, number>();
    order.forEach((nodeIndex, step) => {
      const node = this.nodes[nodeIndex].node;
      for (const o of node.output) if (o) lastReader.set(o, step); // unread outputs go right away
      for (const i of node.input) if (this.producers.has(i)) lastReader.set(i, step);
    });
    const keep = new Set(fetches);
    const steps: Step[] = order.map((nodeIndex) => ({ ...this.nodes[nodeIndex], release: [] }));
    for (const [name, step] of lastReader) if (!keep.has(name)) steps[step].release.push(name);
    const plan = { steps, fetches: [...fetches] };
    this.plans.set(key, plan);
    return plan;
  }

  private isSource(name: string): boolean {
    return this.inputNames.includes(name) || this.variables.has(name) || this.constants.has(name);
  }

  // --- feeds, outputs, types -------------------------------------------------------------------------------

  private convertFeeds(feeds: Feeds): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    try {
      for (const name of this.inputNames) if (!feeds[name]) throw new TfExecutionError(`${this.model.source}: input '${name}' is missing from the feeds`);
      for (const [name, value] of Object.entries(feeds)) {
        const declared = this.declared.get(name);
        if (!this.inputNames.includes(name) && !(declared && this.variables.has(name))) {
          throw new TfExecutionError(`${this.model.source}: '${name}' is not an input of the model (inputs: ${this.inputNames.join(', ')})`);
        }
        const want = declared?.type?.tensorType?.elemType;
        const dtype = value.dtype ?? want;
        if (dtype === undefined) throw new TfExecutionError(`${this.model.source}: input '${name}' has no declared type; give the feed a dtype`);
        if (want !== undefined && dtype !== want) {
          throw new TfExecutionError(`${this.model.source}: input '${name}' must be ${dtypeName(want)}, got ${dtypeName(dtype)}`);
        }
        this.checkShape(name, value.dims, declared);
        out.set(name, toTfTensor({ ...value, dtype }, 'throw', `${this.model.source}: input '${name}'`));
      }
      return out;
    } catch (e) {
      tf.dispose([...out.values()]);
      throw e;
    }
  }

  private checkShape(name: string, dims: readonly number[], declared: ValueInfoProto | undefined): void {
    const shape = declared?.type?.tensorType?.shape;
    if (!shape) return;
    const fits = shape.dim.length === dims.length && shape.dim.every((d, i) => d.dimValue === undefined || d.dimValue === dims[i]);
    if (!fits) {
      const want = shape.dim.map((d) => d.dimValue ?? d.dimParam ?? '?').join(', ');
      throw new TfExecutionError(`${this.model.source}: input '${name}' must have shape [${want}], got [${dims.join(', ')}]`);
    }
  }

  /** The ONNX type to return a value as: its declared type when the graph declares one tfjs can produce. */
  private outputType(name: string, t: tf.Tensor): number {
    const declared = this.declared.get(name)?.type?.tensorType?.elemType;
    if (declared !== undefined && tfTypeOf(declared) === t.dtype) return declared;
    const init = this.model.graph.initializer.find((i) => i.name === name)?.dataType;
    return init !== undefined && tfTypeOf(init) === t.dtype ? init : onnxTypeOfTf(t.dtype);
  }

  private initializerType(name: string): number {
    return this.model.graph.initializer.find((i) => i.name === name)?.dataType ?? onnxTypeOfTf('float32');
  }

  private variable(name: string): tf.Variable {
    const v = this.variables.get(name);
    if (!v) {
      const hint = this.constants.has(name) ? ' (it is not a float initializer)' : '';
      throw new TfExecutionError(`${this.model.source}: no weight named '${name}'${hint}`);
    }
    return v;
  }

  private checkLive(): void {
    if (this.disposed) throw new TfExecutionError(`${this.model.source}: the model has been disposed`);
  }
}
