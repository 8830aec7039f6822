// Where a report's figures come from: this tool's version, the engine, the date and the machine. Commands put
// reportMeta() in their JSON reports (field `meta`), so a page rendered later from the JSON shows the run's
// machine and date, not the renderer's.
import { existsSync, readFileSync } from 'node:fs';
import { cpus, platform, release, totalmem, arch } from 'node:os';
import { fileURLToPath } from 'node:url';
import { env } from 'onnxruntime-node';
import type { ReportMeta } from './types.js';

/** This package's version, from its package.json (three folders up from dist/src/report/, two from src/report/). */
export function toolVersion(): string {
  for (const up of ['../../../package.json', '../../package.json']) {
    const path = fileURLToPath(new URL(up, import.meta.url));
    if (!existsSync(path)) continue;
    try {
      const json = JSON.parse(readFileSync(path, 'utf8')) as { name?: string; version?: string };
      if (json.name === 'onnx-compress' && json.version) return json.version;
    } catch {
      // fall through
    }
  }
  return 'unknown';
}

/** 'onnxruntime-node 1.30.0 (cpu)' and the like. */
export function ortEngine(executionProvider = 'cpu'): string {
  const version = env.versions?.node ?? env.versions?.common ?? '?';
  return `onnxruntime-node ${version} (${executionProvider})`;
}

export function machineDescription(): string {
  const cpu = cpus();
  const model = cpu[0]?.model?.trim() || 'unknown CPU';
  const gib = totalmem() / 2 ** 30;
  return `${model}, ${cpu.length} cores, ${gib.toFixed(gib >= 10 ? 0 : 1)} GiB; ${platform()} ${release()} ${arch()}; Node ${process.version}`;
}

/** The meta of a report made now, on this machine. */
export function reportMeta(engine = ortEngine(), date = new Date()): Required<ReportMeta> {
  return { toolVersion: `onnx-compress ${toolVersion()}`, engine, date: date.toISOString(), machine: machineDescription() };
}
