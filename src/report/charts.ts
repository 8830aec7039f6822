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
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', labelLimit: 240 },
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
 */
function cleanSvg(svg: string): string {
  return svg.replace(/\s+xmlns(:xlink)?="[^"]*"/g, '').replace(/^<svg /, '<svg role="img" ');
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
  const offset = grouped ? { [horizontal ? 'yOffset' : 'xOffset']: { field: 'series', type: 'nominal' as const, sort: series } } : {};
  // Pixels per category: one bar, or a group of thinner bars.
  const step = grouped ? Math.round(Math.max(5, Math.min(11, 30 / seriesCount)) * seriesCount + 6) : 18;
  return {
    config: CONFIG,
    data: { values: s.data.map((d) => ({ ...d })) },
    mark: { type: 'bar', ...(horizontal ? { height: { band: 0.9 } } : {}) },
    ...(horizontal ? { width: WIDTH, height: { step, for: 'position' } } : { height: 260, width: { step: Math.max(grouped ? step : 0, 44), for: 'position' } }),
    encoding: {
      ...(horizontal ? { y: category, x: value } : { x: category, y: value }),
      ...color,
      ...offset,
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
  const lo = finite.length ? Math.min(...finite) : 0;
  const hi = finite.length ? Math.max(...finite) : 1;
  const diverging = s.colors === 'diverging';
  const mid = s.midpoint ?? 0;
  const reach = Math.max(Math.abs(lo - mid), Math.abs(hi - mid)) || 1;
  const domain = diverging ? [mid - reach, mid, mid + reach] : lo === hi ? [lo - 1, hi + 1] : [lo, hi];
  // White text on the darkest part of the scale, black elsewhere.
  const dark = diverging ? `abs(datum.value - ${mid}) > ${0.6 * reach}` : `datum.value > ${domain[0] + 0.6 * (domain[domain.length - 1] - domain[0])}`;
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
            scale: diverging ? { scheme: 'redblue', reverse: true, domain } : { scheme: 'oranges', domain, zero: false },
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

function lineSpec(s: LineSection): TopLevelSpec {
  // A log axis cannot place zero or negative values: they are left out rather than breaking the scale.
  const drawable = (v: number, type: LineSection['xScale']) => Number.isFinite(v) && (type !== 'log' || v > 0);
  const values = s.series.flatMap((series) =>
    series.points.filter(([x, y]) => drawable(x, s.xScale) && drawable(y, s.yScale)).map(([x, y]) => ({ series: series.name, x, y })),
  );
  const marks = s.marks ?? 'line';
  const mark =
    marks === 'points'
      ? { type: 'point' as const, filled: true, size: 44, opacity: 0.85 }
      : { type: 'line' as const, strokeWidth: 1.5, ...(marks === 'both' ? { point: { filled: true, size: 18 } } : {}) };
  const scale = (type: 'linear' | 'log' | undefined) => ({ type: type ?? 'linear', ...(type === 'log' ? {} : { zero: false }) });
  return {
    config: CONFIG,
    data: { values },
    width: WIDTH,
    height: 260,
    mark,
    encoding: {
      x: { field: 'x', type: 'quantitative', title: s.xTitle ?? null, scale: scale(s.xScale) },
      y: { field: 'y', type: 'quantitative', title: s.yTitle ?? null, scale: scale(s.yScale) },
      color: { field: 'series', type: 'nominal', sort: s.series.map((x) => x.name), title: null, legend: { orient: 'top' } },
    },
  } as unknown as TopLevelSpec;
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}
