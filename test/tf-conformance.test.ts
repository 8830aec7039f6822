// The ONNX backend node tests (Debian's libonnx-testdata, ONNX 1.12) through the TensorFlow.js executor on the
// wasm backend: every test whose ops are all registered must match the reference outputs (float32 rtol 1e-3,
// atol 1e-5) or be excluded with a reason — by element type, or by name in conformance.ts's EXCLUDED, each
// of which must still fail (so a fixed one is taken off the list).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { it } from 'node:test';
import { selectBackend } from '../src/runtime/tf/backend.js';
import { EXCLUDED, runNodeTests, type TestResult } from '../src/runtime/tf/conformance.js';
import { defaultRegistry } from '../src/runtime/tf/ops/index.js';

const ROOT = '/usr/share/libonnx-testdata/data/node';
/** Matching tests when this list was last updated; fewer means a regression (more is welcome: raise it). */
const MIN_PASSED = 614;

function byStatus(results: TestResult[], status: TestResult['outcome']['status']): TestResult[] {
  return results.filter((r) => r.outcome.status === status);
}

it('ONNX node conformance tests through the tf executor (wasm)', { skip: !existsSync(ROOT) && `${ROOT} not installed` }, async (t) => {
  assert.equal(await selectBackend('wasm'), 'wasm');
  const started = Date.now();
  const registry = defaultRegistry();
  const results = runNodeTests(ROOT, registry);
  const passed = byStatus(results, 'passed');
  const excluded = byStatus(results, 'excluded');
  const failed = byStatus(results, 'failed');
  const uncovered = byStatus(results, 'not-covered');

  const reasons = new Map<string, string[]>();
  for (const r of excluded) {
    if (r.outcome.status !== 'excluded') continue;
    const list = reasons.get(r.outcome.reason) ?? [];
    list.push(r.name);
    reasons.set(r.outcome.reason, list);
  }
  const lines = [
    `tf conformance (wasm): ${results.length} node tests; ${passed.length + excluded.length + failed.length} use only registered ops: ` +
      `${passed.length} passed, ${excluded.length} excluded, ${failed.length} failed; ${uncovered.length} need ops outside the registry; ` +
      `${registry.entries().length} registry entries; ${((Date.now() - started) / 1000).toFixed(1)} s`,
  ];
  for (const [reason, names] of [...reasons].sort((a, b) => b[1].length - a[1].length)) lines.push(`  excluded ${names.length}: ${reason}: ${names.join(' ')}`);
  for (const r of failed) if (r.outcome.status === 'failed') lines.push(`  FAILED ${r.name}: ${r.outcome.detail}`);
  for (const line of lines) t.diagnostic(line);

  assert.deepEqual(failed.map((r) => r.name), [], 'tests using registered ops that neither pass nor are excluded');
  // A written exclusion must name a test that uses registered ops and still fails.
  const stale = Object.keys(EXCLUDED).filter((name) => {
    const r = results.find((t) => t.name === name);
    return !r || r.outcome.status !== 'excluded' || !r.outcome.detail;
  });
  assert.deepEqual(stale, [], 'written exclusions that no longer fail (or no longer exist)');
  assert.ok(passed.length >= MIN_PASSED, `only ${passed.length} tests passed, expected at least ${MIN_PASSED}`);
});
