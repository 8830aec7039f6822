// `onnx-compress prune MODEL --sparsity S --method M (--calib SET | --calib-candidates A B ...) --out OUT`:
// structured pruning of a decoder through the prune pass and the runner (verification and its quality gate
// included), reported as the pass's figures plus the verification.
import type { Command } from 'commander';
import { OptionError } from '../errors.js';
import { DEFAULT_GAMMA } from '../pruning/allocate.js';
import { PRUNE_METHODS, type PruneMethod } from '../pruning/prune.js';
import { SCORE_NORMALISATIONS, type ScoreNormalisation } from '../pruning/normalize.js';
import { SALIENCY_OBJECTIVES, type SaliencyObjective } from '../pruning/saliency.js';
import { checkPruneOptions, DEFAULT_PRUNE_CALIBRATION, prunePass, type PruneOptions, type PruneReport } from '../passes/prune.js';
import { runSteps, type CompressReport } from '../passes/runner.js';
import { DEFAULT_GATE, describeGate, type VerificationReport } from '../quantization/verify.js';
import { BACKEND_CHOICES, type BackendChoice } from '../runtime/tf/index.js';
import { EXAMPLES_DIR, examplesText, SAMPLE_LLAMA } from './examples.js';
import { decimal, fraction, positiveWholeNumber, wholeNumber } from './options.js';
import { emit, formatBytes, table } from './output.js';
import { gateSettings, type GateFlags } from './gate-flags.js';
import { withStageProgress } from './stage-progress.js';
import { renderReport, writeReportFile } from '../report/html.js';
import { compressDocument } from '../report/sections/compress.js';
import { writingTo } from '../util/output-lock.js';

interface PruneFlags extends GateFlags {
  sparsity: string;
  method: string;
  gamma?: string;
  objective?: string;
  normalise?: string;
  minMlpKeep?: string;
  calib?: string;
  calibCandidates?: string[];
  selectOn?: string;
  evalOn?: string;
  selectTokens?: string;
  samples?: string;
  seqLen?: string;
  batch?: string;
  seed?: string;
  backend?: string;
  out: string;
  threads?: string;
  html?: string;
  json?: boolean;
}

export interface PruneRunReport {
  model: CompressReport['model'];
  output: NonNullable<CompressReport['output']>;
  prune: PruneReport;
  verification: VerificationReport;
  timing: CompressReport['timing'] & { pruneSeconds: number };
}

export function registerPrune(program: Command): void {
  program
    .command('prune')
    .description('structured pruning of a decoder (whole GQA groups, MLP neurons): NIRVANA saliency or a baseline; the model really shrinks')
    .argument('<model>', '.onnx decoder')
    .requiredOption('--sparsity <s>', 'fraction of the attention + MLP parameters to remove, in [0, 1)')
    .option('--method <m>', `${PRUNE_METHODS.join(' | ')} (default nirvana)`, 'nirvana')
    .option('--gamma <g>', `MLP pruned fraction / attention pruned fraction (default ${DEFAULT_GAMMA}, the reference's for Llama-3.1-8B)`)
    .option('--objective <f>', `nirvana: ${SALIENCY_OBJECTIVES.join(' | ')} (default max-logits, the reference's)`)
    .option('--normalise <how>', `scores per layer before the global ranking: ${SCORE_NORMALISATIONS.join(' | ')} (default none, the reference's)`)
    .option('--min-mlp-keep <f>', 'smallest fraction of each layer\'s MLP neurons kept, 0-1 (default 0: the reference\'s 8-neuron floor)')
    .option('--calib <set>', 'calibration set (a shipped name such as prose, a set folder or a .jsonl file)')
    .option('--calib-candidates <sets...>', 'choose the calibration set by KL(dense || pruned) among these: SET or SET@SEED (a seeded draw of windows)')
    .option('--select-on <set>', 'KL selection split: a set (its selection.jsonl) or a .jsonl file (default: the first candidate\'s set)')
    .option('--eval-on <set>', 'each candidate\'s perplexity: a set (its evaluation.jsonl) or a .jsonl file (default: the selection set)')
    .option('--select-tokens <n>', 'tokens each candidate is scored on, KL and perplexity (default 8192)')
    .option('--samples <n>', `calibration samples (default ${DEFAULT_PRUNE_CALIBRATION.samples})`)
    .option('--seq-len <n>', `tokens per calibration sample (default ${DEFAULT_PRUNE_CALIBRATION.sequenceLength})`)
    .option('--batch <n>', `samples per gradient or ONNX Runtime run (default ${DEFAULT_PRUNE_CALIBRATION.batchSize}); the scores do not depend on it`)
    .option('--seed <n>', 'seed of the calibration window draw (default 0; candidates give theirs as SET@SEED)')
    .option('--backend <b>', `TensorFlow.js backend of the gradient methods: ${BACKEND_CHOICES.join(' | ')}`)
    .requiredOption('--out <path>', 'output .onnx file')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: one per core)')
    .option('--min-cosine <x>', `quality gate: smallest cosine of any output with the original's (default ${DEFAULT_GATE.minCosine})`)
    .option('--min-top1 <x>', `quality gate: smallest top-1 agreement with the original, 0-1 (default ${DEFAULT_GATE.minTop1Agreement})`)
    .option('--no-gate', 'accept the pruned model whatever its verification figures (still measured and reported)')
    .option('--html <file>', 'also write the report as one self-contained HTML page (kept heads and neurons per layer)')
    .option('--json', 'print the report as JSON (no progress bar)')
    .addHelpText(
      'after',
      '\nPruning moves outputs far more than quantization: the quality gate applies as for every command, so a pruned\n' +
        'model below --min-cosine / --min-top1 is refused (exit status 3, nothing written) unless they are lowered or\n' +
        '--no-gate is given; the report shows the figures either way.\n' +
        examplesText([
          `prune ${SAMPLE_LLAMA} --sparsity 0.2 --method nirvana --calib prose --no-gate --out ${EXAMPLES_DIR}/tiny-pruned.onnx`,
          `prune ${SAMPLE_LLAMA} --sparsity 0.2 --method wanda-sp --calib-candidates prose code email prose@1 --no-gate --out ${EXAMPLES_DIR}/tiny-pruned-kl.onnx`,
        ]),
    )
    .action(async (modelPath: string, flags: PruneFlags) => {
      const options = pruneOptions(flags);
      const threads = flags.threads === undefined ? undefined : positiveWholeNumber(flags.threads, '--threads');
      await writingTo([flags.html], async () => {
        const report = await withStageProgress(flags.json, () => ({ unit: 'samples' }), (onProgress) =>
          runSteps(modelPath, [{ pass: prunePass, options, where: prunePass.name }], {
            out: flags.out,
            session: threads ? { intraOpThreads: threads } : {},
            verify: gateSettings(flags),
            ...(onProgress ? { onProgress } : {}),
          }),
        );
        if (flags.html) writeReportFile(flags.html, await renderReport(compressDocument(report)));
        emit(pruneRunReport(report), flags, (r) => formatPrune(r) + (flags.html ? `\n\nwrote ${flags.html}` : ''));
      });
    });
}

export function pruneRunReport(r: CompressReport): PruneRunReport {
  const pass = r.passes.find((p) => p.pass === prunePass.name)!;
  return { model: r.model, output: r.output!, prune: pass.report as PruneReport, verification: r.verification!, timing: { ...r.timing, pruneSeconds: pass.seconds } };
}

function pruneOptions(flags: PruneFlags): PruneOptions {
  const sparsity = Number(flags.sparsity);
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(flags.sparsity) || !(sparsity < 1)) throw new OptionError(`--sparsity must be in [0, 1), got '${flags.sparsity}'`);
  if (flags.calib !== undefined && flags.calibCandidates !== undefined) throw new OptionError('--calib and --calib-candidates are alternatives: give one');
  const options: PruneOptions = {
    sparsity,
    method: flags.method as PruneMethod,
    ...(flags.gamma !== undefined ? { gamma: decimal(flags.gamma, '--gamma') } : {}),
    ...(flags.objective !== undefined ? { objective: flags.objective as SaliencyObjective } : {}),
    ...(flags.normalise !== undefined ? { normalise: flags.normalise as ScoreNormalisation } : {}),
    ...(flags.minMlpKeep !== undefined ? { minMlpKeep: fraction(flags.minMlpKeep, '--min-mlp-keep') } : {}),
    calibration: {
      ...(flags.calib !== undefined ? { data: flags.calib } : {}),
      options: {
        ...(flags.samples !== undefined ? { samples: positiveWholeNumber(flags.samples, '--samples') } : {}),
        ...(flags.seqLen !== undefined ? { sequenceLength: positiveWholeNumber(flags.seqLen, '--seq-len') } : {}),
        ...(flags.batch !== undefined ? { batchSize: positiveWholeNumber(flags.batch, '--batch') } : {}),
        ...(flags.seed !== undefined ? { seed: wholeNumber(flags.seed, '--seed') } : {}),
      },
    } as PruneOptions['calibration'],
    ...(flags.calibCandidates ? { candidates: flags.calibCandidates } : {}),
    ...(flags.selectOn !== undefined ? { selectOn: flags.selectOn } : {}),
    ...(flags.evalOn !== undefined ? { evalOn: flags.evalOn } : {}),
    ...(flags.selectTokens !== undefined ? { selectTokens: positiveWholeNumber(flags.selectTokens, '--select-tokens') } : {}),
    ...(flags.backend !== undefined ? { backend: flags.backend as BackendChoice } : {}),
  };
  if (options.normalise !== undefined && !SCORE_NORMALISATIONS.includes(options.normalise)) throw new OptionError(`--normalise must be one of ${SCORE_NORMALISATIONS.join(', ')}, got '${options.normalise}'`);
  if (options.objective !== undefined && !SALIENCY_OBJECTIVES.includes(options.objective)) throw new OptionError(`--objective must be one of ${SALIENCY_OBJECTIVES.join(', ')}, got '${options.objective}'`);
  if (options.backend !== undefined && !BACKEND_CHOICES.includes(options.backend)) throw new OptionError(`--backend must be one of ${BACKEND_CHOICES.join(', ')}, got '${options.backend}'`);
  try {
    checkPruneOptions(options);
  } catch (e) {
    // The library names options as recipes do; the command names its flags.
    if (e instanceof OptionError) throw new OptionError(flagNames(e.message));
    throw e;
  }
  return options;
}

function flagNames(message: string): string {
  return message.replace(/^sparsity/, '--sparsity').replace(/^method/, '--method').replace(/^gamma/, '--gamma').replace(/^objective/, '--objective');
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
const secs = (s: number): string => (s < 10 ? s.toFixed(2) : s.toFixed(1)) + ' s';

export function formatPrune(r: PruneRunReport): string {
  const p = r.prune;
  const v = r.verification;
  const out = [
    `pruned ${r.model.path} -> ${r.output.path}: ${p.method}${p.objective ? ` (${p.objective})` : ''}, sparsity ${p.sparsity}, gamma ${p.gamma}`,
    `  attention + MLP parameters ${p.params.total.toLocaleString('en-US')} -> ${p.params.kept.toLocaleString('en-US')} (target ${Math.round(p.params.targetKept).toLocaleString('en-US')}, ${(100 * p.params.relativeError).toFixed(2)}% off); ` +
      `model ${p.params.modelBefore.toLocaleString('en-US')} -> ${p.params.modelAfter.toLocaleString('en-US')} parameters; file ${formatBytes(r.model.bytes)} -> ${formatBytes(r.output.bytes)}`,
    `  pruned ${p.attention.pruned} of ${p.attention.total} attention groups (formula ${p.attention.formula.toFixed(2)}), ${p.mlp.pruned} of ${p.mlp.total} MLP neurons (formula ${p.mlp.formula.toFixed(1)})`,
  ];
  if (p.calibration) out.push(`  calibration ${p.calibration.data}${p.calibration.seed ? `@${p.calibration.seed}` : ''}: ${p.calibration.samples} samples, ${p.calibration.tokens.toLocaleString('en-US')} tokens`);
  if (p.interpreter) {
    const i = p.interpreter;
    out.push(`  gradients on TensorFlow.js ${i.backend}: ${i.samples} samples in ${i.chunks} chunks, ${secs(i.seconds)}, peak memory ${formatBytes(i.peakRssBytes)}; objective ${i.objective.toPrecision(6)}`);
  }
  if (p.candidates) {
    out.push(
      `  calibration chosen by KL(dense || pruned) on ${p.selectionFile}:`,
      table(
        ['candidate', 'KL mean', 'top-1', 'perplexity', 'bits/byte', ''],
        p.candidates.map((c) => [c.candidate, Number(c.kl.mean.toFixed(5)), pct(c.top1Agreement), Number(c.perplexity.toFixed(3)), Number(c.bitsPerByte.toFixed(3)), c.chosen ? 'chosen' : ''])
      )
        .split('\n')
        .map((l) => `    ${l}`)
        .join('\n'),
    );
  }
  out.push(
    `  verified in ONNX Runtime ${v.engine.version} on ${v.inputs.description}: worst output cosine ${v.worst.cosine.toFixed(6)}` +
      (v.languageModel ? `, top-1 agreement ${pct(v.languageModel.top1Agreement)}, KL mean ${v.languageModel.kl.mean.toExponential(3)}, perplexity ${v.languageModel.perplexity.original.toFixed(3)} -> ${v.languageModel.perplexity.quantized.toFixed(3)}` : ''),
    `  ${describeGate(v)}`,
    `  ${secs(r.timing.totalSeconds)} in all (scores ${secs(p.timing.scoreSeconds)}, allocation ${secs(p.timing.allocateSeconds)}, surgery ${secs(p.timing.surgerySeconds)}${p.timing.selectionSeconds !== undefined ? `, KL selection ${secs(p.timing.selectionSeconds)}` : ''}, save ${secs(r.timing.saveSeconds)})`,
    '',
    table(
      ['layer', 'groups kept', 'heads', 'neurons', 'bias compensation'],
      p.layers.map((l) => [l.layer, `${l.groups.kept.length}/${l.groups.total} (${l.groups.kept.join(',')})`, `${l.heads.kept}/${l.heads.total}`, `${l.neurons.kept}/${l.neurons.total}`, l.compensation.join(', ')]),
    ),
  );
  if (p.notes.length) out.push('', 'notes:', ...p.notes.map((n) => `  - ${n}`));
  return out.join('\n');
}
