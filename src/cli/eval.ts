// `onnx-compress eval MODEL --data SET`: how good a model is and what it costs. For a decoder language model:
// perplexity and bits per byte on a text set with sliding windows, and with --reference (the original model) the
// KL divergence and top-1 agreement of the model against it; --speed adds prefill and decode tokens/s. For any
// other model: output agreement with --reference on a folder of input_*.pb tensors. Sizes always.
// The evaluation itself is evaluateModel (src/decoding/evaluate.ts); this file is flags -> options -> print.
import type { Command } from 'commander';
import type { EvalReport, EvalStage, ModelFigures } from '../decoding/evaluate.js';
import { evaluatePass, type EvaluatePassOptions } from '../passes/evaluate.js';
import { runPass } from '../passes/runner.js';
// Flag parsing is shared by every command (options.ts), so a bad value gets the same message everywhere.
import { positiveWholeNumber } from './options.js';
import { CONFORMANCE, EXAMPLES_DIR, examplesText, SAMPLE_LLAMA } from './examples.js';
import { emit, formatBytes, table } from './output.js';
import { Progress } from './progress.js';

/** The conformance-suite model (with test data) the examples run. */
const CONV = `${CONFORMANCE}/pytorch-converted/test_Conv2d`;

interface EvalFlags {
  data: string;
  reference?: string;
  window?: string;
  stride?: string;
  maxTokens?: string;
  speed?: boolean;
  threads?: string;
  json?: boolean;
}

/** The flags as the evaluate pass's options. */
export function evalOptions(flags: EvalFlags): EvaluatePassOptions {
  const number = (value: string | undefined, flag: string) => (value === undefined ? undefined : positiveWholeNumber(value, flag));
  return {
    data: flags.data,
    ...(flags.reference !== undefined ? { reference: flags.reference } : {}),
    window: number(flags.window, '--window'),
    stride: number(flags.stride, '--stride'),
    maxTokens: number(flags.maxTokens, '--max-tokens'),
    speed: flags.speed === true,
  };
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('evaluate a model: perplexity, bits per byte, KL and top-1 agreement with a reference, speed, size')
    .argument('<model>', '.onnx file (the compressed model when --reference is given)')
    .requiredOption('--data <set>', 'language models: a shipped set name (prose, code, email, nonsense, nonsense-bytes), a set folder (its evaluation.jsonl) or a .jsonl file; other models: a folder of input_<k>.pb / test_data_set_<n>/ or <input>.npy tensors')
    .option('--reference <model>', 'the original model to compare against')
    .option('--window <n>', 'tokens per window (default: 1024, or the model\'s max positions if fewer)')
    .option('--stride <n>', 'tokens between window starts; each window scores only tokens no earlier one did (default: window / 2)')
    .option('--max-tokens <n>', 'score at most this many tokens of the set')
    .option('--speed', 'also measure prefill (512 tokens) and decode (128 tokens, KV cache) tokens/s at batch 1')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: one per core)')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      examplesText([
        `eval ${SAMPLE_LLAMA} --data prose --max-tokens 20000`,
        `quantize ${SAMPLE_LLAMA} --scheme w4 --out ${EXAMPLES_DIR}/tiny-q4.onnx && onnx-compress eval ${EXAMPLES_DIR}/tiny-q4.onnx --reference ${SAMPLE_LLAMA} --data code --window 128 --stride 64 --speed --json`,
        `quantize ${CONV}/model.onnx --scheme w8a8 --calib ${CONV}/ --out ${EXAMPLES_DIR}/conv-w8a8.onnx && onnx-compress eval ${EXAMPLES_DIR}/conv-w8a8.onnx --reference ${CONV}/model.onnx --data ${CONV}/ --json`,
      ]) +
        '\n\n' +
        'Figures: each document is scored on its own, after the model\'s BOS, so every token of its text is predicted once.\n' +
        'perplexity = exp(summed NLL / tokens); bits per byte = summed NLL / (ln 2 x UTF-8 bytes of the scored text);\n' +
        'KL(reference || model) is per scored token, in nats (mean, 95th percentile, max); top-1 agreement is the share of\n' +
        'tokens where both models rank the same next token first.',
    )
    .action(async (path: string, flags: EvalFlags) => {
      const options = evalOptions(flags);
      // One progress line per stage on stderr; none under --json.
      let progress: { stage: EvalStage; line: Progress } | undefined;
      if (!flags.json) {
        options.onProgress = (stage, done, total) => {
          if (progress?.stage !== stage) {
            progress?.line.finish();
            progress = { stage, line: new Progress({ label: STAGE_LABELS[stage], total, unit: STAGE_UNITS[stage] }) };
          }
          progress.line.update(done);
        };
      }
      let report: EvalReport;
      try {
        const threads = flags.threads === undefined ? undefined : positiveWholeNumber(flags.threads, '--threads');
        report = await runPass(path, evaluatePass, options, { session: threads ? { intraOpThreads: threads } : {} });
        progress?.line.finish();
      } catch (e) {
        progress?.line.abandon();
        throw e;
      }
      emit(report, flags, formatEval);
    });
}

const STAGE_LABELS: Record<EvalStage, string> = { scoring: 'scoring', speed: 'measuring speed', agreement: 'comparing outputs' };
const STAGE_UNITS: Record<EvalStage, string> = { scoring: 'windows', speed: 'models', agreement: 'samples' };

const fixed = (x: number, digits: number) => x.toFixed(digits);
const count = (n: number) => n.toLocaleString('en-US');

function formatEval(r: EvalReport): string {
  const models = r.reference ? [r.candidate, r.reference] : [r.candidate];
  const out: string[] = [];
  if (r.scoring) {
    const s = r.scoring;
    out.push(`${r.data}: ${count(s.documents)} documents, ${count(s.tokens)} tokens scored, ${count(s.bytes)} bytes (tokenizer ${s.tokenizer}; window ${s.window}, stride ${s.stride}, ${count(s.windows)} windows)`);
  } else {
    out.push(`${r.data}: ${r.agreement!.samples} samples`);
  }
  const rows: (string | number)[][] = [];
  const row = (label: string, value: (m: ModelFigures) => string | undefined) => {
    const cells = models.map(value);
    if (cells.some((c) => c !== undefined)) rows.push([label, ...cells.map((c) => c ?? '')]);
  };
  row('perplexity', (m) => m.perplexity && fixed(m.perplexity.perplexity, 3));
  row('bits per byte', (m) => m.perplexity && fixed(m.perplexity.bitsPerByte, 4));
  row('mean NLL (nats/token)', (m) => m.perplexity && fixed(m.perplexity.meanNll, 4));
  row('prefill tokens/s', (m) => m.speed && fixed(m.speed.prefill.tokensPerSecond, 0));
  row('decode tokens/s', (m) => m.speed && fixed(m.speed.decode.tokensPerSecond, 1));
  row('file size', (m) => (m.size.fileBytes === null ? '?' : formatBytes(m.size.fileBytes)));
  row('parameters', (m) => `${count(m.size.parameters.count)} (${formatBytes(m.size.parameters.bytes)})`);
  out.push('', table(['', r.candidate.model, ...(r.reference ? [`reference ${r.reference.model}`] : [])], rows));
  if (r.comparison) {
    const { kl, top1Agreement } = r.comparison;
    out.push('', `KL(reference || model) per token: mean ${kl.mean.toExponential(3)}, p95 ${kl.p95.toExponential(3)}, max ${kl.max.toExponential(3)} nats`);
    out.push(`top-1 agreement: ${fixed(100 * top1Agreement, 2)}%`);
  }
  if (r.referenceScoring) {
    const s = r.referenceScoring;
    out.push(`reference ${r.reference!.model}: ${count(s.tokens)} tokens scored, ${count(s.bytes)} bytes (tokenizer ${s.tokenizer})`);
  }
  if (r.comparisonSkipped) out.push('', r.comparisonSkipped);
  if (r.agreement) {
    out.push('', 'output agreement with the reference:');
    out.push(table(['output', 'elements', 'max |diff|', 'cosine'], r.agreement.outputs.map((o) => [o.output, o.elements, o.maxAbsDiff.toExponential(3), fixed(o.cosine, 6)])));
  }
  return out.join('\n');
}
