// Speculative decoding (src/decoding/speculative*.ts): greedy output equal to the target's own greedy output with
// drafts made by quantization, by another model and by the target itself; cache rollback; sampled output
// distributed as the target's own sampling (chi-square against the target's exact probabilities, and the same
// test failing for a wrong acceptance rule); bad input; the speculate and draft commands end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { generate } from '../src/decoding/generate.js';
import { checkDraftFits, predictedSpeedup, speculativeGenerate, type Gamma } from '../src/decoding/speculative.js';
import { verifySampled, type SampledVerifier } from '../src/decoding/speculative-verify.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { chiSquareTest } from './support/chi-square.js';
import { cli, cliInProcess, oneLineError } from './support/cli.js';

const LLAMA = 'models/tiny-llama/onnx/model.onnx';
const GPT2 = 'models/tiny-gpt2/onnx/model.onnx';
const BOS = 256;
const bytes = (text: string) => [BOS, ...Buffer.from(text)];
const PROMPTS = [bytes('Call me Ishmael. Some years ago'), bytes('function add(a, b) {')];

const dir = mkdtempSync(join(tmpdir(), 'onnx-compress-speculative-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const sessions = new Map<string, Promise<DecoderSession>>();
const open = (path: string) => {
  if (!sessions.has(path)) sessions.set(path, DecoderSession.open(path, { intraOpThreads: 1 }));
  return sessions.get(path)!;
};
test.after(async () => {
  for (const s of sessions.values()) await (await s).dispose();
});

/** A w4 (MatMulNBits) copy of a sample model, made once, as `quantize --scheme w4` makes it. */
const w4Copies = new Map<string, Promise<string>>();
function w4(model: string): Promise<string> {
  if (!w4Copies.has(model)) {
    const out = join(dir, `${model.split('/')[1]}-w4.onnx`);
    w4Copies.set(model, quantizePass(model, 'w4', { out }).then(() => out));
  }
  return w4Copies.get(model)!;
}

const GAMMAS: Gamma[] = [1, 3, 6, 'auto'];
const NEW_TOKENS = 48;

for (const targetPath of [LLAMA, GPT2]) {
  const name = targetPath.split('/')[1];
  test(`greedy: speculative output equals ${name}'s own greedy output for every draft and γ`, async () => {
    const target = await open(targetPath);
    const drafts: [string, string][] = [
      ['itself', targetPath],
      ['its w4 copy', await w4(targetPath)],
      ['the other sample model', targetPath === LLAMA ? GPT2 : LLAMA],
    ];
    const rejected = new Map<string, number>();
    for (const prompt of PROMPTS) {
      const reference = (await generate(target, [prompt], { maxNewTokens: NEW_TOKENS })).tokens[0];
      for (const [what, draftPath] of drafts) {
        const draft = await open(draftPath);
        for (const gamma of GAMMAS) {
          const r = await speculativeGenerate(target, draft, [prompt], { maxNewTokens: NEW_TOKENS, gamma });
          assert.deepEqual(r.tokens, reference, `${what} as draft, γ ${gamma}`);
          assert.equal(r.stopReason, 'max-new-tokens');
          rejected.set(what, (rejected.get(what) ?? 0) + r.stats.rejected);
          if (what === 'itself') {
            assert.equal(r.stats.alpha, 1, `the target drafting for itself is always accepted (γ ${gamma})`);
            if (gamma !== 'auto') assert.ok(r.stats.tau! > gamma, `τ ${r.stats.tau} with γ ${gamma}`);
          }
          assert.equal(r.stats.accepted + r.stats.steps, r.tokens.length, 'each step commits its accepted tokens and one of the target');
        }
      }
    }
    // Another model's drafts must have been rejected somewhere, or rollback went untested.
    assert.ok(rejected.get('the other sample model')! > 0, 'no draft token of the other model was ever rejected');
  });
}

test('a cache cut back to a prefix equals the cache of that prefix, and decoding goes on from it unchanged', async () => {
  const target = await open(LLAMA);
  const prefix = PROMPTS[0];
  const extra = [...Buffer.from(' xyz')];
  const long = await target.forward([[...prefix, ...extra]]);
  const short = await target.forward([prefix]);
  const cut = long.state.cache!.truncate(prefix.length);
  assert.equal(cut.length, prefix.length);
  for (const [name, t] of Object.entries(short.state.cache!.tensors)) {
    const a = t.data as Float32Array;
    const b = cut.tensors[name].data as Float32Array;
    assert.deepEqual(cut.tensors[name].dims, t.dims, name);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    assert.ok(worst < 1e-5, `${name}: differs by ${worst}`);
  }
  const state = { tokens: [prefix], mask: [prefix.map(() => 1)], cache: cut };
  const next = await target.forward([[101]], state);
  const fresh = await target.forward([[101]], short.state);
  const a = next.logits.last(0);
  const b = fresh.logits.last(0);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-4, `logit ${i}`);
  assert.throws(() => cut.truncate(prefix.length + 1), /cannot truncate/);
});

test("generation stops at the target's last position as plain generation does", async () => {
  const target = await open(GPT2); // 256 positions
  const prompt = [BOS, ...Array.from({ length: 249 }, (_, i) => 97 + (i % 26))];
  const reference = await generate(target, [prompt], { maxNewTokens: 20 });
  for (const gamma of [2, 5] as Gamma[]) {
    const r = await speculativeGenerate(target, await open(await w4(GPT2)), [prompt], { maxNewTokens: 20, gamma });
    assert.deepEqual(r.tokens, reference.tokens[0]);
    assert.equal(r.stopReason, reference.stopReasons[0]);
    assert.equal(r.stopReason, 'max-positions');
  }
});

// --- sampling -------------------------------------------------------------------------------------------

const TOP_K = 5;

/** softmax over the k largest logits, written out here rather than taken from sampling.ts. */
function topKProbabilities(logits: Float32Array, k: number): Map<number, number> {
  const ids = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b).slice(0, k);
  const max = logits[ids[0]];
  const w = ids.map((i) => Math.exp(logits[i] - max));
  const total = w.reduce((a, b) => a + b, 0);
  return new Map(ids.map((id, j) => [id, w[j] / total]));
}

/** The exact probability of each first two tokens under the target's top-k sampling, and the counts of `runs` speculative runs. */
async function twoTokenFit(verifier: SampledVerifier, runs: number) {
  const target = await open(LLAMA);
  const draft = await open(GPT2);
  const prompt = [BOS]; // no prefill: the first step feeds the prompt and the drafts together
  const first = topKProbabilities((await target.logitsOf([prompt])).last(0), TOP_K);
  const cells = new Map<string, number>();
  for (const [t1, p1] of first) {
    for (const [t2, p2] of topKProbabilities((await target.logitsOf([[...prompt, t1]])).last(0), TOP_K)) cells.set(`${t1},${t2}`, p1 * p2);
  }
  const counts = new Map<string, number>([...cells.keys()].map((k) => [k, 0]));
  let accepted = 0;
  let rejected = 0;
  for (let seed = 0; seed < runs; seed++) {
    const r = await speculativeGenerate(target, draft, [prompt], { maxNewTokens: 3, gamma: 2, temperature: 1, topK: TOP_K, seed, verifier });
    const key = `${r.tokens[0]},${r.tokens[1]}`;
    assert.ok(counts.has(key), `tokens ${key} are outside the target's top-${TOP_K} support`);
    counts.set(key, counts.get(key)! + 1);
    accepted += r.stats.accepted;
    rejected += r.stats.rejected;
  }
  const keys = [...cells.keys()];
  return { fit: chiSquareTest(keys.map((k) => counts.get(k)!), keys.map((k) => cells.get(k)!)), accepted, rejected };
}

const RUNS = 1200;

test('sampling: the first two tokens follow the target\'s own top-k sampling distribution (chi-square)', async () => {
  const { fit, accepted, rejected } = await twoTokenFit(verifySampled, RUNS);
  // Both paths of the rule were taken many times: acceptance and resampling from the residual.
  assert.ok(accepted > RUNS / 4 && rejected > RUNS / 4, `accepted ${accepted}, rejected ${rejected}`);
  assert.ok(fit.degreesOfFreedom >= 5, `only ${fit.degreesOfFreedom} degrees of freedom`);
  assert.ok(fit.pValue > 0.001, `chi-square ${fit.statistic.toFixed(1)} on ${fit.degreesOfFreedom} df, p = ${fit.pValue.toExponential(2)}`);
});

test('sampling: the same test rejects a wrong rule (resampling from p instead of norm(max(0, p - q)))', async () => {
  const wrong: SampledVerifier = (drafts, p, q, random) => {
    // Pass the right rule a q equal to p at the rejected position's resampling, i.e. resample from p.
    const verdict = verifySampled(drafts, p, q, random);
    if (verdict.accepted === drafts.length) return verdict;
    const pi = p[verdict.accepted];
    let u = random();
    for (let i = 0; i < pi.length; i++) {
      u -= pi[i];
      if (u < 0 && pi[i] > 0) return { accepted: verdict.accepted, next: i };
    }
    return verdict;
  };
  const { fit } = await twoTokenFit(wrong, RUNS);
  assert.ok(fit.pValue < 1e-6, `a wrong rule went unnoticed: chi-square ${fit.statistic.toFixed(1)} on ${fit.degreesOfFreedom} df, p = ${fit.pValue.toExponential(2)}`);
});

test('the predicted speed-up formula gives the notes\' worked example', () => {
  // α 0.8, γ 4: 3.36 tokens per target call; c 0.1 -> 2.4x (calibration-and-drafts.md).
  assert.ok(Math.abs(predictedSpeedup(0.8, 4, 0) - 3.3616) < 1e-9);
  assert.ok(Math.abs(predictedSpeedup(0.8, 4, 0.1) - 3.3616 / 1.4) < 1e-9);
  assert.equal(predictedSpeedup(1, 3, 0), 4);
});

// --- bad input --------------------------------------------------------------------------------------------

test('bad input: γ out of range, batch > 1, a prompt past the positions, another vocabulary or other special tokens', async () => {
  const target = await open(LLAMA);
  const draft = await open(GPT2);
  for (const gamma of [0, 17, 2.5, -1]) {
    await assert.rejects(speculativeGenerate(target, draft, [PROMPTS[0]], { maxNewTokens: 4, gamma }), /gamma must be a whole number from 1 to 16 or 'auto', got/);
  }
  await assert.rejects(speculativeGenerate(target, draft, PROMPTS, { maxNewTokens: 4, gamma: 2 }), /one prompt at a time \(batch 1\), got 2/);
  // tiny-gpt2 has 256 positions, tiny-llama 1024: the draft's limit counts too.
  const long = [BOS, ...new Array<number>(300).fill(97)];
  await assert.rejects(speculativeGenerate(target, draft, [long], { maxNewTokens: 4, gamma: 2 }), /tiny-gpt2.*a prompt of 301 tokens is longer than the model's 256 positions/);

  const otherVocab = { source: 'other.onnx', vocab: 300, special: draft.special } as DecoderSession;
  assert.throws(() => checkDraftFits(target, otherVocab), /draft other\.onnx for target .*: vocabularies differ \(300 vs 259 tokens\)/);

  // The same weights with another end-of-sequence id in config.json.
  const folder = join(dir, 'other-eos');
  mkdirSync(join(folder, 'onnx'), { recursive: true });
  copyFileSync(GPT2, join(folder, 'onnx', 'model.onnx'));
  const config = JSON.parse(readFileSync('models/tiny-gpt2/config.json', 'utf8'));
  writeFileSync(join(folder, 'config.json'), JSON.stringify({ ...config, eos_token_id: 258 }));
  const otherEos = await open(join(folder, 'onnx', 'model.onnx'));
  await assert.rejects(speculativeGenerate(target, otherEos, [PROMPTS[0]], { maxNewTokens: 4, gamma: 2 }), /special tokens differ \(draft BOS 256 \/ EOS 258, target BOS 256 \/ EOS 257\)/);
});

// --- the commands ------------------------------------------------------------------------------------------

test('speculate --json: the target\'s greedy text, acceptance and speed-up; bad flags are one line', () => {
  const r = cli('speculate', LLAMA, '--draft', GPT2, '--prompt', 'Call me Ishmael.', '--gamma', '3', '--max-new-tokens', '24', '--threads', '1', '--json');
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  const plain = JSON.parse(cli('generate', LLAMA, '--prompt', 'Call me Ishmael.', '--max-new-tokens', '24', '--json').stdout);
  assert.deepEqual(report.tokens, plain.tokens);
  assert.equal(report.text, plain.text);
  assert.equal(report.comparison.identical, true);
  assert.equal(report.stats.gamma, 3);
  assert.ok(report.comparison.alpha > 0 && report.comparison.alpha < 1);
  assert.ok(report.comparison.measuredSpeedup > 0 && report.comparison.costRatio > 0);

  const text = cli('speculate', LLAMA, '--draft', LLAMA, '--prompt', 'Call me', '--gamma', 'auto', '--max-new-tokens', '8');
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stderr, /α 100\.0%.*tokens\/s.*x measured.*output identical to the target alone/);

});

test('speculate and draft: bad flags are one line', async () => {
  assert.match(oneLineError(await cliInProcess('speculate', LLAMA, '--draft', GPT2, '--prompt', 'x', '--gamma', '0')), /--gamma must be a whole number from 1 to 16 or 'auto', got '0'/);
  assert.match(oneLineError(await cliInProcess('speculate', LLAMA, '--draft', GPT2, '--prompt', 'x', '--gamma', '3', '--threshold', '0.5')), /--threshold applies to --gamma auto only/);
  assert.match(oneLineError(await cliInProcess('draft', LLAMA, '--out', join(dir, 'x.onnx'))), /give --recipe, --scheme or --sparsity/);
  assert.match(oneLineError(await cliInProcess('draft', LLAMA, '--scheme', 'w4', '--out', join(dir, 'x.onnx'), '--gamma-sweep', '3..1')), /--gamma-sweep: range 3\.\.1 runs backwards/);
  assert.match(oneLineError(await cliInProcess('draft', LLAMA, '--scheme', 'w4', '--out', join(dir, 'x.onnx'), '--gamma-sweep', '1..20')), /--gamma-sweep must be a whole number from 1 to 16/);
  assert.match(oneLineError(await cliInProcess('draft', LLAMA, '--scheme', 'w4', '--out', join(dir, 'x'))), /a draft is written as one \.onnx file/);
});

test('draft --scheme w4 --json: a sweep per γ, the draft written and usable by speculate', () => {
  const out = join(dir, 'drafts', 'tiny-llama-draft.onnx');
  const r = cli('draft', LLAMA, '--scheme', 'w4', '--out', out, '--gamma-sweep', '1..2,auto', '--prompt-count', '1', '--prompts', 'prose', '--max-new-tokens', '16', '--threads', '1', '--json');
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.candidates.length, 1);
  const c = report.candidates[0];
  assert.deepEqual(c.sweep.map((m: { gamma: Gamma }) => m.gamma), [1, 2, 'auto']);
  for (const m of c.sweep) {
    assert.equal(m.identical, true);
    assert.ok(m.alpha > 0 && m.alpha <= 1 && m.tau >= 1 && m.costRatio > 0 && m.predictedSpeedup > 0);
    assert.equal(m.byPosition[0].position, 1);
  }
  assert.ok(existsSync(out));
  assert.equal(report.chosen, 'scheme w4');
  const s = cli('speculate', LLAMA, '--draft', out, '--prompt', 'Call me', '--max-new-tokens', '8', '--json');
  assert.equal(s.code, 0, s.stderr);

});
