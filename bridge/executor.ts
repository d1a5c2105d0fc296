/**
 * Where a job runs. The job lifecycle (`job-lifecycle.ts`) decides which job runs next and talks to
 * clients; a executor runs it: on this machine's pipeline thread (`local-executor.ts`), or on GPU
 * workers behind Redis (`queue-executor.ts`). The bridge picks one at start-up; job code never asks
 * which.
 */
import type { Stage } from '../domain/stage.ts';
import type { BaseJob, CleanLatents, DecomposeParams, GenerateParams, PipelineInfo, Progress } from '../gpu-server/pipeline/types.ts';
import type { LayerPng } from './job-archive.ts';
import type { ErrorCode } from './protocol/messages.ts';

/** Rejection of a job that was cancelled. */
export class JobAborted extends Error {
  override name = 'JobAborted';
}

/** Rejection of a job refused with a code while it starts (e.g. its base was pruned while it waited). */
export class JobRefused extends Error {
  override name = 'JobRefused';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** What a finished job hands back, wherever it ran: its layers as PNGs, what the manifest records, its latents. */
export interface JobResult {
  /** Every layer, except that kept ones (`params.base.keep[].to`) may be left out: the bridge carries the base's bytes for them. */
  layers: LayerPng[];
  seed: number;
  model: string;
  provider: string;
  tiny: boolean;
  promptTruncated: boolean;
  timings: Partial<Record<Stage, number>>;
  /** The final clean latents, for a later job that keeps some of this one's layers. */
  latents: CleanLatents;
}

/** What a job asks of the pipeline: a generation, or a decomposition of a flat image. */
export type JobRequest = { kind: 'generate'; params: GenerateParams } | { kind: 'decompose'; params: DecomposeParams };

export type ExecutorJob = {
  jobId: string;
  /** The model the job was made for (a pipeline's `info.model`). */
  model: string;
} & (
  | {
      kind: 'generate';
      /** The generation's parameters, its base aside. */
      params: Omit<GenerateParams, 'base'>;
      /**
       * The base whose layers it keeps, still being read from the job archive: the job holds its
       * place on the executor meanwhile, and other jobs start as the executor has room. A failed
       * read rejects the run with its error (a JobRefused).
       */
      base?: Promise<BaseJob>;
    }
  | { kind: 'decompose'; params: DecomposeParams }
);

/** An executor job for a request whose base, if any, is read already (a GPU worker's, from Redis). */
export function executorJob(jobId: string, model: string, request: JobRequest): ExecutorJob {
  if (request.kind === 'decompose') return { jobId, model, ...request };
  const { base, ...params } = request.params;
  return { jobId, model, kind: 'generate', params, ...(base ? { base: Promise.resolve(base) } : {}) };
}

/** What an executor job asks of the pipeline, once its base (if any) is read. */
export async function jobRequest(job: ExecutorJob): Promise<JobRequest> {
  if (job.kind === 'decompose') return { kind: 'decompose', params: job.params };
  return { kind: 'generate', params: job.base ? { ...job.params, base: await job.base } : job.params };
}

export interface RunEvents {
  onProgress(progress: Progress): void;
  /** A small PNG of the merged image so far. */
  onPreview(png: Uint8Array, step: number): void;
  /** Something the client should know about its running job, in words (e.g. it started again elsewhere). */
  onNote(note: string): void;
  /**
   * A layer's PNG as soon as it is ready, in index order, before the result. A executor may never
   * call it: the job sends the result's layers it has not streamed.
   */
  onLayer(layer: LayerPng): void;
}

export interface JobRun {
  /** Resolves with the result; rejects with JobAborted when cancelled, else with what failed. */
  readonly result: Promise<JobResult>;
  /** Asks the job to stop between steps. */
  cancel(): void;
}

/** Whether a job can start now; if not, why, when there is something to tell (for `queued`). */
export type StartCheck = { ok: true } | { ok: false; why?: string };

export interface JobExecutor {
  /** The models jobs can be made for, the default first. Empty until a pipeline is known. */
  models(): PipelineInfo[];
  /** Whether a job for `model` can start now (an idle pipeline has it); if not, why, for `queued`. */
  canStart(model: string): StartCheck;
  start(job: ExecutorJob, events: RunEvents): JobRun;
  /** `listener` is called when a job that could not start may now start (a pipeline became idle or joined). */
  onCapacity(listener: () => void): void;
  /** What `/health` shows about where jobs run. */
  health(): Record<string, unknown>;
  /** Stops the pipelines (local) or the connections (queue); call after every job ended. */
  dispose(): Promise<void>;
}
