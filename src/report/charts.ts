// Charts as inline SVG, drawn offline: each chart section becomes a Vega-Lite spec, compiled to Vega and rendered
// headless (renderer 'none', no canvas, no DOM, no network) to an SVG string that html.ts puts in the page.
import * as vega from 'vega';
import { compile, type Config, type TopLevelSpec } from 'vega-lite';
import type { BarSection, HeatmapSection, LineSection } from './types.js';

export type ChartSection = BarSection | HeatmapSection | LineSection;

/** Width of the plotting area of wide charts, in pixels (the page is about 1000 px wide). */
const WIDTH = 560;
/** Category labels longer than this many pixels are cut with an ellipsis. */
const LABEL_LIMIT = 340;
const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif';

const CONFIG: Config = {
  font: FONT,
  background: 'white',
  padding: 8,
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', labelLimit: LABEL_LIMIT, gridColor: '#eee' },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', labelLimit: 400 },
  range: { category: ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2', '#eeca3b', '#9d755d', '#ff9da6', '#bab0ac'] },
};

/** d3-format number formatting in the en-US locale, as the chart axes use it (vega's typings omit the return type). */
const numberLocale = (vega as unknown as { formatLocale(definition: object): { format(spec: string): (x: number) => string } }).formatLocale({
  decimal: '.',
  thousands: ',',
  grouping: [3],
  currency: ['$', ''],
  minus: '-',
});

export function d3Format(spec: string): (x: number) => string {
  return numberLocale.format(spec);
}

/** The Vega-Lite spec of a chart section (exported for tests and for anyone wanting the interactive version). */
export function chartSpec(section: ChartSection): TopLevelSpec {
  switch (section.kind) {
    case 'bar':
      return barSpec(section);
    case 'heatmap':
      return heatmapSpec(section);
    case 'line':
      return lineSpec(section);
  }
}

/** Renders a chart section to an SVG string (no XML declaration, no external references). */
export async function renderChart(section: ChartSection): Promise<string> {
  const spec = compile(chartSpec(section)).spec;
  const view = new vega.View(vega.parse(spec), { renderer: 'none', logLevel: vega.Error });
  try {
    return cleanSvg(await view.toSVG());
  } finally {
    view.finalize();
  }
}

/**
 * Inline SVG in HTML needs no namespace declarations (the HTML parser puts <svg> in the SVG namespace), and
 * leaving them out keeps the page free of any URL at all. Vega draws no images, so xlink is never used.
 * A mark's description (its aria-label, already escaped by vega) also becomes its <title>: the browser shows it
 * on hover, which is how a static page without script gets tooltips (full tensor names behind short labels).
 */
function cleanSvg(svg: string): string {
  return svg
    .replace(/\s+xmlns(:xlink)?="[^"]*"/g, '')
    .replace(/^<svg /, '<svg role="img" ')
    .replace(/<(path|text|line)( aria-label="([^"]*)" role="graphics-symbol"[^>]*?)\/>/g, '<$1$2><title>$3</title></$1>');
}

function barSpec(s: BarSection): TopLevelSpec {
  const horizontal = s.horizontal ?? true;
  const grouped = s.data.some((d) => d.series !== undefined);
  const categories = unique(s.data.map((d) => d.category));
  const series = s.seriesOrder ?? unique(s.data.flatMap((d) => (d.series === undefined ? [] : [d.series])));
  const seriesCount = Math.max(1, series.length);
  const category = {
    field: 'category',
    type: 'nominal' as const,
    sort: categories,
    title: s.categoryTitle ?? null,
    ...(horizontal ? {} : { axis: { labelAngle: categories.some((c) => c.length > 6) ? -40 : 0 } }),
  };
  const value = {
    field: 'value',
    type: 'quantitative' as const,
    title: s.valueTitle ?? null,
    scale: { type: s.scale ?? 'linear', ...(s.scale === 'log' ? {} : { zero: true }) },
    ...(s.format ? { axis: { format: s.format } } : {}),
  };
  const color = grouped
    ? { color: { field: 'series', type: 'nominal' as const, sort: series, title: null, legend: { orient: 'top' as const } } }
    : { color: { value: '#4c78a8' } };
  const fmt = d3Format(s.format ?? '.4~g');
  const offset = grouped ? { [horizontal ? 'yOffset' : 'xOffset']: { field: 'series', type: 'nominal' as const, sort: series } } : {};
  // Pixels per category: one bar, or a group of thinner bars.
  const step = grouped ? Math.round(Math.max(5, Math.min(11, 30 / seriesCount)) * seriesCount + 6) : 18;
  return {
    config: CONFIG,
    // The hover text names the category in full (its axis label may be cut to fit).
    data: { values: s.data.map((d) => ({ ...d, tip: hoverText(d.category, d.series, s.valueTitle, fmt(d.value)) })) },
    mark: { type: 'bar', ...(horizontal ? { height: { band: 0.9 } } : {}) },
    ...(horizontal ? { width: WIDTH, height: { step, for: 'position' } } : { height: 260, width: { step: Math.max(grouped ? step : 0, 44), for: 'position' } }),
    encoding: {
      ...(horizontal ? { y: category, x: value } : { x: category, y: value }),
      ...color,
      ...offset,
      description: { field: 'tip', type: 'nominal' },
    },
  } as unknown as TopLevelSpec;
}

function heatmapSpec(s: HeatmapSection): TopLevelSpec {
  const cells: { row: string; column: string; value: number | null; label: string }[] = [];
  const finite: number[] = [];
  s.rows.forEach((row, r) =>
    s.columns.forEach((column, c) => {
      const value = s.values[r]?.[c] ?? null;
      if (value !== null && Number.isFinite(value)) finite.push(value);
      const label = s.labels?.[r]?.[c] ?? (value === null ? '' : d3Format(s.format ?? '.4~g')(value));
      cells.push({ row, column, value: value !== null && Number.isFinite(value) ? value : null, label });
    }),
  );
  const { scale, dark } = heatmapColours(s, finite);
  const longestLabel = Math.max(...cells.map((c) => c.label.length), ...s.columns.map((c) => c.length * 0.8), 4);
  const cellWidth = Math.min(140, Math.max(56, longestLabel * 7 + 14));
  return {
    config: CONFIG,
    data: { values: cells },
    width: { step: cellWidth },
    height: { step: 30 },
    encoding: {
      x: { field: 'column', type: 'nominal', sort: s.columns, title: s.columnTitle ?? null, axis: { orient: 'top', labelAngle: 0, domain: false, ticks: false } },
      y: { field: 'row', type: 'nominal', sort: s.rows, title: s.rowTitle ?? null, axis: { domain: false, ticks: false } },
    },
    layer: [
      {
        mark: { type: 'rect', stroke: 'white', strokeWidth: 2 },
        encoding: {
          color: {
            condition: { test: 'datum.value === null', value: '#f3f3f3' },
            field: 'value',
            type: 'quantitative',
            title: s.valueTitle ?? null,
            scale,
            ...(s.format ? { legend: { format: s.format } } : {}),
          },
        },
      },
      {
        // Blank cells get no text mark at all.
        transform: [{ filter: "datum.label !== ''" }],
        mark: { type: 'text', fontSize: 11 },
        encoding: {
          text: { field: 'label', type: 'nominal' },
          color: { condition: { test: `datum.value !== null && ${dark}`, value: 'white' }, value: '#222' },
        },
      },
    ],
  } as unknown as TopLevelSpec;
}

/** From no change to the largest: the positive and negative halves of vega's 'redblue' scheme (reversed). */
const RED_HALF = ['#f2efee', '#fddbc7', '#f4a582', '#d6604d', '#b2182b', '#67001f'];
const BLUE_HALF = ['#f2efee', '#d1e5f0', '#92c5de', '#4393c3', '#2166ac', '#053061'];

/**
 * The colour scale of a heatmap and the test for cells dark enough to need white text. Changes around a midpoint
 * (colors 'diverging') get the two-sided red-blue scale only when they lie on both sides of it; when every change
 * has one sign the scale runs from the midpoint in that sign's colour, so the whole range of colour shows how
 * much worse (or better) a cell is rather than half the legend going unused.
 */
export function heatmapColours(s: Pick<HeatmapSection, 'colors' | 'midpoint'>, values: readonly number[]): { scale: Record<string, unknown>; dark: string } {
  const lo = values.length ? Math.min(...values) : 0;
  const hi = values.length ? Math.max(...values) : 1;
  const darkAbove = (from: number, to: number) => `datum.value > ${from + 0.6 * (to - from)}`;
  if (s.colors !== 'diverging') {
    const domain = lo === hi ? [lo - 1, hi + 1] : [lo, hi];
    return { scale: { scheme: 'oranges', domain, zero: false }, dark: darkAbove(domain[0], domain[1]) };
  }
  const mid = s.midpoint ?? 0;
  // The halves of the two-sided scale, so a colour means the same change on a one-sided page.
  const steps = (from: number, to: number) => RED_HALF.map((_, i) => from + ((to - from) * i) / (RED_HALF.length - 1));
  if (lo >= mid) {
    const top = hi > mid ? hi : mid + 1;
    return { scale: { type: 'linear', domain: steps(mid, top), range: RED_HALF, interpolate: 'hcl' }, dark: darkAbove(mid, top) };
  }
  if (hi <= mid) {
    const bottom = lo < mid ? lo : mid - 1;
    return { scale: { type: 'linear', domain: steps(mid, bottom).reverse(), range: [...BLUE_HALF].reverse(), interpolate: 'hcl' }, dark: `datum.value < ${mid - 0.6 * (mid - bottom)}` };
  }
  const reach = Math.max(mid - lo, hi - mid);
  return { scale: { scheme: 'redblue', reverse: true, domain: [mid - reach, mid, mid + reach] }, dark: `abs(datum.value - ${mid}) > ${0.6 * reach}` };
}

function lineSpec(s: LineSection): TopLevelSpec {
  // A log axis cannot place zero or negative values: they are left out rather than breaking the scale.
  const drawable = (v: number, type: LineSection['xScale']) => Number.isFinite(v) && (type !== 'log' || v > 0);
  const yFormat = d3Format('.4~g');
  const name = (x: number) => s.xLabels?.[x] ?? yFormat(x);
  const values = s.series.flatMap((series) =>
    series.points
      .filter(([x, y]) => drawable(x, s.xScale) && drawable(y, s.yScale))
      .map(([x, y]) => ({ series: series.name, x, y, tip: hoverText(name(x), series.name, s.yTitle, yFormat(y)) })),
  );
  const marks = s.marks ?? 'line';
  const scale = (type: 'linear' | 'log' | undefined) => ({ type: type ?? 'linear', ...(type === 'log' ? {} : { zero: false }) });
  const encoding = {
    x: { field: 'x', type: 'quantitative', title: s.xTitle ?? null, scale: { ...scale(s.xScale), ...(s.xLabels ? { nice: false, padding: 10 } : {}) }, ...(s.xLabels ? { axis: namedAxis(s.xLabels) } : {}) },
    y: { field: 'y', type: 'quantitative', title: s.yTitle ?? null, scale: scale(s.yScale) },
    color: { field: 'series', type: 'nominal', sort: s.series.map((x) => x.name), title: null, legend: { orient: 'top' } },
  };
  // Points carry the hover text; a line is one path, so it carries none (it would name only its first point).
  const line = { mark: { type: 'line', strokeWidth: 1.5, aria: false } };
  const points = { mark: { type: 'point', filled: true, ...(marks === 'points' ? { size: 44, opacity: 0.85 } : { size: 18, opacity: 1 }) }, encoding: { description: { field: 'tip', type: 'nominal' } } };
  return {
    config: CONFIG,
    data: { values },
    width: WIDTH,
    height: 260,
    encoding,
    layer: marks === 'points' ? [points] : marks === 'both' ? [line, points] : [line],
  } as unknown as TopLevelSpec;
}

/** Longest x-axis label, in characters, before it is shortened in the middle (the hover text has it whole). */
const X_LABEL_CHARS = 32;

/**
 * An x axis naming integer positions: a tick for every position while they fit (every second, fourth, ... past
 * that), labels rotated, long ones shortened in the middle so both the start (the layer) and the end (the
 * projection) stay readable.
 */
function namedAxis(labels: readonly string[]): Record<string, unknown> {
  const fit = Math.max(1, Math.floor(WIDTH / 14));
  const every = Math.ceil(labels.length / fit);
  const positions = labels.map((_, i) => i).filter((i) => i % every === 0);
  const short = labels.map((l) => shorten(l, X_LABEL_CHARS));
  return {
    values: positions,
    labelExpr: `${JSON.stringify(short)}[datum.value] || ''`,
    labelAngle: -50,
    // Vega measures text without a browser, overestimating a little: room for X_LABEL_CHARS at 11 px.
    labelLimit: Math.ceil(X_LABEL_CHARS * 11 * 0.9),
    labelOverlap: false,
    grid: false,
  };
}

/** 'model.layers.12.self_attn.q_proj.weight' -> 'model.layers…q_proj.weight' at 26 characters. */
export function shorten(text: string, max: number): string {
  if (text.length <= max) return text;
  const head = Math.ceil((max - 1) * 0.45);
  return `${text.slice(0, head)}…${text.slice(text.length - (max - 1 - head))}`;
}

/** 'layers.0/mlp/down_proj · prose — |x| max: 78.11'. */
function hoverText(what: string, series: string | undefined, valueTitle: string | undefined, value: string): string {
  return `${what}${series === undefined ? '' : ` · ${series}`}${valueTitle ? ` — ${valueTitle}` : ''}: ${value}`;
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}
