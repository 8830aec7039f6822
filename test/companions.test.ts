// Everything a model needs travels with every model written from it (src/passes/output-companions.ts,
// src/onnx/model-folder.ts): a plain .onnx carries the input's config and tokenizer files in its metadata_props and
// every command reads them back (BOS kept, the same perplexity for the same weights); a folder output gets them as
// the standard files beside onnx/, for any input. Without any config the maximum positions come from the graph
// (GPT-2's position table, LLaMA's rotary cache), checked against where ONNX Runtime itself stops, and a longer
// sequence is a one-line error in generate and eval. `eval --reference` reads the text with each model's settings.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { evaluateModel } from '../src/decoding/evaluate.js';
import { generateText } from '../src/decoding/generate-text.js';
import { readSpecialTokens } from '../src/decoding/special-tokens.js';
import { OptionError } from '../src/errors.js';
import { decodeModel } from '../src/onnx/codec.js';
import { describeDecoder, positionTableRows } from '../src/onnx/decoder-info.js';
import { COMPANION_FILES, embeddedKey, modelFolder } from '../src/onnx/model-folder.js';
import { loadModel } from '../src/onnx/model.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { cli } from './support/cli.js';

const GPT2_DIR = 'models/tiny-gpt2';
const GPT2 = join(GPT2_DIR, 'onnx', 'model.onnx');
const LLAMA_DIR = 'models/tiny-llama';
const LLAMA = join(LLAMA_DIR, 'onnx', 'model.onnx');
const gpt2Config = JSON.parse(readFileSync(join(GPT2_DIR, 'config.json'), 'utf8')) as Record<string, number>;
const llamaConfig = JSON.parse(readFileSync(join(LLAMA_DIR, 'config.json'), 'utf8')) as Record<string, number>;

const dir = mkdtempSync(join(tmpdir(), 'companions-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A copy of a model alone in a folder of its own (no config anywhere near it). */
function bare(model: string, name: string): string {
  mkdirSync(join(dir, name));
  const path = join(dir, name, 'model.onnx');
  copyFileSync(model, path);
  return path;
}

const prompt = 'Call me Ishmael.';

describe('a plain .onnx output carries the config and tokenizer files', () => {
  const out = join(dir, 'plain', 'gpt2-w8.onnx');
  before(async () => {
    await quantizePass(GPT2, 'w8', { out });
  });

  it('in its metadata_props, byte for byte, with no sidecar file', () => {
    assert.deepEqual(readdirSync(dirname(out)), ['gpt2-w8.onnx']);
    const entries = decodeModel(readFileSync(out)).metadataProps;
    for (const name of COMPANION_FILES) {
      const entry = entries.find((e) => e.key === embeddedKey(name));
      assert.equal(entry?.value, readFileSync(join(GPT2_DIR, name), 'utf8'), name);
    }
    const folder = modelFolder(loadModel(out));
    assert.deepEqual(folder.files().map((f) => [f.name, f.embedded]), COMPANION_FILES.map((n) => [n, true]));
    assert.match(folder.configPath!, /gpt2-w8\.onnx metadata_props\[onnx_compress\.config\.json\]$/);
  });

  it('read back by every command: the same special tokens, decoder description and prompt ids (BOS first)', async () => {
    const written = loadModel(out);
    assert.deepEqual(readSpecialTokens(written), readSpecialTokens(loadModel(GPT2)));
    assert.equal(readSpecialTokens(written).bos, gpt2Config.bos_token_id);
    const d = describeDecoder(written)!;
    assert.equal(d.source, 'config.json');
    assert.equal(d.maxPositions, gpt2Config.n_positions);
    const original = await generateText(GPT2, prompt, { maxNewTokens: 4 });
    const quantized = await generateText(out, prompt, { maxNewTokens: 4 });
    assert.equal(quantized.promptTokens[0], gpt2Config.bos_token_id);
    assert.deepEqual(quantized.promptTokens, original.promptTokens);
    // Through the command line, as the issue found it.
    const r = cli('generate', out, '--prompt', prompt, '--max-new-tokens', '2', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).promptTokens, original.promptTokens);
  });

  it('a copy with the same weights scores the same perplexity as the original', async () => {
    const copy = join(dir, 'copy', 'gpt2.onnx');
    const r = cli('convert', GPT2, copy);
    assert.equal(r.code, 0, r.stderr);
    const options = { data: 'prose', maxTokens: 2000 };
    const [a, b] = [await evaluateModel(GPT2, options), await evaluateModel(copy, options)];
    assert.deepEqual(b.scoring, a.scoring);
    assert.equal(b.candidate.perplexity!.perplexity, a.candidate.perplexity!.perplexity);
  });
});

describe('a folder output, for any input', () => {
  it('gets config.json, generation_config.json and the tokenizer files beside onnx/<name>.onnx', async () => {
    // A plain input that carries its files embedded: they come out as files, and the folder's model embeds none.
    const plain = join(dir, 'plain-input', 'gpt2.onnx');
    assert.equal(cli('convert', GPT2, plain).code, 0);
    const root = join(dir, 'gpt2-folder');
    const r = await quantizePass(plain, 'w4', { out: `${root}/` });
    assert.equal(r.output.path, join(root, 'onnx', 'model_q4.onnx'));
    assert.equal(r.output.naming, 'transformers.js');
    assert.deepEqual(readdirSync(root).sort(), [...COMPANION_FILES, 'onnx'].sort());
    assert.deepEqual(readdirSync(join(root, 'onnx')), ['model_q4.onnx']);
    for (const name of COMPANION_FILES) assert.ok(readFileSync(join(root, name)).equals(readFileSync(join(GPT2_DIR, name))), name);
    assert.deepEqual(decodeModel(readFileSync(r.output.path)).metadataProps.filter((e) => e.key?.startsWith('onnx_compress.')), []);
    const folder = modelFolder(loadModel(r.output.path));
    assert.equal(folder.isHuggingFaceFolder, true);
    assert.equal(folder.configPath, join(root, 'config.json'));
    assert.equal((await generateText(r.output.path, prompt, { maxNewTokens: 1 })).promptTokens[0], gpt2Config.bos_token_id);

    // A scheme transformers.js has no dtype for: a name of ours, reported as such.
    const other = await quantizePass(GPT2, 'w4a8', { out: `${root}/onnx/` });
    assert.deepEqual([other.output.path, other.output.naming], [join(root, 'onnx', 'model_w4a8.onnx'), 'onnx-compress']);
  });

  it("is refused before any work when the folder holds another model's config", async () => {
    const root = join(dir, 'taken');
    mkdirSync(root);
    writeFileSync(join(root, 'config.json'), readFileSync(join(LLAMA_DIR, 'config.json')));
    await assert.rejects(quantizePass(GPT2, 'w8', { out: `${root}/` }), /--out .*taken: its config\.json differs from the input's .*tiny-gpt2\/config\.json/);
    assert.deepEqual(readdirSync(root), ['config.json'], 'nothing written');
  });
});

describe('maximum positions without a config', () => {
  it("come from the graph's position tables, as the configs say, quantized too", async () => {
    const gpt2 = bare(GPT2, 'bare-gpt2');
    const llama = bare(LLAMA, 'bare-llama');
    for (const [path, expected] of [
      [gpt2, gpt2Config.n_positions],
      [llama, llamaConfig.max_position_embeddings],
    ] as const) {
      const d = describeDecoder(loadModel(path))!;
      assert.equal(d.source, 'graph', path);
      assert.equal(d.maxPositions, expected, path);
    }
    // w4 turns the position table into a GatherBlockQuantized; the rows stay.
    const q4 = join(dir, 'bare-gpt2-w4', 'model.onnx');
    await quantizePass(gpt2, 'w4', { out: q4 });
    const graph = loadModel(q4).graph;
    assert.ok(graph.node.some((n) => n.opType === 'GatherBlockQuantized' && n.input[1] === 'position_ids'), 'the position table is block-quantized');
    assert.equal(positionTableRows(graph), gpt2Config.n_positions);
  });

  it('are where ONNX Runtime itself stops, and a longer sequence is a one-line error in generate and eval', async () => {
    const q4 = join(dir, 'bare-gpt2-w4', 'model.onnx');
    const max = describeDecoder(loadModel(q4))!.maxPositions!;
    // The oracle: ONNX Runtime runs `max` positions and fails on one more.
    const session = await ort.InferenceSession.create(q4, { logSeverityLevel: 4 });
    const feeds = (n: number): Record<string, ort.Tensor> => {
      const f: Record<string, ort.Tensor> = {
        input_ids: new ort.Tensor('int64', new BigInt64Array(n).fill(97n), [1, n]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
        position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(i)), [1, n]),
      };
      for (const name of session.inputNames.filter((i) => i.startsWith('past_key_values.'))) {
        f[name] = new ort.Tensor('float32', new Float32Array(0), [1, gpt2Config.n_head, 0, gpt2Config.n_embd / gpt2Config.n_head]);
      }
      return f;
    };
    await session.run(feeds(max));
    await assert.rejects(session.run(feeds(max + 1)), /out of (data )?bounds|out of range|indices/i);
    await session.release();

    const tooLong = new RegExp(`longer than the model's ${max} positions`);
    const isOption = (e: unknown) => e instanceof OptionError && tooLong.test(e.message) && !e.message.includes('\n');
    await assert.rejects(generateText(q4, 'a'.repeat(max + 1), { maxNewTokens: 1 }), isOption);
    await assert.rejects(evaluateModel(q4, { data: 'prose', maxTokens: 3 * max, window: 2 * max }), isOption);
    const fits = await evaluateModel(q4, { data: 'prose', maxTokens: 3 * max });
    assert.equal(fits.scoring?.window, max, 'the default window fits the positions');
    const stops = await generateText(q4, 'a', { maxNewTokens: max + 10 });
    assert.equal(stops.stopReason, 'max-positions');
    for (const args of [['generate', q4, '--prompt', 'a'.repeat(max + 1)], ['eval', q4, '--data', 'prose', '--window', String(2 * max), '--max-tokens', String(3 * max)]]) {
      const r = cli(...args);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr.trim(), new RegExp(`^onnx-compress: .*${tooLong.source}$`));
    }
  });
});

describe('eval --reference reads the text with each model its own settings', () => {
  it('a reference that reads differently (BOS) is scored on its own reading; KL and top-1 are left out, saying why', async () => {
    const candidate = bare(GPT2, 'bare-eval'); // no config: no BOS
    const options = { data: 'prose', maxTokens: 1500 };
    const report = await evaluateModel(candidate, { ...options, reference: GPT2 });
    assert.equal(report.comparison, undefined);
    assert.match(report.comparisonSkipped!, /reads the text differently \(BOS \d+ vs no BOS\)/);
    const alone = await evaluateModel(GPT2, options);
    assert.equal(report.reference!.perplexity!.perplexity, alone.candidate.perplexity!.perplexity, 'the reference with its own BOS');
    assert.equal(report.candidate.perplexity!.perplexity, (await evaluateModel(candidate, options)).candidate.perplexity!.perplexity);

    // Models that read alike are still compared token by token.
    const q = join(dir, 'plain', 'gpt2-w8.onnx');
    assert.ok(existsSync(q));
    const compared = await evaluateModel(q, { ...options, reference: GPT2 });
    assert.ok(compared.comparison && compared.comparison.top1Agreement > 0.5);
    assert.equal(compared.reference!.perplexity!.perplexity, alone.candidate.perplexity!.perplexity);
  });
});
