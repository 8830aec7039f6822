// compare-calib end to end on tiny-llama with two sets (prose, nonsense) and two evaluation domains at tiny
// sizes: the JSON's structure, the perplexity matrix's shape, range differences (non-negative, and the nonsense
// set's ranges differ from prose's), the HTML page, the text tables, and one-line errors for bad input.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RANGE_MEASURES, resolveCalibrationSet, resolveEvaluationDomain, type CompareCalibReport } from '../src/calibration/compare.js';
import { formatCompare } from '../src/cli/compare-calib.js';
import { documentFromJson } from '../src/report/from-json.js';
import { cli, oneLineError } from './support/cli.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const TINY_LLAMA = join(REPO, 'models/tiny-llama/onnx/model.onnx');
const dir = mkdtempSync(join(tmpdir(), 'onnx-compare-calib-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SMALL = ['--samples', '4', '--seq-len', '64', '--eval-tokens', '256', '--window', '64', '--top', '5'];

describe('compare-calib on tiny-llama', () => {
  const html = join(dir, 'calib.html');
  let report: CompareCalibReport;
  let stderr: string;

  before(() => {
    const r = cli('compare-calib', TINY_LLAMA, '--sets', 'prose', 'nonsense', '--eval', 'prose', 'code', ...SMALL, '--json', '--html', html);
    assert.equal(r.code, 0, r.stderr);
    report = JSON.parse(r.stdout) as CompareCalibReport;
    stderr = r.stderr;
  });

  it('reports kind, options, sets and domains; --json keeps stderr silent', () => {
    assert.equal(stderr, '');
    assert.equal(report.kind, 'compare-calib');
    assert.equal(report.version, 1);
    assert.equal(report.scheme, 'w8a8');
    assert.deepEqual(report.calibration, { samples: 4, sequenceLength: 64, seed: 0, batchSize: 4, split: 'calibration' });
    assert.deepEqual(report.sets.map((s) => [s.name, s.samples, s.tokens]), [
      ['prose', 4, 256],
      ['nonsense', 4, 256],
    ]);
    assert.deepEqual(report.domains.map((d) => d.name), ['prose', 'code']);
    for (const d of report.domains) {
      assert.match(d.path, /calibration-sets\/(prose|code)\/evaluation\.jsonl$/);
      assert.ok(d.tokens > 0 && d.tokens <= 256, `${d.name}: ${d.tokens} tokens`);
    }
    assert.deepEqual(report.evaluation && { ...report.evaluation, tokenizer: undefined }, { split: 'evaluation', maxTokens: 256, window: 64, stride: 32, tokenizer: undefined });
    assert.ok(report.meta.toolVersion && report.meta.engine && report.meta.date && report.meta.machine);
    for (const s of report.sets) assert.deepEqual([s.quantization.nodes > 0, s.quantization.activations], [true, report.tensors.length]);
  });

  it('gives a (1 + sets) x domains perplexity matrix with fp32 first', () => {
    const m = report.perplexity!;
    assert.deepEqual(m.rows, ['fp32', 'prose', 'nonsense']);
    assert.deepEqual(m.columns, ['prose', 'code']);
    for (const grid of [m.perplexity, m.bitsPerByte, m.ratioToFp32]) {
      assert.equal(grid.length, 3);
      for (const row of grid) assert.equal(row.length, 2);
    }
    for (const row of m.perplexity) for (const p of row) assert.ok(Number.isFinite(p) && p > 1, `perplexity ${p}`);
    assert.deepEqual(m.ratioToFp32[0], [1, 1]);
    // Untrained weights predict about uniformly over the 259 tokens; 8-bit quantization moves that little.
    for (const row of m.ratioToFp32) for (const r of row) assert.ok(Math.abs(r - 1) < 0.05, `ratio ${r}`);
  });

  it('measures range differences: non-negative, and the nonsense set differs from prose', () => {
    assert.ok(report.tensors.length >= 10, `${report.tensors.length} tensors`);
    for (const t of report.tensors) {
      assert.equal(t.ranges.length, 2);
      assert.ok(t.consumers.length > 0);
      for (const m of RANGE_MEASURES) {
        assert.ok(t.spread[m] >= 0 && t.spread[m] <= 1, `${t.tensor} ${m} spread ${t.spread[m]}`);
        const ratio = t.log2Ratio[m];
        assert.ok(ratio === null || ratio >= 0, `${t.tensor} ${m} log2 ratio ${ratio}`);
      }
      for (const r of t.ranges) {
        assert.ok(r.min <= r.max && r.absMax === Math.max(-r.min, r.max), `${t.tensor}: [${r.min}, ${r.max}], |x| max ${r.absMax}`);
        assert.ok(r.p9999 >= 0 && r.entropy >= 0 && r.count > 0);
      }
    }
    const moved = report.tensors.filter((t) => t.spread.absMax > 0.05);
    assert.ok(moved.length >= 3, `${moved.length} tensors whose |x| max differs by more than 5% between prose and nonsense`);
    assert.equal(report.sets[0].shiftFromFirst.mean, 0);
    assert.ok(report.sets[1].shiftFromFirst.mean > 0.01, `nonsense shift ${report.sets[1].shiftFromFirst.mean}`);

    // mostMoved: the top 5 by |x| max spread, largest first.
    assert.equal(report.mostMoved.length, 5);
    const spreads = report.mostMoved.map((n) => report.tensors.find((t) => t.tensor === n)!.spread.absMax);
    assert.deepEqual(spreads, [...spreads].sort((a, b) => b - a));
    assert.ok(spreads[4] >= Math.max(...report.tensors.filter((t) => !report.mostMoved.includes(t.tensor)).map((t) => t.spread.absMax)));
    for (const s of report.sets) assert.ok(s.outliers.atLeastMagnitude >= 0 && s.outliers.values > 0 && s.outliers.fraction >= 0);
  });

  it('writes the HTML page with the heatmap and charts, and `report` renders the JSON the same way', () => {
    assert.ok(existsSync(html));
    const page = readFileSync(html, 'utf8');
    assert.doesNotMatch(page, /<script\b|https?:\/\//i);
    assert.match(page, /<h1>Calibration-set comparison<\/h1>/);
    assert.match(page, /<section id="s\d+" class="heatmap">\n<h2>Perplexity per calibration set and evaluation domain<\/h2>/);
    assert.ok((page.match(/<svg\b/g) ?? []).length >= 5, 'heatmap, range bars, spread bars, outliers, ranges along the network');
    const fp32 = report.perplexity!.perplexity[0][0];
    const label = fp32 >= 1000 ? fp32.toFixed(0) : fp32 >= 100 ? fp32.toFixed(1) : fp32 >= 10 ? fp32.toFixed(2) : fp32.toFixed(3);
    assert.ok(page.includes(`>${label}<`), `the fp32 cell is labelled with its perplexity ${label}`);

    const json = join(dir, 'calib.json');
    writeFileSync(json, JSON.stringify(report));
    const again = join(dir, 'again.html');
    const r = cli('report', json, '--out', again);
    assert.equal(r.code, 0, r.stderr);
    const strip = (s: string) => s.replace(/<dl class="meta">.*<\/dl>/, '');
    assert.equal(strip(readFileSync(again, 'utf8')), strip(page));
    assert.equal(documentFromJson(report).kind, 'compare-calib');
  });

  it('prints text tables', () => {
    const text = formatCompare(report);
    assert.match(text, /^compared 2 calibration sets on .*tiny-llama\/onnx\/model\.onnx \(w8a8, minmax ranges; 4 samples x 64 tokens, seed 0\)/);
    assert.match(text, /\nsets:\nset +samples +tokens/);
    assert.match(text, /\ntensors whose range moves most across sets \(of \d+;/);
    assert.match(text, /\nmodel +prose +code\nfp32 +[\d.]+ +[\d.]+\nw8a8 with prose +[\d.]+ \([+-][\d.]+%\)/);
  });
});

describe('compare-calib input', () => {
  it('resolves shipped names, folders and files to named sources', () => {
    const prose = resolveCalibrationSet('prose');
    assert.equal(prose.name, 'prose');
    assert.ok(existsSync(join(prose.path, 'calibration.jsonl')));
    assert.equal(resolveCalibrationSet(join(REPO, 'calibration-sets/code')).name, 'code');
    assert.equal(resolveCalibrationSet(join(REPO, 'calibration-sets/email/calibration.jsonl')).name, 'email');
    assert.equal(resolveEvaluationDomain('nonsense').name, 'nonsense');
    assert.match(resolveEvaluationDomain(join(REPO, 'calibration-sets/code')).path, /code\/evaluation\.jsonl$/);
  });

  it('fails in one line on an unknown set, a weight-only scheme and a bad number', () => {
    assert.match(oneLineError(cli('compare-calib', TINY_LLAMA, '--sets', 'prose', 'no-such-set')), /no-such-set: no such file, folder or shipped set/);
    assert.match(oneLineError(cli('compare-calib', TINY_LLAMA, '--sets', 'prose', '--scheme', 'w4')), /scheme w4 quantizes weights only.*needs a static scheme \(w8a8\)/);
    assert.match(oneLineError(cli('compare-calib', TINY_LLAMA, '--sets', 'prose', '--samples', '0')), /--samples must be a whole number >= 1, got '0'/);
    assert.match(oneLineError(cli('compare-calib', TINY_LLAMA, '--sets', 'prose', '--eval', 'no-such-domain')), /no-such-domain: no such file, folder or shipped set/);
  });
});
