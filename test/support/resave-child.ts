// Child process for the large-model test: opens a model, inspects it and re-saves it with external data,
// then reports its own peak resident memory, which is what the test checks.
import { loadModel } from '../../src/onnx/model.js';
import { saveModel } from '../../src/onnx/save.js';
import { summarize } from '../../src/onnx/summary.js';

const [input, output] = process.argv.slice(2);
const started = Date.now();
const model = loadModel(input);
const summary = summarize(model); // what `inspect` prints
const opened = { tensors: summary.largest.length, bytes: summary.parameters.bytes, rssAfterOpen: process.memoryUsage().rss };
const report = saveModel(model, output, { externalData: true });
process.stdout.write(
  JSON.stringify({ ...opened, report, seconds: (Date.now() - started) / 1000, maxRssBytes: process.resourceUsage().maxRSS * 1024 }),
);
