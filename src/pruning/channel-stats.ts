// Per-channel statistics of the inputs of each layer's o and down projections over a calibration set, run in
// ONNX Runtime (the values captured as extra outputs): the sums the activation-aware baselines need (Wanda-sp's
// input norms, FLAP's fluctuation and its bias compensation's means).
import type { CalibrationSet } from '../calibration/data/index.js';
import type { OnnxModel } from '../onnx/model.js';
import { Capture } from '../runtime/capture.js';
import type { SessionOptions } from '../runtime/session.js';
import type { DecoderStructure } from '../structure/decoder-structure.js';

export interface ChannelStats {
  /** Rows (tokens) seen. */
  count: number;
  sum: Float64Array;
  sumSquares: Float64Array;
}

export interface LayerChannelStats {
  /** Input of the o projection ([.., heads * headDim]). */
  attention: ChannelStats;
  /** Input of the down projection ([.., width]). */
  mlp: ChannelStats;
}

function accumulate(into: ChannelStats | undefined, data: Float32Array, channels: number): ChannelStats {
  const stats = into ?? { count: 0, sum: new Float64Array(channels), sumSquares: new Float64Array(channels) };
  const rows = data.length / channels;
  for (let r = 0; r < rows; r++) {
    const base = r * channels;
    for (let c = 0; c < channels; c++) {
      const v = data[base + c];
      stats.sum[c] += v;
      stats.sumSquares[c] += v * v;
    }
  }
  stats.count += rows;
  return stats;
}

export async function projectionInputStats(model: OnnxModel, structure: DecoderStructure, set: CalibrationSet, session: SessionOptions = {}): Promise<LayerChannelStats[]> {
  const names = structure.layers.flatMap((l) => [l.attention.o.input, l.mlp.down.input]);
  const capture = await Capture.open(model, names, session);
  const acc: { attention?: ChannelStats; mlp?: ChannelStats }[] = structure.layers.map(() => ({}));
  try {
    for await (const feeds of set.batches()) {
      const out = await capture.run(feeds);
      structure.layers.forEach((l, i) => {
        acc[i].attention = accumulate(acc[i].attention, out[l.attention.o.input].data as Float32Array, l.attention.o.inFeatures);
        acc[i].mlp = accumulate(acc[i].mlp, out[l.mlp.down.input].data as Float32Array, l.mlp.down.inFeatures);
      });
    }
  } finally {
    await capture.dispose();
  }
  return acc.map((a) => ({ attention: a.attention!, mlp: a.mlp! }));
}

export function channelMean(s: ChannelStats): Float64Array {
  return s.sum.map((v) => v / s.count);
}

/** Sample variance of each channel (FLAP's fluctuation), over every token seen. */
export function channelVariance(s: ChannelStats): Float64Array {
  const n = s.count;
  return s.sum.map((sum, c) => (n > 1 ? Math.max(0, (s.sumSquares[c] - (sum * sum) / n) / (n - 1)) : 0));
}

export function channelNorm(s: ChannelStats): Float64Array {
  return s.sumSquares.map(Math.sqrt);
}
