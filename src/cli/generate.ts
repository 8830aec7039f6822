// `onnx-compress generate MODEL --prompt TEXT`: continues a prompt with a decoder language model, greedily or by
// seeded sampling, printing the text as it is generated (or one JSON report at the end with --json).
import type { Command } from 'commander';
import { generateText } from '../decoding/generate-text.js';
import { randomSeed } from '../util/prng.js';
import { emit } from './output.js';
import { decimal, wholeNumber } from './options.js';

interface GenerateFlags {
  prompt: string;
  maxNewTokens: string;
  temperature?: string;
  topK?: string;
  topP?: string;
  seed?: string;
  threads?: string;
  json?: boolean;
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('continue a prompt with a decoder language model (KV cache; greedy or seeded sampling)')
    .argument('<model>', 'decoder .onnx file (config.json and tokenizer.json beside it, or a byte-level vocabulary)')
    .requiredOption('--prompt <text>', 'the text to continue')
    .option('--max-new-tokens <n>', 'stop after this many new tokens', '64')
    .option('--temperature <t>', 'sample from softmax(logits / t); 0 is greedy (default: 0, or 1 with --top-k/--top-p)')
    .option('--top-k <k>', 'sample among the k most likely tokens only')
    .option('--top-p <p>', 'sample among the most likely tokens holding probability p (nucleus)')
    .option('--seed <s>', 'seed of the sampler: the same seed gives the same text (default: random, reported with --json)')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: one per core)')
    .option('--json', 'print one JSON report at the end instead of streaming the text')
    .addHelpText(
      'after',
      '\nExamples:\n  onnx-compress generate models/tiny-llama/model.onnx --prompt "Call me Ishmael." --max-new-tokens 32\n' +
        '  onnx-compress generate model.onnx --prompt "def main():" --temperature 0.8 --top-p 0.95 --seed 7 --json',
    )
    .action(async (path: string, flags: GenerateFlags) => {
      const maxNewTokens = wholeNumber(flags.maxNewTokens, '--max-new-tokens');
      const topK = flags.topK === undefined ? 0 : wholeNumber(flags.topK, '--top-k');
      const topP = flags.topP === undefined ? 1 : decimal(flags.topP, '--top-p');
      const temperature = flags.temperature !== undefined ? decimal(flags.temperature, '--temperature') : topK || topP < 1 ? 1 : 0;
      const seed = temperature === 0 ? null : flags.seed === undefined ? randomSeed() : wholeNumber(flags.seed, '--seed');
      const threads = flags.threads === undefined ? undefined : wholeNumber(flags.threads, '--threads');

      const report = await generateText(path, flags.prompt, {
        maxNewTokens,
        temperature,
        topK,
        topP,
        ...(seed !== null ? { seed } : {}),
        ...(threads !== undefined ? { threads } : {}),
        ...(flags.json ? {} : { onText: (text: string) => text && process.stdout.write(text) }),
      });
      // The text went out as it came; the text form ends the line it left open.
      emit(report, flags, () => '');
    });
}
