// Child process for the large-model test: opens a model, summarises it and re-saves it with external data,
// then reports its own peak resident memory, which is what the test checks.
import { loadModel } from '../../src/onnx/model.js';
import { saveModel } from '../../src/onnx/save.js';

const [input, output] = process.argv.slice(2);
const started = Date.now();
const model = loadModel(input);
let bytes = 0;
for (const t of model.tensors()) bytes += model.rawByteLength(t) ?? 0;
const opened = { tensors: model.graph.initializer.length, bytes, rssAfterOpen: process.memoryUsage().rss };
const report = saveModel(model, output, { externalData: true });
process.stdout.write(
  JSON.stringify({ ...opened, report, seconds: (Date.now() - started) / 1000, maxRssBytes: process.resourceUsage().maxRSS * 1024 }),
);
