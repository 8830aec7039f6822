// Speculative decoding with drafts the project makes: for the 12.8 M byte-level LLaMA in ../shared/models (when
// present) drafts quantized (w4a8), pruned 50% and pruned + w4a8, each unfused and through `optimize` (ORT's fused
// kernels, target fused too); for the sample decoders their w4 copies. Per draft and γ (1..8, auto): α, τ, c,
// predicted and measured wall-clock speed-up over the target alone, and whether greedy output was identical.
// The goal: >= 1.5x at identical greedy output.
//
//   npx tsc -p . && node dist/bench/speculative.js [--threads N] [--new-tokens N] [--no-shared] [--work DIR]
//
// Drafts are made with the CLI (quantize, prune, optimize) into --work (default /tmp/onnx-compress-bench-spec);
// one that cannot be made is reported as not measured with the command's error. Writes bench/results/speculative.json.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { table } from '../src/cli/output.js';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { readPrompts } from '../src/decoding/speculative-draft.js';
import { measureSpeculative, targetOnly, warmUp, type SpeculativeMeasurement } from '../src/decoding/speculative-measure.js';
import type { Gamma } from '../src/decoding/speculative.js';
import { machineFacts } from './support/machine.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(REPO, 'bin', 'onnx-compress');
const SHARED = join(REPO, '..', 'shared', 'models', 'byte-llama-12m', 'onnx', 'model.onnx');
const GAMMAS: Gamma[] = [1, 2, 3, 4, 5, 6, 7, 8, 'auto'];

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const threads = Number(arg('--threads') ?? 2);
const newTokens = Number(arg('--new-tokens') ?? 64);
const work = arg('--work') ?? '/tmp/onnx-compress-bench-spec';
mkdirSync(work, { recursive: true });

/** Runs the CLI once to make `out` (kept between runs); the error line when it fails. */
function make(out: string, args: string[]): string | null {
  if (existsSync(out)) return null;
  const r = spawnSync(process.execPath, [BIN, ...args, '--out', out, '--threads', String(threads)], { encoding: 'utf8', cwd: REPO });
  return r.status === 0 ? null : (r.stderr.trim().split('\n').pop() ?? `exit ${r.status}`);
}

interface DraftSpec {
  label: string;
  path: string;
  /** Commands that make it, in order: [output, args]. */
  steps: [string, string[]][];
}

interface Row {
  target: string;
  draft: string;
  fused: boolean;
  status: 'measured' | 'not measured';
  reason?: string;
  sweep?: SpeculativeMeasurement[];
}

async function measure(targetLabel: string, targetPath: string, drafts: DraftSpec[], fused: boolean, rows: Row[]): Promise<void> {
  const target = await DecoderSession.open(targetPath, { intraOpThreads: threads });
  try {
    const prompts = await readPrompts(targetPath, target.vocab, target.special.bos, ['prose', 'code', 'email'], 1, 32);
    await warmUp(prompts[0], target);
    for (const d of drafts) {
      const failure = d.steps.map(([out, args]) => make(out, args)).find((e) => e !== null);
      if (failure) {
        rows.push({ target: targetLabel, draft: d.label, fused, status: 'not measured', reason: failure });
        console.log(`${targetLabel} / ${d.label}: not measured (${failure})`);
        continue;
      }
      const draft = await DecoderSession.open(d.path, { intraOpThreads: threads });
      try {
        await warmUp(prompts[0], target, draft);
        const sweep: SpeculativeMeasurement[] = [];
        for (const gamma of GAMMAS) {
          // The reference next to each γ: the machine is shared and its speed drifts.
          const reference = await targetOnly(target, prompts, { maxNewTokens: newTokens });
          sweep.push(await measureSpeculative(target, draft, prompts, gamma, reference, { maxNewTokens: newTokens }));
        }
        rows.push({ target: targetLabel, draft: d.label, fused, status: 'measured', sweep });
        const f = (x: number | null, n = 2) => (x === null ? 'n/a' : x.toFixed(n));
        console.log(`\n${targetLabel} / ${d.label}${fused ? ' (fused)' : ''}`);
        console.log(
          table(
            ['γ', 'α', 'τ', 'c', 'predicted', 'measured', 'target tok/s', 'spec tok/s', 'identical'],
            sweep.map((m) => [String(m.gamma), f(m.alpha, 3), f(m.tau), f(m.costRatio, 3), f(m.predictedSpeedup), f(m.measuredSpeedup), f(m.targetOnlyTokensPerSecond, 1), f(m.tokensPerSecond, 1), String(m.identical)]),
          ),
        );
      } finally {
        await draft.dispose();
      }
    }
  } finally {
    await target.dispose();
  }
}

const rows: Row[] = [];
const w = (name: string) => join(work, name);
if (!process.argv.includes('--no-shared') && existsSync(SHARED)) {
  const q4: [string, string[]] = [w('q4.onnx'), ['quantize', SHARED, '--scheme', 'w4a8']];
  const p50: [string, string[]] = [w('p50.onnx'), ['prune', SHARED, '--sparsity', '0.5', '--calib', 'prose', '--no-gate']];
  const p50q4: [string, string[]] = [w('p50q4.onnx'), ['quantize', w('p50.onnx'), '--scheme', 'w4a8', '--no-gate']];
  const fuse = (name: string): [string, string[]] => [w(`${name}-fused.onnx`), ['optimize', w(`${name}.onnx`)]];
  const unfused: DraftSpec[] = [
    { label: 'q4 (w4a8)', path: w('q4.onnx'), steps: [q4] },
    { label: '50% pruned', path: w('p50.onnx'), steps: [p50] },
    { label: '50% pruned + q4', path: w('p50q4.onnx'), steps: [p50, p50q4] },
  ];
  await measure('byte-llama-12m', SHARED, unfused, false, rows);
  const targetFused: [string, string[]] = [w('target-fused.onnx'), ['optimize', SHARED]];
  const failure = make(...targetFused);
  if (failure) rows.push({ target: 'byte-llama-12m fused', draft: '*', fused: true, status: 'not measured', reason: failure });
  else {
    const fused: DraftSpec[] = [
      { label: 'q4 (w4a8) fused', path: w('q4-fused.onnx'), steps: [q4, fuse('q4')] },
      { label: '50% pruned fused', path: w('p50-fused.onnx'), steps: [p50, fuse('p50')] },
      { label: '50% pruned + q4 fused', path: w('p50q4-fused.onnx'), steps: [p50, p50q4, fuse('p50q4')] },
    ];
    await measure('byte-llama-12m fused', w('target-fused.onnx'), fused, true, rows);
  }
}
for (const [name, path] of [
  ['tiny-llama', 'models/tiny-llama/onnx/model.onnx'],
  ['tiny-gpt2', 'models/tiny-gpt2/onnx/model.onnx'],
] as const) {
  await measure(name, join(REPO, path), [{ label: 'w4', path: w(`${name}-w4.onnx`), steps: [[w(`${name}-w4.onnx`), ['quantize', join(REPO, path), '--scheme', 'w4']]] }], false, rows);
}

const best = rows.flatMap((r) => (r.sweep ?? []).map((m) => ({ target: r.target, draft: r.draft, m }))).reduce<{ target: string; draft: string; m: SpeculativeMeasurement } | null>((a, b) => (!a || (b.m.identical && b.m.measuredSpeedup > a.m.measuredSpeedup) ? b : a), null);
if (best) console.log(`\nbest: ${best.target} / ${best.draft} at γ ${best.m.gamma}: ${best.m.measuredSpeedup.toFixed(2)}x measured (goal >= 1.5x at identical greedy output)`);
const out = join(REPO, 'bench', 'results', 'speculative.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify({ machine: machineFacts(), threads, newTokens, prompts: '1 record each of prose, code, email evaluation splits, 32 tokens after BOS', rows }, null, 2)}\n`);
console.log(`wrote ${out}`);
