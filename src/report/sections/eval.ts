// The eval command's JSON (EvalReport, src/decoding/evaluate.ts) as report sections: the figures of the model and its
// reference side by side, and for tensor models the output agreement.
import type { EvalReport } from '../../decoding/evaluate.js';
import type { ReportDocument, ReportMeta, Section } from '../types.js';

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
  if (r.scoring) {
    const s = r.scoring;
    sections.push({
      kind: 'facts',
      title: 'Scoring',
      facts: [
        ['data', r.data],
        ['tokenizer', s.tokenizer],
        ['documents', s.documents],
        ['tokens scored', s.tokens],
        ['bytes', s.bytes],
        ['windows', `${s.windows} (window ${s.window}, stride ${s.stride})`],
      ],
    });
  }
  const rows: (string | number | null)[][] = [];
  const row = (label: string, get: (m: EvalReport['candidate']) => number | undefined | null) => {
    const cells = models.map(get);
    if (cells.some((c) => c !== undefined && c !== null)) rows.push([label, ...cells.map((c) => c ?? null)]);
  };
  row('perplexity', (m) => m.perplexity?.perplexity);
  row('bits per byte', (m) => m.perplexity?.bitsPerByte);
  row('mean NLL (nats/token)', (m) => m.perplexity?.meanNll);
  row('prefill tokens/s', (m) => m.speed?.prefill.tokensPerSecond);
  row('decode tokens/s', (m) => m.speed?.decode.tokensPerSecond);
  row('file bytes', (m) => m.size.fileBytes);
  row('parameters', (m) => m.size.parameters.count);
  row('parameter bytes', (m) => m.size.parameters.bytes);
  sections.push({ kind: 'table', title: 'Figures', columns: ['', ...names.map((n) => ({ label: n, format: 'sig4' as const }))], rows });
  if (r.comparison) {
    sections.push({
      kind: 'facts',
      title: 'Against the reference',
      facts: [
        ['KL(reference || model) per token', `mean ${r.comparison.kl.mean.toExponential(3)}, p95 ${r.comparison.kl.p95.toExponential(3)}, max ${r.comparison.kl.max.toExponential(3)} nats`],
        ['top-1 agreement', `${(100 * r.comparison.top1Agreement).toFixed(2)}%`],
      ],
    });
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
      columns: ['output', { label: 'elements', format: 'int' }, { label: 'max |diff|', format: 'exp2' }, { label: 'cosine', format: 'fixed6' }],
      rows: r.agreement.outputs.map((o) => [o.output, o.elements, o.maxAbsDiff, o.cosine]),
    });
  }
  return sections;
}
