// Self-contained HTML reports: typed sections in, one page out (see html.ts), and the converters from this
// tool's JSON reports to sections.
export type {
  BarSection,
  Cell,
  FactsSection,
  FormattedNumber,
  HeatmapSection,
  LineSection,
  NumberFormat,
  ReportDocument,
  ReportMeta,
  Section,
  SectionKind,
  TableColumn,
  TableSection,
  TextSection,
} from './types.js';
export { renderReport, writeReportFile } from './html.js';
export { formatNumber, formatBytes, formatCount } from './format.js';
export { chartSpec, renderChart, type ChartSection } from './charts.js';
export { reportMeta, toolVersion, ortEngine, machineDescription } from './meta.js';
export { documentFromJson, readReportJson, ReportInputError, REPORT_KINDS, type ReportKind } from './from-json.js';
export { quantizationDocument, quantizationSections, isWriterReport, type QuantizeContext } from './sections/quantization.js';
export { compareCalibDocument, compareCalibSections, tensorLabel } from './sections/compare-calib.js';
export { evalDocument, evalSections } from './sections/eval.js';
export { calibrateDocument, calibrateSections } from './sections/calibrate.js';
