// The calibrate command's JSON as report sections: the run, the largest ranges (by three measures) and the
// tensors with the most outliers. The shape is read loosely (the fields the sections use), so additions to the
// command's report do not break the page.
import type { TensorLine } from '../../calibration/tensor-line.js';
import { formatBytes, formatCount } from '../format.js';
import { shortTensorNames } from '../names.js';
import type { ReportDocument, ReportMeta, Section } from '../types.js';

export interface CalibrateReportLike {
  model: string;
  data: { source: string; kind: string; sampleCount?: number; tokenCount?: number };
  tensors: number;
  skipped?: number;
  samples: number;
  tokens: number;
  batches?: number;
  seconds: number;
  tokensPerSecond?: number;
  outlierMagnitude?: number;
  outlierSigmas?: number;
  maskTensors?: string[];
  statistics?: { json?: string; binary?: string; bytes?: number };
  largestRanges: TensorLine[];
  mostOutliers: TensorLine[];
}

export function isCalibrateReport(x: unknown): x is CalibrateReportLike {
  const r = x as Partial<CalibrateReportLike> | null;
  return !!r && Array.isArray(r.largestRanges) && Array.isArray(r.mostOutliers) && typeof r.model === 'string' && typeof r.data === 'object';
}

export function calibrateDocument(r: CalibrateReportLike, meta: ReportMeta = {}): ReportDocument {
  return { title: 'Activation statistics', subtitle: `${r.model} on ${r.data.source}`, meta, sections: calibrateSections(r) };
}

export function calibrateSections(r: CalibrateReportLike): Section[] {
  const magnitude = r.outlierMagnitude ?? 6;
  const sigmas = r.outlierSigmas ?? 6;
  const sections: Section[] = [
    {
      kind: 'facts',
      title: 'Run',
      facts: [
        ['model', r.model],
        ['data', `${r.data.source} (${r.data.kind})`],
        ['tensors', `${r.tensors}${r.skipped ? ` (${r.skipped} skipped)` : ''}`],
        ['samples / tokens', `${formatCount(r.samples)} / ${formatCount(r.tokens)}`],
        ['time', `${r.seconds.toFixed(1)} s${r.tokensPerSecond ? ` (${formatCount(r.tokensPerSecond)} tokens/s)` : ''}`],
        ...(r.statistics?.json ? [['statistics file', statisticsFiles(r.statistics)] as [string, string]] : []),
        ...(r.maskTensors?.length ? [['attention-mask tensors (not ranked)', r.maskTensors.length] as [string, number]] : []),
      ],
    },
  ];
  if (r.largestRanges.length) {
    const names = shortTensorNames(r.largestRanges.map((t) => t.name));
    sections.push({
      kind: 'bar',
      title: 'Largest ranges',
      caption: '|x| max, the 99.99th percentile of |x| and the entropy (KL-optimal) threshold of the tensors with the widest ranges (|x| max alone for range-only statistics).',
      data: r.largestRanges.flatMap((t, i) => [
        { category: names[i], series: '|x| max', value: t.absMax },
        // Range-only statistics (observe ranges/minmax) have no percentiles or entropy thresholds.
        ...(t.p9999 !== undefined ? [{ category: names[i], series: '|x| p99.99', value: t.p9999 }] : []),
        ...(t.entropy ? [{ category: names[i], series: 'entropy threshold', value: Math.max(Math.abs(t.entropy[0]), Math.abs(t.entropy[1])) }] : []),
      ]),
      valueTitle: 'magnitude',
      format: '.3~g',
    });
  }
  if (r.mostOutliers.length) {
    sections.push({
      kind: 'table',
      title: 'Most outliers',
      columns: ['tensor', 'op', { label: `|x| >= ${magnitude}`, format: 'int' }, { label: `> ${sigmas} sigma`, align: 'right' }, { label: 'kurtosis', format: 'sig4' }, { label: '|x| max', format: 'sig4' }],
      rows: r.mostOutliers.map((t) => [
        t.name,
        t.op,
        t.atLeastMagnitude ?? null,
        // Counted from histograms: a lower and an upper bound, shown as one number where they agree.
        !t.beyondSigmas ? null : t.beyondSigmas[0] === t.beyondSigmas[1] ? t.beyondSigmas[0] : `${formatCount(t.beyondSigmas[0])}–${formatCount(t.beyondSigmas[1])}`,
        t.kurtosis ?? null,
        t.absMax,
      ]),
    });
  }
  return sections;
}

/** 'stats.json, histograms in stats.bin (1.05 MiB)': the size the command reports is the histogram file's. */
function statisticsFiles(f: NonNullable<CalibrateReportLike['statistics']>): string {
  const size = f.bytes !== undefined ? ` (${formatBytes(f.bytes)})` : '';
  return f.binary ? `${f.json}, histograms in ${f.binary}${size}` : `${f.json}${size}`;
}
