// The allocate command's JSON (AllocateReport, src/allocation/allocate.ts) as report sections: where the
// sensitivity came from, the allocation under the budget with its optimality proof, and, for `--sweep`, the
// size-vs-loss Pareto chart with mixed and uniform plans on one set of axes.
import { ALLOCATION_REPORT_FORMAT, type AllocateReport, type SweepPoint } from '../../allocation/allocate.js';
import { formatBytes, sig4 } from '../format.js';
import type { ReportDocument, ReportMeta, Section } from '../types.js';

export function isAllocateReport(x: unknown): x is AllocateReport {
  const r = x as Partial<AllocateReport> | null;
  return !!r && r.format === ALLOCATION_REPORT_FORMAT && typeof r.sizes === 'object' && r.sizes !== null && typeof r.sensitivity === 'object' && r.sensitivity !== null;
}

export function allocateDocument(r: AllocateReport, meta: ReportMeta = r.meta ?? {}): ReportDocument {
  return { title: 'Bit allocation', subtitle: `${r.model}, method ${r.method}`, meta, sections: allocateSections(r) };
}

/** The loss a point is judged by: measured on the whole plan where it was, else the summed per-layer ΔL. */
function pointLoss(p: SweepPoint): number {
  return p.measuredLoss ?? p.predictedLoss;
}

export function allocateSections(r: AllocateReport): Section[] {
  const lossName = r.loss === 'kl' ? 'KL to the float logits (nats/token)' : 'relative output MSE';
  const timing = r.sensitivity.timing;
  const sections: Section[] = [
    {
      kind: 'facts',
      title: 'Sensitivity',
      facts: [
        ['loss', lossName],
        ['data', `${r.data.samples} samples of ${r.data.source} (${r.data.split})`],
        ['weights in the allocated layers', r.sizes.layerWeights],
        ['float weights', formatBytes(r.sizes.floatBytes)],
        ['measured', r.sensitivity.from === 'file' ? `read from ${r.sensitivity.file}` : `${timing.jobs} candidates in ${timing.totalSeconds.toFixed(1)} s (${timing.workers} workers)`],
        ...r.sensitivity.proxies.map((p): [string, string] => [`proxy ${p.name}`, `Spearman ${p.spearman === null ? 'n/a' : p.spearman.toFixed(3)} with measured ΔL (${p.pairs} pairs)`]),
      ],
    },
  ];
  const a = r.allocation;
  if (a) {
    sections.push({
      kind: 'facts',
      title: 'Allocation',
      facts: [
        ['budget', `${a.budget}: ${formatBytes(a.totalBudgetBytes)}`],
        ['allocated', `${formatBytes(a.totalBytes)} (${a.averageBits.toFixed(3)} bits per weight)`],
        ['solver', `${a.solver}, ${a.status}${a.gap !== undefined ? ` (gap ${sig4(a.gap)})` : ''}, ${a.solverSeconds.toFixed(3)} s`],
        ['predicted loss (Σ ΔL)', sig4(a.predictedLoss)],
        ...(a.measuredLoss !== undefined ? [['measured loss (whole plan)', sig4(a.measuredLoss)] as [string, string]] : []),
      ],
    });
  }
  if (r.layers?.length) {
    sections.push({
      kind: 'table',
      title: 'Layers',
      level: 3,
      columns: ['node', 'candidate', 'format', { label: 'ΔL', format: 'exp2' }, { label: 'bytes', format: 'int' }],
      rows: r.layers.map((l) => [l.node, l.candidate, l.format, l.deltaLoss, l.bytes]),
    });
  }
  if (r.sweep?.length) {
    const series = (kind: SweepPoint['kind'], name: string) => ({
      name,
      points: r.sweep!.filter((p) => p.kind === kind).sort((x, y) => x.totalBytes - y.totalBytes).map((p): [number, number] => [p.totalBytes, pointLoss(p)]),
    });
    const measured = r.sweep.every((p) => p.measuredLoss !== undefined);
    sections.push({
      kind: 'line',
      title: 'Size vs loss',
      caption: `Each point a plan: its weight bytes and its ${measured ? 'measured' : 'predicted (Σ ΔL)'} ${lossName}. The integer program's mixed plans against one width everywhere; a mixed point below and left of a uniform one is smaller and closer to the float model.`,
      series: [series('mixed', 'mixed (integer program)'), series('uniform', 'uniform')],
      marks: 'both',
      xTitle: 'weight bytes',
      yTitle: lossName,
      yScale: r.sweep.every((p) => pointLoss(p) > 0) ? 'log' : 'linear',
    });
    sections.push({
      kind: 'table',
      level: 3,
      columns: ['plan', 'point', { label: 'bytes', format: 'int' }, { label: 'bits/weight', format: 'fixed2' }, { label: 'Σ ΔL', format: 'exp2' }, { label: 'measured', format: 'exp2' }, 'Pareto'],
      rows: r.sweep.map((p) => [p.kind, p.label, p.totalBytes, p.averageBits, p.predictedLoss, p.measuredLoss ?? null, p.pareto ? 'yes' : '']),
    });
  }
  if (r.dropped.length) {
    sections.push({
      kind: 'table',
      title: 'Dropped candidates',
      caption: 'Candidates a layer cannot use, with the reason.',
      columns: ['node', 'candidate', 'reason'],
      rows: r.dropped.map((d) => [d.node, d.candidate, d.reason]),
    });
  }
  if (r.notes.length) sections.push({ kind: 'text', title: 'Notes', items: r.notes });
  return sections;
}
