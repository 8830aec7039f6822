// The eval command's JSON (EvalReport, src/decoding/evaluate.ts) as report sections: the figures of the model and its
// reference side by side, and for tensor models the output agreement.
import type { EvalReport } from '../../decoding/evaluate.js';
import { byteUnit } from '../../util/units.js';
import { formatCount, sig4 } from '../format.js';
import type { Cell, NumberFormat, ReportDocument, ReportMeta, Section } from '../types.js';

/** Whether a value has the shape of eval's JSON. */
export function isEvalReport(x: unknown): x is EvalReport {
  const r = x as Partial<EvalReport> | null;
  return !!r && (r.kind === 'language-model' || r.kind === 'tensors') && typeof r.candidate === 'object' && r.candidate !== null && typeof r.data === 'string';
}

export function evalDocument(r: EvalReport, meta: ReportMeta = {}): ReportDocument {
  return { title: 'Evaluation', subtitle: `${r.candidate.model} on ${r.data}`, meta, sections: evalSections(r) };
}

export function evalSections(r: EvalReport): Section[] {
  const models = r.reference ? [r.candidate, r.reference] : [r.candidate];
  const names = models.map((m, i) => (i === 0 ? m.model : `reference ${m.model}`));
  const sections: Section[] = [];
  if (r.scoring) sections.push(scoringSection('Scoring', r.data, r.scoring));
  // A reference that reads the text differently was scored on its own token stream: its perplexity is not
  // comparable token by token, and the page must say so rather than leave a silent gap where KL would be.
  if (r.referenceScoring && r.reference) {
    sections.push({
      ...scoringSection(`Scoring of the reference ${r.reference.model}`, r.data, r.referenceScoring),
      caption: 'The reference reads the text differently from the model, so it was scored on its own reading of the same data.',
    });
  }
  // One row per figure, so each row has its own format: sizes in KiB/MiB, counts exact.
  const rows: Cell[][] = [];
  const row = (label: string, format: NumberFormat, get: (m: EvalReport['candidate']) => number | undefined | null) => {
    const cells = models.map(get);
    if (cells.some((c) => c !== undefined && c !== null)) rows.push([label, ...cells.map((c) => (c === undefined || c === null ? null : { value: c, format }))]);
  };
  row('perplexity', 'sig4', (m) => m.perplexity?.perplexity);
  row('bits per byte', 'fixed4', (m) => m.perplexity?.bitsPerByte);
  row('mean NLL (nats/token)', 'sig4', (m) => m.perplexity?.meanNll);
  row('prefill tokens/s', 'int', (m) => m.speed?.prefill.tokensPerSecond);
  row('decode tokens/s', 'int', (m) => m.speed?.decode.tokensPerSecond);
  row('file size', 'bytes', (m) => m.size.fileBytes);
  row('parameters', 'int', (m) => m.size.parameters.count);
  row('parameter size', 'bytes', (m) => m.size.parameters.bytes);
  sections.push({ kind: 'table', title: 'Figures', columns: ['', ...names], rows });
  const byDtype = models.flatMap((m, i) => m.size.parameters.byDtype.map((d) => ({ category: d.dtype, series: names[i], bytes: d.bytes })));
  if (byDtype.length > 0) {
    const unit = byteUnit(Math.max(...byDtype.map((d) => d.bytes)));
    sections.push({
      kind: 'bar',
      title: 'Parameters by type',
      caption: 'Bytes of the initializers of each element type: what quantization moved from float to integer codes.',
      data: byDtype.map((d) => ({ category: d.category, series: d.series, value: d.bytes / unit.divisor })),
      seriesOrder: names,
      valueTitle: unit.unit,
      format: '.3~f',
    });
  }
  if (r.comparison) {
    sections.push({
      kind: 'facts',
      title: 'Against the reference',
      facts: [
        ['KL(reference || model) per token', `mean ${sig4(r.comparison.kl.mean)}, p95 ${sig4(r.comparison.kl.p95)}, max ${sig4(r.comparison.kl.max)} nats`],
        ['top-1 agreement', `${(100 * r.comparison.top1Agreement).toFixed(2)}%`],
      ],
    });
  }
  if (r.comparisonSkipped) {
    sections.push({ kind: 'text', title: 'Against the reference', paragraphs: [`No comparison: ${r.comparisonSkipped.replace(/\.$/, '')}.`] });
  }
  if (r.agreement) {
    sections.push({
      kind: 'bar',
      title: 'Output agreement with the reference',
      caption: `Cosine similarity of each output over ${r.agreement.samples} samples.`,
      data: r.agreement.outputs.map((o) => ({ category: o.output, value: o.cosine })),
      valueTitle: 'cosine',
      format: '.4f',
    });
    sections.push({
      kind: 'table',
      columns: ['output', { label: 'elements', format: 'int' }, { label: 'max |diff|', format: 'sig4' }, { label: 'cosine', format: 'fixed6' }],
      rows: r.agreement.outputs.map((o) => [o.output, o.elements, o.maxAbsDiff, o.cosine]),
    });
  }
  return sections;
}

function scoringSection(title: string, data: string, s: NonNullable<EvalReport['scoring']>): Section {
  return {
    kind: 'facts',
    title,
    facts: [
      ['data', data],
      ['tokenizer', s.tokenizer],
      ['documents', s.documents],
      ['tokens scored', s.tokens],
      ['UTF-8 bytes scored', s.bytes],
      ['windows', `${formatCount(s.windows)} (window ${s.window}, stride ${s.stride})`],
    ],
  };
}
