// `onnx-compress report REPORT.json --out report.html`: renders a JSON report of this tool (compare-calib,
// quantize, eval, calibrate, compress) as one self-contained HTML page with charts (src/report/).
import type { Command } from 'commander';
import { documentFromJson, readReportJson, REPORT_KINDS } from '../report/from-json.js';
import { renderReport, writeReportFile } from '../report/html.js';
import { EXAMPLES_DIR, examplesText, SAMPLE_LLAMA } from './examples.js';
import { emit } from './output.js';
import { writingTo } from '../util/output-lock.js';

interface ReportFlags {
  out: string;
  title?: string;
  json?: boolean;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('render a JSON report of this tool (compare-calib, quantize, eval, calibrate, compress) as one self-contained HTML page with charts')
    .argument('<report>', 'JSON written by another command (e.g. compare-calib --json > calib.json)')
    .requiredOption('--out <file>', 'HTML file to write')
    .option('--title <text>', 'title of the page (default: from the report)')
    .option('--json', 'print what was written as JSON')
    .addHelpText(
      'after',
      examplesText([
        `mkdir -p ${EXAMPLES_DIR} && onnx-compress compare-calib ${SAMPLE_LLAMA} --sets prose nonsense --samples 16 --json > ${EXAMPLES_DIR}/calib.json`,
        `report ${EXAMPLES_DIR}/calib.json --out ${EXAMPLES_DIR}/calib.html`,
      ]) + `\n\nKinds: ${REPORT_KINDS.join(', ')}. The page needs no network and no scripts: charts are inline SVG.`,
    )
    .action(async (path: string, flags: ReportFlags) => {
      const { kind, document, html } = await writingTo([flags.out], async () => {
        const { kind, document } = documentFromJson(readReportJson(path), path);
        if (flags.title) document.title = flags.title;
        const html = await renderReport(document);
        writeReportFile(flags.out, html);
        return { kind, document, html };
      });
      emit({ report: path, kind, out: flags.out, bytes: Buffer.byteLength(html), sections: document.sections.length }, flags, (r) => `wrote ${r.out} (${r.kind} report, ${r.sections} sections, ${r.bytes.toLocaleString('en-US')} bytes)`);
    });
}
