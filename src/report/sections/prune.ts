// The prune pass's sections: what was pruned and how close to the target, the attention heads and MLP neurons
// each layer kept (the shape the allocation gave the model), and the KL selection's candidates.
import type { PruneReport } from '../../passes/prune.js';
import type { Section } from '../types.js';

export function pruneSections(r: PruneReport): Section[] {
  const sections: Section[] = [
    {
      kind: 'facts',
      title: 'Structured pruning',
      facts: [
        ['method', `${r.method}${r.objective ? ` (${r.objective})` : ''}`],
        ['sparsity (attention + MLP parameters)', r.sparsity],
        ['gamma', r.gamma],
        ['attention + MLP parameters', `${r.params.total.toLocaleString('en-US')} -> ${r.params.kept.toLocaleString('en-US')} (target ${Math.round(r.params.targetKept).toLocaleString('en-US')}, ${(100 * r.params.relativeError).toFixed(2)}% off)`],
        ['model parameters', `${r.params.modelBefore.toLocaleString('en-US')} -> ${r.params.modelAfter.toLocaleString('en-US')}`],
        ['attention groups pruned', `${r.attention.pruned} of ${r.attention.total}`],
        ['MLP neurons pruned', `${r.mlp.pruned} of ${r.mlp.total}`],
        ...(r.calibration ? [['calibration', `${r.calibration.data}${r.calibration.seed ? `@${r.calibration.seed}` : ''}: ${r.calibration.samples} samples, ${r.calibration.tokens} tokens`] as [string, string]] : []),
        ...(r.interpreter
          ? [['gradients', `TensorFlow.js ${r.interpreter.backend}, ${r.interpreter.samples} samples in ${r.interpreter.chunks} chunks, ${r.interpreter.seconds.toFixed(1)} s, peak RSS ${(r.interpreter.peakRssBytes / 2 ** 20).toFixed(0)} MiB`] as [string, string]]
          : []),
      ],
    },
    {
      kind: 'bar',
      title: 'Kept per layer',
      caption: 'Share of each layer\'s query heads (whole GQA groups) and MLP neurons the global ranking kept.',
      data: r.layers.flatMap((l) => [
        { category: `layer ${l.layer}`, series: 'heads', value: l.heads.kept / l.heads.total },
        { category: `layer ${l.layer}`, series: 'MLP neurons', value: l.neurons.kept / l.neurons.total },
      ]),
      seriesOrder: ['heads', 'MLP neurons'],
      valueTitle: 'kept',
      format: '.0%',
    },
    {
      kind: 'table',
      columns: ['layer', 'groups kept', { label: 'heads', align: 'right' }, { label: 'neurons', align: 'right' }, 'bias compensation'],
      rows: r.layers.map((l) => [l.layer, l.groups.kept.join(', '), `${l.heads.kept}/${l.heads.total}`, `${l.neurons.kept}/${l.neurons.total}`, l.compensation.join(', ')]),
    },
  ];
  if (r.candidates) {
    sections.push({
      kind: 'table',
      title: 'Calibration chosen by KL',
      caption: `KL(dense || pruned) per token on ${r.selectionFile ?? 'the selection split'} (lowest chosen) and each candidate's perplexity on the evaluation split.`,
      columns: ['candidate', { label: 'KL mean', format: 'exp2' }, { label: 'top-1', format: 'percent' }, { label: 'perplexity', format: 'fixed3' }, 'chosen'],
      rows: r.candidates.map((c) => [c.candidate, c.kl.mean, c.top1Agreement, c.perplexity, c.chosen ? 'yes' : '']),
    });
  }
  if (r.notes.length) sections.push({ kind: 'text', items: r.notes });
  return sections;
}
