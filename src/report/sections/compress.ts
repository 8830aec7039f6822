// A recipe run's JSON (compress, CompressReport) as one page: the run, then each pass's own sections as its
// command's page draws them (quantize, verify, evaluate, compare-calib, calibrate), in the order they ran.
import type { CompareCalibReport } from '../../calibration/compare.js';
import type { EvalReport } from '../../decoding/evaluate.js';
import type { QuantizeReport } from '../../passes/quantize.js';
import { COMPRESS_REPORT_FORMAT, type CompressReport, type PassRecord } from '../../passes/runner.js';
import type { VerificationReport } from '../../quantization/verify.js';
import { formatBytes } from '../format.js';
import type { ReportDocument, Section } from '../types.js';
import type { AllocateReport } from '../../allocation/allocate.js';
import { allocateSections } from './allocate.js';
import { calibrateSections, isCalibrateReport } from './calibrate.js';
import { compareCalibSections } from './compare-calib.js';
import { evalSections } from './eval.js';
import { pruneSections } from './prune.js';
import type { PruneReport } from '../../passes/prune.js';
import { calibrationSections, quantizationSections, verificationSections, writerReportOf } from './quantization.js';

export function isCompressReport(x: unknown): x is CompressReport {
  const r = x as Partial<CompressReport> | null;
  return !!r && r.format === COMPRESS_REPORT_FORMAT && Array.isArray(r.passes);
}

export function compressDocument(r: CompressReport): ReportDocument {
  const e = r.engine;
  const sections: Section[] = [
    {
      kind: 'facts',
      title: 'Run',
      facts: [
        ['recipe', r.recipe.path ?? r.recipe.name ?? '(given in code)'],
        ['passes', r.passes.map((p) => p.pass).join(' -> ')],
        ['model', `${r.model.path} (${formatBytes(r.model.bytes)})`],
        ['output', r.output ? `${r.output.path} (${formatBytes(r.output.bytes)}, ${(r.output.bytes / r.model.bytes).toFixed(3)}x the input)` : 'none (no pass changed the model)'],
        ['time', `${r.timing.totalSeconds.toFixed(1)} s`],
      ],
    },
  ];
  if (r.notes.length) sections.push({ kind: 'text', items: r.notes });
  // Each pass's sections sit under its heading (and out of the contents box, which lists the passes).
  for (const p of r.passes) {
    const [heading, ...own] = passSections(p, r);
    sections.push(heading, ...own.map((s): Section => ({ ...s, level: 3 })));
  }
  return {
    title: `Compression report${r.recipe.name ? ` (${r.recipe.name})` : ''}`,
    subtitle: `${r.model.path}${r.output ? ` -> ${r.output.path}` : ''}`,
    meta: { engine: `${e.name} ${e.version} (${e.executionProvider})`, date: r.date },
    sections,
  };
}

function passSections(p: PassRecord, r: CompressReport): Section[] {
  const heading: Section = { kind: 'text', title: `Pass: ${p.pass}`, paragraphs: [`${p.where}, ${p.seconds.toFixed(2)} s.`] };
  switch (p.pass) {
    case 'quantize': {
      const q = p.report as QuantizeReport;
      const files = r.output ? { fileBytes: { before: r.model.bytes, after: r.output.bytes } } : {};
      return [heading, ...quantizationSections(writerReportOf(q), { model: r.model.path, ...(r.output ? { output: r.output.path } : {}), ...files }), ...calibrationSections(q)];
    }
    case 'prune':
      return [heading, ...pruneSections(p.report as PruneReport)];
    case 'allocate':
      return [heading, ...allocateSections(p.report as AllocateReport)];
    case 'verify':
      return [heading, ...verificationSections(p.report as VerificationReport)];
    case 'evaluate':
      return [heading, ...evalSections(p.report as EvalReport)];
    case 'compare-calib':
      return [heading, ...compareCalibSections(p.report as CompareCalibReport)];
    default:
      if (isCalibrateReport(p.report)) return [heading, ...calibrateSections(p.report)];
      return [heading, { kind: 'facts', facts: factsOf(p.report) }];
  }
}

/** A pass report without its own sections: its scalar fields as label / value pairs. */
function factsOf(report: unknown): [string, string | number][] {
  if (!report || typeof report !== 'object') return [];
  const out: [string, string | number][] = [];
  for (const [k, v] of Object.entries(report)) {
    if (typeof v === 'number' || typeof v === 'string') out.push([k, v]);
    else if (v && typeof v === 'object' && 'source' in v && typeof (v as { source: unknown }).source === 'string') out.push([k, (v as { source: string }).source]);
  }
  return out;
}
