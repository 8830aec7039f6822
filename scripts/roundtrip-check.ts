import { readFileSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { decodeModel, encodeModel } from '../src/onnx/codec.js';
const files = execSync('find /usr/share/libonnx-testdata/data -name model.onnx').toString().trim().split('\n');
let same = 0; const diff: string[] = [];
for (const f of files) {
  const b = readFileSync(f);
  const out = encodeModel(decodeModel(b));
  if (Buffer.compare(Buffer.from(out), b) === 0) same++; else diff.push(f);
}
console.log(files.length, same, diff.slice(0, 20));
