// What a sample model's training run records (models/<name>/training.json) and how its card reports it.

export interface EvaluationResult {
  set: string;
  split: string;
  bitsPerByte: number;
  perplexity: number;
  tokens: number;
  bytes: number;
}

export interface TrainingRecord {
  arch: string;
  /** Seed of the initial weights (the builder's) and of the batch sampler. */
  seed: number;
  steps: number;
  batch: number;
  sequence: number;
  /** Targets scored (PAD positions excluded). */
  tokens: number;
  trainSets: string[];
  optimizer: { name: string; peakLr: number; floorLr: number; warmup: number; beta1: number; beta2: number; eps: number; weightDecay: number; clipNorm: number };
  backend: string;
  versions: Record<string, string>;
  machine: string;
  wallSeconds: number;
  /** Mean training loss of the last 50 steps, bits per target. */
  finalLossBits: number;
  /** Validation (interpreter, fixed windows of the selection splits) at the end, bits per byte. */
  validation: Record<string, number>;
  /** Validation history: step -> bits per byte per set. */
  history: { step: number; seconds: number; trainBits: number; validation: Record<string, number> }[];
  command: string;
  /** Greedy continuations (ONNX Runtime, KV cache) of a few prompts, after BOS. */
  samples?: { prompt: string; greedy: string }[];
  /** Evaluation through ONNX Runtime (`onnx-compress eval`), filled in after training. */
  evaluation?: { command: string; results: EvaluationResult[] };
}

function fmt(n: number, digits = 3): string {
  return n.toFixed(digits);
}

/** The card's sections on training and evaluation. */
export function trainingSection(r: TrainingRecord, trainingDataRows: string): string {
  const o = r.optimizer;
  const sets = Object.keys(r.validation);
  const hist = r.history
    .map((h) => `| ${h.step} | ${Math.round(h.seconds)} | ${fmt(h.trainBits)} | ${sets.map((s) => fmt(h.validation[s] ?? NaN)).join(' | ')} |`)
    .join('\n');
  const evalRows = r.evaluation
    ? r.evaluation.results.map((e) => `| ${e.set} | ${e.split} | ${fmt(e.bitsPerByte)} | ${fmt(e.perplexity, 2)} | ${e.tokens} |`).join('\n')
    : '| (not evaluated yet) | | | | |';
  return `## Training

Trained from the builder's seeded initialisation with this project's own TensorFlow.js interpreter
(\`TfModel.gradients\`, src/runtime/tf) and src/training (AdamW, clipping, schedule), by:

\`\`\`
${r.command}
\`\`\`

| | |
|---|---|
| objective | next-token cross-entropy over byte-level windows (BOS + UTF-8 bytes + EOS per document) |
| data | ${r.trainSets.map((s) => `\`calibration-sets/${s}/train.jsonl\``).join(', ')}; each window's set drawn uniformly |
| steps | ${r.steps} |
| batch x sequence | ${r.batch} x ${r.sequence} tokens |
| tokens seen | ${r.tokens.toLocaleString('en-US')} scored targets |
| optimizer | AdamW, beta1 ${o.beta1}, beta2 ${o.beta2}, eps ${o.eps}, weight decay ${o.weightDecay} (matrices and embeddings only) |
| learning rate | linear warmup over ${o.warmup} steps to ${+o.peakLr.toPrecision(6)}, cosine decay to ${+o.floorLr.toPrecision(6)} at the last step |
| gradient clipping | global L2 norm ${o.clipNorm} |
| seed | ${r.seed} (initial weights and batch sampler) |
| backend | tfjs \`${r.backend}\` (${Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join(', ')}) |
| machine | ${r.machine} |
| wall time | ${(r.wallSeconds / 60).toFixed(1)} min, ${Math.round(r.tokens / r.wallSeconds)} tokens/s on average with validation included (shared, loaded machine: other jobs and the other model's training ran at the same time; bench/results/tf-throughput.json has forward and forward + backward tokens/s per backend) |
| final training loss | ${fmt(r.finalLossBits)} bits per target (mean of the last 50 steps) |

Reproducible: the same command (same seed and step count) on the same backend gives the same weights
(test/training.test.ts checks this on a toy model); the optimizer runs in JS with float64 moments. The interpreter's MatMul
folds the leading axes of A into one (so wasm's XNNPACK path multiplies); the graph is unchanged.

${trainingDataRows}

Validation during training (interpreter, bits per byte on the first windows of each set's \`selection\` split):

| step | seconds | train loss (bits) | ${sets.join(' | ')} |
|---:|---:|---:|${sets.map(() => '---:').join('|')}|
${hist}

## Evaluation (ONNX Runtime)

Bits per byte on each set's \`evaluation\` split (held out from training and from the validation above),
measured by ONNX Runtime on the written onnx/model.onnx with:

\`\`\`
${r.evaluation?.command ?? 'onnx-compress eval MODEL --data SET --window W --stride W/2 --json'}
\`\`\`

| set | split | bits per byte | perplexity (per byte token) | tokens scored |
|---|---|---:|---:|---:|
${evalRows}

For comparison, an untrained (random) initialisation scores about 8.05-8.1 bits per byte (uniform over the 259
ids would be log2 259 = 8.02). Each document is scored after BOS, in windows as long as the training sequence.
${
    r.samples
      ? `
## Greedy samples

Greedy continuations (ONNX Runtime, KV cache, up to 120 bytes, after BOS) of a few prompts, as JSON strings. Greedy
decoding of a model this small and this briefly trained falls into loops of frequent words; the samples show
what it picked up (frequent words, spacing, code punctuation), not sense:

\`\`\`
${r.samples.map((s) => `${JSON.stringify(s.prompt)} -> ${JSON.stringify(s.greedy)}`).join('\n')}
\`\`\`
`
      : ''
  }`;
}

/** Licences of the training sets, as calibration-sets/<set>/SOURCE.md states them. */
export const TRAINING_DATA_LICENCES = `Training data licences (see calibration-sets/<set>/SOURCE.md): prose = Moby-Dick (public domain; the
package states PDDL-1.0 AND CC0-1.0), code = TypeScript 5.9.3 \`lib.*.d.ts\` and \`lib/typescript.js\` (Apache-2.0,
Microsoft), email = SpamAssassin public corpus (the package states PDDL-1.0 AND CC0-1.0; the messages' senders
hold their copyright). The weights are derived from these texts; the ONNX files are distributed with the project.`;
