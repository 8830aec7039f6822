// The model folder (src/onnx/model-folder.ts): companion files found beside the model or one folder up, each read
// once per model object however many callers describe the decoder or read its config, the Hugging Face layout
// (onnx/model.onnx), and broken files as ModelErrors naming the file.
import { after, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import fs, { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openCalibrationSet } from '../src/calibration/data/index.js';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { evaluateModel, type EvalStage } from '../src/decoding/evaluate.js';
import { readSpecialTokens } from '../src/decoding/special-tokens.js';
import { textCodecFor } from '../src/decoding/text-codec.js';
import { isOnnxCompressError } from '../src/errors.js';
import { describeDecoder } from '../src/onnx/decoder-info.js';
import { COMPANION_FILES, huggingFaceLayout, modelFolder } from '../src/onnx/model-folder.js';
import { loadModel, ModelError, OnnxModel } from '../src/onnx/model.js';
import { summarize } from '../src/onnx/summary.js';

const MODEL = 'models/tiny-llama/onnx/model.onnx';
const CONFIG = 'models/tiny-llama/config.json';
const TOKENIZER = 'test/fixtures/calibration/tokenizer';
const dir = mkdtempSync(join(tmpdir(), 'onnx-compress-model-folder-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Counts readFileSync calls on files named `name` while `run` runs (ES module imports of node:fs included). */
async function countReads(name: string, run: () => unknown): Promise<number> {
  let reads = 0;
  const original = fs.readFileSync;
  const spy = mock.method(fs, 'readFileSync', function (this: unknown, ...args: Parameters<typeof fs.readFileSync>) {
    if (String(args[0]).endsWith(`/${name}`)) reads++;
    return original.apply(this, args);
  });
  syncBuiltinESMExports();
  try {
    await run();
  } finally {
    spy.mock.restore();
    syncBuiltinESMExports();
  }
  return reads;
}

/** A folder with the tiny-llama model and the given companion files (name -> text). */
function folderWith(name: string, files: Record<string, string>, modelDir = ''): string {
  const root = join(dir, name);
  mkdirSync(join(root, modelDir), { recursive: true });
  copyFileSync(MODEL, join(root, modelDir, 'model.onnx'));
  for (const [file, text] of Object.entries(files)) writeFileSync(join(root, file), text);
  return join(root, modelDir, 'model.onnx');
}

const configText = readFileSync(CONFIG, 'utf8');
const tokenizerFiles = {
  'tokenizer.json': readFileSync(join(TOKENIZER, 'tokenizer.json'), 'utf8'),
  'tokenizer_config.json': readFileSync(join(TOKENIZER, 'tokenizer_config.json'), 'utf8'),
};

describe('model folder', () => {
  it('reads config.json once per model however many callers describe the decoder', async () => {
    const path = folderWith('plain', { 'config.json': configText, 'generation_config.json': '{"eos_token_id": [257]}' });
    const model = loadModel(path);
    const reads = await countReads('config.json', async () => {
      const first = describeDecoder(model);
      assert.ok(first);
      assert.equal(first.source, 'config.json');
      assert.equal(first.configPath, join(dir, 'plain', 'config.json'));
      for (let i = 0; i < 3; i++) assert.equal(describeDecoder(model), first, 'the same description object every time');
      assert.equal(modelFolder(model).decoder, first);
      assert.equal(summarize(model).decoder, first);
      assert.deepEqual(readSpecialTokens(model), { bos: 256, eos: [257], pad: 258 });
      assert.equal(textCodecFor(model, 259).description, 'bytes');
      // A calibration set (windowing reads the decoder, the tokenizer choice reads config.json) and a decoder session.
      const set = await openCalibrationSet('nonsense-bytes', model, { samples: 2, sequenceLength: 32 });
      assert.equal(set.sampleCount, 2);
      const decoder = await DecoderSession.open(model);
      try {
        assert.equal(decoder.description, first);
        assert.deepEqual(decoder.special.eos, [257]);
      } finally {
        await decoder.dispose();
      }
    });
    assert.equal(reads, 1);
    assert.equal(modelFolder(model), modelFolder(model), 'one folder object per model object');
    assert.ok(Object.isFrozen(modelFolder(model).config), 'the shared config is read-only');

    // A second model object reads its own files (the cache is per model object, not per path).
    assert.equal(await countReads('config.json', () => describeDecoder(loadModel(path))), 1);
  });

  it('describes a model again when its graph is replaced, without reading config.json again', async () => {
    const model = loadModel(folderWith('replaced', { 'config.json': configText }));
    const before = describeDecoder(model)!;
    const reads = await countReads('config.json', () => {
      model.proto = { ...model.proto, graph: { ...model.graph } };
      const again = describeDecoder(model);
      assert.notEqual(again, before);
      assert.deepEqual(again, before);
    });
    assert.equal(reads, 0);
  });

  it('a plain folder: files beside the model, or one folder up', () => {
    const path = folderWith('plain-up', { 'config.json': configText, ...tokenizerFiles }, 'weights');
    const folder = modelFolder(loadModel(path));
    assert.equal(folder.isHuggingFaceFolder, false);
    assert.equal(folder.root, join(dir, 'plain-up', 'weights'));
    assert.equal(folder.configPath, join(dir, 'plain-up', 'config.json'));
    assert.equal(folder.generationConfigPath, undefined);
    assert.equal(folder.generationConfig, undefined);
    assert.equal(folder.config?.vocab_size, 259);
    assert.equal(folder.tokenizerPath, join(dir, 'plain-up', 'tokenizer.json'));
    assert.deepEqual(folder.tokenizerConfig, JSON.parse(tokenizerFiles['tokenizer_config.json']));
    assert.deepEqual(folder.tokenizer?.encode('hello world!').ids, [0, 13, 17, 18]);
    assert.equal(folder.tokenizer, folder.tokenizer, 'the tokenizer is loaded once');
    assert.deepEqual(
      folder.files().map((f) => f.name),
      ['config.json', 'tokenizer.json', 'tokenizer_config.json'],
    );
    assert.deepEqual(
      folder.files(['config.json', 'generation_config.json']).map(({ name, path, embedded }) => ({ name, path, embedded })),
      [{ name: 'config.json', path: join(dir, 'plain-up', 'config.json'), embedded: false }],
    );
    assert.equal(huggingFaceLayout(path), null);
  });

  it('a Hugging Face folder: <root>/onnx/model.onnx with config.json and tokenizer files in <root>', () => {
    const path = folderWith('hf', { 'config.json': configText, 'generation_config.json': '{}', ...tokenizerFiles }, 'onnx');
    const root = join(dir, 'hf');
    const folder = modelFolder(loadModel(path));
    assert.equal(folder.isHuggingFaceFolder, true);
    assert.equal(folder.root, root);
    assert.equal(folder.configPath, join(root, 'config.json'));
    assert.deepEqual(
      folder.files().map(({ name, path }) => ({ name, path })),
      COMPANION_FILES.map((name) => ({ name, path: join(root, name) })),
    );
    assert.equal(folder.decoder?.source, 'config.json');
    assert.deepEqual(huggingFaceLayout(path), { root: resolve(root), onnxDir: resolve(root, 'onnx'), config: resolve(root, 'config.json') });
  });

  it('an in-memory model has no folder: the decoder comes from the graph', () => {
    const loaded = loadModel(MODEL);
    const memory = new OnnxModel(loaded.proto, undefined, 'in-memory');
    const folder = modelFolder(memory);
    assert.equal(folder.root, undefined);
    assert.equal(folder.config, undefined);
    assert.deepEqual(folder.files(), []);
    assert.equal(folder.decoder?.source, 'graph');
    assert.equal(folder.decoder?.vocab, 259);
    assert.equal(modelFolder(loaded).decoder?.source, 'config.json', 'the loaded model reads its config.json');
    // A model opened by a relative path: absolute paths.
    assert.equal(modelFolder(loaded).root, resolve('models/tiny-llama'));
    assert.equal(modelFolder(loaded).configPath, resolve(CONFIG));
    assert.equal(modelFolder(loaded).decoder?.configPath, resolve(CONFIG));
  });

  it('a broken config.json, generation_config.json or tokenizer.json is a ModelError naming the file', () => {
    const check = (run: () => unknown, pattern: RegExp) =>
      assert.throws(run, (e: unknown) => {
        assert.ok(e instanceof ModelError, `expected a ModelError, got ${e}`);
        assert.ok(isOnnxCompressError(e) && e.code === 'bad-model');
        assert.match(e.message, pattern);
        assert.ok(!e.message.includes('\n'), 'one line');
        return true;
      });
    const broken = loadModel(folderWith('broken', { 'config.json': '{"hidden_size": 12' }));
    const file = join(dir, 'broken', 'config.json').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    check(() => describeDecoder(broken), new RegExp(`^${file}: not valid JSON`));
    check(() => summarize(broken), new RegExp(`^${file}: not valid JSON`));
    check(() => readSpecialTokens(broken), new RegExp(`^${file}: not valid JSON`));

    const list = loadModel(folderWith('list', { 'config.json': '[1, 2]' }));
    check(() => modelFolder(list).config, /list\/config\.json: expected a JSON object$/);

    const generation = loadModel(folderWith('generation', { 'config.json': configText, 'generation_config.json': 'nope' }));
    check(() => readSpecialTokens(generation), /generation\/generation_config\.json: not valid JSON/);

    const tokenizer = loadModel(folderWith('tokenizer', { 'config.json': configText, 'tokenizer.json': '{"model": 1}' }));
    check(() => modelFolder(tokenizer).tokenizer, /tokenizer\/tokenizer\.json: @huggingface\/tokenizers cannot load it/);
  });
});

describe('evaluateModel', () => {
  it('scores a model against itself with one read of config.json, reporting progress', async () => {
    const model = loadModel(folderWith('eval', { 'config.json': configText }));
    const stages: [EvalStage, number, number][] = [];
    let report!: Awaited<ReturnType<typeof evaluateModel>>;
    const reads = await countReads('config.json', async () => {
      report = await evaluateModel(model, {
        data: 'nonsense-bytes',
        reference: model,
        maxTokens: 300,
        window: 64,
        stride: 32,
        onProgress: (stage, done, total) => stages.push([stage, done, total]),
      });
    });
    assert.equal(reads, 1, 'candidate, reference, decoder sessions, codec and special tokens share one read');
    assert.equal(report.kind, 'language-model');
    assert.equal(report.candidate.model, model.source);
    assert.equal(report.scoring?.tokens, 300);
    assert.deepEqual(report.comparison, { kl: { mean: 0, p95: 0, max: 0 }, top1Agreement: 1 });
    assert.equal(report.candidate.perplexity?.perplexity, report.reference?.perplexity?.perplexity);
    const last = stages.at(-1)!;
    assert.deepEqual(last, ['scoring', report.scoring!.windows, report.scoring!.windows]);
    await assert.rejects(evaluateModel(model, { data: 'prose', window: 1.5 }), /window must be a whole number/);
  });
});
