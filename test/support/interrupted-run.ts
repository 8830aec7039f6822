// A run that stops in its check stage — the result saved in its staging folder, the output locked, its folders
// made — and waits there until it is interrupted: test/cli-writing.test.ts signals it to see that the handlers
// the CLI installs leave none of that behind. Arguments: MODEL OUT; prints {"staged": PATH} when it is waiting.
import { installProcessCleanup } from '../../src/cli/main.js';
import { runSteps } from '../../src/passes/runner.js';
import type { Pass } from '../../src/passes/types.js';

const [model, out] = process.argv.slice(2);
installProcessCleanup();
const unchanged: Pass = {
  name: 'unchanged',
  kind: 'transform',
  summary: 'the model as it is, so that the run writes a result',
  parse: () => ({}),
  run: async (state) => ({ state, report: {} }),
};
const wait: Pass = {
  name: 'wait',
  kind: 'check',
  summary: 'waits to be interrupted',
  parse: () => ({}),
  run: (state) => {
    process.stdout.write(`${JSON.stringify({ staged: state.file })}\n`);
    setInterval(() => {}, 1000); // keeps the process alive until the signal
    return new Promise(() => {});
  },
};
await runSteps(model, [
  { pass: unchanged, options: {}, where: 'unchanged' },
  { pass: wait, options: {}, where: 'wait' },
], { out });
