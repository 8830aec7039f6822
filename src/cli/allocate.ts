// `onnx-compress allocate MODEL --calib SET --budget B --out plan.json`: per-layer sensitivity, the integer
// program under the budget, and the answer as a plan file for `quantize --plan`. The work is
// src/allocation/allocate.ts; this file turns flags into its options and its report into text.
import type { Command } from 'commander';
import { allocate, type AllocateReport } from '../allocation/allocate.js';
import { parseBudget } from '../allocation/budget.js';
import { DEFAULT_BLOCK, DEFAULT_CANDIDATES, parseCandidates } from '../allocation/candidates.js';
import { OptionError } from '../errors.js';
import { QUANT_METHODS, type QuantMethod } from '../quantization/layerwise/methods.js';
import { writeTextAtomically } from '../util/atomic.js';
import { writingTo } from '../util/output-lock.js';
import { EXAMPLES_DIR, examplesText, SAMPLE_LLAMA } from './examples.js';
import { positiveWholeNumber, wholeNumber } from './options.js';
import { emit, formatBytes, table } from './output.js';
import { withStageProgress } from './stage-progress.js';

interface AllocateFlags {
  calib: string;
  budget?: string;
  bops?: string;
  candidates: string;
  blockSize?: string;
  method: string;
  solver?: string;
  out?: string;
  sensitivity?: string;
  sweep?: boolean;
  samples?: string;
  seqLen?: string;
  seed?: string;
  workers?: string;
  json?: boolean;
}

export function registerAllocate(program: Command): void {
  program
    .command('allocate')
    .description('choose a bit width per layer by integer programming under a size budget (per-layer sensitivity measured in ONNX Runtime) and write the plan for quantize --plan')
    .argument('<model>', '.onnx file')
    .requiredOption('--calib <set>', 'calibration set whose selection split (else calibration split) measures each layer\'s loss increase')
    .option('--budget <size>', 'size of the weights: a fraction of the float size (0.25x), an average width of the allocated layers (4.25bits) or bytes (40MB, 512KiB)')
    .option('--bops <n>', 'also bound the bit operations (weights x weight bits x activation bits, per token)')
    .option('--candidates <list>', `weight widths to choose from, optionally with a block size (4g64) (default ${DEFAULT_CANDIDATES}; float is always a candidate)`, DEFAULT_CANDIDATES)
    .option('--block-size <n>', `block size along the reduction axis for widths without one (default ${DEFAULT_BLOCK})`)
    .option('--method <solver>', `weight solver the candidates are measured with: ${QUANT_METHODS.join(', ')}`, 'rtn')
    .option('--solver <name>', 'integer-program solver (default: the fastest that proves optimality)')
    .option('--out <plan.json>', 'the plan file to write (for quantize --plan)')
    .option('--sensitivity <file>', 'sensitivity file: reused when it matches the model, method, data and candidates, else measured and written')
    .option('--sweep', 'also solve for a range of average widths and report the size-vs-loss front (mixed and uniform plans, loss measured)')
    .option('--samples <n>', 'selection samples the loss is measured on (default 8)')
    .option('--seq-len <n>', 'tokens per sample (default: the set\'s)')
    .option('--seed <n>', 'seed of the sample draw (default 0)')
    .option('--workers <n>', 'worker threads, one ONNX Runtime session each (default: one per core)')
    .option('--json', 'print the report as JSON (no progress bar)')
    .addHelpText(
      'after',
      examplesText([
        `allocate ${SAMPLE_LLAMA} --calib prose --budget 4.25bits --candidates 2,4,8 --samples 4 --out ${EXAMPLES_DIR}/alloc-plan.json && onnx-compress quantize ${SAMPLE_LLAMA} --plan ${EXAMPLES_DIR}/alloc-plan.json --calib prose --out ${EXAMPLES_DIR}/tiny-mixed.onnx`,
      ]),
    )
    .action(async (modelPath: string, flags: AllocateFlags) => {
      if (flags.budget === undefined && !flags.sweep) throw new OptionError('give --budget SIZE (or --sweep for the size-vs-loss front)');
      if (flags.budget !== undefined && flags.out === undefined) throw new OptionError('--budget needs --out PLAN.json: where to write the plan');
      if (!(QUANT_METHODS as readonly string[]).includes(flags.method)) throw new OptionError(`--method must be one of ${QUANT_METHODS.join(', ')}, got '${flags.method}'`);
      const blockSize = flags.blockSize === undefined ? undefined : wholeNumber(flags.blockSize, '--block-size');
      const candidates = parseCandidates(flags.candidates, blockSize);
      const budget = flags.budget === undefined ? undefined : parseBudget(flags.budget);
      await writingTo([flags.out, flags.sensitivity], async () => {
        const report = await withStageProgress(flags.json, allocateStage, (onProgress) =>
          allocate(modelPath, {
            candidates,
            data: flags.calib,
            method: flags.method as QuantMethod,
            ...(budget ? { budget } : {}),
            ...(flags.bops !== undefined ? { bopsBudget: positiveWholeNumber(flags.bops, '--bops') } : {}),
            ...(flags.solver ? { solver: flags.solver } : {}),
            ...(flags.sensitivity ? { sensitivityFile: flags.sensitivity } : {}),
            ...(flags.sweep ? { sweep: true } : {}),
            ...(flags.samples !== undefined ? { samples: positiveWholeNumber(flags.samples, '--samples') } : {}),
            ...(flags.seqLen !== undefined ? { sequenceLength: positiveWholeNumber(flags.seqLen, '--seq-len') } : {}),
            ...(flags.seed !== undefined ? { seed: wholeNumber(flags.seed, '--seed') } : {}),
            ...(flags.workers !== undefined ? { workers: positiveWholeNumber(flags.workers, '--workers') } : {}),
            ...(onProgress ? { onProgress } : {}),
          }),
        );
        if (report.plan && flags.out) writeTextAtomically(flags.out, `${JSON.stringify(report.plan, null, 2)}\n`);
        emit(report, flags, formatAllocate);
      });
    });
}

/** Sensitivity measurement counts candidates; writing the plan's formats counts formats. */
function allocateStage(stage: string): { label: string; unit: string } {
  return stage === 'sensitivity' ? { label: 'measuring', unit: 'candidates' } : { label: 'quantizing', unit: 'formats' };
}

function formatAllocate(r: AllocateReport): string {
  const lines = [`${r.model}: ${r.sizes.layerWeights} weights in the allocated layers, loss ${r.loss === 'kl' ? 'KL to the float logits' : 'relative output MSE'} on ${r.data.samples} samples of ${r.data.source} (${r.data.split}), method ${r.method}`];
  lines.push(`sensitivity ${r.sensitivity.from === 'file' ? `read from ${r.sensitivity.file}` : `measured in ${r.sensitivity.timing.totalSeconds.toFixed(1)} s (${r.sensitivity.timing.jobs} candidates, ${r.sensitivity.timing.workers} workers)`}`);
  for (const p of r.sensitivity.proxies) lines.push(`  proxy ${p.name}: Spearman ${p.spearman === null ? 'n/a' : p.spearman.toFixed(3)} with measured ΔL over ${p.pairs} pairs`);
  const a = r.allocation;
  if (a && r.layers) {
    lines.push(
      `budget ${a.budget}: ${formatBytes(a.totalBudgetBytes)}; allocated ${formatBytes(a.totalBytes)} (${a.averageBits.toFixed(3)} bits per weight), ${a.status}${a.gap !== undefined ? ` (gap ${a.gap})` : ''} by ${a.solver} in ${a.solverSeconds.toFixed(3)} s`,
    );
    lines.push(`predicted loss (Σ ΔL) ${a.predictedLoss.toExponential(3)}${a.measuredLoss !== undefined ? `, measured ${a.measuredLoss.toExponential(3)}` : ''}`);
    lines.push(table(['node', 'candidate', 'format', 'ΔL', 'bytes'], r.layers.map((l) => [l.node, l.candidate, l.format, l.deltaLoss.toExponential(2), l.bytes])));
  }
  if (r.sweep) {
    lines.push('size-vs-loss front:');
    lines.push(table(['kind', 'point', 'bytes', 'bits', 'predicted', 'measured', 'pareto'], r.sweep.map((p) => [p.kind, p.label, p.totalBytes, p.averageBits.toFixed(2), p.predictedLoss.toExponential(3), p.measuredLoss?.toExponential(3) ?? '', p.pareto ? 'yes' : ''])));
  }
  if (r.dropped.length) lines.push(`${r.dropped.length} candidate(s) dropped, e.g. ${r.dropped[0].node} ${r.dropped[0].candidate}: ${r.dropped[0].reason}`);
  for (const n of r.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}
