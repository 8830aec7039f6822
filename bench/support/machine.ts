// What every benchmark's results file says about the machine it ran on (figures are only comparable with it).
import { cpus, totalmem } from 'node:os';

export interface MachineFacts {
  cpu: string;
  cores: number;
  memoryBytes: number;
  platform: NodeJS.Platform;
  arch: string;
  node: string;
}

export function machineFacts(): MachineFacts {
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryBytes: totalmem(), platform: process.platform, arch: process.arch, node: process.version };
}
