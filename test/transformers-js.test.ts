// transformers.js (@huggingface/transformers 4.3, a dev dependency) as an independent client of what this project
// writes: each sample model folder as shipped and compressed into Hugging Face folders (w8 -> model_quantized, w4 ->
// model_q4, w8a8 -> model_uint8 / model_int8, fp16 -> model_fp16) loads, offline, with pipeline('text-generation')
// and AutoModelForCausalLM, and greedy generation gives the token ids `onnx-compress generate` gives on the same
// file. The shipped tokenizer.json, read by @huggingface/tokenizers and by transformers.js, gives the byte codec's
// ids on the shipped sets. The same generation runs on onnxruntime-web's wasm build in Node (a child process:
// transformers.js picks its ONNX Runtime once, when first imported).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Tokenizer } from '@huggingface/tokenizers';
import { chooseTokenizer } from '../src/calibration/data/tokenizers.js';
import { readJsonlDocuments } from '../src/calibration/data/jsonl.js';
import { generateText } from '../src/decoding/generate-text.js';
import { byteTokenizerJson, generationConfig } from '../src/models/byte-tokenizer.js';
import { loadModel } from '../src/onnx/model.js';
import { quantizePass } from '../src/quantization/pipeline.js';
import { SCHEME_NAMES } from '../src/quantization/schemes.js';

type Transformers = typeof import('@huggingface/transformers');

const MODELS = ['tiny-llama', 'tiny-gpt2'];
const PROMPT = 'The whale ';
const NEW_TOKENS = 12;
const dir = mkdtempSync(join(tmpdir(), 'transformers-js-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A folder, the model file in it, and the dtype transformers.js loads that file as. */
interface Variant {
  label: string;
  root: string;
  file: string;
  dtype: string;
}

/** The compressions with a transformers.js dtype; fp16 where the scheme exists. */
const SCHEMES: { scheme: string; dtype: string; options?: Record<string, unknown>; calibrated?: boolean }[] = [
  { scheme: 'w8', dtype: 'q8' },
  { scheme: 'w4', dtype: 'q4' },
  { scheme: 'w8a8', dtype: 'uint8', calibrated: true },
  { scheme: 'w8a8', dtype: 'int8', options: { activationType: 'int8' }, calibrated: true },
  ...((SCHEME_NAMES as readonly string[]).includes('fp16') ? [{ scheme: 'fp16', dtype: 'fp16' }] : []),
];

const variants: Variant[] = [];
let tj: Transformers;

before(async () => {
  for (const name of MODELS) {
    const root = resolve('models', name);
    const input = join(root, 'onnx', 'model.onnx');
    variants.push({ label: `${name} fp32`, root, file: input, dtype: 'fp32' });
    for (const s of SCHEMES) {
      const out = join(dir, `${name}-${s.dtype}`);
      const r = await quantizePass(input, s.scheme, {
        out: `${out}/`,
        ...(s.options ?? {}),
        ...(s.calibrated ? { calibration: { data: 'prose', options: { samples: 8, sequenceLength: 64 } } } : {}),
      });
      assert.equal(r.output.naming, 'transformers.js', `${name} ${s.scheme}: ${r.output.path}`);
      variants.push({ label: `${name} ${s.scheme} (${s.dtype})`, root: out, file: r.output.path, dtype: s.dtype });
    }
  }
  tj = await import('@huggingface/transformers');
  tj.env.allowRemoteModels = false;
  tj.env.allowLocalModels = true;
});

/** transformers.js finds a local model as `<localModelPath>/<id>`. */
function locate(root: string): { id: string } {
  tj.env.localModelPath = `${dirname(root)}/`;
  return { id: basename(root) };
}

const ours = async (file: string) => {
  const r = await generateText(file, PROMPT, { maxNewTokens: NEW_TOKENS, threads: 1 });
  return { ids: [...r.promptTokens, ...r.tokens], text: PROMPT + r.text };
};

describe('transformers.js loads the folders and generates what onnx-compress generates', () => {
  it('each folder has its file under the transformers.js name for its dtype', () => {
    for (const v of variants) assert.equal(basename(v.file), v.dtype === 'fp32' ? 'model.onnx' : `model_${v.dtype === 'q8' ? 'quantized' : v.dtype}.onnx`, v.label);
  });

  it('AutoModelForCausalLM: the same greedy token ids', async (t) => {
    for (const v of variants) {
      const { id } = locate(v.root);
      const tokenizer = await tj.AutoTokenizer.from_pretrained(id);
      const model = await tj.AutoModelForCausalLM.from_pretrained(id, { dtype: v.dtype as 'fp32', device: 'cpu' });
      try {
        const inputs = tokenizer(PROMPT);
        const output = (await model.generate({ ...inputs, max_new_tokens: NEW_TOKENS, do_sample: false })) as { data: BigInt64Array };
        const theirs = Array.from(output.data, Number);
        const mine = await ours(v.file);
        assert.deepEqual(theirs, mine.ids, `${v.label}: transformers.js vs onnx-compress generate`);
        t.diagnostic(`${v.label}: ${JSON.stringify(mine.text)}`);
      } finally {
        await model.dispose();
      }
    }
  });

  it("pipeline('text-generation'): the same greedy text", async () => {
    for (const v of variants) {
      const { id } = locate(v.root);
      const generator = await tj.pipeline('text-generation', id, { dtype: v.dtype as 'fp32', device: 'cpu' });
      try {
        const [result] = (await generator(PROMPT, { max_new_tokens: NEW_TOKENS, do_sample: false })) as { generated_text: string }[];
        assert.equal(result.generated_text, (await ours(v.file)).text, v.label);
      } finally {
        await generator.dispose();
      }
    }
  });

  it("onnxruntime-web's wasm build in Node: the same greedy token ids", async (t) => {
    const ortWeb = resolve('node_modules/onnxruntime-web/dist');
    // transformers.js takes the ONNX Runtime registered under this symbol instead of onnxruntime-node; with no device
    // list of its own it must be told 'auto' and given the wasm execution provider.
    const source = `
      const ort = await import(${JSON.stringify(join(ortWeb, 'ort.node.min.mjs'))});
      ort.env.wasm.wasmPaths = ${JSON.stringify(`${ortWeb}/`)};
      ort.env.wasm.numThreads = 1;
      globalThis[Symbol.for('onnxruntime')] = ort;
      const tj = await import('@huggingface/transformers');
      tj.env.allowRemoteModels = false;
      const out = [];
      for (const v of JSON.parse(process.argv.at(-1))) {
        tj.env.localModelPath = v.parent;
        const tokenizer = await tj.AutoTokenizer.from_pretrained(v.id);
        const model = await tj.AutoModelForCausalLM.from_pretrained(v.id, { dtype: v.dtype, device: 'auto', session_options: { executionProviders: ['wasm'] } });
        const ids = await model.generate({ ...tokenizer(${JSON.stringify(PROMPT)}), max_new_tokens: ${NEW_TOKENS}, do_sample: false });
        out.push({ label: v.label, ids: Array.from(ids.data, Number), web: ort.env.versions.web });
        await model.dispose();
      }
      console.log(JSON.stringify(out));
    `;
    const list = variants.map((v) => ({ label: v.label, parent: `${dirname(v.root)}/`, id: basename(v.root), dtype: v.dtype }));
    // Code given with -e resolves packages from the working folder: this project's.
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', source, '--', JSON.stringify(list)], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    const results = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { label: string; ids: number[]; web: string }[];
    assert.equal(results.length, variants.length);
    for (const [i, v] of variants.entries()) {
      assert.ok(results[i].web, 'ran on onnxruntime-web');
      assert.deepEqual(results[i].ids, (await ours(v.file)).ids, `${v.label} on onnxruntime-web ${results[i].web} (wasm)`);
    }
    t.diagnostic(`onnxruntime-web ${results[0].web}, wasm: ${results.length} folders`);
  });
});

describe('the shipped tokenizer.json reads text as the byte codec does', () => {
  // Every document of the shipped evaluation sets, and strings that stress the byte mapping.
  const texts = async (): Promise<string[]> => {
    const out = ['', ' ', 'a', '\u0000\u0001\t\n\r\n', 'é 日本 🐳 \u00ad\u00a0', '<s></s><pad>', 'x'.repeat(3000)];
    for (const set of ['prose', 'code', 'email', 'nonsense']) {
      for await (const record of readJsonlDocuments(`calibration-sets/${set}/evaluation.jsonl`)) if (record.text !== undefined) out.push(record.text);
    }
    return out;
  };

  for (const name of MODELS) {
    it(`${name}: @huggingface/tokenizers and transformers.js give the byte codec's ids, and decode back to the text`, async () => {
      const root = join('models', name);
      const json = JSON.parse(readFileSync(join(root, 'tokenizer.json'), 'utf8'));
      const config = JSON.parse(readFileSync(join(root, 'tokenizer_config.json'), 'utf8'));
      const hf = new Tokenizer(json, config);
      const model = loadModel(join(root, 'onnx', 'model.onnx'));
      const codec = chooseTokenizer(model, 259).tokenizer!;
      assert.equal(codec.description, 'bytes', 'the project keeps its byte codec for the sample models');
      const { id } = locate(resolve(root));
      const theirs = await tj.AutoTokenizer.from_pretrained(id);
      const all = await texts();
      assert.ok(all.length > 100, `${all.length} texts`);
      for (const text of all) {
        const expected = codec.encode(text);
        assert.deepEqual(hf.encode(text).ids, expected, `@huggingface/tokenizers on ${JSON.stringify(text.slice(0, 40))}`);
        assert.deepEqual(Array.from(theirs(text).input_ids.data as BigInt64Array, Number), expected, `transformers.js on ${JSON.stringify(text.slice(0, 40))}`);
        assert.equal(hf.decode(expected, { skip_special_tokens: true }), text);
      }
    });
  }

  it('the sample folders are Hugging Face folders transformers.js recognises', () => {
    for (const name of MODELS) {
      for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model.onnx']) {
        assert.ok(existsSync(join('models', name, f)), `models/${name}/${f}`);
      }
      const config = JSON.parse(readFileSync(join('models', name, 'config.json'), 'utf8'));
      assert.equal(config.model_type, name === 'tiny-llama' ? 'llama' : 'gpt2');
      // What the sample builders write (scripts/build-sample-*.ts): the committed files are regenerated, not edited.
      assert.deepEqual(JSON.parse(readFileSync(join('models', name, 'tokenizer.json'), 'utf8')), byteTokenizerJson());
      assert.deepEqual(JSON.parse(readFileSync(join('models', name, 'generation_config.json'), 'utf8')), generationConfig());
    }
  });
});
