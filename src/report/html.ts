// One self-contained HTML page from a ReportDocument: inline CSS, charts as inline SVG rendered offline
// (charts.ts), no script and no URL of any kind, so the file can be mailed, archived or opened without a
// network. A Content-Security-Policy meta tag makes a browser refuse any fetch should one ever slip in.
import { writeTextAtomically } from '../util/atomic.js';
import { d3Format as makeD3Format, renderChart, type ChartSection } from './charts.js';
import { formatNumber } from './format.js';
import type { Cell, HeatmapSection, LineSection, NumberFormat, ReportDocument, ReportMeta, Section, TableColumn } from './types.js';

export { formatNumber };

/** Charts whose data table is longer than this many rows get no table (the chart has to do). */
const MAX_DATA_ROWS = 300;

export async function renderReport(doc: ReportDocument): Promise<string> {
  const body: string[] = [];
  const listed = (s: Section) => s.title && (s.level ?? 2) === 2;
  if (doc.sections.filter(listed).length >= 4) {
    body.push(
      '<nav class="toc"><ol>',
      ...doc.sections.flatMap((s, i) => (listed(s) ? [`<li><a href="#s${i + 1}">${esc(s.title!)}</a></li>`] : [])),
      '</ol></nav>',
    );
  }
  for (const [i, section] of doc.sections.entries()) body.push(await renderSection(section, i + 1));
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<meta name="generator" content="${esc(doc.meta.toolVersion ?? 'onnx-compress')}">`,
    `<title>${esc(doc.title)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    '<main>',
    '<header>',
    `<h1>${esc(doc.title)}</h1>`,
    ...(doc.subtitle ? [`<p class="subtitle">${esc(doc.subtitle)}</p>`] : []),
    renderMeta(doc.meta),
    '</header>',
    ...body,
    '</main>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/** Writes the page under a temporary name and renames it into place (an interrupted run leaves no half page). */
export function writeReportFile(path: string, html: string): void {
  writeTextAtomically(path, html);
}

const META_LABELS: [keyof ReportMeta, string][] = [
  ['toolVersion', 'tool'],
  ['engine', 'engine'],
  ['date', 'date'],
  ['machine', 'machine'],
];

function renderMeta(meta: ReportMeta): string {
  const items = META_LABELS.filter(([k]) => meta[k]).map(([k, label]) => `<div><dt>${label}</dt><dd>${esc(meta[k]!)}</dd></div>`);
  return items.length ? `<dl class="meta">${items.join('')}</dl>` : '';
}

async function renderSection(s: Section, n: number): Promise<string> {
  const h = `h${s.level ?? 2}`;
  const head = [
    ...(s.title ? [`<${h}>${esc(s.title)}</${h}>`] : []),
    ...(s.caption ? [`<p class="caption">${esc(s.caption)}</p>`] : []),
  ];
  let content: string;
  switch (s.kind) {
    case 'text':
      content = [...(s.paragraphs ?? []).map((p) => `<p>${esc(p)}</p>`), ...(s.items?.length ? [`<ul>${s.items.map((i) => `<li>${esc(i)}</li>`).join('')}</ul>`] : [])].join('\n');
      break;
    case 'facts':
      content = `<dl class="facts">${s.facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${breakable(typeof v === 'number' ? formatNumber(v) : v)}</dd>`).join('')}</dl>`;
      break;
    case 'table':
      content = renderTable(s.columns, s.rows);
      break;
    case 'bar':
    case 'heatmap':
    case 'line':
      content = await renderFigure(s);
      break;
  }
  return [`<section id="s${n}" class="${s.kind}">`, ...head, content, '</section>'].join('\n');
}

async function renderFigure(s: ChartSection): Promise<string> {
  const empty = s.kind === 'bar' ? s.data.length === 0 : s.kind === 'heatmap' ? s.rows.length === 0 || s.columns.length === 0 : s.series.every((x) => x.points.length === 0);
  if (empty) return '<p class="empty">(no data)</p>';
  const svg = await renderChart(s);
  const table = dataTable(s);
  return [
    `<figure class="chart">${svg}</figure>`,
    ...(table ? [`<details><summary>data</summary>${table}</details>`] : []),
  ].join('\n');
}

/** The numbers behind a chart, as a table under it. */
function dataTable(s: ChartSection): string | null {
  switch (s.kind) {
    case 'bar': {
      if (s.data.length > MAX_DATA_ROWS) return null;
      const grouped = s.data.some((d) => d.series !== undefined);
      const fmt = d3Format(s.format);
      return renderTable(
        [s.categoryTitle ?? 'category', ...(grouped ? ['series'] : []), { label: s.valueTitle ?? 'value' }],
        s.data.map((d) => [d.category, ...(grouped ? [d.series ?? ''] : []), fmt ? fmt(d.value) : d.value]),
      );
    }
    case 'heatmap':
      return heatmapTable(s);
    case 'line':
      return lineTable(s);
  }
}

function heatmapTable(s: HeatmapSection): string {
  const fmt = d3Format(s.format);
  const rows = s.rows.map((row, r) => [
    row,
    ...s.columns.map((_, c) => {
      const label = s.labels?.[r]?.[c];
      if (label !== undefined && label !== null) return label;
      const v = s.values[r]?.[c] ?? null;
      return v === null ? null : fmt ? fmt(v) : v;
    }),
  ]);
  return renderTable([s.rowTitle ?? '', ...s.columns], rows);
}

function lineTable(s: LineSection): string | null {
  const points = s.series.reduce((a, x) => a + x.points.length, 0);
  if (points > MAX_DATA_ROWS) return null;
  const named = s.xLabels !== undefined;
  return renderTable(
    ['series', s.xTitle ?? 'x', ...(named ? ['name'] : []), s.yTitle ?? 'y'],
    s.series.flatMap((x) => x.points.map(([a, b]) => [x.name, a, ...(named ? [s.xLabels![a] ?? null] : []), b])),
  );
}

function renderTable(columns: readonly (string | TableColumn)[], rows: readonly Cell[][]): string {
  const cols = columns.map((c) => (typeof c === 'string' ? { label: c } : c));
  // A column of numbers (or declared right-aligned) has its heading over the numbers, not over empty space.
  const right = cols.map((c, i) => c.align === 'right' || (rows.length > 0 && rows.every((r) => typeof r[i] !== 'string')));
  const head = `<thead><tr>${cols.map((c, i) => `<th${right[i] ? ' class="num"' : ''}>${keepFormulas(c.label)}</th>`).join('')}</tr></thead>`;
  const body = rows
    .map((row) => `<tr>${cols.map((c, i) => cell(row[i] ?? null, c.format, right[i])).join('')}</tr>`)
    .join('\n');
  return `<div class="table-wrap"><table>${head}<tbody>\n${body}\n</tbody></table></div>`;
}

function cell(value: Cell, format: NumberFormat | undefined, right: boolean): string {
  if (value === null) return '<td></td>';
  if (typeof value === 'number') return `<td class="num">${esc(formatNumber(value, format))}</td>`;
  if (typeof value === 'object') return `<td class="num">${esc(formatNumber(value.value, value.format))}</td>`;
  return `<td${right ? ' class="num"' : ''}>${breakable(value)}</td>`;
}

/**
 * A heading (escaped) that may wrap between words but not inside a formula: '|x| >= 6', 'max |log2| shift' and
 * 'p99.99 spread' keep their symbols with their neighbours. A no-break space is not enough: the line-breaking
 * rules allow a break after '|' even before one, so each formula goes in a span that does not wrap.
 */
function keepFormulas(label: string): string {
  const word = /^\(?[A-Za-z]{2,}[\w-]*\)?[,:;]?$/;
  const tokens = label.split(' ');
  const groups: string[][] = [];
  for (const [i, t] of tokens.entries()) {
    if (i > 0 && !(word.test(t) && word.test(tokens[i - 1]))) groups.at(-1)!.push(t);
    else groups.push([t]);
  }
  return groups.map((g) => (g.length > 1 ? `<span class="nowrap">${esc(g.join(' '))}</span>` : esc(g[0]))).join(' ');
}

/**
 * Escaped text whose long names (tensor and node paths, file paths, dotted weight names) may break after '/' or '.',
 * so a table column or a fact narrows to fit the page instead of pushing it wider; short words never break.
 */
function breakable(text: string): string {
  return text
    .split(/(\s+)/)
    .map((word) => (word.length > 16 ? esc(word).replace(/([/.]+)(?=[^\s])/g, '$1<wbr>') : esc(word)))
    .join('');
}

function d3Format(spec: string | undefined): ((x: number) => string) | undefined {
  return spec ? makeD3Format(spec) : undefined;
}

export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1d1f23; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 28px 48px; background: white; min-height: 100vh; }
header { border-bottom: 1px solid #e3e5e8; margin-bottom: 8px; padding-bottom: 12px; }
h1 { font-size: 24px; margin: 0 0 4px; font-weight: 600; }
h2 { font-size: 18px; margin: 28px 0 6px; font-weight: 600; }
h3 { font-size: 15px; margin: 20px 0 4px; font-weight: 600; }
.subtitle { margin: 0 0 8px; color: #444; }
.caption { margin: 0 0 10px; color: #555; max-width: 80ch; }
dl.meta { display: flex; flex-wrap: wrap; gap: 4px 22px; margin: 6px 0 0; font-size: 12px; color: #555; }
dl.meta div { display: flex; gap: 6px; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 3px 18px; margin: 6px 0; }
dl.facts dt { color: #555; }
dl.facts dd { margin: 0; font-variant-numeric: tabular-nums; word-break: break-word; }
nav.toc { font-size: 13px; margin: 10px 0; }
nav.toc ol { margin: 0; padding-left: 20px; columns: 2; }
nav.toc a { color: #2a5b9c; text-decoration: none; }
.table-wrap { max-width: 100%; overflow-x: auto; margin: 6px 0; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eceef1; text-align: left; vertical-align: top; overflow-wrap: break-word; }
th { background: #f3f4f6; font-weight: 600; vertical-align: bottom; }
th.num, td.num { text-align: right; }
.nowrap { white-space: nowrap; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:hover { background: #fafbfc; }
figure.chart { margin: 6px 0; overflow-x: auto; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
details { margin: 2px 0 10px; font-size: 12px; }
details summary { cursor: pointer; color: #555; }
p.empty { color: #888; font-style: italic; }
ul { margin: 4px 0; padding-left: 22px; }
@media print { body { background: white; } main { padding: 0; } details { display: none; } }
`;
