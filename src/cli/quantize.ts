// `onnx-compress quantize MODEL --scheme S --out OUT`: quantizes a model (calibrating first for static schemes),
// verifies the written file in ONNX Runtime against the original, and reports what changed. The work is
// src/quantization/pipeline.ts; this file turns flags into its options and its report into text.
import type { Command } from 'commander';
import type { CalibrationOptions } from '../calibration/data/index.js';
import { quantizePass, type QuantizePassOptions, type QuantizationRunReport } from '../quantization/pipeline.js';
import { QUANT_METHODS, type QuantMethod } from '../passes/quantize.js';
import { clipChoice, CLIP_SETTINGS, DEFAULT_PERCENTILE, isClipSetting, type ClipChoice } from '../quantization/ranges.js';
import { describeSchemes, QuantizationError, resolveScheme, SCHEME_NAMES, type SchemeOptions } from '../quantization/schemes.js';
import type { NodeSelection } from '../quantization/select.js';
import { planFileFrom } from '../quantization/plan-file.js';
import { DEFAULT_GATE, describeGate } from '../quantization/verify.js';
import { OptionError } from '../errors.js';
import { writeTextAtomically } from '../util/atomic.js';
import { percentile, positiveWholeNumber, wholeNumber } from './options.js';
import { EXAMPLES_DIR, examplesText, SAMPLE_LLAMA } from './examples.js';
import { emit, formatBytes, table } from './output.js';
import { gateSettings, type GateFlags } from './gate-flags.js';
import { withStageProgress } from './stage-progress.js';
import { writingTo } from '../util/output-lock.js';

interface QuantizeFlags extends GateFlags {
  scheme?: string;
  plan?: string;
  savePlan?: string;
  out: string;
  calib?: string;
  stats?: string;
  clip?: string;
  percentile?: string;
  bits?: string;
  blockSize?: string;
  asymmetric?: boolean;
  quantizeEmbeddings?: boolean;
  accuracyLevel?: string;
  activationType?: string;
  perChannel?: boolean;
  perTensor?: boolean;
  pad: boolean;
  include?: string[];
  exclude?: string[];
  opTypes?: string[];
  samples?: string;
  seqLen?: string;
  batch?: string;
  seed?: string;
  threads?: string;
  json?: boolean;
  method?: string;
  sequential?: boolean;
  parallel?: boolean;
  biasTuning?: boolean;
}

export function registerQuantize(program: Command): void {
  program
    .command('quantize')
    .description('quantize a model (static QDQ, dynamic int8, MatMulNBits 4-bit, float16), verify it in ONNX Runtime and report the change')
    .argument('<model>', '.onnx file')
    .option('--scheme <name>', `quantization scheme: ${SCHEME_NAMES.join(', ')}`)
    .option('--plan <file>', 'a plan file choosing each node\'s format, bits and granularity (docs/plans.md), instead of --scheme')
    .option('--save-plan <file>', 'also write the plan that was applied, one entry per node, as a plan file to edit and reuse')
    .requiredOption('--out <path>', "output .onnx file; or a folder, for a model in a Hugging Face folder (<folder>/onnx/model.onnx): the file gets transformers.js's name")
    .option('--calib <set>', 'calibration set to calibrate with in this run (a .jsonl file, a set folder such as calibration-sets/prose, or a folder of tensors)')
    .option('--stats <file>', 'activation statistics written by `onnx-compress calibrate` for this same model file')
    .option('--clip <method>', `static schemes: activation range clipping, ${CLIP_SETTINGS.join(' | ')} (auto, the default: per tensor, the range that least changes the output of the node reading it)`)
    .option('--percentile <p>', `with --clip percentile: percentile of |x| used as the range (default ${DEFAULT_PERCENTILE}; e.g. 99.9, 99.99, 99.999)`)
    .option('--method <solver>', 'weight solver: rtn (round to nearest, default), or layer by layer from the calibration inputs (needs --calib): gptq (second-order) or adaquant (tuned by gradient descent)')
    .option('--sequential', "gptq, adaquant: each block's inputs from the model with the earlier blocks already quantized (the default)")
    .option('--parallel', "gptq, adaquant: each block's inputs from the float model")
    .option('--bias-tuning', "after quantizing, tune the quantized layers' biases and the norm gains against the float model's outputs (KL for language models) on --calib; kept only if a held-out part of the set agrees")
    .option('--bits <n>', "weight bits (default: the scheme's)")
    .option('--block-size <n>', 'weights in blocks of n along the reduction axis (a power of two from 16 to 256; w4 default 32)')
    .option('--asymmetric', 'asymmetric weights (with zero points) instead of symmetric')
    .option('--accuracy-level <n>', 'MatMulNBits accuracy_level 0-4 (w4, w4a8): 4 computes with int8 activations')
    .option('--activation-type <type>', 'w8a8: activation codes, uint8 (default) or int8')
    .option('--per-channel', 'weights per output channel (w8a8 default)')
    .option('--per-tensor', 'one scale per weight tensor (w8 default)')
    .option('--no-quantize-embeddings', 'w4, w4a8: leave embedding Gathers in float32 (default: GatherBlockQuantized, same bits and block)')
    .option('--no-pad', 'refuse weights whose reduction axis the block size does not divide (default: pad the last block)')
    .option('--include <pattern...>', 'quantize only nodes whose name or weight name matches one of these regular expressions')
    .option('--exclude <pattern...>', 'leave nodes whose name or weight name matches one of these regular expressions in float')
    .option('--op-types <ops...>', "quantize only these op types (default: every one the scheme handles), e.g. MatMul")
    .option('--samples <n>', 'calibration samples to draw from the set (default: all)')
    .option('--seq-len <n>', "tokens per calibration sample (default: the model's fixed length, else min(512, max positions))")
    .option('--batch <n>', 'calibration samples per ONNX Runtime run (default 1)')
    .option('--seed <n>', 'seed of the calibration sample draw (default 0)')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: one per core)')
    .option('--min-cosine <x>', `quality gate: fail (and write nothing) if any output of the quantized model has a cosine similarity with the original below x on the verification batch (default ${DEFAULT_GATE.minCosine})`)
    .option('--min-top1 <x>', `quality gate, language models: fail (and write nothing) if top-1 agreement with the original on the verification batch is below x (0-1, default ${DEFAULT_GATE.minTop1Agreement})`)
    .option('--no-gate', 'accept the quantized model whatever its verification figures (still measured and reported)')
    .option('--json', 'print the report as JSON (no progress bar)')
    .addHelpText(
      'after',
      '\nSchemes:\n' +
        describeSchemes()
          .map((s) => `  ${s.name.padEnd(7)} ${s.summary}`)
          .join('\n') +
        '\n\nStatic schemes (w8a8) need --calib or --stats; weight-only schemes and fp16 use --calib (when given) for verification only.\n' +
        'The written model is saved under a temporary name, loaded in ONNX Runtime and run on a sample batch (the set\'s\n' +
        'held-out evaluation split where the set folder has one, else the calibration set, else generated), compared with\n' +
        'the original; only a model that passes the quality gate (--min-cosine, --min-top1) is renamed to OUT, else it\n' +
        'exits with status 3 and writes nothing (docs/quality-gate.md).\n' +
        examplesText([
          `quantize ${SAMPLE_LLAMA} --scheme w4 --out ${EXAMPLES_DIR}/tiny-q4.onnx`,
          `quantize ${SAMPLE_LLAMA} --scheme w8a8 --calib calibration-sets/prose --samples 64 --seq-len 128 --clip percentile --percentile 99.99 --out ${EXAMPLES_DIR}/tiny-w8a8.onnx`,
          `calibrate ${SAMPLE_LLAMA} --data calibration-sets/prose --out ${EXAMPLES_DIR}/stats.json --samples 32 && onnx-compress quantize ${SAMPLE_LLAMA} --scheme w8a8 --stats ${EXAMPLES_DIR}/stats.json --out ${EXAMPLES_DIR}/tiny-w8a8-stats.onnx`,
          `convert ${SAMPLE_LLAMA} ${EXAMPLES_DIR}/my-model/onnx/model.onnx && onnx-compress quantize ${EXAMPLES_DIR}/my-model/onnx/model.onnx --scheme w4 --out ${EXAMPLES_DIR}/my-model/onnx/   # writes ${EXAMPLES_DIR}/my-model/onnx/model_q4.onnx`,
        ]),
    )
    .action(async (modelPath: string, flags: QuantizeFlags) => {
      if ((flags.scheme === undefined) === (flags.plan === undefined)) throw new OptionError('give --scheme NAME or --plan FILE (one of them)');
      const schemeOptions = flags.scheme === undefined ? refuseSchemeFlags(flags) : parseSchemeOptions(flags as QuantizeFlags & { scheme: string });
      const calibration = parseCalibration(flags);
      const clip = parseClip(flags);
      const method = flags.method ?? 'rtn';
      if (!(QUANT_METHODS as readonly string[]).includes(method)) throw new OptionError(`--method must be one of ${QUANT_METHODS.join(', ')}, got '${method}'`);
      if (method !== 'rtn' && flags.calib === undefined) throw new OptionError(`--method ${method} needs --calib SET: it solves each layer from its calibration inputs`);
      if (flags.sequential && flags.parallel) throw new OptionError('--sequential and --parallel are alternatives: give one');
      const sequential = flags.sequential ? true : flags.parallel ? false : undefined;
      if (sequential !== undefined && method === 'rtn') throw new OptionError(`--${sequential ? 'sequential' : 'parallel'} applies to --method gptq|adaquant, not to rtn`);
      if (flags.biasTuning && flags.calib === undefined) throw new OptionError('--bias-tuning needs --calib SET: it tunes biases and norm gains against the float model on calibration data');
      const threads = flags.threads === undefined ? undefined : positiveWholeNumber(flags.threads, '--threads');
      const options: QuantizePassOptions = {
        ...schemeOptions,
        out: flags.out,
        ...(flags.calib !== undefined ? { calibration: { data: flags.calib, options: calibration } } : {}),
        ...(flags.stats !== undefined ? { stats: flags.stats } : {}),
        ...(clip ? { clip } : {}),
        ...(method !== 'rtn' ? { method: method as QuantMethod } : {}),
        ...(sequential !== undefined ? { sequential } : {}),
        ...(flags.biasTuning ? { biasTuning: true } : {}),
        select: parseSelection(flags),
        session: threads === undefined ? {} : { intraOpThreads: threads },
        verify: gateSettings(flags),
      };
      // --save-plan is claimed (checked, locked) before the work, not found unwritable after it; the runner claims --out.
      await writingTo([flags.savePlan], async () => {
        const report = await withStageProgress(flags.json, quantizeStage, (onProgress) =>
          quantizePass(modelPath, flags.scheme ?? { plan: flags.plan! }, { ...options, ...(onProgress ? { onProgress } : {}) }),
        );
        if (flags.savePlan !== undefined) writeTextAtomically(flags.savePlan, `${JSON.stringify(planFileFrom(report.plan.rows), null, 2)}\n`);
        emit(report, flags, formatQuantize);
      });
    });
}

/** One bar per stage: calibration in samples, a layer-wise solve in blocks (with its ETA), bias tuning in epochs. */
function quantizeStage(stage: string): { label: string; unit: string } {
  if (stage === 'calibration') return { label: 'calibrating', unit: 'samples' };
  return { label: stage, unit: stage === 'bias tuning' ? 'epochs' : 'blocks' };
}

/** A plan file sets bits, blocks and symmetry per node: the scheme flags do not apply. */
function refuseSchemeFlags(flags: QuantizeFlags): SchemeOptions {
  const given = (
    [
      ['--bits', flags.bits],
      ['--block-size', flags.blockSize],
      ['--asymmetric', flags.asymmetric],
      ['--accuracy-level', flags.accuracyLevel],
      ['--activation-type', flags.activationType],
      ['--per-channel', flags.perChannel],
      ['--per-tensor', flags.perTensor],
      ['--no-pad', flags.pad === false ? true : undefined],
      ['--no-quantize-embeddings', flags.quantizeEmbeddings === false ? true : undefined],
    ] as const
  ).filter(([, v]) => v !== undefined);
  if (given.length) throw new OptionError(`${given.map(([f]) => f).join(', ')}: scheme options do not apply to --plan, whose entries set them per node`);
  return {};
}

/** Scheme options from flags, checked by resolveScheme so that an error names the flag at fault. */
function parseSchemeOptions(flags: QuantizeFlags & { scheme: string }): SchemeOptions {
  if (flags.perChannel && flags.perTensor) throw new OptionError('--per-channel and --per-tensor are alternatives: give one');
  if (flags.activationType !== undefined && flags.activationType !== 'uint8' && flags.activationType !== 'int8') {
    throw new OptionError(`--activation-type must be uint8 or int8, got '${flags.activationType}'`);
  }
  const options: SchemeOptions = {
    ...(flags.bits !== undefined ? { bits: wholeNumber(flags.bits, '--bits') } : {}),
    ...(flags.blockSize !== undefined ? { blockSize: wholeNumber(flags.blockSize, '--block-size') } : {}),
    ...(flags.asymmetric ? { symmetric: false } : {}),
    ...(flags.accuracyLevel !== undefined ? { accuracyLevel: wholeNumber(flags.accuracyLevel, '--accuracy-level') } : {}),
    ...(flags.activationType !== undefined ? { activationType: flags.activationType as 'uint8' | 'int8' } : {}),
    ...(flags.perChannel ? { perChannel: true } : flags.perTensor ? { perChannel: false } : {}),
    ...(flags.pad === false ? { padding: 'refuse' as const } : {}),
    ...(flags.quantizeEmbeddings === false ? { quantizeEmbeddings: false } : {}),
  };
  try {
    resolveScheme(flags.scheme, options);
  } catch (e) {
    if (e instanceof QuantizationError) throw new QuantizationError(`${flagAtFault(e.message)}: ${e.message}`);
    throw e;
  }
  return options;
}

/** The flag a resolveScheme message is about. */
function flagAtFault(message: string): string {
  if (/unknown quantization scheme/.test(message)) return '--scheme';
  if (/block size/.test(message)) return '--block-size';
  if (/accuracy_level/.test(message)) return '--accuracy-level';
  if (/activation type/.test(message)) return '--activation-type';
  if (/bits/.test(message)) return '--bits';
  return '--scheme';
}

function parseCalibration(flags: QuantizeFlags): CalibrationOptions {
  const given = ['samples', 'seqLen', 'batch', 'seed'].filter((k) => flags[k as keyof QuantizeFlags] !== undefined);
  if (given.length && flags.calib === undefined) {
    const names = given.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
    throw new OptionError(`${names.join(', ')}: calibration options need --calib (statistics from --stats were collected with their own)`);
  }
  return {
    ...(flags.samples !== undefined ? { samples: positiveWholeNumber(flags.samples, '--samples') } : {}),
    ...(flags.seqLen !== undefined ? { sequenceLength: positiveWholeNumber(flags.seqLen, '--seq-len') } : {}),
    ...(flags.batch !== undefined ? { batchSize: positiveWholeNumber(flags.batch, '--batch') } : {}),
    ...(flags.seed !== undefined ? { seed: wholeNumber(flags.seed, '--seed') } : {}),
  };
}

function parseClip(flags: QuantizeFlags): ClipChoice | undefined {
  if (flags.clip === undefined && flags.percentile === undefined) return undefined;
  const method = flags.clip ?? 'percentile';
  if (!isClipSetting(method)) throw new OptionError(`--clip must be one of ${CLIP_SETTINGS.join(', ')}, got '${method}'`);
  if (flags.percentile !== undefined && method !== 'percentile') throw new OptionError(`--percentile applies to --clip percentile, not --clip ${method}`);
  if (flags.percentile === undefined) return clipChoice(method);
  return clipChoice(method, percentile(flags.percentile, '--percentile'));
}

function parseSelection(flags: QuantizeFlags): NodeSelection {
  const patterns = (list: string[] | undefined, flag: string): RegExp[] | undefined =>
    list?.map((source) => {
      try {
        return new RegExp(source);
      } catch (e) {
        throw new OptionError(`${flag} '${source}' is not a regular expression: ${(e as Error).message}`);
      }
    });
  const opTypes = flags.opTypes?.flatMap((s) => s.split(',')).filter(Boolean);
  return {
    ...(opTypes?.length ? { opTypes } : {}),
    ...(flags.include ? { include: patterns(flags.include, '--include') } : {}),
    ...(flags.exclude ? { exclude: patterns(flags.exclude, '--exclude') } : {}),
  };
}

// --- text output ---

/** How often auto clipping chose each method: 'minmax x3, percentile 99.99 x5'. */
function chosenMethods(choices: readonly { chosen: string }[]): string {
  const counts = new Map<string, number>();
  for (const c of choices) counts.set(c.chosen, (counts.get(c.chosen) ?? 0) + 1);
  return [...counts].map(([m, n]) => `${m} x${n}`).join(', ');
}

/** What the output's file name follows (src/quantization/output-names.ts). */
const NAMING_NOTES: Record<QuantizationRunReport['output']['naming'], string> = {
  'transformers.js': ' (transformers.js name)',
  'onnx-compress': ' (a name of ours: transformers.js has no dtype for this scheme)',
  path: '',
};

const seconds = (s: number): string => (s < 10 ? s.toFixed(2) : s.toFixed(1)) + ' s';
const ratio = (r: number): string => `${r.toFixed(3)}x`;

function describeParams(r: QuantizationRunReport): string {
  const p = r.scheme.params;
  if (!p) {
    const formats = new Map<string, number>();
    for (const row of r.plan.rows) formats.set(row.format, (formats.get(row.format) ?? 0) + 1);
    const origin = r.plan.origin.kind === 'file' ? r.plan.origin.path : r.scheme.name;
    return `plan ${origin} (${[...formats].map(([f, n]) => `${f} x${n}`).join(', ')})`;
  }
  const w = p.weights;
  const parts = [`${w.bits}-bit weights`, w.blockSize ? `block ${w.blockSize}` : w.perChannel ? 'per channel' : 'per tensor', w.symmetric ? 'symmetric' : 'asymmetric'];
  if (p.activations) parts.push(`${p.activations.signed ? 'int8' : 'uint8'} activations`);
  if (p.writer === 'matmulnbits') parts.push(`accuracy_level ${p.accuracyLevel}`);
  return `${r.scheme.name} (${r.scheme.writer}: ${parts.join(', ')})`;
}

/** The layer-wise solve in a few lines: the run, then per block its weights' output error before and after. */
export function layerwiseSummary(plan: QuantizationRunReport['plan']): string[] {
  const run = plan.layerwise;
  const layers = plan.layers ?? [];
  if (!run) return [];
  const solvedBy = layers.filter((l) => l.solver !== 'rtn');
  const fallback = layers.length - solvedBy.length;
  const damped = solvedBy.filter((l) => l.percdamp !== undefined).map((l) => l.percdamp!);
  const lines = [
    `  ${run.method} (${run.mode}) on ${solvedBy.length} weights${fallback ? ` (${fallback} rounded to nearest)` : ''} in ${run.blocks.length} blocks (from the ${run.grouping === 'decoder' ? 'decoder structure' : run.grouping === 'residual' ? "graph's residual Adds" : 'nodes'}), ${seconds(run.seconds)}` +
      `${run.backend ? `, TensorFlow.js ${run.backend} backend` : ''}${damped.length ? `, damping ${Math.min(...damped)}-${Math.max(...damped)} of the mean diagonal` : ''}; ` +
      `peak captured ${formatBytes(run.peakCapturedBytes)}`,
  ];
  const sum = (list: typeof layers, f: (l: (typeof layers)[number]) => number | undefined): number => list.reduce((a, l) => a + (f(l) ?? 0), 0);
  for (const b of run.blocks) {
    const mine = layers.filter((l) => l.block === b.name && l.errorBefore !== undefined);
    const errors = mine.length ? `: output MSE ${sum(mine, (l) => l.errorBefore).toExponential(2)} (RTN) -> ${sum(mine, (l) => l.errorAfter).toExponential(2)} over ${mine.length} weights` : '';
    lines.push(`    ${b.name}${errors}, ${seconds(b.seconds)}`);
  }
  return lines;
}

/** Bias and norm tuning in one line: what was tuned, the held-out loss in ONNX Runtime before and after, what was kept. */
export function biasTuningSummary(b: NonNullable<QuantizationRunReport['biasTuning']>): string {
  const what = [b.parameters.bias && `${b.parameters.bias} biases`, b.parameters.normGain && `${b.parameters.normGain} norm gains`, b.parameters.normBias && `${b.parameters.normBias} norm biases`].filter(Boolean).join(', ');
  const loss = b.objective === 'kl' ? 'KL' : 'output MSE';
  return (
    `  bias tuning of ${what} (${b.parameters.values} values): held-out ${loss} ${b.selection.before.toExponential(3)} -> ${b.selection.after.toExponential(3)} ` +
    `(${b.split.selectionBatches} of ${b.split.selectionBatches + b.split.tuneBatches} batches), ${b.iterations} Adam steps, best epoch ${b.bestEpoch} of ${b.epochs}, ` +
    `${b.kept === 'tuned' ? 'tuned values kept' : 'untuned values kept'}, ${seconds(b.seconds)}, TensorFlow.js ${b.backend} backend`
  );
}

export function formatQuantize(r: QuantizationRunReport): string {
  const v = r.verification;
  const out = [
    `quantized ${r.model.path} -> ${r.output.path}${NAMING_NOTES[r.output.naming]}`,
    `  scheme ${describeParams(r)}`,
    `  ${r.nodes.quantized} nodes quantized, ${r.nodes.skipped} skipped; weights ${formatBytes(r.weights.bytesBefore)} -> ${formatBytes(r.weights.bytesAfter)} (${ratio(r.weights.ratio)}); ` +
      `file ${formatBytes(r.files.bytesBefore)} -> ${formatBytes(r.files.bytesAfter)} (${ratio(r.files.ratio)})${r.output.externalData ? `, external data ${r.output.externalData.path}` : ''}`,
  ];
  out.push(...layerwiseSummary(r.plan));
  if (r.biasTuning) out.push(biasTuningSummary(r.biasTuning));
  if (r.sqnrDb) out.push(`  weight SQNR: min ${r.sqnrDb.min.toFixed(1)} dB, median ${r.sqnrDb.median.toFixed(1)} dB, mean ${r.sqnrDb.mean.toFixed(1)} dB`);
  if (r.calibration) {
    const c = r.calibration;
    const what = c.from === 'data' ? `calibrated on ${c.path} in ${seconds(c.seconds)}` : `statistics from ${c.path} (set ${c.data.source})`;
    out.push(`  ${what}: ${c.samples} samples${c.tokens ? `, ${c.tokens.toLocaleString('en-US')} tokens` : ''}`);
  }
  if (r.activations) {
    const a = r.activations;
    const clipped = a.ranges.filter((e) => e.clipped > 0);
    out.push(
      `  activation ranges: ${a.method}${a.percentile !== undefined ? ` ${a.percentile}` : ''}${a.choices ? ` (${chosenMethods(a.choices)})` : ''}, ${a.ranges.length} tensors` +
        (clipped.length ? `, ${clipped.length} clipped (mean ${(100 * clipped.reduce((s, e) => s + e.clipped, 0) / clipped.length).toFixed(1)}% of the observed span)` : ''),
    );
  }
  out.push(
    `  verified in ONNX Runtime ${v.engine.version} (${v.engine.executionProvider}) on ${v.inputs.source !== 'generated' ? `a ${v.inputs.source === 'held-out' ? 'held-out ' : ''}batch of ${v.inputs.description}` : v.inputs.description}: ` +
      `worst output cosine ${v.worst.cosine.toFixed(6)}, max |diff| ${v.worst.maxAbsDiff.toExponential(3)}`,
  );
  out.push(`  ${describeGate(v)}`);
  if (v.languageModel) {
    const lm = v.languageModel;
    out.push(
      `  language model, ${lm.tokens} tokens: top-1 agreement ${(100 * lm.top1Agreement).toFixed(2)}%, KL mean ${lm.kl.mean.toExponential(3)} (max ${lm.kl.max.toExponential(3)}) nats; ` +
        `perplexity on the batch ${lm.perplexity.original.toFixed(3)} -> ${lm.perplexity.quantized.toFixed(3)}`,
    );
  }
  if (r.opsetChanges.length) {
    out.push(`  opsets: ${r.opsetChanges.map((c) => `${c.domain || 'ai.onnx'} ${c.from === undefined ? `${c.to} (new)` : `${c.from} -> ${c.to}`}`).join(', ')}`);
  }
  const t = r.timing;
  out.push(
    `  ${seconds(t.totalSeconds)} in all (calibration ${seconds(t.calibrationSeconds)}, write ${seconds(t.writeSeconds)}, save ${seconds(t.saveSeconds)}, verification ${seconds(t.verifySeconds)})`,
  );
  out.push(
    '',
    table(
      ['node', 'as', 'bits', 'granularity', 'SQNR dB', 'bytes before', 'bytes after'],
      r.nodes.list.map((n) => [
        n.node,
        n.as,
        n.bits,
        n.granularity === 'block' ? `block ${n.blockSize}` : n.granularity,
        Number(n.sqnrDb.toFixed(2)),
        n.sharedWeight ? '(shared)' : n.bytesBefore,
        n.sharedWeight ? '(shared)' : n.bytesAfter,
      ]),
    ),
  );
  if (r.nodes.skippedList.length) {
    out.push('', 'left in float:', table(['node', 'op', 'reason'], r.nodes.skippedList.map((s) => [s.node, s.op, s.reason])));
  }
  if (r.notes.length) out.push('', 'notes:', ...r.notes.map((n) => `  - ${n}`));
  return out.join('\n');
}
