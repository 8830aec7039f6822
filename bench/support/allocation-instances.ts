// Synthetic bit-allocation programs of real models' shapes (bench/allocation-solvers.ts). Bytes are what a blocked
// format stores: codes at `bits` per weight plus an fp16 scale and a `bits`-wide zero point per block; BOPs are MACs
// per token x weight bits x activation bits; the loss increase falls roughly exponentially with the weight bits
// (about 3.7x per bit), scaled per layer by a log-normal sensitivity, with a small extra for 8-bit activations and
// multiplicative noise. Everything comes from a seeded generator.
import type { AllocationProblem } from '../../src/allocation/problem.js';
import { seededRandom } from '../../src/util/prng.js';

export interface Format {
  weightBits: number;
  activationBits: number;
}

/** Weight-only candidates (activations stay 16-bit). */
export const WEIGHT_ONLY: readonly Format[] = [2, 3, 4, 8].map((weightBits) => ({ weightBits, activationBits: 16 }));
/** Weight and activation candidates, for programs with a BOPs budget. */
export const WEIGHT_ACTIVATION: readonly Format[] = [
  { weightBits: 2, activationBits: 16 },
  { weightBits: 3, activationBits: 16 },
  { weightBits: 4, activationBits: 16 },
  { weightBits: 4, activationBits: 8 },
  { weightBits: 8, activationBits: 8 },
  { weightBits: 8, activationBits: 16 },
];

/** [K, N] of each linear layer of a LLaMA-style decoder: q, k, v, o, gate, up, down per block. */
export function llamaShapes(blocks: number, hidden: number, kvHidden: number, intermediate: number): [number, number][] {
  const block: [number, number][] = [
    [hidden, hidden],
    [hidden, kvHidden],
    [hidden, kvHidden],
    [hidden, hidden],
    [hidden, intermediate],
    [hidden, intermediate],
    [intermediate, hidden],
  ];
  return Array.from({ length: blocks }, () => block).flat();
}

export interface InstanceOptions {
  formats: readonly Format[];
  blockSize: number;
  /** Byte budget as the average weight bits it buys (overheads at that width included). */
  averageBits: number;
  /** BOPs budget as the average (weight bits x activation bits) per MAC; none when absent. */
  averageBitProduct?: number;
  seed: number;
}

function normal(random: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

function layerBytes(k: number, n: number, bits: number, blockSize: number): number {
  const blocks = Math.ceil(k / blockSize) * n;
  return Math.ceil((k * n * bits) / 8) + 2 * blocks + Math.ceil((blocks * bits) / 8);
}

export function syntheticProblem(shapes: readonly [number, number][], o: InstanceOptions): AllocationProblem {
  const g = normal(seededRandom(o.seed));
  let byteBudget = 0;
  let macs = 0;
  const layers = shapes.map(([k, n], l) => {
    const sensitivity = Math.exp(g());
    byteBudget += layerBytes(k, n, o.averageBits, o.blockSize);
    macs += k * n;
    return {
      name: `layer${l}`,
      candidates: o.formats.map((f) => ({
        label: `w${f.weightBits}a${f.activationBits} g${o.blockSize}`,
        deltaLoss: sensitivity * (Math.exp(-1.3 * f.weightBits) + (f.activationBits <= 8 ? 2e-3 : 0)) * Math.exp(0.15 * g()),
        bytes: layerBytes(k, n, f.weightBits, o.blockSize),
        bops: k * n * f.weightBits * f.activationBits,
      })),
    };
  });
  return {
    layers,
    byteBudget: Math.floor(byteBudget),
    ...(o.averageBitProduct !== undefined ? { bopsBudget: Math.floor(macs * o.averageBitProduct) } : {}),
  };
}
