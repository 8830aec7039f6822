// The examples at the end of each command's --help. They are meant to be pasted: each help's examples run as
// shown, in order, from the repository root, and write only under EXAMPLES_DIR (never into the working folder,
// which is usually the repository). test/cli-flags.test.ts runs every one of them.
export const EXAMPLES_DIR = '/tmp/onnx-compress-examples';

/** The shipped sample decoders and a conformance-suite model (installed by scripts/setup.sh) with test data. */
export const SAMPLE_LLAMA = 'models/tiny-llama/onnx/model.onnx';
export const SAMPLE_GPT2 = 'models/tiny-gpt2/onnx/model.onnx';
export const CONFORMANCE = '/usr/share/libonnx-testdata/data';

/** The help text's "Examples:" block: one command line each, `onnx-compress` prepended where a line starts with a command. */
export function examplesText(lines: readonly string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${/^(mkdir|cd|ls) /.test(l) ? l : `onnx-compress ${l}`}`).join('\n')}`;
}
