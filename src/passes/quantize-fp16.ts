// The quantize pass for `--scheme fp16`: the float16 conversion (src/quantization/fp16.ts) in place of plan ->
// solve -> rewrite, with the same report shape so the CLI, recipes and the HTML report show it like any scheme.
// A calibration set, when given, serves verification only; a node the selection leaves out stays float32.
import { openCalibrationSet, openHeldOutSet } from '../calibration/data/index.js';
import { convertToFloat16 } from '../quantization/fp16.js';
import { QuantOptionError, type QuantParams } from '../quantization/schemes.js';
import { isSelected } from '../quantization/select.js';
import type { QuantizeOptions, QuantizeReport } from './quantize.js';
import type { PassEnv, PassOutcome, PassState } from './types.js';

export async function runFloat16(state: PassState, options: QuantizeOptions, params: QuantParams, env: PassEnv): Promise<PassOutcome<QuantizeReport>> {
  if (options.stats) throw new QuantOptionError(`--stats: scheme ${params.scheme} needs no statistics (give --calib SET to verify on a calibration set)`);
  const next: PassState = { ...state };
  const notes: string[] = [];
  if (options.calibration) {
    const { data, options: calibration = {} } = options.calibration;
    next.verificationSet = (await openHeldOutSet(data, state.model, calibration)) ?? (await openCalibrationSet(data, state.model, calibration));
    notes.push(`scheme ${params.scheme} needs no calibration: the calibration set is used for verification only`);
  }
  const select = options.select;
  const t = performance.now();
  const { model, report } = await convertToFloat16(state.model, {
    session: env.session,
    ...(select ? { keep: (node) => !isSelected(node, select) } : {}),
  });
  const writeSeconds = (performance.now() - t) / 1000;
  next.model = model;
  next.scheme = params;
  if (report.initializers.kept.length) notes.push(`float32 initializers kept: ${report.initializers.kept.map((k) => `${k.name} (${k.reason})`).join('; ')}`);
  notes.push(
    `${report.converted} node(s) converted to float16, ${report.kept.length} kept in float32 (listed as skipped), ${report.initializers.converted} initializer(s) converted; ` +
      `${report.casts} Cast(s) at float16/float32 boundaries (graph inputs and outputs stay float32)`,
  );
  return {
    state: next,
    report: {
      scheme: { name: params.scheme, writer: params.writer, params },
      plan: { origin: { kind: 'scheme', scheme: params.scheme, writer: 'fp16' }, solver: 'cast', rows: [] },
      calibration: null,
      activations: null,
      nodes: { quantized: 0, skipped: report.kept.length, list: [], skippedList: report.kept },
      sqnrDb: null,
      weights: { bytesBefore: report.bytesBefore, bytesAfter: report.bytesAfter, ratio: report.bytesBefore > 0 ? report.bytesAfter / report.bytesBefore : 1 },
      opsetChanges: [],
      irVersion: {},
      notes,
      timing: { calibrationSeconds: 0, rangesSeconds: 0, writeSeconds },
    },
  };
}
