// The calibration-set comparison (compare-calib's JSON, src/calibration/compare.ts) as report sections: the
// perplexity heatmap, range-difference bars for the tensors that move most, outlier counts, ranges along the
// network, and the tables behind them.
import type { CompareCalibReport, RangeMeasure, TensorComparison } from '../../calibration/compare.js';
import { plural } from '../format.js';
import { layerName } from '../names.js';
import type { ReportDocument, Section } from '../types.js';

const MEASURES: [RangeMeasure, string][] = [
  ['absMax', '|x| max'],
  ['p9999', '|x| p99.99'],
  ['entropy', 'entropy threshold'],
];

/**
 * A short name for an activation tensor from the nodes that read it: '/model/layers.0/self_attn/q_proj/MatMul'
 * and its k/v siblings become 'layers.0/self_attn/{q,k,v}_proj'.
 */
export function tensorLabel(consumers: readonly string[], fallback = '?'): string {
  if (consumers.length === 0) return fallback;
  const parts = consumers.map((c) => layerName(c).split('/'));
  if (parts.length === 1) return parts[0].join('/');
  let common = 0;
  while (parts.every((p) => common < p.length - 1 && p[common] === parts[0][common])) common++;
  const prefix = parts[0].slice(0, common).join('/');
  const rest = [...new Set(parts.map((p) => p.slice(common).join('/')))];
  if (rest.length === 1) return `${prefix ? `${prefix}/` : ''}${rest[0]}`;
  // A suffix every name shares ('_proj') is written once after the braces.
  const suffix = commonSuffix(rest);
  const names = rest.map((n) => n.slice(0, n.length - suffix.length));
  const listed = names.length > 4 ? `${names.slice(0, 3).join(',')},+${names.length - 3}` : names.join(',');
  return `${prefix ? `${prefix}/` : ''}{${listed}}${suffix}`;
}

/** The longest suffix of all the names that starts at a '_', '.' or '/' and leaves each name something before it. */
function commonSuffix(names: readonly string[]): string {
  const first = names[0];
  for (let at = 1; at < first.length; at++) {
    if (!'_./'.includes(first[at])) continue;
    const suffix = first.slice(at);
    if (names.every((n) => n.length > suffix.length && n.endsWith(suffix))) return suffix;
  }
  return '';
}

export function compareCalibDocument(r: CompareCalibReport): ReportDocument {
  return {
    title: 'Calibration-set comparison',
    subtitle: `${r.model}: ${r.sets.map((s) => s.name).join(', ')}${r.domains.length ? ` evaluated on ${r.domains.map((d) => d.name).join(', ')}` : ''} (${r.scheme})`,
    meta: r.meta ?? {},
    sections: compareCalibSections(r),
  };
}

export function compareCalibSections(r: CompareCalibReport): Section[] {
  const sections: Section[] = [];
  const c = r.calibration;
  const labelOf = new Map(r.tensors.map((t) => [t.tensor, tensorLabel(t.consumers, t.tensor)]));
  const byName = new Map(r.tensors.map((t) => [t.tensor, t]));
  const top = r.mostMoved.map((n) => byName.get(n)).filter((t): t is TensorComparison => t !== undefined);
  const setNames = r.sets.map((s) => s.name);

  sections.push({
    kind: 'facts',
    title: 'Run',
    facts: [
      ['model', r.model],
      ['scheme', `${r.scheme} (activation ranges: ${r.rangeMethod}${r.rangeMethod === 'percentile' ? ` ${r.percentile}` : ''})`],
      ['calibration', `${c.samples} samples x ${c.sequenceLength} tokens per set, seed ${c.seed}, batch ${c.batchSize}, split '${c.split}'`],
      ...r.sets.map((s): [string, string] => [`set ${s.name}`, `${s.path} (${plural(s.samples, 'sample')}, ${plural(s.tokens, 'token')}, ${s.seconds.toFixed(1)} s)`]),
      ...(r.evaluation
        ? [['evaluation', `split '${r.evaluation.split}', at most ${r.evaluation.maxTokens.toLocaleString('en-US')} tokens per domain, window ${r.evaluation.window}, stride ${r.evaluation.stride}, tokenizer ${r.evaluation.tokenizer}`] as [string, string]]
        : []),
      ...r.domains.map((d): [string, string] => [`domain ${d.name}`, `${d.path} (${plural(d.documents, 'document')}, ${plural(d.tokens, 'token')})`]),
      ['compared tensors', `${r.tensors.length} (the activations ${r.scheme} quantizes)`],
      ['run time', `${r.seconds.toFixed(1)} s`],
    ],
  });

  if (r.perplexity) {
    const m = r.perplexity;
    const rowLabel = (row: string, i: number) => (i === 0 ? 'fp32' : `${r.scheme} · ${row}`);
    sections.push({
      kind: 'heatmap',
      title: 'Perplexity per calibration set and evaluation domain',
      caption:
        'Rows: the fp32 model, then the model quantized with each calibration set\'s ranges. Columns: evaluation domains. ' +
        'Each cell shows the perplexity and its change against fp32; the colour is the change.',
      rows: m.rows.map(rowLabel),
      columns: m.columns,
      values: m.ratioToFp32.map((row) => row.map((x) => 100 * (x - 1))),
      labels: m.perplexity.map((row, i) => row.map((p, d) => (i === 0 ? fmt(p) : `${fmt(p)} (${signed(m.ratioToFp32[i][d] - 1)})`))),
      rowTitle: 'model',
      columnTitle: 'evaluation domain',
      valueTitle: '% vs fp32',
      colors: 'diverging',
      midpoint: 0,
      format: '.2f',
    });
    sections.push({
      kind: 'table',
      caption: 'Perplexity and bits per byte (UTF-8 bytes of the scored text).',
      columns: ['model', ...m.columns.flatMap((d) => [{ label: `${d} perplexity`, format: 'sig4' as const }, { label: `${d} bits/byte`, format: 'fixed4' as const }])],
      rows: m.rows.map((row, i) => [rowLabel(row, i), ...m.columns.flatMap((_, d) => [m.perplexity[i][d], m.bitsPerByte[i][d]])]),
    });
  }

  if (top.length > 0) {
    sections.push({
      kind: 'bar',
      title: 'Tensors whose range moves most across sets',
      caption: `|x| max of each set for the ${top.length} tensors with the largest relative spread (the quantizer's min/max ranges follow |x| max). Labels name the nodes reading the tensor.`,
      data: top.flatMap((t) => t.ranges.map((x, i) => ({ category: labelOf.get(t.tensor)!, series: setNames[i], value: x.absMax }))),
      seriesOrder: setNames,
      valueTitle: '|x| max',
      format: '.3~g',
    });
    sections.push({
      kind: 'bar',
      caption: 'Relative spread across the sets, (largest - smallest) / largest, by range measure.',
      data: top.flatMap((t) => MEASURES.map(([m, label]) => ({ category: labelOf.get(t.tensor)!, series: label, value: t.spread[m] }))),
      seriesOrder: MEASURES.map(([, l]) => l),
      valueTitle: 'relative spread',
      format: '.0%',
    });
  }

  sections.push({
    kind: 'bar',
    title: 'Outliers per set',
    caption: `Values with |x| >= ${r.sets[0]?.outliers.magnitude ?? 6} over the compared tensors (LLM.int8()'s outlier magnitude), and values beyond ${r.sets[0]?.outliers.sigmas ?? 6} standard deviations (lower bound from the histograms).`,
    data: r.sets.flatMap((s) => [
      { category: s.name, series: `|x| >= ${s.outliers.magnitude}`, value: s.outliers.atLeastMagnitude },
      { category: s.name, series: `> ${s.outliers.sigmas} sigma`, value: s.outliers.beyondSigmas.lower },
    ]),
    valueTitle: 'values',
    format: ',d',
  });

  if (r.tensors.length > 1) {
    sections.push({
      kind: 'line',
      title: 'Ranges along the network',
      caption: '|x| max of every compared tensor in graph order, one line per set (log scale). Tensors are named by the nodes reading them; hover a point for the full name.',
      series: r.sets.map((s, i) => ({ name: s.name, points: r.tensors.map((t, k): [number, number] => [k, t.ranges[i].absMax]) })),
      xLabels: r.tensors.map((t) => labelOf.get(t.tensor)!),
      marks: 'both',
      xTitle: 'tensor, read by (graph order)',
      yTitle: '|x| max',
      yScale: 'log',
    });
  }

  // Two tables rather than one with three columns per set: the width stays the same however many sets there are.
  sections.push({
    kind: 'table',
    title: 'Ranges of the tensors that move most',
    columns: ['read by', 'tensor', ...MEASURES.map(([, l]) => ({ label: `${l} spread`, format: 'percent' as const }))],
    rows: top.map((t) => [labelOf.get(t.tensor)!, t.tensor, ...MEASURES.map(([m]) => t.spread[m])]),
  });
  if (top.length > 0) {
    sections.push({
      kind: 'table',
      caption: "Each set's ranges of those tensors.",
      columns: ['read by', 'set', ...MEASURES.map(([, l]) => ({ label: l, format: 'sig4' as const }))],
      rows: top.flatMap((t) => t.ranges.map((x, i) => [labelOf.get(t.tensor)!, setNames[i], x.absMax, x.p9999, x.entropy])),
    });
  }

  sections.push({
    kind: 'table',
    title: 'Sets',
    columns: [
      'set',
      { label: 'samples', format: 'int' },
      { label: 'tokens', format: 'int' },
      { label: `|x| >= ${r.sets[0]?.outliers.magnitude ?? 6}`, format: 'int' },
      { label: 'share of values', format: 'percent' },
      { label: 'tensors with outliers', format: 'int' },
      { label: `shift vs ${setNames[0] ?? 'first'} (mean |log2|)`, format: 'fixed3' },
      { label: 'max |log2| shift', format: 'fixed3' },
      { label: 'quantized nodes', format: 'int' },
      { label: 'quantized activations', format: 'int' },
    ],
    rows: r.sets.map((s) => [
      s.name,
      s.samples,
      s.tokens,
      s.outliers.atLeastMagnitude,
      s.outliers.fraction,
      s.outliers.tensors,
      s.shiftFromFirst.mean,
      s.shiftFromFirst.max,
      s.quantization.nodes,
      s.quantization.activations,
    ]),
  });

  const notes = [...r.notes, ...new Set(r.sets.flatMap((s) => s.quantization.notes))];
  sections.push({
    kind: 'text',
    title: 'How to read this',
    paragraphs: [
      'Each calibration set is run through the fp32 model; for every activation the scheme quantizes, its range is measured three ways: ' +
        'the largest |x|, the 99.99th percentile of |x|, and the entropy (KL-optimal) clipping threshold. The spread of a measure is ' +
        '(largest - smallest) / largest over the sets: 0 when the sets agree, near 1 when one set sees a much wider range.',
      `The model is then quantized (${r.scheme}) with each set's ${r.rangeMethod}${r.rangeMethod === 'percentile' ? ` ${r.percentile}` : ''} ranges and scored on each evaluation domain. A set whose row ` +
        'stays close to fp32 everywhere is a safe calibration set for these domains.',
    ],
    ...(notes.length ? { items: notes } : {}),
  });
  return sections;
}

/** A perplexity with 4 to 5 significant digits, always with its decimals (269.0, not 269). */
export function formatPerplexity(x: number): string {
  return fmt(x);
}

function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return x >= 1000 ? x.toFixed(0) : x >= 100 ? x.toFixed(1) : x >= 10 ? x.toFixed(2) : x.toFixed(3);
}

function signed(x: number): string {
  return `${x >= 0 ? '+' : ''}${(100 * x).toFixed(Math.abs(x) < 0.001 ? 3 : 2)}%`;
}
