// A quantizer's report as report sections: what was done, weight (and file) bytes before and after, per-layer
// SQNR bars, the weakest layers, every node, what was skipped and why. Two inputs: the writers' WriterReport
// (src/quantization/writers/common.ts), and the quantize command's whole-run report (QuantizationRunReport,
// src/quantization/pipeline.ts), which adds calibration, activation ranges, verification and timing.
import { REPORT_FORMAT, type QuantizationRunReport } from '../../quantization/pipeline.js';
import type { WriterReport } from '../../quantization/writers/common.js';
import { describeGate, type VerificationReport } from '../../quantization/verify.js';
import { byteUnit } from '../../util/units.js';
import { formatBytes, formatPercent, plural, sig4 } from '../format.js';
import { layerNames, shortTensorNames } from '../names.js';
import type { Cell, ReportDocument, ReportMeta, Section, TableColumn } from '../types.js';

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
      ['inputs', `${v.inputs.description} (${plural(v.inputs.batches, 'batch')}, ${plural(v.inputs.rows, 'row')})`],
      ['worst output', `max |diff| ${sig4(v.worst.maxAbsDiff)}, cosine ${v.worst.cosine.toFixed(6)}`],
      ...(lm
        ? ([
            ['KL(original || quantized)', `mean ${sig4(lm.kl.mean)}, p95 ${sig4(lm.kl.p95)}, max ${sig4(lm.kl.max)} nats per token (${plural(lm.tokens, 'token')})`],
            ['top-1 agreement', `${(100 * lm.top1Agreement).toFixed(2)}%`],
            ['perplexity on the batch', `${lm.perplexity.original.toFixed(3)} -> ${lm.perplexity.quantized.toFixed(3)}`],
          ] as [string, string][])
        : []),
      // Reports saved before the quality gate existed have thresholds only where the caller set them, and no gate.
      ...(v.gate ? [['quality gate', describeGate(v)] as [string, string]] : []),
      ...(!v.gate && v.thresholds.minCosine !== undefined ? [['required cosine', v.thresholds.minCosine] as [string, number]] : []),
      ...(!v.gate && v.thresholds.minTop1Agreement !== undefined ? [['required top-1 agreement', formatPercent(v.thresholds.minTop1Agreement)] as [string, string]] : []),
    ],
  });
  if (v.outputs.length > 1) {
    out.push({
      kind: 'table',
      columns: ['output', { label: 'elements', format: 'int' }, { label: 'max |diff|', format: 'sig4' }, { label: 'cosine', format: 'fixed6' }],
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
        data: ((shown) => shortTensorNames(shown.map((e) => e.tensor)).map((category, i) => ({ category, value: shown[i].clipped })))(a.ranges.slice(0, MAX_BARS)),
        valueTitle: 'clipped share',
        format: '.1%',
      });
    }
    out.push({
      kind: 'table',
      ...(a.method === 'minmax' ? { title: 'Activation ranges' } : {}),
      caption: `Ranges of the quantized activations (${a.choices ? 'auto: per tensor, the candidate range whose consumer output moved least' : method}).${a.skipped.length ? ` Left in float: ${a.skipped.map((x) => `${x.tensor} (${x.reason})`).join('; ')}.` : ''}`,
      columns: ['tensor', { label: 'observed min', format: 'sig4' }, { label: 'observed max', format: 'sig4' }, { label: 'range min', format: 'sig4' }, { label: 'range max', format: 'sig4' }, { label: 'clipped', format: 'percent' }, ...(a.choices ? ['chosen'] : [])],
      rows: a.ranges.map((e) => [e.tensor, e.observed[0], e.observed[1], e.range[0], e.range[1], e.clipped, ...(a.choices ? [a.choices.find((c) => c.tensor === e.tensor)?.chosen ?? ''] : [])]),
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
  // One unit for the whole chart, the one the largest bar reads best in.
  const unit = byteUnit(Math.max(...sizeData.map((d) => d.value)));
  sections.push({
    kind: 'bar',
    title: 'Size before and after',
    caption: 'Bytes of the float32 weights of the quantized nodes against their codes, scales and zero points.',
    data: sizeData.map((d) => ({ ...d, value: d.value / unit.divisor })),
    seriesOrder: ['before', 'after'],
    valueTitle: unit.unit,
    format: '.3~f',
  });

  if (nodes.length > 0) {
    sections.push({
      kind: 'bar',
      title: 'Weight SQNR per layer',
      caption: `Signal-to-quantization-noise ratio of each dequantized weight against the float weight, in graph order (higher is better; each bit adds about 6 dB).${nodes.length > MAX_BARS ? ` First ${MAX_BARS} of ${nodes.length} layers.` : ''}`,
      data: ((shown) => layerNames(shown.map((n) => n.node)).map((category, i) => ({ category, value: shown[i].sqnrDb })))(nodes.slice(0, MAX_BARS)),
      valueTitle: 'SQNR (dB)',
      format: '.1f',
    });
    const weakest = [...nodes].sort((a, b) => a.sqnrDb - b.sqnrDb).slice(0, WEAKEST);
    sections.push({
      kind: 'table',
      title: 'Lowest SQNR',
      ...nodeTable(weakest, ['node', 'as', 'bits', 'granularity', 'SQNR (dB)']),
    });
  }

  sections.push({
    kind: 'table',
    title: 'Nodes',
    ...nodeTable(nodes),
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


/**
 * The node table: only the columns this run fills (a weight-only scheme has no activations), and what every node
 * shares (the rewrite, the bits, the granularity of a one-scheme run) said once in the caption instead of a column
 * repeating it on every row. Names as the charts write them (no '/model/' prefix, no op or '_output_0' suffix).
 */
function nodeTable(nodes: WriterReport['nodes'], only?: readonly string[]): { caption: string; columns: TableColumn[]; rows: Cell[][] } {
  const names = layerNames(nodes.map((n) => n.node));
  const inputs = shortTensorNames(nodes.map((n) => n.activation ?? ''));
  const granularity = (n: WriterReport['nodes'][number]) => (n.granularity === 'block' && n.blockSize !== undefined ? `block ${n.blockSize}` : n.granularity);
  type Column = TableColumn & { value: (n: WriterReport['nodes'][number], i: number) => Cell; shared?: (v: Cell) => string };
  const all: Column[] = [
    { label: 'node', value: (_, i) => names[i] },
    { label: 'as', value: (n) => n.as, shared: (v) => `written as ${v}` },
    { label: 'weight', value: (n) => n.weight },
    { label: 'bits', format: 'int', value: (n) => n.bits, shared: (v) => `${v}-bit` },
    { label: 'granularity', value: granularity, shared: (v) => `per ${v}` },
    { label: 'SQNR (dB)', format: 'fixed2', value: (n) => n.sqnrDb },
    { label: 'bytes before', format: 'bytes', align: 'right', value: (n) => (n.sharedWeight ? 'shared' : n.bytesBefore) },
    { label: 'bytes after', format: 'bytes', align: 'right', value: (n) => (n.sharedWeight ? 'shared' : n.bytesAfter) },
    ...(nodes.some((n) => n.activation) ? [{ label: 'activation', value: (n: WriterReport['nodes'][number], i: number) => (n.activation ? inputs[i] : null) }] : []),
  ];
  const columns = only ? all.filter((c) => only.includes(c.label)) : all;
  const values = columns.map((c) => nodes.map((n, i) => c.value(n, i)));
  const folded = columns.map((c, k) => c.shared !== undefined && nodes.length > 1 && values[k].every((v) => v === values[k][0]));
  const common = columns.flatMap((c, k) => (folded[k] ? [c.shared!(values[k][0])] : []));
  const kept = columns.flatMap((_, k) => (folded[k] ? [] : [k]));
  return {
    caption: `${common.length ? `Every node ${common.join(', ')}. ` : ''}Names as in the charts (without the exporter's '/model/' prefix and '/MatMul' or '_output_0' suffix).`,
    columns: kept.map((k) => ({ label: columns[k].label, ...(columns[k].format ? { format: columns[k].format } : {}), ...(columns[k].align ? { align: columns[k].align } : {}) })),
    rows: nodes.map((_, i) => kept.map((k) => values[k][i])),
  };
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const mean = (xs: readonly number[]) => sum(xs) / xs.length;

const bytes = formatBytes;
