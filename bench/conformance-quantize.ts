// Every conformance model with a Conv, Gemm or MatMul whose weight is computed from constants (Debian's
// libonnx-testdata: node, pytorch-converted, pytorch-operator, simple; bench/support/weight-models.ts), quantized
// with w8a8 and w8 through the library as a user would (quantizePass: calibrated on the model's own
// test_data_set folders, verified against the original with the default quality gate). Each run is one of:
//   passed   written and verified (worst output cosine shown)
//   gated    ran, but verification's quality gate refused it (the figure against the threshold)
//   refused  an OnnxCompressError before anything was written (its one line, the model path left out)
//   crashed  any other error: a bug, which must not happen (the bench exits 1)
// Writes docs/conformance-quantize.md (the table) and bench/results/conformance-quantize.json, and prints the
// table and its runtime. Other work changes what is refused (weights behind Constant nodes, opset conversion...),
// so rerun it when that lands:
//
//   npx tsc -p . && node dist/bench/conformance-quantize.js [--threads N]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { env } from 'onnxruntime-node';
import { table } from '../src/cli/output.js';
import { isOnnxCompressError } from '../src/errors.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { DEFAULT_GATE, VerificationError } from '../src/quantization/verify.js';
import { machineFacts } from './support/machine.js';
import { CONFORMANCE_ROOT, conformanceWeightModels } from './support/weight-models.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SUITES = ['node', 'pytorch-converted', 'pytorch-operator', 'simple'];
const SCHEMES = ['w8a8', 'w8'] as const;

type Outcome = 'passed' | 'gated' | 'refused' | 'crashed';

interface Cell {
  scheme: (typeof SCHEMES)[number];
  outcome: Outcome;
  /** passed: the worst output cosine; gated: the failing clause; refused/crashed: the error's line. */
  detail: string;
  worstCosine?: number;
  code?: string;
  seconds: number;
}

interface Row {
  model: string;
  cells: Cell[];
}

async function quantizeOne(dir: string, scheme: Cell['scheme'], work: string, threads: number): Promise<Cell> {
  const modelPath = join(dir, 'model.onnx');
  const out = join(work, `${dir.split('/').pop()}-${scheme}.onnx`);
  const started = performance.now();
  const seconds = (): number => (performance.now() - started) / 1000;
  // Error lines name the model (and the temporary output): the table's row already does.
  const line = (message: string): string =>
    message.split(modelPath).join('MODEL').split(out).join('OUT').replace(/^(MODEL|OUT): /, '').replace(/\s*\n\s*/g, ' ');
  try {
    const r = await quantizePass(modelPath, scheme, { out, calibration: { data: dir }, session: { intraOpThreads: threads } });
    return { scheme, outcome: 'passed', detail: `cosine ${r.verification.worst.cosine.toFixed(6)}`, worstCosine: r.verification.worst.cosine, seconds: seconds() };
  } catch (e) {
    if (e instanceof VerificationError && e.code === 'quality-gate') {
      const clause = line(e.message).replace(/^.*?failed verification against \S+: /, '').replace(/; nothing was written.*$/, '');
      return { scheme, outcome: 'gated', detail: clause, ...(e.figures ? { worstCosine: e.figures.worst.cosine } : {}), code: e.code, seconds: seconds() };
    }
    if (isOnnxCompressError(e)) return { scheme, outcome: 'refused', detail: line(e.message), code: e.code, seconds: seconds() };
    return { scheme, outcome: 'crashed', detail: line((e as Error).stack ?? String(e)), seconds: seconds() };
  } finally {
    rmSync(out, { force: true });
    rmSync(`${out}_data`, { force: true });
  }
}

function cellText(c: Cell): string {
  return c.outcome === 'passed' ? `passed (${c.detail})` : `${c.outcome}: ${c.detail}`;
}

function markdown(result: { date: string; seconds: number; threads: number; ort: string; machine: ReturnType<typeof machineFacts>; rows: Row[] }): string {
  const counts = SCHEMES.map((s) => {
    const cells = result.rows.map((r) => r.cells.find((c) => c.scheme === s)!);
    const n = (o: Outcome) => cells.filter((c) => c.outcome === o).length;
    return `| ${s} | ${n('passed')} | ${n('gated')} | ${n('refused')} | ${n('crashed')} |`;
  });
  const cell = (c: Cell): string => cellText(c).replace(/\|/g, '\\|');
  return [
    '# Conformance models, quantized',
    '',
    'Every model of Debian\'s `libonnx-testdata` (suites node, pytorch-converted, pytorch-operator, simple) that has a',
    'Conv, Gemm or MatMul whose weight is computed from constants, quantized with `w8a8` and `w8` through the library',
    '(`quantizePass`: calibrated on the model\'s own `test_data_set_*` inputs, verified in ONNX Runtime against the',
    `original with the default quality gate, worst output cosine >= ${DEFAULT_GATE.minCosine}; [quality-gate.md](quality-gate.md)).`,
    '**passed**: written and verified; **gated**: ran, refused by the quality gate; **refused**: an `OnnxCompressError`',
    'before anything was written (its message, the model path shown as MODEL); **crashed**: any other error (a bug).',
    '',
    `Generated by \`node dist/bench/conformance-quantize.js\` (bench/conformance-quantize.ts) on ${result.date.slice(0, 10)}:`,
    `${result.rows.length} models, ${result.seconds.toFixed(1)} s on ${result.machine.cores} cores (${result.machine.cpu}), ONNX Runtime ${result.ort}, ${result.threads} threads.`,
    'Figures and messages: bench/results/conformance-quantize.json. Rerun it after changes to weight discovery, opset',
    'conversion or the writers; this file is rewritten.',
    '',
    '| scheme | passed | gated | refused | crashed |',
    '|---|---|---|---|---|',
    ...counts,
    '',
    `| model | ${SCHEMES.join(' | ')} |`,
    `|---|${SCHEMES.map(() => '---').join('|')}|`,
    ...result.rows.map((r) => `| ${r.model} | ${SCHEMES.map((s) => cell(r.cells.find((c) => c.scheme === s)!)).join(' | ')} |`),
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const threads = argv.includes('--threads') ? Number(argv[argv.indexOf('--threads') + 1]) : cpus().length;
  const work = mkdtempSync(join(tmpdir(), 'conformance-quantize-'));
  const started = performance.now();
  const loadAtStart = loadavg();
  try {
    const rows: Row[] = [];
    for (const dir of conformanceWeightModels(SUITES)) {
      const row: Row = { model: relative(CONFORMANCE_ROOT, dir), cells: [] };
      for (const scheme of SCHEMES) row.cells.push(await quantizeOne(dir, scheme, work, threads));
      process.stderr.write(`${row.model}: ${row.cells.map((c) => `${c.scheme} ${c.outcome}`).join(', ')}\n`);
      rows.push(row);
    }
    const seconds = (performance.now() - started) / 1000;
    const result = {
      bench: 'conformance-quantize',
      date: new Date().toISOString(),
      seconds,
      threads,
      ort: env.versions.node ?? env.versions.common,
      machine: machineFacts(),
      loadAverage: { atStart: loadAtStart, atEnd: loadavg() },
      defaultGate: DEFAULT_GATE,
      rows,
    };
    const json = join(REPO, 'bench/results/conformance-quantize.json');
    const doc = join(REPO, 'docs/conformance-quantize.md');
    mkdirSync(dirname(json), { recursive: true });
    writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(doc, markdown(result));
    process.stdout.write(
      `${table(['model', ...SCHEMES], rows.map((r) => [r.model, ...SCHEMES.map((s) => cellText(r.cells.find((c) => c.scheme === s)!).slice(0, 90))]))}\n\n` +
        `${rows.length} models x ${SCHEMES.length} schemes in ${seconds.toFixed(1)} s; wrote ${json} and ${doc}\n`,
    );
    if (rows.some((r) => r.cells.some((c) => c.outcome === 'crashed'))) {
      process.stderr.write('crashes (errors that are not OnnxCompressError) above: each is a bug\n');
      process.exitCode = 1;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});
