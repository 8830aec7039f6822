// A quantizer's report as report sections: what was done, weight (and file) bytes before and after, per-layer
// SQNR bars, the weakest layers, every node, what was skipped and why. Two inputs: the writers' WriterReport
// (src/quantization/writers/common.ts), and the quantize command's whole-run report (QuantizationRunReport,
// src/quantization/pipeline.ts), which adds calibration, activation ranges, verification and timing.
import { REPORT_FORMAT, type QuantizationRunReport } from '../../quantization/pipeline.js';
import type { NodeReport, WriterReport } from '../../quantization/writers/common.js';
import type { VerificationReport } from '../../quantization/verify.js';
import { formatNumber } from '../html.js';
import type { ReportDocument, ReportMeta, Section } from '../types.js';

/** Charts list at most this many layers (the node table always has them all). */
const MAX_BARS = 400;
const WEAKEST = 10;

/** What a quantize command adds around the writer's report (all optional; shown when present). */
export interface QuantizeContext {
  model?: string;
  output?: string;
  meta?: ReportMeta;
  /** File sizes of the input and output models, when the command measured them. */
  fileBytes?: { before?: number; after?: number };
}

/** Whether a value is the quantize command's JSON report. */
export function isQuantizationRunReport(x: unknown): x is QuantizationRunReport {
  const r = x as Partial<QuantizationRunReport> | null;
  return !!r && r.format === REPORT_FORMAT && typeof r.nodes === 'object' && r.nodes !== null && Array.isArray(r.nodes.list);
}

/** The quantize command's report as a page: the writer's sections, then calibration, ranges, verification, timing. */
export function quantizationRunDocument(r: QuantizationRunReport): ReportDocument {
  const writer = writerReportOf(r);
  const e = r.engine;
  const meta: ReportMeta = {
    engine: `${e.name} ${e.version} (${e.executionProvider}, ${e.intraOpThreads === 'default' ? 'default threads' : `${e.intraOpThreads} threads`})`,
    date: r.date,
  };
  const sections = quantizationSections(writer, { model: r.model.path, output: r.output.path, fileBytes: { before: r.files.bytesBefore, after: r.files.bytesAfter } });
  // Run-level sections go after the summary and size chart, before the per-layer detail; timing last.
  sections.splice(2, 0, ...runSections(r));
  sections.push(timingSection(r.timing));
  return { title: `Quantization report (${r.scheme.name})`, subtitle: `${r.model.path} -> ${r.output.path}`, meta, sections };
}

function runSections(r: QuantizationRunReport): Section[] {
  return [...verificationSections(r.verification), ...calibrationSections(r)];
}

/** A verification report: the written file run beside the original. */
export function verificationSections(v: VerificationReport): Section[] {
  const out: Section[] = [];
  const lm = v.languageModel;
  out.push({
    kind: 'facts',
    title: 'Verification',
    caption: 'The written file opened in ONNX Runtime and run beside the original on the same inputs.',
    facts: [
      ['inputs', `${v.inputs.description} (${v.inputs.batches} batches, ${v.inputs.rows} rows)`],
      ['worst output', `max |diff| ${v.worst.maxAbsDiff.toExponential(3)}, cosine ${v.worst.cosine.toFixed(6)}`],
      ...(lm
        ? ([
            ['KL(original || quantized)', `mean ${lm.kl.mean.toExponential(3)}, p95 ${lm.kl.p95.toExponential(3)}, max ${lm.kl.max.toExponential(3)} nats per token (${lm.tokens} tokens)`],
            ['top-1 agreement', `${(100 * lm.top1Agreement).toFixed(2)}%`],
            ['perplexity on the batch', `${lm.perplexity.original.toFixed(3)} -> ${lm.perplexity.quantized.toFixed(3)}`],
          ] as [string, string][])
        : []),
      ...(v.thresholds.minCosine !== undefined ? [['required cosine', v.thresholds.minCosine] as [string, number]] : []),
      ...(v.thresholds.minTop1Agreement !== undefined ? [['required top-1 agreement', v.thresholds.minTop1Agreement] as [string, number]] : []),
    ],
  });
  if (v.outputs.length > 1) {
    out.push({
      kind: 'table',
      columns: ['output', { label: 'elements', format: 'int' }, { label: 'max |diff|', format: 'exp2' }, { label: 'cosine', format: 'fixed6' }],
      rows: v.outputs.map((o) => [o.output, o.elements, o.maxAbsDiff, o.cosine]),
    });
  }
  return out;
}

/** Where a quantization's statistics came from and the activation ranges it used. */
export function calibrationSections(r: Pick<QuantizationRunReport, 'calibration' | 'activations'>): Section[] {
  const out: Section[] = [];
  if (r.calibration) {
    const c = r.calibration;
    out.push({
      kind: 'facts',
      title: 'Calibration',
      facts: [
        [c.from === 'stats' ? 'statistics file' : 'calibration set', c.path],
        ['data', `${c.data.source} (${c.data.kind})`],
        ['samples / tokens / batches', `${c.samples} / ${c.tokens.toLocaleString('en-US')} / ${c.batches}`],
        ...(c.from === 'data' ? [['time', `${c.seconds.toFixed(1)} s`] as [string, string]] : []),
      ],
    });
  }
  const a = r.activations;
  if (a && a.ranges.length > 0) {
    const method = a.method === 'percentile' ? `percentile ${a.percentile}` : a.method;
    if (a.method !== 'minmax') {
      out.push({
        kind: 'bar',
        title: 'Activation ranges',
        caption: `Share of each activation's observed span cut off by ${method} clipping.`,
        data: a.ranges.slice(0, MAX_BARS).map((e) => ({ category: e.tensor, value: e.clipped })),
        valueTitle: 'clipped share',
        format: '.1%',
      });
    }
    out.push({
      kind: 'table',
      ...(a.method === 'minmax' ? { title: 'Activation ranges' } : {}),
      caption: `Ranges of the quantized activations (${method}).${a.skipped.length ? ` Left in float: ${a.skipped.map((x) => `${x.tensor} (${x.reason})`).join('; ')}.` : ''}`,
      columns: ['tensor', { label: 'observed min', format: 'sig4' }, { label: 'observed max', format: 'sig4' }, { label: 'range min', format: 'sig4' }, { label: 'range max', format: 'sig4' }, { label: 'clipped', format: 'percent' }],
      rows: a.ranges.map((e) => [e.tensor, e.observed[0], e.observed[1], e.range[0], e.range[1], e.clipped]),
    });
  }
  return out;
}

function timingSection(t: QuantizationRunReport['timing']): Section {
  return {
    kind: 'facts',
    title: 'Timing',
    facts: [
      ['calibration', `${t.calibrationSeconds.toFixed(2)} s`],
      ['ranges', `${t.rangesSeconds.toFixed(2)} s`],
      ['write', `${t.writeSeconds.toFixed(2)} s`],
      ['save', `${t.saveSeconds.toFixed(2)} s`],
      ['verify', `${t.verifySeconds.toFixed(2)} s`],
      ['total', `${t.totalSeconds.toFixed(2)} s`],
    ],
  };
}

/** The writer's part of a quantize report (the command's, or the quantize pass's in a recipe). */
export function writerReportOf(r: Pick<QuantizationRunReport, 'scheme' | 'nodes' | 'opsetChanges' | 'irVersion' | 'notes' | 'weights'> & { plan?: QuantizationRunReport['plan'] }): WriterReport {
  return {
    scheme: r.scheme.name,
    writer: r.scheme.writer,
    ...(r.plan ? { plan: r.plan.origin, solver: r.plan.solver } : {}),
    nodes: r.nodes.list,
    skipped: r.nodes.skippedList,
    opsetChanges: r.opsetChanges,
    irVersion: r.irVersion,
    notes: r.notes,
    totals: { bytesBefore: r.weights.bytesBefore, bytesAfter: r.weights.bytesAfter },
  };
}

/** Whether a value has the shape of a WriterReport (checked loosely: what the sections read). */
export function isWriterReport(x: unknown): x is WriterReport {
  if (!x || typeof x !== 'object') return false;
  const r = x as Partial<WriterReport>;
  return (
    Array.isArray(r.nodes) &&
    typeof r.totals === 'object' &&
    r.totals !== null &&
    typeof r.totals.bytesBefore === 'number' &&
    r.nodes.every((n) => n && typeof n === 'object' && typeof n.node === 'string' && typeof n.sqnrDb === 'number' && typeof n.bytesAfter === 'number')
  );
}

export function quantizationDocument(report: WriterReport, context: QuantizeContext = {}): ReportDocument {
  return {
    title: `Quantization report (${report.scheme})`,
    ...(context.model ? { subtitle: `${context.model}${context.output ? ` -> ${context.output}` : ''}` } : {}),
    meta: context.meta ?? {},
    sections: quantizationSections(report, context),
  };
}

export function quantizationSections(report: WriterReport, context: QuantizeContext = {}): Section[] {
  const nodes = report.nodes;
  const counted = nodes.filter((n) => !n.sharedWeight);
  const sqnr = nodes.map((n) => n.sqnrDb).filter(Number.isFinite);
  const { bytesBefore, bytesAfter } = report.totals;
  const sections: Section[] = [];

  sections.push({
    kind: 'facts',
    title: 'Summary',
    facts: [
      ...(context.model ? [['model', context.model] as [string, string]] : []),
      ...(context.output ? [['written to', context.output] as [string, string]] : []),
      ['scheme', `${report.scheme} (${report.writer} writer)`],
      ['quantized nodes', `${nodes.length}${counted.length !== nodes.length ? ` (${nodes.length - counted.length} share a weight with an earlier node)` : ''}`],
      ['skipped nodes', report.skipped.length],
      ['weight bytes', `${bytes(bytesBefore)} -> ${bytes(bytesAfter)} (${bytesAfter > 0 ? (bytesBefore / bytesAfter).toFixed(2) : '-'}x smaller)`],
      ...(context.fileBytes?.before !== undefined && context.fileBytes.after !== undefined
        ? [['file size', `${bytes(context.fileBytes.before)} -> ${bytes(context.fileBytes.after)}`] as [string, string]]
        : []),
      ...(sqnr.length ? [['weight SQNR', `mean ${mean(sqnr).toFixed(1)} dB, lowest ${Math.min(...sqnr).toFixed(1)} dB, highest ${Math.max(...sqnr).toFixed(1)} dB`] as [string, string]] : []),
      ...(report.opsetChanges.length
        ? [['opsets', report.opsetChanges.map((c) => `${c.domain || 'ai.onnx'} ${c.from ?? '-'} -> ${c.to}`).join(', ')] as [string, string]]
        : []),
      ...(report.irVersion?.to !== undefined ? [['IR version', `${report.irVersion.from ?? '-'} -> ${report.irVersion.to}`] as [string, string]] : []),
    ],
  });

  // Size before/after: all quantized weights, and per kind of rewrite when there are several.
  const kinds = [...new Set(counted.map((n) => n.as))];
  const sizeData = [
    { category: 'all quantized weights', series: 'before', value: bytesBefore },
    { category: 'all quantized weights', series: 'after', value: bytesAfter },
    ...(kinds.length > 1
      ? kinds.flatMap((k) => {
          const of = counted.filter((n) => n.as === k);
          return [
            { category: k, series: 'before', value: sum(of.map((n) => n.bytesBefore)) },
            { category: k, series: 'after', value: sum(of.map((n) => n.bytesAfter)) },
          ];
        })
      : []),
    ...(context.fileBytes?.before !== undefined && context.fileBytes.after !== undefined
      ? [
          { category: 'model file', series: 'before', value: context.fileBytes.before },
          { category: 'model file', series: 'after', value: context.fileBytes.after },
        ]
      : []),
  ];
  sections.push({
    kind: 'bar',
    title: 'Size before and after',
    caption: 'Bytes of the float32 weights of the quantized nodes against their codes, scales and zero points.',
    data: sizeData.map((d) => ({ ...d, value: d.value / 2 ** 20 })),
    seriesOrder: ['before', 'after'],
    valueTitle: 'MiB',
    format: '.3~f',
  });

  if (nodes.length > 0) {
    sections.push({
      kind: 'bar',
      title: 'Weight SQNR per layer',
      caption: `Signal-to-quantization-noise ratio of each dequantized weight against the float weight, in graph order (higher is better; each bit adds about 6 dB).${nodes.length > MAX_BARS ? ` First ${MAX_BARS} of ${nodes.length} layers.` : ''}`,
      data: nodes.slice(0, MAX_BARS).map((n) => ({ category: layerName(n), value: n.sqnrDb })),
      valueTitle: 'SQNR (dB)',
      format: '.1f',
    });
    const weakest = [...nodes].sort((a, b) => a.sqnrDb - b.sqnrDb).slice(0, WEAKEST);
    sections.push({
      kind: 'table',
      title: 'Lowest SQNR',
      columns: ['node', 'op', 'as', { label: 'bits', format: 'int' }, { label: 'SQNR (dB)', format: 'fixed2' }],
      rows: weakest.map((n) => [n.node, n.op, n.as, n.bits, n.sqnrDb]),
    });
  }

  sections.push({
    kind: 'table',
    title: 'Nodes',
    columns: [
      'node',
      'op',
      'as',
      'weight',
      { label: 'bits', format: 'int' },
      'granularity',
      { label: 'block', format: 'int' },
      { label: 'SQNR (dB)', format: 'fixed2' },
      { label: 'bytes before', format: 'bytes' },
      { label: 'bytes after', format: 'bytes' },
      'activation',
    ],
    rows: nodes.map((n) => [
      n.node,
      n.op,
      n.as,
      n.weight,
      n.bits,
      n.granularity,
      n.blockSize ?? null,
      n.sqnrDb,
      n.sharedWeight ? 'shared' : n.bytesBefore,
      n.sharedWeight ? 'shared' : n.bytesAfter,
      n.activation ?? null,
    ]),
  });

  if (report.skipped.length > 0) {
    sections.push({
      kind: 'table',
      title: 'Skipped nodes',
      columns: ['node', 'op', 'reason'],
      rows: report.skipped.map((s) => [s.node, s.op, s.reason]),
    });
  }
  if (report.notes.length > 0) sections.push({ kind: 'text', title: 'Notes', items: report.notes });
  return sections;
}

/** '/model/layers.0/self_attn/q_proj/MatMul' -> 'layers.0/self_attn/q_proj'. */
function layerName(n: NodeReport): string {
  return n.node.replace(/^\/?model\//, '').replace(/^\//, '').replace(/\/(MatMul|Gemm|Conv)(_\d+)?$/, '') || n.node;
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const mean = (xs: readonly number[]) => sum(xs) / xs.length;

const bytes = (n: number) => formatNumber(n, 'bytes');
