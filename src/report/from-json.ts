// Which of this tool's JSON reports a file holds, and its report page. compare-calib says so in `kind`, quantize
// in `format` ('onnx-compress.quantization-report'); a bare writer report (WriterReport, at the top level or
// under one key) is recognised by its shape, as are calibrate's report (largestRanges / mostOutliers) and eval's
// (kind 'language-model' / 'tensors').
import { readFileSync } from 'node:fs';
import { OnnxCompressError } from '../errors.js';
import { COMPARE_KIND, COMPARE_VERSION, type CompareCalibReport } from '../calibration/compare.js';
import type { WriterReport } from '../quantization/writers/common.js';
import { reportMeta } from './meta.js';
import { allocateDocument, isAllocateReport } from './sections/allocate.js';
import { calibrateDocument, isCalibrateReport } from './sections/calibrate.js';
import { compareCalibDocument } from './sections/compare-calib.js';
import { compressDocument, isCompressReport } from './sections/compress.js';
import { evalDocument, isEvalReport } from './sections/eval.js';
import { isQuantizationRunReport, isWriterReport, quantizationDocument, quantizationRunDocument } from './sections/quantization.js';
import type { ReportDocument, ReportMeta } from './types.js';

export type ReportKind = 'compare-calib' | 'quantize' | 'eval' | 'calibrate' | 'compress' | 'allocate';

export const REPORT_KINDS: readonly ReportKind[] = ['compare-calib', 'quantize', 'eval', 'calibrate', 'compress', 'allocate'];

/** A JSON file this command cannot turn into a page, said in one line. */
export class ReportInputError extends OnnxCompressError {
  constructor(message: string) {
    super('bad-data', message);
  }
}

export function readReportJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ReportInputError(`${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${code ?? e})`}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ReportInputError(`${path}: not JSON (${(e as Error).message})`);
  }
}

export function documentFromJson(json: unknown, source = 'report'): { kind: ReportKind; document: ReportDocument } {
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new ReportInputError(`${source}: not a report (expected a JSON object)`);
  const o = json as Record<string, unknown>;
  const meta = isMeta(o.meta) ? o.meta : undefined;

  if (o.kind === COMPARE_KIND) {
    if (o.version !== COMPARE_VERSION) throw new ReportInputError(`${source}: compare-calib report version ${String(o.version)}; this build renders ${COMPARE_VERSION}`);
    checkCompare(o, source);
    return { kind: 'compare-calib', document: compareCalibDocument(o as unknown as CompareCalibReport) };
  }

  if (isCompressReport(o)) return { kind: 'compress', document: compressDocument(o) };
  if (isAllocateReport(o)) return { kind: 'allocate', document: allocateDocument(o, meta ?? renderedMeta()) };
  if (isQuantizationRunReport(o)) return { kind: 'quantize', document: quantizationRunDocument(o) };
  const writer = o.kind === 'quantize' || o.kind === undefined || typeof o.kind !== 'string' ? findWriterReport(o) : undefined;
  if (writer) {
    const str = (...keys: string[]) => keys.map((k) => o[k]).find((v): v is string => typeof v === 'string');
    const fileBytes = o.fileBytes as { before?: number; after?: number } | undefined;
    return {
      kind: 'quantize',
      document: quantizationDocument(writer, {
        ...(str('model', 'input') ? { model: str('model', 'input') } : {}),
        ...(str('output', 'out') ? { output: str('output', 'out') } : {}),
        meta: meta ?? renderedMeta(),
        ...(fileBytes && typeof fileBytes === 'object' ? { fileBytes } : {}),
      }),
    };
  }
  if (o.kind === 'quantize') throw new ReportInputError(`${source}: a quantize report without the per-node report (nodes with sqnrDb, bytesBefore, bytesAfter; totals)`);
  if (isEvalReport(o)) return { kind: 'eval', document: evalDocument(o, meta ?? renderedMeta()) };
  if (isCalibrateReport(o)) return { kind: 'calibrate', document: calibrateDocument(o, meta ?? renderedMeta()) };
  const what = typeof o.kind === 'string' ? `kind '${o.kind}'` : typeof o.format === 'string' ? `format '${o.format}'` : 'no kind field';
  throw new ReportInputError(`${source}: not a report this tool renders (${what}); it renders the JSON of ${REPORT_KINDS.join(', ')}`);
}

/** The writer's report: the object itself, or one of its properties (e.g. { model, output, report: {...} }). */
function findWriterReport(o: Record<string, unknown>): WriterReport | undefined {
  if (isWriterReport(o)) return o;
  for (const key of ['report', 'writer', 'quantization', 'result']) if (isWriterReport(o[key])) return o[key] as WriterReport;
  for (const value of Object.values(o)) if (isWriterReport(value)) return value;
  return undefined;
}

function checkCompare(o: Record<string, unknown>, source: string): void {
  const need: [string, (v: unknown) => boolean][] = [
    ['sets', Array.isArray],
    ['tensors', Array.isArray],
    ['mostMoved', Array.isArray],
    ['domains', Array.isArray],
    ['calibration', (v) => !!v && typeof v === 'object'],
  ];
  const missing = need.filter(([k, ok]) => !ok(o[k])).map(([k]) => k);
  if (missing.length) throw new ReportInputError(`${source}: compare-calib report without ${missing.join(', ')}`);
}

function isMeta(x: unknown): x is ReportMeta {
  return !!x && typeof x === 'object' && !Array.isArray(x) && Object.values(x).every((v) => typeof v === 'string');
}

/** For reports that do not record their run: say so rather than pass the renderer's machine off as the run's. */
function renderedMeta(): ReportMeta {
  const now = reportMeta();
  return { toolVersion: now.toolVersion, date: `${now.date} (page rendered; the JSON records no run date or machine)` };
}
