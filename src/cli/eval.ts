// `onnx-compress eval MODEL --data SET`: how good a model is and what it costs. For a decoder language model:
// perplexity and bits per byte on a text set with sliding windows, and with --reference (the original model) the
// KL divergence and top-1 agreement of the model against it; --speed adds prefill and decode tokens/s. For any
// other model: output agreement with --reference on a folder of input_*.pb tensors. Sizes always.
import type { Command } from 'commander';
import { openCalibrationSet } from '../calibration/data/index.js';
import { compareDecoders } from '../decoding/compare.js';
import { DecoderSession } from '../decoding/decoder-session.js';
import { modelSize, type SizeReport } from '../decoding/model-size.js';
import { outputAgreement, type AgreementReport } from '../decoding/output-agreement.js';
import { perplexity, type PerplexityReport } from '../decoding/perplexity.js';
import type { WindowPlan } from '../decoding/scoring-windows.js';
import { measureSpeed, type SpeedReport } from '../decoding/speed.js';
import { textCodecFor } from '../decoding/text-codec.js';
import { readScoringSet, resolveTextSet } from '../decoding/text-set.js';
import { describeDecoder } from '../onnx/decoder-info.js';
import { loadModel, type OnnxModel } from '../onnx/model.js';
import { Session } from '../runtime/session.js';
// Flag parsing is shared with generate (the first command with numeric flags of this kind).
import { wholeNumber } from './options.js';
import { emit, formatBytes, table } from './output.js';

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

/** One model's figures; `perplexity` and `speed` for language models only. */
interface ModelFigures {
  model: string;
  size: SizeReport;
  perplexity?: PerplexityReport;
  speed?: SpeedReport;
}

export interface EvalReport {
  kind: 'language-model' | 'tensors';
  data: string;
  candidate: ModelFigures;
  reference: ModelFigures | null;
  /** Language models: the scoring set and windows. */
  scoring?: { tokenizer: string; documents: number; tokens: number; bytes: number; window: number; stride: number; windows: number };
  /** Language models with --reference: KL(reference || model) per token and top-1 agreement. */
  comparison?: { kl: { mean: number; p95: number; max: number }; top1Agreement: number };
  /** Other models with --reference. */
  agreement?: AgreementReport;
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
      '\nExamples:\n  onnx-compress eval models/tiny-llama/model.onnx --data prose --max-tokens 20000\n' +
        '  onnx-compress eval compressed.onnx --reference models/tiny-llama/model.onnx --data code --window 512 --stride 256 --speed --json\n' +
        '  onnx-compress eval quantized-cnn.onnx --reference cnn.onnx --data test_data/ --json\n\n' +
        'Figures: each document is scored on its own, after the model\'s BOS, so every token of its text is predicted once.\n' +
        'perplexity = exp(summed NLL / tokens); bits per byte = summed NLL / (ln 2 x UTF-8 bytes of the scored text);\n' +
        'KL(reference || model) is per scored token, in nats (mean, 95th percentile, max); top-1 agreement is the share of\n' +
        'tokens where both models rank the same next token first.',
    )
    .action(async (path: string, flags: EvalFlags) => {
      const threads = flags.threads === undefined ? undefined : wholeNumber(flags.threads, '--threads');
      const model = loadModel(path);
      const reference = flags.reference === undefined ? undefined : loadModel(flags.reference);
      const report = describeDecoder(model)
        ? await evalLanguageModel(path, model, flags, reference, threads)
        : await evalTensors(path, model, flags, reference, threads);
      emit(report, flags, formatEval);
    });
}

async function evalLanguageModel(path: string, model: OnnxModel, flags: EvalFlags, reference: OnnxModel | undefined, threads?: number): Promise<EvalReport> {
  if (reference && !describeDecoder(reference)) throw new Error(`${flags.reference}: not a decoder language model, unlike ${path}`);
  const decoders: DecoderSession[] = [];
  try {
    const candidate = await DecoderSession.open({ path, model }, { intraOpThreads: threads });
    decoders.push(candidate);
    const original = reference ? await DecoderSession.open({ path: flags.reference!, model: reference }, { intraOpThreads: threads }) : undefined;
    if (original) decoders.push(original);

    const window = flags.window === undefined ? Math.min(1024, candidate.maxPositions ?? 1024) : wholeNumber(flags.window, '--window');
    const plan: WindowPlan = { window, stride: flags.stride === undefined ? Math.max(1, Math.floor(window / 2)) : wholeNumber(flags.stride, '--stride') };
    const maxTokens = flags.maxTokens === undefined ? undefined : wholeNumber(flags.maxTokens, '--max-tokens');
    const codec = textCodecFor(model, candidate.vocab);
    const set = await readScoringSet(resolveTextSet(flags.data), codec, { bos: candidate.special.bos, maxTokens });

    const figures = (file: string, m: OnnxModel, speed?: SpeedReport, ppl?: PerplexityReport): ModelFigures => ({
      model: file,
      size: modelSize(m),
      ...(ppl ? { perplexity: ppl } : {}),
      ...(speed ? { speed } : {}),
    });
    const speedOf = async (d: DecoderSession | undefined) => (flags.speed && d ? await measureSpeed(d) : undefined);
    const scoring = { tokenizer: codec.description, documents: set.documents.length, tokens: set.tokens, bytes: set.bytes, ...plan };
    if (!original) {
      const { windows, ...ppl } = await perplexity(candidate, set, plan);
      return { kind: 'language-model', data: set.path, candidate: figures(path, model, await speedOf(candidate), ppl), reference: null, scoring: { ...scoring, windows } };
    }
    const c = await compareDecoders(original, candidate, set, plan);
    return {
      kind: 'language-model',
      data: set.path,
      candidate: figures(path, model, await speedOf(candidate), c.candidate),
      reference: figures(flags.reference!, reference!, await speedOf(original), c.reference),
      scoring: { ...scoring, windows: c.windows },
      comparison: { kl: c.kl, top1Agreement: c.top1Agreement },
    };
  } finally {
    for (const d of decoders) await d.dispose();
  }
}

async function evalTensors(path: string, model: OnnxModel, flags: EvalFlags, reference: OnnxModel | undefined, threads?: number): Promise<EvalReport> {
  if (!reference) throw new Error(`${path}: not a decoder language model; evaluating it needs --reference (the original) to compare outputs with`);
  const samples = await openCalibrationSet(flags.data, model);
  if (samples.kind !== 'tensors') throw new Error(`${flags.data}: a text set, but ${path} is not a decoder language model; give a folder of input_<k>.pb or <input>.npy tensors`);
  const sessions: Session[] = [];
  try {
    const candidate = await Session.create(path, { intraOpThreads: threads });
    sessions.push(candidate);
    const original = await Session.create(flags.reference!, { intraOpThreads: threads });
    sessions.push(original);
    return {
      kind: 'tensors',
      data: flags.data,
      candidate: { model: path, size: modelSize(model) },
      reference: { model: flags.reference!, size: modelSize(reference) },
      agreement: await outputAgreement(original, candidate, samples.batches()),
    };
  } finally {
    for (const s of sessions) await s.dispose();
  }
}

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
  if (r.agreement) {
    out.push('', 'output agreement with the reference:');
    out.push(table(['output', 'elements', 'max |diff|', 'cosine'], r.agreement.outputs.map((o) => [o.output, o.elements, o.maxAbsDiff.toExponential(3), fixed(o.cosine, 6)])));
  }
  return out.join('\n');
}
