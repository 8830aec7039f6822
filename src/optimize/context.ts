// What the fusions of one optimize run share: the graph editor every change goes through, lookups over the graph
// as it was, the nodes already claimed by an edit (a node is edited once), and the report's record of what was
// fused and what was kept with the reason.
import type { GraphEditor } from '../onnx/editor.js';
import type { OnnxModel } from '../onnx/model.js';
import type { NodeProto } from '../onnx/types.js';
import type { DecoderStructure } from '../structure/decoder-structure.js';

export type FusionKind =
  | 'SimplifiedLayerNormalization'
  | 'SkipSimplifiedLayerNormalization'
  | 'LayerNormalization'
  | 'SkipLayerNormalization'
  | 'GroupQueryAttention'
  | 'PackedQKV'
  | 'QuickGelu'
  | 'FastGelu'
  | 'Gelu'
  | 'NoOpCast';

export interface KeptBlock {
  /** 'layer 3 attention', 'final norm'... */
  block: string;
  reason: string;
}

export class FusionContext {
  readonly applied = new Map<FusionKind, number>();
  readonly kept: KeptBlock[] = [];
  private readonly claimed = new Set<NodeProto>();

  constructor(
    readonly editor: GraphEditor,
    readonly model: OnnxModel,
    readonly structure: DecoderStructure,
  ) {}

  get index() {
    return this.editor.index;
  }

  /** The node producing `value`; undefined for graph inputs and initializers. */
  producer(value: string): NodeProto | undefined {
    return this.editor.index.producer(value);
  }

  isClaimed(node: NodeProto): boolean {
    return this.claimed.has(node);
  }

  /** `nodes` take the place of `node`; false (nothing done) when another fusion already edited it. */
  replace(node: NodeProto, nodes: readonly NodeProto[]): boolean {
    if (this.claimed.has(node)) return false;
    this.claimed.add(node);
    this.editor.replace(node, nodes);
    return true;
  }

  remove(node: NodeProto): boolean {
    return this.replace(node, []);
  }

  count(kind: FusionKind): void {
    this.applied.set(kind, (this.applied.get(kind) ?? 0) + 1);
  }

  keep(block: string, reason: string): void {
    this.kept.push({ block, reason });
  }

  /** Position of a node in the original graph (its topological place). */
  position(node: NodeProto): number {
    return this.model.graph.node.indexOf(node);
  }
}
