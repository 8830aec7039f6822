// `onnx-compress generate MODEL --prompt TEXT`: continues a prompt with a decoder language model, greedily or by
// seeded sampling, printing the text as it is generated (or one JSON report at the end with --json).
import type { Command } from 'commander';
import { generateText, type GenerateReport, type GenerateTextOptions } from '../decoding/generate-text.js';
import { randomSeed } from '../util/prng.js';
import { examplesText, SAMPLE_GPT2, SAMPLE_LLAMA } from './examples.js';
import { emit } from './output.js';
import { decimal, fraction, positiveWholeNumber, wholeNumber } from './options.js';

/** The decoding flags `generate` and `speculate` share. */
export interface DecodingFlags {
  maxNewTokens: string;
  temperature?: string;
  topK?: string;
  topP?: string;
  seed?: string;
  threads?: string;
  json?: boolean;
}

interface GenerateFlags extends DecodingFlags {
  prompt: string;
}

/** Adds the decoding flags (token budget, sampling, threads, --json) to a command. */
export function decodingOptions(command: Command): Command {
  return command
    .option('--max-new-tokens <n>', 'stop after this many new tokens', '64')
    .option('--temperature <t>', 'sample from softmax(logits / t); 0 is greedy (default: 0, or 1 with --top-k/--top-p)')
    .option('--top-k <k>', 'sample among the k most likely tokens only')
    .option('--top-p <p>', 'sample among the most likely tokens holding probability p (nucleus)')
    .option('--seed <s>', 'seed of the sampler: the same seed gives the same text (default: random, reported with --json)')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: one per core)')
    .option('--json', 'print one JSON report at the end instead of streaming the text');
}

/**
 * The decoding flags checked, as generation options: no seed under greedy decoding, a random one when sampling
 * without --seed; the text streams to stdout unless --json.
 */
export function decodingSettings(flags: DecodingFlags): GenerateTextOptions {
  const maxNewTokens = positiveWholeNumber(flags.maxNewTokens, '--max-new-tokens');
  const topK = flags.topK === undefined ? 0 : wholeNumber(flags.topK, '--top-k');
  const topP = flags.topP === undefined ? 1 : fraction(flags.topP, '--top-p');
  const temperature = flags.temperature !== undefined ? decimal(flags.temperature, '--temperature') : topK || topP < 1 ? 1 : 0;
  const givenSeed = flags.seed === undefined ? undefined : wholeNumber(flags.seed, '--seed'); // checked even where greedy decoding ignores it
  const seed = temperature === 0 ? null : (givenSeed ?? randomSeed());
  const threads = flags.threads === undefined ? undefined : positiveWholeNumber(flags.threads, '--threads');
  return {
    maxNewTokens,
    temperature,
    topK,
    topP,
    ...(seed !== null ? { seed } : {}),
    ...(threads !== undefined ? { threads } : {}),
    ...(flags.json ? {} : { onText: (text: string) => text && process.stdout.write(text) }),
  };
}

export function registerGenerate(program: Command): void {
  decodingOptions(
    program
      .command('generate')
      .description('continue a prompt with a decoder language model (KV cache; greedy or seeded sampling)')
      .argument('<model>', 'decoder .onnx file (config.json and tokenizer.json beside it, or a byte-level vocabulary)')
      .requiredOption('--prompt <text>', 'the text to continue'),
  )
    .addHelpText(
      'after',
      examplesText([
        `generate ${SAMPLE_LLAMA} --prompt "Call me Ishmael." --max-new-tokens 32`,
        `generate ${SAMPLE_GPT2} --prompt "def main():" --temperature 0.8 --top-p 0.95 --seed 7 --json`,
      ]),
    )
    .action(async (path: string, flags: GenerateFlags) => {
      const report = await generateText(path, flags.prompt, decodingSettings(flags));
      // The text went out as it came; the text form ends the line it left open and says on stderr (apart from the
      // text, which may be piped) why it ended.
      emit(report, flags, () => '');
      if (!flags.json) process.stderr.write(`(${stopLine(report)})\n`);
    });
}

/** Why generation ended, in words: the token budget, the end-of-text token, or the model's last position. */
export function stopLine(r: Pick<GenerateReport, 'stopReason' | 'tokens' | 'promptTokens'>): string {
  const n = `${r.tokens.length} new token${r.tokens.length === 1 ? '' : 's'}`;
  switch (r.stopReason) {
    case 'eos':
      return `stopped at the end-of-text token after ${n}`;
    case 'max-new-tokens':
      return `stopped after ${n}: the --max-new-tokens limit`;
    case 'max-positions':
      return `stopped after ${n}: the model's maximum positions (${r.promptTokens.length + r.tokens.length} tokens with the prompt) are used up`;
  }
}
