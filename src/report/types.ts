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
  /**
   * 2 (default): a top-level section, listed in the contents box. 3: a part of the level-2 section before it
   * (e.g. a pass's own sections under the pass's heading in a recipe run's page), not listed.
   */
  level?: 2 | 3;
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

/**
 * A cell: text, a number (right-aligned, formatted by the column), a number with its own format (for tables whose
 * rows hold different quantities, e.g. a size row under a perplexity row), or empty.
 */
export type Cell = string | number | FormattedNumber | null;

export interface FormattedNumber {
  value: number;
  format: NumberFormat;
}

export interface TableColumn {
  label: string;
  /** How numbers of this column are shown; default: integers with separators, others to 4 significant digits. */
  format?: NumberFormat;
  /** Right-aligns text cells too (text that stands for numbers, e.g. a range '403-404'); numbers always are. */
  align?: 'right';
}

/**
 * 'int': exact, with thousands separators; 'bytes': B under 1024, else KiB/MiB/GiB to 3 significant digits;
 * 'percent': a share (0.25 -> 25.0%); 'fixedN': N decimals; 'sig4': 4 significant digits (integers with separators
 * from 10,000 up, exponent form below 0.001); 'exp2': exponent form with 2 decimals.
 */
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
  /**
   * 'sequential' (default): magnitudes, low light, high dark over the values' span. 'diverging': changes around
   * `midpoint` (default 0): a two-sided scale centred on it when values lie on both sides, and a one-sided scale
   * from it when they all lie on one side (every cell worse than fp32 is not drawn half in the other colour).
   */
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
  /**
   * Names of the x positions 0, 1, 2, ... (points then have integer x): the axis shows them (rotated, shortened
   * where long) instead of bare indices, and each point's hover text names its position in full.
   */
  xLabels?: string[];
  xScale?: 'linear' | 'log';
  yScale?: 'linear' | 'log';
}
