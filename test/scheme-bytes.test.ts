// The five named schemes write the same bytes as before quantization became plan -> solve -> rewrite: the
// scheme's plan, the round-to-nearest solver and the per-format rewriters together must reproduce the old
// writers exactly (node order, names, initializer order, opset and IR changes). Hashes were taken with the
// pre-plan writers (test/fixtures/scheme-hashes/hashes.json says at which commit).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cli } from './support/cli.js';

const fixture = JSON.parse(readFileSync('test/fixtures/scheme-hashes/hashes.json', 'utf8')) as { hashes: Record<string, string> };
const dir = mkdtempSync(join(tmpdir(), 'scheme-bytes-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('named schemes write byte-identical models', () => {
  for (const [key, expected] of Object.entries(fixture.hashes)) {
    const [model, scheme] = key.split('/');
    it(`${model} ${scheme}`, () => {
      const out = join(dir, `${model}-${scheme}.onnx`);
      const r = cli('quantize', `models/${model}/model.onnx`, '--scheme', scheme, '--calib', 'prose', '--samples', '8', '--seq-len', '64', '--out', out, '--json');
      assert.equal(r.code, 0, r.stderr);
      const actual = createHash('sha256').update(readFileSync(out)).digest('hex');
      assert.equal(actual, expected, `${key}: the written model's bytes changed`);
    });
  }
});
