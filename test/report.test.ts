// The HTML report: every section kind renders, the page is self-contained (no script, no URL, no external
// resource), tables and text are escaped, the quantize report's sections come from a real writer report, JSON
// reports are told apart by kind or shape, the report command writes atomically, and headless Chromium lays out
// and paints the charts.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../src/onnx/model.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { quantizeModel, type WriterReport } from '../src/quantization/writers/index.js';
import { chartSpec, heatmapColours, shorten } from '../src/report/charts.js';
import { formatBytes, formatCount } from '../src/report/format.js';
import { documentFromJson, ReportInputError } from '../src/report/from-json.js';
import { formatNumber, renderReport, writeReportFile } from '../src/report/html.js';
import { reportMeta } from '../src/report/meta.js';
import { tensorLabel } from '../src/report/sections/compare-calib.js';
import { isWriterReport, quantizationSections } from '../src/report/sections/quantization.js';
import type { ReportDocument, Section } from '../src/report/types.js';
import { chromiumSkipReason, countColoured, countForeground, dumpDom, screenshot } from './support/chromium.js';
import { cli, oneLineError } from './support/cli.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const TINY_LLAMA = join(REPO, 'models/tiny-llama/onnx/model.onnx');
const dir = mkdtempSync(join(tmpdir(), 'onnx-report-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** One section of every kind, charts in each of their variants. */
function everyKind(): Section[] {
  return [
    { kind: 'text', title: 'Text <&> "quoted"', caption: 'a caption', paragraphs: ['First <b>not bold</b> & more.', 'Second.'], items: ['one', 'two'] },
    { kind: 'facts', title: 'Facts', facts: [['model', 'models/x.onnx'], ['tokens', 123456], ['ratio', 0.123456]] },
    {
      kind: 'table',
      title: 'Table',
      columns: ['name', { label: 'bytes', format: 'bytes' }, { label: 'share', format: 'percent' }, { label: 'plain' }],
      rows: [
        ['a<script>', 3 * 2 ** 20, 0.25, 1.23456789],
        ['b', 512, 0.001, null],
      ],
    },
    { kind: 'bar', title: 'Bars', data: [{ category: 'alpha', value: 3 }, { category: 'beta', value: 5 }, { category: 'gamma', value: 1.5 }], valueTitle: 'dB', format: '.1f' },
    {
      kind: 'bar',
      title: 'Grouped bars',
      data: ['x', 'y', 'z'].flatMap((c, i) => [
        { category: c, series: 'prose', value: 1 + i },
        { category: c, series: 'nonsense', value: 2 + i / 2 },
      ]),
      seriesOrder: ['prose', 'nonsense'],
    },
    { kind: 'bar', title: 'Vertical bars', horizontal: false, data: [{ category: 'before', value: 10 }, { category: 'after', value: 2.5 }] },
    {
      kind: 'heatmap',
      title: 'Heatmap',
      rows: ['fp32', 'prose', 'nonsense'],
      columns: ['prose', 'code'],
      values: [
        [0, 0],
        [0.5, 1.2],
        [3.1, null],
      ],
      labels: [
        ['12.0', '20.0'],
        ['12.1 (+0.5%)', '20.2 (+1.2%)'],
        ['12.4 (+3.1%)', null],
      ],
      valueTitle: '% vs fp32',
      colors: 'diverging',
    },
    { kind: 'heatmap', title: 'Heatmap without labels', rows: ['a', 'b'], columns: ['c', 'd', 'e'], values: [[1, 2, 3], [4, 5, 6]], format: '.1f' },
    {
      kind: 'line',
      title: 'Lines',
      series: [
        { name: 'prose', points: [[0, 1], [1, 4], [2, 2], [3, 8]] },
        { name: 'nonsense', points: [[0, 2], [1, 3], [2, 0], [3, 5]] },
      ],
      yScale: 'log',
      marks: 'both',
      xTitle: 'tensor',
      yTitle: '|x| max',
    },
    { kind: 'line', title: 'Scatter', series: [{ name: 's', points: [[1, 1], [2, 3], [3, 2]] }], marks: 'points' },
  ];
}

function sampleDocument(): ReportDocument {
  return { title: 'Sample <report>', subtitle: 'every section kind', meta: reportMeta(), sections: everyKind() };
}

/** Everything a page could load from elsewhere or run. */
function externalReferences(html: string): string[] {
  const patterns = [/<script\b/gi, /\bsrc\s*=/gi, /<link\b/gi, /<iframe\b/gi, /<object\b/gi, /<embed\b/gi, /@import/gi, /url\s*\(\s*['"]?(?!#)/gi, /https?:\/\//gi, /\/\/[a-z0-9.-]+\.[a-z]{2,}\//gi];
  return patterns.flatMap((p) => html.match(p) ?? []);
}

const svgs = (html: string) => html.match(/<svg\b[^>]*>[\s\S]*?<\/svg>/g) ?? [];

describe('renderReport', () => {
  let html: string;
  before(async () => {
    html = await renderReport(sampleDocument());
  });

  it('is one self-contained page: no script, no URL, a CSP that forbids fetching anything', () => {
    assert.match(html, /^<!doctype html>\n<html lang="en">/);
    assert.deepEqual(externalReferences(html), []);
    assert.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">/);
    assert.match(html, /<style>[\s\S]+<\/style>/);
  });

  it('renders each section kind, each chart as an inline SVG with marks', () => {
    const sections = everyKind();
    for (const [i, s] of sections.entries()) assert.match(html, new RegExp(`<section id="s${i + 1}" class="${s.kind}">`), `section ${i + 1} (${s.kind})`);
    const charts = sections.filter((s) => s.kind === 'bar' || s.kind === 'heatmap' || s.kind === 'line').length;
    const found = svgs(html);
    assert.equal(found.length, charts);
    for (const svg of found) {
      const width = Number(/width="([\d.]+)"/.exec(svg)?.[1]);
      const height = Number(/height="([\d.]+)"/.exec(svg)?.[1]);
      assert.ok(width > 50 && height > 30, `svg of ${width} x ${height}`);
      assert.match(svg, /class="mark-[a-z]+ role-mark/, 'data marks');
      assert.match(svg, /<path\b[^>]* d="M/, 'drawn paths');
    }
    // Heatmap labels are drawn; a null cell is blank, not 'null'.
    assert.match(html, />12\.4 \(\+3\.1%\)</);
    assert.doesNotMatch(html, />null</);
    // The unlabeled heatmap shows its values with its format.
    assert.match(found[4], />4\.0</);
    // A table of the numbers follows each chart.
    assert.equal((html.match(/<details><summary>data<\/summary>/g) ?? []).length, charts);
  });

  it('escapes text, formats numbers by column, and lists sections in a contents box', () => {
    assert.match(html, /<title>Sample &lt;report&gt;<\/title>/);
    assert.match(html, /<h2>Text &lt;&amp;&gt; &quot;quoted&quot;<\/h2>/);
    assert.match(html, /<p>First &lt;b&gt;not bold&lt;\/b&gt; &amp; more\.<\/p>/);
    assert.match(html, /<td>a&lt;script&gt;<\/td><td class="num">3\.00 MiB<\/td><td class="num">25\.0%<\/td><td class="num">1\.235<\/td>/);
    assert.match(html, /<dt>tokens<\/dt><dd>123,456<\/dd>/);
    assert.match(html, /<nav class="toc"><ol>/);
    assert.match(html, /<dl class="meta"><div><dt>tool<\/dt><dd>onnx-compress \d+\.\d+\.\d+/);
  });

  it('shows an empty chart as "(no data)" and formats numbers', async () => {
    const page = await renderReport({ title: 't', meta: {}, sections: [{ kind: 'bar', data: [] }, { kind: 'heatmap', rows: [], columns: [], values: [] }] });
    assert.equal((page.match(/\(no data\)/g) ?? []).length, 2);
    assert.equal(svgs(page).length, 0);
    assert.equal(formatNumber(1234567), '1,234,567');
    assert.equal(formatNumber(0.000123), '1.230e-4');
    assert.equal(formatNumber(2.5 * 2 ** 30, 'bytes'), '2.50 GiB');
    assert.equal(formatNumber(NaN), '-');
    assert.equal(formatNumber(3.14159, 'fixed2'), '3.14');
  });

  it('writes sizes in binary units and large numbers without exponents', () => {
    // Bytes under 1024 exactly; then three significant digits, stepping up before rounding reaches 1024.
    assert.deepEqual([0, 512, 1023, 1024, 1536, 1329838, 1023.6 * 2 ** 10, 1023.6 * 2 ** 20].map(formatBytes), ['0 B', '512 B', '1023 B', '1.00 KiB', '1.50 KiB', '1.27 MiB', '1.00 MiB', '1.00 GiB']);
    assert.equal(formatNumber(1329838, 'bytes'), formatBytes(1329838));
    assert.equal(formatCount(925060), '925,060');
    // The eval page's old '1.330e+6': 4 significant digits stop at 10,000; above, the integer with separators.
    assert.equal(formatNumber(1329838.4, 'sig4'), '1,329,838');
    assert.equal(formatNumber(12.3456, 'sig4'), '12.35');
    assert.equal(formatNumber(0.000123, 'sig4'), '1.230e-4');
  });

  it('lays tables out to wrap inside the page: breakable names, numeric headings over their numbers, formulas kept whole', async () => {
    const page = await renderReport({
      title: 't',
      meta: {},
      sections: [
        {
          kind: 'table',
          columns: ['tensor', { label: '|x| >= 6', format: 'int' }, { label: 'range', align: 'right' }, 'figure'],
          rows: [
            ['/model/layers.0/post_attention_layernorm/Mul_1_output_0', 1234567, '403-404', { value: 1329838, format: 'bytes' }],
            ['short_name', 2, '5', { value: 925060, format: 'int' }],
          ],
        },
      ],
    });
    assert.match(page, /<td>\/<wbr>model\/<wbr>layers\.<wbr>0\/<wbr>post_attention_layernorm\/<wbr>Mul_1_output_0<\/td>/);
    assert.match(page, /<td>short_name<\/td>/, 'short words never break');
    assert.match(page, /<th>tensor<\/th><th class="num"><span class="nowrap">\|x\| &gt;= 6<\/span><\/th><th class="num">range<\/th><th class="num">figure<\/th>/);
    assert.match(page, /<td class="num">1,234,567<\/td><td class="num">403-404<\/td><td class="num">1\.27 MiB<\/td>/);
    assert.match(page, /<td class="num">925,060<\/td>/, 'a cell with its own format');
  });

  it('colours a heatmap of one-signed changes on a one-sided scale from no change, of mixed signs on a centred one', () => {
    const diverging = { colors: 'diverging' as const };
    const up = heatmapColours(diverging, [0, 0.2, 0.6]).scale as { domain: number[]; range: string[] };
    assert.equal(up.domain[0], 0);
    assert.equal(up.domain.at(-1), 0.6);
    assert.equal(up.range[0], '#f2efee', 'no change is neutral');
    const [red, blue] = [(c: string) => parseInt(c.slice(1, 3), 16), (c: string) => parseInt(c.slice(5, 7), 16)];
    assert.ok(up.range.every((c) => blue(c) <= red(c) + 16), `red, never blue: ${up.range.join(' ')}`);
    const down = heatmapColours(diverging, [-0.5, -0.1, 0]).scale as { domain: number[]; range: string[] };
    assert.deepEqual([down.domain[0], down.domain.at(-1)], [-0.5, 0]);
    assert.equal(down.range.at(-1), '#f2efee');
    assert.ok(down.range.every((c) => red(c) <= blue(c) + 16), `blue, never red: ${down.range.join(' ')}`);
    const both = heatmapColours(diverging, [-0.2, 0.5]).scale as { domain: number[]; scheme: string };
    assert.deepEqual([both.scheme, both.domain], ['redblue', [-0.5, 0, 0.5]]);
    // Magnitudes (the default) span their values.
    assert.deepEqual((heatmapColours({}, [2, 7]).scale as { domain: number[] }).domain, [2, 7]);
  });

  it('names the x positions of a line chart on its axis and in each point\'s hover text', async () => {
    const labels = ['layers.0/self_attn/{q,k,v}_proj', 'layers.0/mlp/down_proj', 'a'.repeat(60)];
    const section: Section = { kind: 'line', series: [{ name: 's', points: labels.map((_, i): [number, number] => [i, i + 1]) }], xLabels: labels, marks: 'both', yTitle: 'y' };
    const svg = svgs(await renderReport({ title: 't', meta: {}, sections: [section] }))[0];
    assert.ok(svg);
    for (const l of labels.slice(0, 2)) {
      assert.match(svg, new RegExp(`>${l.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}</text>`), `axis label ${l}`);
      assert.ok(svg.includes(`<title>${l} · s — y: `), `hover text of ${l}`);
    }
    // A long name is shortened in the middle on the axis, and whole in the hover text.
    assert.match(svg, new RegExp(`>${shorten(labels[2], 32)}</text>`));
    assert.ok(svg.includes(`<title>${labels[2]} · s`));
  });

  it('builds Vega-Lite specs that group bars by series and keep the category order', () => {
    const grouped = chartSpec(everyKind()[4] as Extract<Section, { kind: 'bar' }>) as unknown as { encoding: Record<string, { field?: string; sort?: unknown }> };
    assert.equal(grouped.encoding.yOffset.field, 'series');
    assert.deepEqual(grouped.encoding.y.sort, ['x', 'y', 'z']);
  });

  it('writes the page atomically (no temporary file left)', () => {
    const out = join(dir, 'atomic.html');
    writeReportFile(out, html);
    assert.equal(readFileSync(out, 'utf8'), html);
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
  });
});

describe('quantize report', () => {
  let report: WriterReport;
  before(() => {
    report = quantizeModel(loadModel(TINY_LLAMA), 'w4').report;
  });

  it('turns a writer report into summary, size, per-layer SQNR, node and skipped sections', async () => {
    assert.ok(isWriterReport(report));
    const sections = quantizationSections(report, { model: 'tiny-llama' });
    const titles = sections.map((s) => s.title);
    for (const t of ['Summary', 'Size before and after', 'Weight SQNR per layer', 'Lowest SQNR', 'Nodes', 'Skipped nodes', 'Notes']) assert.ok(titles.includes(t), t);
    const sqnr = sections.find((s) => s.title === 'Weight SQNR per layer') as Extract<Section, { kind: 'bar' }>;
    assert.equal(sqnr.data.length, report.nodes.length);
    assert.equal(sqnr.data[0].category, 'layers.0/self_attn/q_proj');
    const size = sections.find((s) => s.title === 'Size before and after') as Extract<Section, { kind: 'bar' }>;
    assert.ok(size.data[0].value > 4 * size.data[1].value, 'w4 weights are several times smaller');

    const html = await renderReport({ title: 'q', meta: {}, sections });
    assert.deepEqual(externalReferences(html), []);
    // One bar per quantized node in the SQNR chart.
    const sqnrSvg = svgs(html)[1];
    const bars = /<g class="mark-rect role-mark[^"]*"[^>]*>([\s\S]*?)<\/g>/.exec(sqnrSvg)![1];
    assert.equal((bars.match(/<path\b/g) ?? []).length, report.nodes.length);
  });

  it('is found in quantize JSON by kind or by shape, nested or flat', () => {
    for (const json of [report, { model: 'in.onnx', output: 'out.onnx', report }, { kind: 'quantize', model: 'in.onnx', result: report }]) {
      const { kind, document } = documentFromJson(JSON.parse(JSON.stringify(json)), 'q.json');
      assert.equal(kind, 'quantize');
      assert.equal(document.title, 'Quantization report (w4)');
      assert.match(document.meta.date ?? '', /page rendered; the JSON records no run date/);
    }
    const withMeta = documentFromJson({ model: 'in.onnx', report, meta: { toolVersion: 'onnx-compress 9.9.9', date: '2025-01-01' } }, 'q.json');
    assert.equal(withMeta.document.meta.toolVersion, 'onnx-compress 9.9.9');
    assert.equal(withMeta.document.subtitle, 'in.onnx');
  });
});

describe('quantize command report', () => {
  it('renders the whole-run JSON: summary, size, verification, per-layer SQNR, timing', async () => {
    const run = await quantizePass(TINY_LLAMA, 'w4', { out: join(dir, 'tiny-w4.onnx') });
    const { kind, document } = documentFromJson(JSON.parse(JSON.stringify(run)), 'quantize.json');
    assert.equal(kind, 'quantize');
    assert.equal(document.title, 'Quantization report (w4)');
    assert.equal(document.meta.date, run.date);
    assert.match(document.meta.engine ?? '', /^onnxruntime-node \d+\.\d+\.\d+ \(cpu/);
    const titles = document.sections.map((s) => s.title).filter(Boolean);
    assert.deepEqual(titles.slice(0, 3), ['Summary', 'Size before and after', 'Verification']);
    assert.equal(titles.at(-1), 'Timing');
    for (const t of ['Weight SQNR per layer', 'Nodes']) assert.ok(titles.includes(t), t);
    const size = document.sections[1] as Extract<Section, { kind: 'bar' }>;
    // Totals, then each rewritten op type (w4 packs projections and the embedding), then the file.
    assert.deepEqual(size.data.map((d) => d.category), [
      'all quantized weights', 'all quantized weights', 'MatMulNBits', 'MatMulNBits', 'GatherBlockQuantized', 'GatherBlockQuantized', 'model file', 'model file',
    ]);
    const html = await renderReport(document);
    assert.deepEqual(externalReferences(html), []);
    assert.ok(svgs(html).length >= 2);
  });
});

describe('documentFromJson', () => {
  it('tells eval and calibrate reports apart and refuses what it cannot render, in one line', async () => {
    const evalJson = {
      kind: 'language-model',
      data: 'prose/evaluation.jsonl',
      candidate: { model: 'm.onnx', size: { fileBytes: 100, parameters: { count: 10, bytes: 40, byDtype: [] } }, perplexity: { tokens: 10, bytes: 10, nll: 1, meanNll: 0.1, perplexity: 1.105, bitsPerByte: 0.14 } },
      reference: null,
      scoring: { tokenizer: 'bytes', documents: 1, tokens: 10, bytes: 10, window: 8, stride: 4, windows: 3 },
    };
    assert.equal(documentFromJson(evalJson).kind, 'eval');
    // Each figure in its own unit: the file in KiB/MiB, the parameters exact.
    const figures = documentFromJson({ ...evalJson, candidate: { ...evalJson.candidate, size: { fileBytes: 1329838, parameters: { count: 925060, bytes: 1242197, byDtype: [] } } } }).document.sections.find((x) => x.title === 'Figures') as Extract<Section, { kind: 'table' }>;
    const cell = (label: string) => figures.rows.find((r) => r[0] === label)?.[1];
    assert.deepEqual([cell('file size'), cell('parameters'), cell('parameter size')], [{ value: 1329838, format: 'bytes' }, { value: 925060, format: 'int' }, { value: 1242197, format: 'bytes' }]);
    const line = { name: 't', op: 'MatMul', min: -1, max: 2, absMax: 2, p9999: 1.9, entropy: [-1, 1.5], kurtosis: 3, atLeastMagnitude: 0, beyondSigmas: [0, 1] };
    const calibrateJson = { model: 'm.onnx', data: { source: 's', kind: 'text' }, tensors: 1, samples: 1, tokens: 8, seconds: 1, largestRanges: [line], mostOutliers: [line] };
    assert.equal(documentFromJson(calibrateJson).kind, 'calibrate');

    // A reference that reads the text differently (evaluate.ts: referenceScoring + comparisonSkipped): the page
    // shows the reference's own scoring and why KL and top-1 are missing; a matching reference shows neither.
    const reference = { ...evalJson.candidate, model: 'ref.onnx', perplexity: { ...evalJson.candidate.perplexity, perplexity: 1.2 } };
    const skipped = "the reference reads the text differently (BOS 256 vs no BOS), so KL and top-1 agreement, which need the same tokens, are not computed; each model's perplexity is on its own reading";
    const mismatched = documentFromJson({ ...evalJson, reference, referenceScoring: { ...evalJson.scoring, tokens: 11, windows: 4 }, comparisonSkipped: skipped }).document;
    const refScoring = mismatched.sections.find((x) => x.title === 'Scoring of the reference ref.onnx') as Extract<Section, { kind: 'facts' }>;
    assert.deepEqual(refScoring.facts.find((f) => f[0] === 'tokens scored'), ['tokens scored', 11]);
    const against = mismatched.sections.find((x) => x.title === 'Against the reference') as Extract<Section, { kind: 'text' }>;
    assert.deepEqual(against.paragraphs, [`No comparison: ${skipped}.`]);
    assert.ok((await renderReport(mismatched)).includes('BOS 256 vs no BOS'));
    const matched = documentFromJson({ ...evalJson, reference, comparison: { kl: { mean: 0.01, p95: 0.02, max: 0.1 }, top1Agreement: 0.9 } }).document;
    assert.deepEqual(matched.sections.filter((x) => x.title?.startsWith('Scoring')).map((x) => x.title), ['Scoring']);
    assert.equal(matched.sections.find((x) => x.title === 'Against the reference')?.kind, 'facts');

    assert.throws(() => documentFromJson({ format: 'onnx-compress.activation-statistics' }, 'stats.json'), (e: Error) => e instanceof ReportInputError && /stats\.json: not a report this tool renders \(format 'onnx-compress\.activation-statistics'\); it renders the JSON of compare-calib, quantize, eval, calibrate/.test(e.message));
    assert.throws(() => documentFromJson([1, 2], 'a.json'), /a\.json: not a report \(expected a JSON object\)/);
    assert.throws(() => documentFromJson({ kind: 'compare-calib', version: 99 }, 'c.json'), /c\.json: compare-calib report version 99; this build renders 1/);
    assert.throws(() => documentFromJson({ kind: 'compare-calib', version: 1, sets: [] }, 'c.json'), /without tensors, mostMoved, domains, calibration/);
  });

  it('names tensors by the nodes that read them', () => {
    assert.equal(tensorLabel(['/model/layers.0/self_attn/q_proj/MatMul', '/model/layers.0/self_attn/k_proj/MatMul', '/model/layers.0/self_attn/v_proj/MatMul']), 'layers.0/self_attn/{q,k,v}_proj');
    assert.equal(tensorLabel(['/model/layers.1/mlp/gate_proj/MatMul', '/model/layers.1/mlp/up_proj/MatMul']), 'layers.1/mlp/{gate,up}_proj');
    // Nothing shared at a '_' or '.' boundary: the names stay whole.
    assert.equal(tensorLabel(['/a/x/MatMul', '/a/y/MatMul']), 'a/{x,y}');
    assert.equal(tensorLabel(['/lm_head/MatMul']), 'lm_head');
    assert.equal(tensorLabel([], 'tensor_x'), 'tensor_x');
  });
});

describe('report command', () => {
  it('renders a JSON report to a page, and fails in one line on what it cannot read', () => {
    const json = join(dir, 'quant.json');
    writeFileSync(json, JSON.stringify({ model: 'in.onnx', report: quantizeModel(loadModel(TINY_LLAMA), 'w8', {}).report }));
    const out = join(dir, 'quant.html');
    const r = cli('report', json, '--out', out, '--json');
    assert.equal(r.code, 0, r.stderr);
    const written = JSON.parse(r.stdout) as { kind: string; out: string; bytes: number };
    assert.equal(written.kind, 'quantize');
    // Bytes, not characters: the page has non-ASCII text ('·', '—', '…').
    assert.equal(readFileSync(out).length, written.bytes);
    assert.match(readFileSync(out, 'utf8'), /Quantization report \(w8\)/);

    assert.match(oneLineError(cli('report', join(dir, 'missing.json'), '--out', out)), /missing\.json: no such file/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"kind": "something-else"}');
    assert.match(oneLineError(cli('report', bad, '--out', out)), /bad\.json: not a report this tool renders \(kind 'something-else'\)/);
  });
});

describe('in a browser', () => {
  const skip = chromiumSkipReason();

  it('lays out every chart with a size and visible marks', { skip }, async () => {
    const html = await renderReport(sampleDocument());
    // A probe copy: the report's CSP forbids scripts, so the copy drops it and adds one that measures the charts.
    const probe = `<script>
const charts = [...document.querySelectorAll('figure.chart svg')].map((svg) => {
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll('g.role-mark > *')];
  const visible = marks.filter((m) => { const b = m.getBoundingClientRect(); return b.width > 0 || b.height > 0; });
  return { width: box.width, height: box.height, marks: marks.length, visible: visible.length };
});
const pre = document.createElement('pre');
pre.id = 'probe';
pre.textContent = JSON.stringify({ charts, sections: document.querySelectorAll('section').length, bodyWidth: document.body.scrollWidth });
document.body.appendChild(pre);
</script>`;
    const page = join(dir, 'probe.html');
    writeFileSync(page, html.replace(/<meta http-equiv="Content-Security-Policy"[^>]*>/, '').replace('</body>', `${probe}\n</body>`));
    const dom = dumpDom(page);
    const json = /<pre id="probe">([^<]*)<\/pre>/.exec(dom)?.[1];
    assert.ok(json, 'the probe ran');
    const result = JSON.parse(json.replace(/&quot;/g, '"').replace(/&amp;/g, '&')) as { charts: { width: number; height: number; marks: number; visible: number }[]; sections: number };
    assert.equal(result.sections, everyKind().length);
    assert.equal(result.charts.length, svgs(html).length);
    for (const [i, c] of result.charts.entries()) {
      assert.ok(c.width > 60 && c.height > 40, `chart ${i}: ${c.width} x ${c.height}`);
      assert.ok(c.visible > 0 && c.visible === c.marks, `chart ${i}: ${c.visible} of ${c.marks} marks visible`);
    }

    // The report itself, with its CSP: the DOM the browser built holds the same charts.
    const original = join(dir, 'report.html');
    writeReportFile(original, html);
    const plain = dumpDom(original);
    assert.equal((plain.match(/<svg\b/g) ?? []).length, svgs(html).length);
  });

  it('paints the charts (screenshot)', { skip }, async () => {
    const html = await renderReport(sampleDocument());
    const page = join(dir, 'shot.html');
    writeReportFile(page, html);
    const image = screenshot(page, join(dir, 'shot.png'), { width: 1100, height: 3200 });
    assert.equal(image.width, 1100);
    const pixels = image.width * image.height;
    const foreground = countForeground(image, [
      [255, 255, 255],
      [246, 247, 249],
    ]);
    const coloured = countColoured(image);
    // Without its charts this page paints about 25,000 pixels, 2,000 of them coloured (the links); with them
    // about 117,000 and 73,000.
    assert.ok(foreground > 80_000, `${foreground} of ${pixels} pixels are not background`);
    assert.ok(coloured > 35_000, `${coloured} coloured pixels (bars, heatmap cells, lines)`);
  });
});
