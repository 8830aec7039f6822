// What a report is made of: a title, where and with what it was produced, and a list of typed sections. Sections
// are plain data (JSON-safe), so a command can build them without knowing anything of HTML or charts; html.ts
// turns them into one self-contained page.

/** Where and with what the figures were produced; every field is shown as given. */
export interface ReportMeta {
  /** e.g. 'onnx-compress 0.1.0'. */
  toolVersion?: string;
  /** Backend or engine that ran the models, e.g. 'onnxruntime-node 1.30.0 (cpu)'. */
  engine?: string;
  /** ISO date (or any text) of the run. */
  date?: string;
  /** CPU, cores, memory, OS, Node version. */
  machine?: string;
}

export interface ReportDocument {
  title: string;
  /** One line under the title (what was compared, on which model). */
  subtitle?: string;
  meta: ReportMeta;
  sections: Section[];
}

export type Section = TextSection | FactsSection | TableSection | BarSection | HeatmapSection | LineSection;

export type SectionKind = Section['kind'];

interface SectionBase {
  /** Heading of the section; a section without one continues the previous one. */
  title?: string;
  /** A sentence shown under the heading (what the section shows, how to read it). */
  caption?: string;
}

/** Paragraphs and/or a bullet list. Plain text: no markup is interpreted. */
export interface TextSection extends SectionBase {
  kind: 'text';
  paragraphs?: string[];
  items?: string[];
}

/** Label / value pairs. */
export interface FactsSection extends SectionBase {
  kind: 'facts';
  facts: [label: string, value: string | number][];
}

/** A cell: text, a number (right-aligned, formatted by the column), or empty. */
export type Cell = string | number | null;

export interface TableColumn {
  label: string;
  /** How numbers of this column are shown; default: integers with separators, others to 4 significant digits. */
  format?: NumberFormat;
}

export type NumberFormat = 'int' | 'bytes' | 'percent' | `fixed${0 | 1 | 2 | 3 | 4 | 5 | 6}` | 'sig4' | 'exp2';

export interface TableSection extends SectionBase {
  kind: 'table';
  columns: (string | TableColumn)[];
  rows: Cell[][];
}

/** Bars, one per category, or grouped by series (one colour per series). */
export interface BarSection extends SectionBase {
  kind: 'bar';
  data: { category: string; value: number; series?: string }[];
  categoryTitle?: string;
  valueTitle?: string;
  /** Horizontal bars (the default: category labels are long names). */
  horizontal?: boolean;
  /** 'log' needs values > 0. */
  scale?: 'linear' | 'log';
  /** Order of the series in the legend and within a group; default first appearance. */
  seriesOrder?: string[];
  /** d3-format of the value axis and data table, e.g. '.3~g'. */
  format?: string;
}

/** A matrix: `rows` x `columns`, coloured by `values`, each cell labelled by `labels` (or its value). */
export interface HeatmapSection extends SectionBase {
  kind: 'heatmap';
  rows: string[];
  columns: string[];
  /** values[row][column]; null is an empty cell. */
  values: (number | null)[][];
  labels?: (string | null)[][];
  rowTitle?: string;
  columnTitle?: string;
  /** Legend title of the colour scale. */
  valueTitle?: string;
  /** d3-format of the values when no labels are given. */
  format?: string;
  /** 'sequential' (low light, high dark; default) or 'diverging' (centred on `midpoint`, default 0). */
  colors?: 'sequential' | 'diverging';
  midpoint?: number;
}

/** Lines and/or points, one colour per series. */
export interface LineSection extends SectionBase {
  kind: 'line';
  series: { name: string; points: [x: number, y: number][] }[];
  /** 'line' (default), 'points' (a scatter plot) or 'both'. */
  marks?: 'line' | 'points' | 'both';
  xTitle?: string;
  yTitle?: string;
  xScale?: 'linear' | 'log';
  yScale?: 'linear' | 'log';
}
