// A draft run (`onnx-compress draft`, src/decoding/speculative-draft.ts) as report sections: the candidates side by
// side at their best γ, speed-up against γ (measured and predicted) per candidate, acceptance by position, and each
// candidate's sweep as a table.
import type { DraftReport } from '../../decoding/speculative-draft.js';
import type { SpeculativeMeasurement } from '../../decoding/speculative-measure.js';
import { reportMeta } from '../meta.js';
import type { ReportDocument, Section } from '../types.js';

export function draftDocument(r: DraftReport): ReportDocument {
  return { title: 'Draft models for speculative decoding', subtitle: `${r.target} -> ${r.out} (${r.chosen})`, meta: reportMeta(), sections: draftSections(r) };
}

/** γ on a numeric axis: 'auto' is drawn at its mean draft length. */
const gammaX = (m: SpeculativeMeasurement): number => (m.gamma === 'auto' ? (m.meanGamma ?? 0) : m.gamma);

export function draftSections(r: DraftReport): Section[] {
  return [
    {
      kind: 'facts',
      title: 'Run',
      facts: [
        ['target', r.target],
        ['prompts', `${r.prompts.count} of ${r.prompts.tokensEach} tokens from ${r.prompts.sets.join(', ')}, ${r.prompts.maxNewTokens} new tokens each, greedy`],
        ['target alone', `${r.targetOnly.tokensPerSecond.toFixed(1)} tokens/s (${r.targetOnly.stepMs?.toFixed(3) ?? 'n/a'} ms a step)`],
        ['kept', `${r.chosen} -> ${r.out}`],
      ],
    },
    {
      kind: 'table',
      title: 'Candidates',
      caption: 'Each candidate at the γ with its highest measured tokens/s; c is a draft step over a target step.',
      columns: ['candidate', { label: 'bytes', format: 'bytes' }, 'best γ', { label: 'α', format: 'fixed3' }, { label: 'τ', format: 'fixed2' }, { label: 'c', format: 'fixed3' }, { label: 'predicted', format: 'fixed2' }, { label: 'measured', format: 'fixed2' }, 'same output'],
      rows: r.candidates.map((c) => [c.label, c.compress.output?.bytes ?? null, String(c.best.gamma), c.best.alpha, c.best.tau, c.best.costRatio, c.best.predictedSpeedup, c.best.measuredSpeedup, c.best.identical === null ? '-' : c.best.identical ? 'yes' : 'no']),
    },
    {
      kind: 'line',
      title: 'Speed-up against γ',
      caption: 'Measured (wall-clock tokens/s over the target alone) and predicted from α, γ and c; auto is drawn at its mean draft length.',
      marks: 'both',
      xTitle: 'γ (draft tokens per step)',
      yTitle: 'speed-up',
      series: r.candidates.flatMap((c) => [
        { name: `${c.label} measured`, points: c.sweep.map((m): [number, number] => [gammaX(m), m.measuredSpeedup]) },
        { name: `${c.label} predicted`, points: c.sweep.filter((m) => m.predictedSpeedup !== null).map((m): [number, number] => [gammaX(m), m.predictedSpeedup!]) },
      ]),
    },
    {
      kind: 'line',
      title: 'Acceptance by position',
      caption: 'Share of draft tokens accepted at each position of a step, among the steps that reached it, at each candidate\'s best γ.',
      marks: 'both',
      xTitle: 'position in the draft',
      yTitle: 'accepted',
      series: r.candidates.map((c) => ({ name: c.label, points: c.best.byPosition.filter((p) => p.rate !== null).map((p): [number, number] => [p.position, p.rate!]) })),
    },
    ...r.candidates.map(
      (c): Section => ({
        kind: 'table',
        level: 3,
        title: `Sweep: ${c.label}`,
        columns: ['γ', { label: 'α', format: 'fixed3' }, { label: 'accept', format: 'fixed3' }, { label: 'τ', format: 'fixed2' }, { label: 'c', format: 'fixed3' }, { label: 'predicted', format: 'fixed2' }, { label: 'measured', format: 'fixed2' }, { label: 'tokens/s', format: 'fixed1' }],
        rows: c.sweep.map((m) => [String(m.gamma), m.alpha, m.acceptanceRate, m.tau, m.costRatio, m.predictedSpeedup, m.measuredSpeedup, m.tokensPerSecond]),
      }),
    ),
  ];
}
