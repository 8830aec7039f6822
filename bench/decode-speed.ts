// Decoding speed of decoder language models at batch 1: prefill tokens/s (one run over a 512-token prompt) and
// decode tokens/s (128 new tokens, one per run, with the KV cache), for the models named on the command line.
// Prints a table and writes bench/results/decode-speed.json with the machine, ONNX Runtime version and threads.
//
//   npx tsc -p . && node dist/bench/decode-speed.js [--threads N] [--cuda] [model.onnx ...]   (default: models/tiny-llama/onnx/model.onnx)
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { env } from 'onnxruntime-node';
import { formatBytes, table } from '../src/cli/output.js';
import { DecoderSession } from '../src/decoding/decoder-session.js';
import { modelSize } from '../src/decoding/model-size.js';
import { measureSpeed, type SpeedReport } from '../src/decoding/speed.js';
import { loadModel } from '../src/onnx/model.js';
import { machineFacts } from './support/machine.js';

const PREFILL_TOKENS = 512;
const DECODE_TOKENS = 128;
const REPEATS = 3;

interface Result extends SpeedReport {
  model: string;
  fileBytes: number | null;
  parameterBytes: number;
}

function parseArgs(argv: string[]): { models: string[]; threads?: number; cuda: boolean } {
  const models: string[] = [];
  let threads: number | undefined;
  let cuda = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--threads') {
      threads = Number(argv[++i]);
      if (!Number.isSafeInteger(threads) || threads < 1) throw new Error(`--threads must be a whole number >= 1, got '${argv[i]}'`);
    } else if (argv[i] === '--cuda') cuda = true;
    else models.push(argv[i]);
  }
  return { models: models.length ? models : ['models/tiny-llama/onnx/model.onnx'], threads, cuda };
}

async function main(): Promise<void> {
  const { models, threads, cuda } = parseArgs(process.argv.slice(2));
  const results: Result[] = [];
  for (const path of models) {
    const decoder = await DecoderSession.open(path, { intraOpThreads: threads, executionProvider: cuda ? 'cuda' : 'cpu' });
    try {
      const speed = await measureSpeed(decoder, { prefillTokens: PREFILL_TOKENS, decodeTokens: DECODE_TOKENS, repeats: REPEATS });
      const size = modelSize(loadModel(path));
      results.push({ model: path, fileBytes: size.fileBytes, parameterBytes: size.parameters.bytes, ...speed });
    } finally {
      await decoder.dispose();
    }
  }

  const report = {
    date: new Date().toISOString(),
    machine: machineFacts(),
    onnxRuntime: { version: env.versions.node ?? env.versions.common, executionProvider: cuda ? 'cuda' : 'cpu', intraOpThreads: threads ?? `ONNX Runtime default (${cpus().length} cores)` },
    method: { batch: 1, prefillTokens: PREFILL_TOKENS, decodeTokens: DECODE_TOKENS, decodePrompt: 16, repeats: REPEATS, statistic: 'median after one warm-up run' },
    results,
  };
  const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results', 'decode-speed.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);

  process.stdout.write(
    `${report.machine.cpu}, ${report.machine.cores} cores; ONNX Runtime ${report.onnxRuntime.version} (${report.onnxRuntime.executionProvider}), threads: ${report.onnxRuntime.intraOpThreads}\n\n` +
      table(
        ['model', 'file', `prefill tok/s (${PREFILL_TOKENS})`, `decode tok/s (${DECODE_TOKENS}, KV cache)`, 'ms/token'],
        results.map((r) => [r.model, r.fileBytes === null ? '?' : formatBytes(r.fileBytes), Math.round(r.prefill.tokensPerSecond), Number(r.decode.tokensPerSecond.toFixed(1)), Number((1000 / r.decode.tokensPerSecond).toFixed(3))]),
      ) +
      `\n\nwrote ${out}\n`,
  );
}

main().catch((e: Error) => {
  process.stderr.write(`decode-speed: ${e.message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exitCode = 1;
});
