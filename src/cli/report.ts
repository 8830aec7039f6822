// `onnx-compress report REPORT.json --out report.html`: renders a JSON report of this tool (compare-calib,
// quantize, eval, calibrate) as one self-contained HTML page with charts (src/report/).
import type { Command } from 'commander';
import { documentFromJson, readReportJson, REPORT_KINDS } from '../report/from-json.js';
import { renderReport, writeReportFile } from '../report/html.js';
import { emit } from './output.js';

interface ReportFlags {
  out: string;
  title?: string;
  json?: boolean;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('render a JSON report of this tool (compare-calib, quantize, eval, calibrate) as one self-contained HTML page with charts')
    .argument('<report>', 'JSON written by another command (e.g. compare-calib --json > calib.json)')
    .requiredOption('--out <file>', 'HTML file to write')
    .option('--title <text>', 'title of the page (default: from the report)')
    .option('--json', 'print what was written as JSON')
    .addHelpText(
      'after',
      `\nExamples:\n  onnx-compress compare-calib models/tiny-llama/model.onnx --sets prose nonsense --json > calib.json\n  onnx-compress report calib.json --out calib.html\n\nKinds: ${REPORT_KINDS.join(', ')}. The page needs no network and no scripts: charts are inline SVG.`,
    )
    .action(async (path: string, flags: ReportFlags) => {
      const { kind, document } = documentFromJson(readReportJson(path), path);
      if (flags.title) document.title = flags.title;
      const html = await renderReport(document);
      writeReportFile(flags.out, html);
      emit({ report: path, kind, out: flags.out, bytes: Buffer.byteLength(html), sections: document.sections.length }, flags, (r) => `wrote ${r.out} (${r.kind} report, ${r.sections} sections, ${r.bytes.toLocaleString('en-US')} bytes)`);
    });
}
