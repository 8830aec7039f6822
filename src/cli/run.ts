// `onnx-compress run MODEL --inputs DIR --out DIR`: runs a model on inputs laid out as in the ONNX test data
// (input_<i>.pb, one serialized TensorProto per non-initializer graph input, in order) and writes output_<i>.pb
// the same way, with ONNX Runtime or the TensorFlow.js executor; --compare runs both and reports how far apart
// their outputs are.
import type { Command } from 'commander';
import { existsSync, readdirSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor } from 'onnxruntime-node';
import { OnnxCompressError, OptionError } from '../errors.js';
import { decodeTensor, encodeTensor } from '../onnx/codec.js';
import { dtypeName } from '../onnx/dtypes.js';
import { loadModel, type OnnxModel } from '../onnx/model.js';
import { type DecodedTensor, makeTensor, tensorValues } from '../onnx/tensor.js';
import { fromOrtTensor, toOrtTensor } from '../runtime/ort-tensor.js';
import { Session } from '../runtime/session.js';
import { BACKEND_CHOICES, type BackendChoice, selectBackend } from '../runtime/tf/backend.js';
import { TfModel } from '../runtime/tf/interpreter.js';
import { CONFORMANCE, EXAMPLES_DIR, examplesText } from './examples.js';
import { AtomicFiles, writeError } from '../util/atomic.js';
import { writingTo } from '../util/output-lock.js';
import { emit, table } from './output.js';

/** The conformance-suite model (with test data) the examples run. */
const RELU = `${CONFORMANCE}/node/test_relu`;

type Engine = 'ort' | 'tf';
const ENGINES: readonly Engine[] = ['ort', 'tf'];

interface RunOptions {
  inputs: string;
  out: string;
  engine: string;
  backend: string;
  compare?: boolean;
  json?: boolean;
}

interface OutputSummary {
  name: string;
  dtype: string;
  shape: number[];
  file: string;
}

interface RunReport {
  model: string;
  engine: Engine;
  /** The tfjs backend that ran, when the tf engine ran (with --engine tf or --compare). */
  backend?: string;
  inputs: { name: string; file: string; dtype: string; shape: number[] }[];
  outputs: OutputSummary[];
  milliseconds: number;
  /** With --compare: the largest |tf - ort| per output. */
  comparison?: { name: string; maxAbsDiff: number }[];
}

/** input_<i>.pb files of a directory, in index order, as the graph inputs they feed. */
function readInputs(dir: string, model: OnnxModel): { name: string; file: string; tensor: DecodedTensor }[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new OnnxCompressError('bad-data', `${dir}: no such directory`);
  const files = readdirSync(dir)
    .filter((f) => /^input_\d+\.pb$/.test(f))
    .sort((a, b) => Number(a.slice(6, -3)) - Number(b.slice(6, -3)));
  const initializers = new Set(model.graph.initializer.map((t) => t.name));
  const names = model.graph.input.map((v) => v.name ?? '').filter((n) => !initializers.has(n));
  if (files.length === 0) throw new OnnxCompressError('bad-data', `${dir}: no input_<i>.pb files`);
  if (files.length > names.length) throw new OnnxCompressError('bad-data', `${dir}: ${files.length} input files for ${names.length} model inputs (${names.join(', ')})`);
  return files.map((f, i) => {
    const file = join(dir, f);
    let tensor: DecodedTensor;
    try {
      tensor = tensorValues(decodeTensor(readFileSync(file)));
    } catch (e) {
      throw new OnnxCompressError('bad-data', `${file}: not a readable TensorProto (${(e as Error).message})`);
    }
    return { name: names[i], file, tensor };
  });
}

async function runOrt(model: OnnxModel, feeds: Record<string, DecodedTensor>): Promise<Record<string, DecodedTensor>> {
  const session = await Session.create(model);
  try {
    const ortFeeds: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = toOrtTensor(t, `input '${name}'`);
    const out = await session.run(ortFeeds);
    return Object.fromEntries(Object.entries(out).map(([name, t]) => [name, fromOrtTensor(t, name)]));
  } finally {
    await session.dispose();
  }
}

function maxAbsDiff(a: DecodedTensor, b: DecodedTensor, name: string): number {
  if (a.dims.join(',') !== b.dims.join(',')) throw new OnnxCompressError('runtime', `output '${name}': the engines disagree on its shape ([${a.dims}] vs [${b.dims}])`);
  let worst = 0;
  for (let i = 0; i < a.data.length; i++) {
    const x = Number(a.data[i]);
    const y = Number(b.data[i]);
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    worst = Math.max(worst, Number.isNaN(x - y) ? Infinity : Math.abs(x - y));
  }
  return worst;
}

/** output_<i>.pb files, renamed into place together once all are written (the folder is made by the claim). */
function writeOutputs(dir: string, model: OnnxModel, outputs: Record<string, DecodedTensor>): OutputSummary[] {
  const files = new AtomicFiles();
  try {
    const written = model.graph.output.map((v, i) => {
      const name = v.name ?? '';
      const t = outputs[name];
      if (!t) throw new OnnxCompressError('runtime', `output '${name}' was not produced`);
      const file = join(dir, `output_${i}.pb`);
      const bytes = encodeTensor(makeTensor(name, t.dtype, t.dims, t.data));
      const fd = files.open(file);
      try {
        for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
      } catch (e) {
        throw writeError(file, e);
      }
      return { name, dtype: dtypeName(t.dtype), shape: t.dims, file };
    });
    files.commit();
    return written;
  } catch (e) {
    files.abort();
    throw e;
  }
}

function choice<T extends string>(value: string, allowed: readonly T[], flag: string): T {
  if (!allowed.includes(value as T)) throw new OptionError(`${flag} must be one of ${allowed.join(', ')}, got '${value}'`);
  return value as T;
}

async function run(path: string, opts: RunOptions): Promise<RunReport> {
  const engine = choice(opts.engine, ENGINES, '--engine');
  const backendChoice = choice<BackendChoice>(opts.backend, BACKEND_CHOICES, '--backend');
  // output_0.pb stands for the folder: checked writable and locked before the engines load and run, not after.
  return writingTo([join(opts.out, 'output_0.pb')], () => runClaimed(path, opts, engine, backendChoice));
}

async function runClaimed(path: string, opts: RunOptions, engine: Engine, backendChoice: BackendChoice): Promise<RunReport> {
  const model = loadModel(path);
  const useTf = engine === 'tf' || opts.compare;
  const backend = useTf ? await selectBackend(backendChoice) : undefined;
  // Compiled before the inputs are read: a model the engine cannot run is the more basic problem.
  const compiled = useTf ? TfModel.compile(model) : undefined;
  try {
    const inputs = readInputs(opts.inputs, model);
    const feeds = Object.fromEntries(inputs.map((i) => [i.name, i.tensor]));
    const runWith = async (e: Engine) => (e === 'tf' ? compiled!.run(feeds) : await runOrt(model, feeds));
    const started = performance.now();
    const outputs = await runWith(engine);
    const milliseconds = performance.now() - started;
    const report: RunReport = {
      model: path,
      engine,
      ...(backend ? { backend } : {}),
      inputs: inputs.map((i) => ({ name: i.name, file: i.file, dtype: dtypeName(i.tensor.dtype), shape: i.tensor.dims })),
      outputs: writeOutputs(opts.out, model, outputs),
      milliseconds,
    };
    if (opts.compare) {
      const other = await runWith(engine === 'tf' ? 'ort' : 'tf');
      report.comparison = model.graph.output.map((v) => {
        const name = v.name ?? '';
        const [tf, ort] = engine === 'tf' ? [outputs[name], other[name]] : [other[name], outputs[name]];
        return { name, maxAbsDiff: maxAbsDiff(tf, ort, name) };
      });
    }
    return report;
  } finally {
    compiled?.dispose();
  }
}

function formatRun(r: RunReport): string {
  const lines = [`${r.model}: ran with ${r.engine === 'tf' ? `the tf engine (backend ${r.backend})` : 'ONNX Runtime'} in ${r.milliseconds.toFixed(1)} ms`];
  lines.push(table(['output', 'dtype', 'shape', 'file'], r.outputs.map((o) => [o.name, o.dtype, `[${o.shape.join(', ')}]`, o.file])));
  if (r.comparison) {
    lines.push('', `tf (backend ${r.backend}) vs ONNX Runtime:`);
    lines.push(table(['output', 'max |tf - ort|'], r.comparison.map((c) => [c.name, c.maxAbsDiff.toExponential(3)])));
  }
  return lines.join('\n');
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run a model on input_<i>.pb files and write output_<i>.pb, with ONNX Runtime or the TensorFlow.js engine')
    .argument('<model>', '.onnx file')
    .requiredOption('--inputs <dir>', 'directory holding input_0.pb, input_1.pb... (serialized TensorProto, one per model input in order)')
    .requiredOption('--out <dir>', 'directory to write output_0.pb, output_1.pb... to (created if missing)')
    .option('--engine <engine>', `engine whose outputs are written: ${ENGINES.join(' or ')}`, 'tf')
    .option('--backend <backend>', `TensorFlow.js backend for the tf engine: ${BACKEND_CHOICES.join(', ')}`, 'auto')
    .option('--compare', 'also run the other engine and print the largest absolute difference per output')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      examplesText([
        `run ${RELU}/model.onnx --inputs ${RELU}/test_data_set_0 --out ${EXAMPLES_DIR}/relu-tf --engine tf --backend wasm`,
        `run ${RELU}/model.onnx --inputs ${RELU}/test_data_set_0 --out ${EXAMPLES_DIR}/relu-ort --engine ort --compare --json`,
      ]),
    )
    .action(async (path: string, opts: RunOptions) => {
      emit(await run(path, opts), opts, formatRun);
    });
}
