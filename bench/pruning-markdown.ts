// Markdown tables for docs/figures.md from bench/results/pruning.json, so the figures in the docs are computed from
// the bench's output rather than typed: perplexity per method and sparsity, where NIRVANA is not at or below every
// baseline, achieved parameters against the target, KL selection against the random draws, scoring cost.
//
//   npx tsc -p . && node dist/bench/pruning-markdown.js [results.json]
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DOMAINS = ['prose', 'code', 'email'] as const;
type Domain = (typeof DOMAINS)[number];

interface Row {
  sparsity: number;
  method: string;
  perplexity: Record<Domain, number>;
  params: { total: number; kept: number; targetKept: number; relativeError: number };
}
interface Model {
  model: string;
  calibration: { samples: number; sequenceLength: number };
  dense: { perplexity: Record<Domain, number> };
  saliency?: { method: string; backend: string; samples: number; seconds: number; peakRssBytes: number };
  scoreSeconds: Record<string, number>;
  cachedScores?: string[];
  rows: Row[];
  kl?: { sparsity: number; candidates: { candidate: string; kl: { mean: number }; perplexity: number; chosen: boolean }[]; chosen: string; chosenPerplexity: number; randomMedian: number; randomWorst: number; seconds: number };
}

const f3 = (x: number) => x.toFixed(3);
const name = (m: Model) => m.model.split('/').find((p) => p.includes('llama')) ?? m.model;

function modelSection(m: Model): string[] {
  const out: string[] = [];
  const sparsities = [...new Set(m.rows.map((r) => r.sparsity))].sort((a, b) => a - b);
  out.push(`${name(m)}, ${m.calibration.samples} x ${m.calibration.sequenceLength} prose calibration tokens; perplexity (dense: ${DOMAINS.map((d) => `${d} ${f3(m.dense.perplexity[d])}`).join(', ')}); best of each column in bold:`, '');
  out.push(`| sparsity | method | ${DOMAINS.join(' | ')} | kept params (vs target) |`, `|---|---|${DOMAINS.map(() => '---|').join('')}---|`);
  const misses: string[] = [];
  for (const s of sparsities) {
    const rows = m.rows.filter((r) => r.sparsity === s);
    const best = Object.fromEntries(DOMAINS.map((d) => [d, Math.min(...rows.map((r) => r.perplexity[d]))]));
    for (const r of rows) {
      const cells = DOMAINS.map((d) => (r.perplexity[d] === best[d] ? `**${f3(r.perplexity[d])}**` : f3(r.perplexity[d])));
      out.push(`| ${Math.round(100 * s)}% | ${r.method} | ${cells.join(' | ')} | ${r.params.kept.toLocaleString('en')} (${r.params.relativeError >= 0 ? '+' : ''}${(100 * r.params.relativeError).toFixed(2)}%) |`);
    }
    const nirvana = rows.find((r) => r.method === 'nirvana');
    if (!nirvana) continue;
    for (const d of DOMAINS) {
      const beaten = rows.filter((r) => r.method !== 'nirvana' && r.perplexity[d] < nirvana.perplexity[d]);
      if (beaten.length) misses.push(`${Math.round(100 * s)}% ${d} (nirvana ${f3(nirvana.perplexity[d])}; ${beaten.map((r) => `${r.method} ${f3(r.perplexity[d])}`).join(', ')})`);
    }
  }
  const cells = sparsities.length * DOMAINS.length;
  out.push('', misses.length ? `NIRVANA at or below every baseline in ${cells - misses.length} of ${cells} sparsity/domain cells; not in: ${misses.join('; ')}.` : `NIRVANA at or below every baseline in all ${cells} sparsity/domain cells.`);
  const worst = Math.max(...m.rows.map((r) => Math.abs(r.params.relativeError)));
  out.push(`Achieved parameters (attention + MLP) within ${(100 * worst).toFixed(2)}% of the target in every row.`);
  if (m.kl) {
    const k = m.kl;
    out.push(
      `KL selection (nirvana, ${Math.round(100 * k.sparsity)}%, ${k.candidates.length} candidates, ${k.seconds.toFixed(0)} s): chose ${k.chosen}, evaluation perplexity ${f3(k.chosenPerplexity)}; random draws median ${f3(k.randomMedian)}, worst ${f3(k.randomWorst)} (candidates: ${k.candidates.map((c) => `${c.candidate} KL ${c.kl.mean.toFixed(4)} ppl ${f3(c.perplexity)}`).join('; ')}).`,
    );
    const ppl = k.candidates.map((c) => c.perplexity);
    const lowest = k.candidates.reduce((a, b) => (b.perplexity < a.perplexity ? b : a));
    out.push(`Candidates' evaluation perplexities span ${((100 * (Math.max(...ppl) - Math.min(...ppl))) / Math.min(...ppl)).toFixed(2)}%; the lowest is ${lowest.candidate}${lowest.chosen ? ', the one chosen' : `, not the one chosen (${((100 * (k.chosenPerplexity - lowest.perplexity)) / lowest.perplexity).toFixed(2)}% above it)`}.`);
  } else out.push('KL selection: not run on this model (see the note).');
  const cached = m.cachedScores ?? [];
  const cost = Object.entries(m.scoreSeconds).map(([method, s]) => `${method} ${s.toFixed(1)} s${cached.includes(method) ? ' (from an earlier run of the same code and data)' : ''}`);
  out.push(`Scoring time over the calibration set: ${cost.join(', ')}.`);
  if (m.saliency) out.push(`Gradient run (${m.saliency.method}, ${m.saliency.samples} x 128 tokens, TensorFlow.js ${m.saliency.backend}): ${m.saliency.seconds.toFixed(1)} s, peak RSS ${(m.saliency.peakRssBytes / 2 ** 20).toFixed(0)} MiB.`);
  return out;
}

const file = process.argv[2] ?? join(REPO, 'bench', 'results', 'pruning.json');
const result = JSON.parse(readFileSync(file, 'utf8')) as { models: Model[] };
// Smallest model first, whatever order split runs wrote them in.
const models = [...result.models].sort((a, b) => a.rows[0].params.total - b.rows[0].params.total);
console.log(models.flatMap((m) => [...modelSection(m), '']).join('\n'));
