// `onnx-compress inspect MODEL`: what is in a model, without running it.
import type { Command } from 'commander';
import { loadModel } from '../onnx/model.js';
import { summarize, type ModelSummary, type ValueSummary } from '../onnx/summary.js';
import { Session } from '../runtime/session.js';
import { examplesText, SAMPLE_GPT2, SAMPLE_LLAMA } from './examples.js';
import { emit, formatBytes, table } from './output.js';
import { wholeNumber } from './options.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('show a model: opsets, inputs/outputs, operators, parameters, external data, decoder dimensions')
    .argument('<model>', '.onnx file')
    .option('--top <n>', 'how many of the largest initializers to list', '10')
    .option('--check', 'also open the model in ONNX Runtime (fails if ONNX Runtime refuses it)')
    .option('--json', 'print the report as JSON')
    .addHelpText('after', examplesText([`inspect ${SAMPLE_LLAMA} --json`, `inspect ${SAMPLE_GPT2} --check`]))
    .action(async (path: string, opts: { top: string; check?: boolean; json?: boolean }) => {
      const top = wholeNumber(opts.top, '--top');
      const model = loadModel(path);
      const summary: InspectReport = summarize(model, top);
      if (opts.check) {
        const session = await Session.create(path);
        summary.onnxRuntime = { loads: true, inputs: session.inputNames.length, outputs: session.outputNames.length };
        await session.dispose();
      }
      emit(summary, opts, formatSummary);
    });
}

interface InspectReport extends ModelSummary {
  onnxRuntime?: { loads: boolean; inputs: number; outputs: number };
}

function shape(v: ValueSummary): string {
  return v.shape ? `[${v.shape.map((d) => d ?? '?').join(', ')}]` : '';
}

function formatSummary(s: InspectReport): string {
  const out: string[] = [];
  out.push(`${s.file}: IR ${s.irVersion ?? '?'}, opsets ${s.opsets.map((o) => `${o.domain} ${o.version}`).join(', ')}${s.producer ? `, from ${s.producer}` : ''}`);
  out.push('', 'inputs:', table(['name', 'dtype', 'shape'], s.inputs.map((v) => [v.name, v.dtype, shape(v)])));
  out.push('', 'outputs:', table(['name', 'dtype', 'shape'], s.outputs.map((v) => [v.name, v.dtype, shape(v)])));
  out.push('', `operators (${s.nodes} nodes):`, table(['op', 'count'], s.ops.map((o) => [o.op, o.count])));
  out.push(
    '',
    `parameters: ${s.parameters.count.toLocaleString('en-US')} elements, ${formatBytes(s.parameters.bytes)}`,
    table(['dtype', 'elements', 'bytes'], s.parameters.byDtype.map((d) => [d.dtype, d.count, formatBytes(d.bytes)])),
  );
  if (s.largest.length) {
    out.push('', 'largest initializers:', table(['name', 'dtype', 'shape', 'bytes', 'where'], s.largest.map((t) => [t.name, t.dtype, `[${t.shape.join(', ')}]`, formatBytes(t.bytes), t.external ? 'external' : 'inline'])));
  }
  if (s.externalData.length) {
    out.push('', 'external data:', table(['file', 'tensors', 'bytes'], s.externalData.map((e) => [e.file, e.tensors, formatBytes(e.bytes)])));
  }
  if (s.decoder) {
    const d = s.decoder;
    const v = (x: number | null) => (x === null ? '?' : String(x));
    out.push(
      '',
      `decoder language model (dimensions from ${d.source === 'config.json' ? d.configPath : 'the graph'}):`,
      `  layers ${v(d.layers)}, attention heads ${v(d.attentionHeads)}, key/value heads ${v(d.kvHeads)}, head size ${v(d.headDim)}`,
      `  hidden ${v(d.hidden)}, intermediate ${v(d.intermediate)}, vocabulary ${v(d.vocab)}${d.maxPositions ? `, max positions ${d.maxPositions}` : ''}`,
      `  KV-cache inputs: ${d.kvCacheInputs.length ? `${d.kvCacheInputs.length} (${d.kvCacheInputs[0]} ...)` : 'none'}`,
    );
  }
  if (s.onnxRuntime) out.push('', 'ONNX Runtime: loads the model');
  return out.join('\n');
}
