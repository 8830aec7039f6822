// The five named schemes write the same bytes as before quantization became plan -> solve -> rewrite: the
// scheme's plan, the round-to-nearest solver and the per-format rewriters together must reproduce the old
// writers exactly (node order, names, initializer order, opset and IR changes). Hashes were taken with the
// pre-plan writers (test/fixtures/scheme-hashes/hashes.json says at which commit). A plain .onnx output now also
// carries the input's config and tokenizer files in its metadata_props (src/passes/output-companions.ts): they are
// checked to be exactly the input's files, then removed, and what remains must hash as before.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { decodeModel, encodeModel } from '../src/onnx/codec.js';
import { COMPANION_FILES, embeddedKey } from '../src/onnx/model-folder.js';
import { cli } from './support/cli.js';

const fixture = JSON.parse(readFileSync('test/fixtures/scheme-hashes/hashes.json', 'utf8')) as { hashes: Record<string, string> };
const dir = mkdtempSync(join(tmpdir(), 'scheme-bytes-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('named schemes write byte-identical models', () => {
  for (const [key, expected] of Object.entries(fixture.hashes)) {
    const [model, scheme] = key.split('/');
    it(`${model} ${scheme}`, () => {
      const out = join(dir, `${model}-${scheme}.onnx`);
      // minmax ranges were the w8a8 default when the hashes were taken (auto, the default now, picks per tensor).
      const clip = scheme === 'w8a8' ? ['--clip', 'minmax'] : [];
      const r = cli('quantize', `models/${model}/onnx/model.onnx`, '--scheme', scheme, ...clip, '--calib', 'prose', '--samples', '8', '--seq-len', '64', '--out', out, '--json');
      assert.equal(r.code, 0, r.stderr);
      const proto = decodeModel(readFileSync(out));
      const embedded = proto.metadataProps.filter((e) => e.key?.startsWith('onnx_compress.'));
      assert.deepEqual(
        embedded.map((e) => [e.key, e.value]),
        COMPANION_FILES.map((f) => [embeddedKey(f), readFileSync(`models/${model}/${f}`, 'utf8')]),
        'the input\'s config and tokenizer files, embedded byte for byte',
      );
      const bare = encodeModel({ ...proto, metadataProps: proto.metadataProps.filter((e) => !embedded.includes(e)) });
      const actual = createHash('sha256').update(bare).digest('hex');
      assert.equal(actual, expected, `${key}: the written model's bytes changed`);
    });
  }
});
