/**
 * Where the graphs live while a job runs. With enough free device memory everything stays
 * resident; otherwise the text encoders (T5-XXL alone is ~19 GB in fp32) are opened for a new
 * prompt, used and released before the transformer runs. Pure planning over plain numbers; the
 * free-memory probe is at the edge.
 */
import { spawnSync } from 'node:child_process';
import { freemem } from 'node:os';
import type { JobKind } from '../../domain/job-kind.ts';
import type { Provider } from '../onnx/session.ts';

export const MEMORY_MODES = ['resident', 'text-on-demand'] as const;
export type MemoryMode = (typeof MEMORY_MODES)[number];

export interface MemoryPlan {
  mode: MemoryMode;
  /** Bytes of weights per group. */
  textBytes: number;
  restBytes: number;
  /** Free memory on the device at start, when it could be read. */
  freeBytes: number | undefined;
  device: string;
  /** One line for the start-up banner. */
  summary: string;
}

/** Weights are not all: activations, workspace and the runtime's own copies need room too. */
export const HEADROOM = 1.3;

const gb = (b: number) => (b >= 1024 ** 3 ? `${(b / 1024 ** 3).toFixed(1)} GB` : `${Math.max(1, Math.round(b / 1024 ** 2))} MB`);

export function planMemory(textBytes: number, restBytes: number, freeBytes: number | undefined, device: string, forced?: MemoryMode): MemoryPlan {
  const total = (textBytes + restBytes) * HEADROOM;
  let mode: MemoryMode;
  let why: string;
  if (forced) {
    mode = forced;
    why = 'as asked';
  } else if (freeBytes === undefined) {
    mode = 'resident';
    why = `free memory of ${device} unknown`;
  } else if (total <= freeBytes) {
    mode = 'resident';
    why = `${gb(total)} needed, ${gb(freeBytes)} free`;
  } else {
    mode = 'text-on-demand';
    why = `${gb(total)} needed for everything, ${gb(freeBytes)} free`;
  }
  const summary =
    mode === 'resident'
      ? `memory plan: all graphs resident on ${device} (${why})`
      : `memory plan: text encoders (${gb(textBytes)}) loaded per new prompt and released before the transformer; the rest (${gb(restBytes)}) resident on ${device} (${why})`;
  return { mode, textBytes, restBytes, freeBytes, device, summary };
}

/** A graph's weight bytes and the jobs that run it. */
export interface GraphWeights {
  name: string;
  bytes: number;
  jobs: readonly JobKind[];
}

/**
 * For a folder that runs more than one job: each graph counted once with the jobs it serves, and
 * what each job alone would hold, so the banner shows the shared transformer in memory once.
 */
export function sharingLine(graphs: readonly GraphWeights[]): string | undefined {
  const kinds = [...new Set(graphs.flatMap((g) => g.jobs))];
  if (kinds.length < 2) return undefined;
  const sum = (gs: readonly GraphWeights[]) => gs.reduce((n, g) => n + g.bytes, 0);
  const list = (gs: readonly GraphWeights[]) => [...gs].sort((a, b) => b.bytes - a.bytes).map((g) => `${g.name} ${gb(g.bytes)}`).join(', ');
  const shared = graphs.filter((g) => g.jobs.length === kinds.length);
  const own = kinds.map((k) => [k, graphs.filter((g) => g.jobs.length === 1 && g.jobs[0] === k)] as const).filter(([, gs]) => gs.length > 0);
  return [
    `weights by job: ${kinds.join(' + ')} share ${list(shared)} (one copy each)`,
    ...own.map(([k, gs]) => `${k} only: ${list(gs)}`),
    `${kinds.map((k) => `${k} alone would hold ${gb(sum(graphs.filter((g) => g.jobs.includes(k))))}`).join(', ')}, both jobs hold ${gb(sum(graphs))}`,
  ].join('; ');
}

/** Free memory of the device a provider runs on: host RAM for the CPU, nvidia-smi for CUDA. */
export function freeDeviceMemory(provider: Provider): number | undefined {
  if (provider === 'cpu') return freemem();
  if (provider === 'cuda') {
    const r = spawnSync('nvidia-smi', ['--query-gpu=memory.free', '--format=csv,noheader,nounits', '--id=0'], { encoding: 'utf8', timeout: 3000 });
    const mib = Number.parseInt(r.stdout?.trim() ?? '', 10);
    return r.status === 0 && Number.isFinite(mib) ? mib * 1024 * 1024 : undefined;
  }
  return undefined; // WebGPU does not report free memory.
}
