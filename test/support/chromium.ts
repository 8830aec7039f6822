// Headless Chromium for tests that need a real browser to look at a page: its DOM after load (--dump-dom) and a
// screenshot (--screenshot), plus a small PNG decoder to count what the screenshot shows. Each run gets a fresh
// profile folder, and every flag that would reach the network is off. Tests skip with chromiumSkipReason()
// where the browser is not installed (scripts/setup.sh installs Debian's chromium).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inflateSync } from 'node:zlib';

/** Debian's chromium; CHROMIUM_PATH points elsewhere (or at nothing, to check that the tests skip). */
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Why a browser test cannot run here, or undefined when it can. */
export function chromiumSkipReason(): string | undefined {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is not installed (apt-get install chromium), so the page is not checked in a browser`;
  return undefined;
}

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-extensions',
  '--hide-scrollbars',
  '--mute-audio',
];

/** Runs Chromium on a local file with extra flags; returns stdout. Throws with stderr's tail on failure. */
export function runChromium(htmlPath: string, flags: readonly string[], timeoutMs = 60_000): string {
  const profile = mkdtempSync(join(tmpdir(), 'onnx-compress-chromium-'));
  try {
    const r = spawnSync(CHROMIUM, [...FLAGS, `--user-data-dir=${profile}`, ...flags, pathToFileURL(htmlPath).href], {
      encoding: 'utf8',
      timeout: timeoutMs,
      maxBuffer: 64 << 20,
    });
    if (r.error) throw new Error(`chromium: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`chromium exited with ${r.status ?? r.signal}: ${r.stderr.slice(-2000)}`);
    return r.stdout;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

/** The page's DOM, serialised after load (and after any scripts ran). */
export function dumpDom(htmlPath: string, window: { width: number; height: number } = { width: 1200, height: 900 }): string {
  return runChromium(htmlPath, [`--window-size=${window.width},${window.height}`, '--dump-dom']);
}

/** A PNG screenshot of the top `height` pixels of the page at `width`. */
export function screenshot(htmlPath: string, pngPath: string, window: { width: number; height: number }): Image {
  runChromium(htmlPath, [`--window-size=${window.width},${window.height}`, `--screenshot=${pngPath}`]);
  if (!existsSync(pngPath)) throw new Error(`chromium wrote no screenshot to ${pngPath}`);
  return decodePng(readFileSync(pngPath));
}

/** 8-bit RGBA pixels, row by row. */
export interface Image {
  width: number;
  height: number;
  rgba: Uint8Array;
}

/** Decodes an 8-bit, non-interlaced greyscale, RGB or RGBA PNG (what Chromium writes). */
export function decodePng(png: Buffer): Image {
  if (png.readUInt32BE(0) !== 0x89504e47 || png.readUInt32BE(4) !== 0x0d0a1a0a) throw new Error('not a PNG');
  let width = 0;
  let height = 0;
  let colorType = 0;
  const idat: Buffer[] = [];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const depth = data[8];
      colorType = data[9];
      if (depth !== 8 || data[12] !== 0 || ![0, 2, 4, 6].includes(colorType)) {
        throw new Error(`PNG of bit depth ${depth}, colour type ${colorType}, interlace ${data[12]} is not supported here`);
      }
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    at += 12 + length;
  }
  const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType]!;
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = y * stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[row + x - channels] : 0;
      const b = y > 0 ? out[row - stride + x] : 0;
      const c = x >= channels && y > 0 ? out[row - stride + x - channels] : 0;
      let v = line[x];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (filter !== 0) throw new Error(`PNG row ${y}: unknown filter ${filter}`);
      out[row + x] = v & 0xff;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const p = i * channels;
    const grey = channels <= 2;
    rgba[i * 4] = out[p];
    rgba[i * 4 + 1] = grey ? out[p] : out[p + 1];
    rgba[i * 4 + 2] = grey ? out[p] : out[p + 2];
    rgba[i * 4 + 3] = channels === 4 ? out[p + 3] : channels === 2 ? out[p + 1] : 255;
  }
  return { width, height, rgba };
}

/** Pixels that differ from every one of the background colours by more than `tolerance` in some channel. */
export function countForeground(image: Image, backgrounds: readonly [number, number, number][], tolerance = 12): number {
  let n = 0;
  const { rgba } = image;
  for (let i = 0; i < rgba.length; i += 4) {
    const isBackground = backgrounds.some(([r, g, b]) => Math.abs(rgba[i] - r) <= tolerance && Math.abs(rgba[i + 1] - g) <= tolerance && Math.abs(rgba[i + 2] - b) <= tolerance);
    if (!isBackground) n++;
  }
  return n;
}

/** Pixels with a clear colour (max - min channel above `saturation`): chart marks, not black text on white. */
export function countColoured(image: Image, saturation = 60): number {
  let n = 0;
  const { rgba } = image;
  for (let i = 0; i < rgba.length; i += 4) {
    const hi = Math.max(rgba[i], rgba[i + 1], rgba[i + 2]);
    const lo = Math.min(rgba[i], rgba[i + 1], rgba[i + 2]);
    if (hi - lo > saturation) n++;
  }
  return n;
}
