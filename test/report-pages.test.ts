// Every report kind as a reader sees it: the JSON of a real run on models/tiny-llama (calibrate, compare-calib,
// quantize, eval, compress; few samples) drawn as a page and opened in headless Chromium at 1280 and 800 px wide.
// Each page must draw every chart (an SVG with visible marks, painted in a screenshot), never be wider than the
// window (tables wrap or scroll inside their section), write sizes in B/KiB/MiB and counts exactly (no '1.330e+6'),
// colour a heatmap of one-signed changes on a one-sided scale, and name the tensors on the network-position axis.
// One browser run measures all ten pages (each in an iframe of its width), then stacks the 1280 px ones at their full
// height and takes one screenshot (at half scale) in which every chart must show paint.
// REPORT_PAGES_DIR=folder keeps the pages and screenshots there to look at.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { documentFromJson, type ReportKind } from '../src/report/from-json.js';
import { esc, renderReport } from '../src/report/html.js';
import { tensorLabel } from '../src/report/sections/compare-calib.js';
import type { HeatmapSection, ReportDocument, Section } from '../src/report/types.js';
import { chromiumSkipReason, countColoured, countForeground, decodePng, runChromium, type Image } from './support/chromium.js';
import { BIN } from './support/cli.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
// The sample model as a Hugging Face folder (onnx/model.onnx), or as the plain file it was before.
const MODEL = ['models/tiny-llama/onnx/model.onnx', 'models/tiny-llama/model.onnx'].find((m) => existsSync(join(REPO, m))) ?? 'models/tiny-llama/model.onnx';
const keep = process.env.REPORT_PAGES_DIR;
const dir = keep ? (mkdirSync(keep, { recursive: true }), keep) : mkdtempSync(join(tmpdir(), 'onnx-report-pages-'));
after(() => {
  if (!keep) rmSync(dir, { recursive: true, force: true });
});

const WIDTHS = [1280, 800] as const;
/** The screenshot's window (CSS px: it must hold the five 1280 px pages stacked) and its device pixels per CSS px. */
const SHOT = { width: 1280, height: 24_000, scale: 0.5 };
const CHART_KINDS = new Set<Section['kind']>(['bar', 'heatmap', 'line']);

/** The CLI's JSON report, run from the repository root so the report names the model as a user would. */
async function cliJson(...args: string[]): Promise<any> {
  const { stdout } = await promisify(execFile)(process.execPath, [BIN, ...args, '--json'], { cwd: REPO, maxBuffer: 64 << 20, timeout: 120_000 });
  return JSON.parse(stdout);
}

/** The five reports from real runs, small enough to take seconds: (kind, JSON). */
async function realRuns(): Promise<Map<ReportKind, any>> {
  const recipe = join(dir, 'recipe.json');
  writeFileSync(
    recipe,
    JSON.stringify({
      format: 'onnx-compress.recipe',
      version: 1,
      name: 'report pages',
      passes: [
        { pass: 'calibrate', data: 'prose', samples: 4, seqLen: 64, observe: 'minmax' },
        { pass: 'quantize', plan: 'recipes/plans/mlp4-attn8.json' },
        { pass: 'verify', minTop1: 0.5 },
        { pass: 'evaluate', data: 'prose', maxTokens: 300, window: 64 },
      ],
    }),
  );
  const quantized = join(dir, 'w8a8.onnx');
  const [calibrate, compare, [quantize, evaluation], compress] = await Promise.all([
    cliJson('calibrate', MODEL, '--data', 'prose', '--out', join(dir, 'stats.json'), '--samples', '4', '--seq-len', '64'),
    cliJson('compare-calib', MODEL, '--sets', 'prose', 'nonsense', '--eval', 'prose', 'code', '--samples', '4', '--seq-len', '64', '--eval-tokens', '256', '--window', '64', '--top', '5'),
    cliJson('quantize', MODEL, '--scheme', 'w8a8', '--calib', 'prose', '--samples', '4', '--seq-len', '64', '--out', quantized).then(async (q) => [
      q,
      await cliJson('eval', quantized, '--reference', MODEL, '--data', 'prose', '--max-tokens', '300', '--window', '64'),
    ]),
    cliJson('compress', MODEL, '--recipe', recipe, '--out', join(dir, 'mixed.onnx')),
  ]);
  return new Map<ReportKind, any>([
    ['calibrate', calibrate],
    ['compare-calib', compare],
    ['quantize', quantize],
    ['eval', evaluation],
    ['compress', compress],
  ]);
}

interface Page {
  kind: ReportKind;
  json: any;
  document: ReportDocument;
  html: string;
  path: string;
}

/** What the browser measured of one page at one width. */
interface Measure {
  kind: ReportKind;
  width: number;
  /** Where the page's iframe sits in the screenshot (1280 px pages only), CSS px. */
  top: number;
  scrollWidth: number;
  clientWidth: number;
  scrollHeight: number;
  charts: { x: number; y: number; width: number; height: number; marks: number; visible: number }[];
  text: string;
}

/**
 * One page holding every report at every width, each in an iframe of that width (srcdoc: same origin, so the
 * probe can read it; each report keeps its own CSP). After load the probe measures every page, hides the 800 px
 * ones and makes each 1280 px one as tall as its page, stacked, for the screenshot Chromium takes after load. It
 * writes its measures base64, so that no character of the pages' text is changed by serialising the DOM.
 */
function probePage(pages: readonly Page[]): string {
  const frames = pages.flatMap((p) => WIDTHS.map((w) => `<iframe data-kind="${p.kind}" data-width="${w}" width="${w}" height="900" srcdoc="${esc(p.html)}"></iframe>`));
  const script = `<script>
window.addEventListener('load', () => {
  const out = [...document.querySelectorAll('iframe')].map((f) => {
    const d = f.contentDocument;
    const de = d.documentElement;
    const charts = [...d.querySelectorAll('figure.chart svg')].map((svg) => {
      const box = svg.getBoundingClientRect();
      const marks = [...svg.querySelectorAll('g.role-mark > *')];
      const visible = marks.filter((m) => { const b = m.getBoundingClientRect(); return b.width > 0 || b.height > 0; });
      return { x: box.x, y: box.y, width: box.width, height: box.height, marks: marks.length, visible: visible.length };
    });
    return { kind: f.dataset.kind, width: Number(f.dataset.width), top: 0, scrollWidth: de.scrollWidth, clientWidth: de.clientWidth, scrollHeight: de.scrollHeight, charts, text: d.body.textContent };
  });
  const frames = [...document.querySelectorAll('iframe')];
  frames.forEach((f, i) => {
    if (out[i].width === ${SHOT.width}) f.style.height = out[i].scrollHeight + 'px';
    else f.style.display = 'none';
  });
  frames.forEach((f, i) => { out[i].top = f.getBoundingClientRect().top; });
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = btoa(String.fromCharCode(...new TextEncoder().encode(JSON.stringify(out))));
  document.body.appendChild(pre);
});
</script>`;
  const style = '<style>body { margin: 0; } iframe { display: block; border: 0; margin: 0; }</style>';
  return `<!doctype html>\n<html><head><meta charset="utf-8">${style}</head><body>\n${frames.join('\n')}\n${script}\n</body></html>\n`;
}

/** The pixels of `image` inside a rectangle (clipped to the image). */
function crop(image: Image, box: { x: number; y: number; width: number; height: number }): Image {
  const x0 = Math.max(0, Math.floor(box.x));
  const y0 = Math.max(0, Math.floor(box.y));
  const x1 = Math.min(image.width, Math.ceil(box.x + box.width));
  const y1 = Math.min(image.height, Math.ceil(box.y + box.height));
  const width = Math.max(0, x1 - x0);
  const height = Math.max(0, y1 - y0);
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) rgba.set(image.rgba.subarray(((y0 + y) * image.width + x0) * 4, ((y0 + y) * image.width + x1) * 4), y * width * 4);
  return { width, height, rgba };
}

const chartSections = (d: ReportDocument) => d.sections.filter((s) => CHART_KINDS.has(s.kind));
const SIZE = /\b\d[\d,]*(\.\d+)? (B|KiB|MiB|GiB)\b/;

describe('report pages of real runs, in a browser', () => {
  const skip = chromiumSkipReason();
  const pages: Page[] = [];
  const measures: Measure[] = [];
  let shot: Image;

  const seconds: string[] = [];
  const since = (start: number) => ((performance.now() - start) / 1000).toFixed(1);
  before(async () => {
    let start = performance.now();
    const runs = await realRuns();
    seconds.push(`runs ${since(start)} s`);
    start = performance.now();
    for (const [kind, json] of runs) {
      const { kind: found, document } = documentFromJson(json, `${kind}.json`);
      assert.equal(found, kind);
      const html = await renderReport(document);
      const path = join(dir, `${kind}.html`);
      writeFileSync(path, html);
      pages.push({ kind, json, document, html, path });
    }
    seconds.push(`pages ${since(start)} s`);
    if (skip) return;
    start = performance.now();
    const probe = join(dir, 'probe.html');
    writeFileSync(probe, probePage(pages));
    const png = join(dir, 'pages.png');
    const dom = runChromium(probe, [`--window-size=${SHOT.width},${SHOT.height}`, `--force-device-scale-factor=${SHOT.scale}`, '--dump-dom', `--screenshot=${png}`], 90_000);
    const b64 = /<pre id="probe">([^<]*)<\/pre>/.exec(dom)?.[1];
    assert.ok(b64, 'the probe ran');
    measures.push(...(JSON.parse(Buffer.from(b64, 'base64').toString('utf8')) as Measure[]));
    shot = decodePng(readFileSync(png));
    seconds.push(`browser (measures and screenshot) ${since(start)} s`);
  });
  it('took', (t) => t.diagnostic(seconds.join(', ')));
  it('draws every chart section of every kind as a chart (none empty)', () => {
    assert.deepEqual(pages.map((p) => p.kind), ['calibrate', 'compare-calib', 'quantize', 'eval', 'compress']);
    for (const p of pages) {
      const charts = chartSections(p.document).length;
      assert.ok(charts > 0, `${p.kind}: the page has charts`);
      assert.equal((p.html.match(/<figure class="chart"><svg\b/g) ?? []).length, charts, `${p.kind}: one SVG per chart section`);
      assert.doesNotMatch(p.html, /\(no data\)/, p.kind);
    }
  });

  it('lays out every chart with a size and all its marks visible, at both widths', { skip }, () => {
    assert.equal(measures.length, pages.length * WIDTHS.length);
    for (const m of measures) {
      const page = pages.find((p) => p.kind === m.kind)!;
      assert.equal(m.charts.length, chartSections(page.document).length, `${m.kind} at ${m.width}px: charts in the DOM`);
      for (const [i, c] of m.charts.entries()) {
        assert.ok(c.width > 100 && c.height > 40, `${m.kind} at ${m.width}px, chart ${i}: ${c.width} x ${c.height}`);
        assert.ok(c.marks > 0 && c.visible === c.marks, `${m.kind} at ${m.width}px, chart ${i}: ${c.visible} of ${c.marks} marks visible`);
        assert.ok(c.x >= 0 && c.x + c.width <= m.clientWidth + 0.5, `${m.kind} at ${m.width}px, chart ${i} inside the page: x ${c.x} + ${c.width}`);
      }
    }
  });

  it('lists the passes of a recipe run in its contents, each pass\'s own sections under it', () => {
    const page = pages.find((p) => p.kind === 'compress')!;
    const toc = /<nav class="toc"><ol>([\s\S]*?)<\/ol><\/nav>/.exec(page.html)![1];
    const listed = [...toc.matchAll(/<a href="#s\d+">([^<]*)<\/a>/g)].map((m) => m[1]);
    assert.deepEqual(listed, ['Run', ...page.json.passes.map((p: { pass: string }) => `Pass: ${p.pass}`)]);
    assert.ok((page.html.match(/<h3>/g) ?? []).length >= page.json.passes.length, 'the passes\' sections are headed one level down');
  });

  it('is never wider than the window: tables wrap or scroll inside their section', { skip }, () => {
    for (const m of measures) {
      assert.equal(m.clientWidth, m.width, `${m.kind}: the iframe is the window`);
      assert.ok(m.scrollWidth <= m.clientWidth, `${m.kind} at ${m.width}px: page ${m.scrollWidth}px wide in a ${m.clientWidth}px window`);
    }
  });

  it('writes sizes in B/KiB/MiB and counts exactly, never in exponent form', { skip }, () => {
    for (const m of measures.filter((x) => x.width === WIDTHS[0])) {
      assert.doesNotMatch(m.text, /\d(\.\d+)?e\+\d/, `${m.kind}: a number in exponent form`);
      // A byte count left raw: '1,329,838 bytes'.
      assert.doesNotMatch(m.text, /\b\d{1,3}(,\d{3})+ bytes\b/, `${m.kind}: a size in bytes`);
      if (m.kind !== 'compare-calib') assert.match(m.text, SIZE, `${m.kind}: shows a size`);
    }
    const evaluation = pages.find((p) => p.kind === 'eval')!.json;
    const text = measures.find((m) => m.kind === 'eval')!.text;
    for (const model of [evaluation.candidate, evaluation.reference]) {
      assert.ok(text.includes(model.size.parameters.count.toLocaleString('en-US')), `exact parameter count ${model.size.parameters.count}`);
      assert.ok(model.size.fileBytes >= 2 ** 20, 'the models are over 1 MiB, so their sizes must show in MiB');
      assert.ok(text.includes(`${(model.size.fileBytes / 2 ** 20).toFixed(2)} MiB`), `file size of ${model.model}`);
    }
  });

  it('colours the perplexity heatmap on a one-sided scale when every change has one sign', () => {
    const page = pages.find((p) => p.kind === 'compare-calib')!;
    const heatmap = page.document.sections.find((s): s is HeatmapSection => s.kind === 'heatmap')!;
    const values = heatmap.values.flat().filter((v): v is number => v !== null);
    const svg = page.html.match(/<svg\b[\s\S]*?<\/svg>/g)!.find((x) => x.includes('rect mark'))!;
    const cells = [...svg.matchAll(/aria-roledescription="rect mark"[^>]*fill="rgb\((\d+), (\d+), (\d+)\)"/g)].map((m) => m.slice(1, 4).map(Number));
    assert.equal(cells.length, values.length, 'one rect per cell');
    const reddish = cells.filter(([r, , b]) => r > b + 30).length;
    const bluish = cells.filter(([r, , b]) => b > r + 30).length;
    const worse = values.filter((v) => v > 0).length;
    const better = values.filter((v) => v < 0).length;
    const legend = /role-legend-label[^>]*>([\s\S]*?)<\/g>/.exec(svg)![1];
    const ticks = [...legend.matchAll(/<text\b[^>]*>([^<]*)<\/text>/g)].map((m) => Number(m[1]));
    assert.ok(ticks.length >= 2 && ticks.every(Number.isFinite), `legend labels ${ticks.join(', ')}`);
    // One sign: the scale runs from no change to the largest change in that sign's colour, and nothing else.
    if (better === 0) {
      assert.equal(bluish, 0, `every change is >= 0, yet ${bluish} cells are blue`);
      if (worse > 0) assert.ok(reddish > 0, 'the cells with a worse perplexity are red');
      assert.equal(Math.min(...ticks), 0, `the legend starts at no change: ${ticks.join(', ')}`);
    } else if (worse === 0) {
      assert.equal(reddish, 0, `every change is <= 0, yet ${reddish} cells are red`);
      assert.equal(Math.max(...ticks), 0, `the legend ends at no change: ${ticks.join(', ')}`);
    } else {
      // Both signs: centred on no change.
      assert.equal(Math.min(...ticks), -Math.max(...ticks), `a legend centred on 0: ${ticks.join(', ')}`);
    }
  });

  it('names the tensors on the ranges-along-the-network axis, in full on hover', () => {
    const page = pages.find((p) => p.kind === 'compare-calib')!;
    const section = page.document.sections.find((s) => s.kind === 'line')!;
    const svg = page.html.match(/<svg\b[\s\S]*?<\/svg>/g)!.find((x) => x.includes(`X-axis titled '${esc((section as { xTitle: string }).xTitle)}'`))!;
    assert.ok(svg, 'the line chart');
    const labels = page.json.tensors.map((t: any) => tensorLabel(t.consumers, t.tensor)) as string[];
    // The x axis's group, up to the next axis (vega draws each axis as one group, labels in a role-axis-label group).
    const axis = svg.split('<g class="mark-group role-axis"').find((g) => g.includes('aria-label="X-axis'))!;
    const labelGroup = axis.slice(axis.indexOf('role-axis-label'));
    const shown = [...labelGroup.matchAll(/<text\b[^>]*>([^<]*)<\/text>/g)].map((m) => m[1].replace(/&amp;/g, '&'));
    assert.ok(shown.length > 0, 'the x axis has labels');
    const named = labels.filter((l) => shown.some((s) => s === l || (s.includes('…') && l.startsWith(s.slice(0, s.indexOf('…'))))));
    assert.equal(named.length, labels.length, `axis labels ${shown.join(' | ')}`);
    assert.ok(!shown.some((s) => /^\d+$/.test(s)), 'no bare index on the axis');
    for (const l of labels) assert.ok(svg.includes(`<title>${esc(l)} · `), `a point's hover text names ${l}`);
  });

  it('paints every chart (the screenshot of the stacked 1280 px pages)', { skip }, () => {
    assert.equal(shot.width, SHOT.width * SHOT.scale);
    for (const m of measures.filter((x) => x.width === SHOT.width)) {
      assert.ok(m.top + m.scrollHeight <= SHOT.height, `${m.kind}: the pages fit the screenshot (${m.top} + ${m.scrollHeight} px)`);
      for (const [i, c] of m.charts.entries()) {
        const area = crop(shot, { x: c.x * SHOT.scale, y: (m.top + c.y) * SHOT.scale, width: c.width * SHOT.scale, height: c.height * SHOT.scale });
        const pixels = area.width * area.height;
        const drawn = countForeground(area, [[255, 255, 255]]);
        const coloured = countColoured(area);
        assert.ok(drawn > 0.02 * pixels, `${m.kind}, chart ${i}: ${drawn} of ${pixels} pixels drawn`);
        assert.ok(coloured > Math.max(10, 0.001 * pixels), `${m.kind}, chart ${i}: ${coloured} of ${pixels} pixels coloured (bars, cells, lines, legend)`);
      }
    }
  });
});
