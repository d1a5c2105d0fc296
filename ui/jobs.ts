/**
 * The UI's record of this session's jobs and how bridge events move them along. Pure: each
 * function returns the next job list; images live outside (they are bytes, not view state).
 */
import type { Stage } from '../domain/stage.ts';
import type { BridgeMessage } from '../bridge/protocol/messages.ts';
import type { StoredJob } from '../plugin/job-store.ts';
import type { FrameLayout } from '../plugin/layout.ts';
import type { EditTarget } from '../plugin/messages.ts';
import { errorText } from './words.ts';

/**
 * `restored`: remembered from an earlier session, asked of the bridge again; `ready`: finished
 * while the plugin was closed, waiting for the designer's Insert; `insert-failed`: the layers are
 * kept and the insert can be tried again (Insert on page); `refetching`: an inserted job's layers
 * asked of the bridge again, to insert that version as a new frame; `held`: not sent yet, because
 * this window already has as many jobs at the bridge as it takes from one connection.
 */
export type JobStatus =
  | 'held'
  | 'sending'
  | 'restored'
  | 'refetching'
  | 'queued'
  | 'running'
  | 'inserting'
  | 'ready'
  | 'inserted'
  | 'insert-failed'
  | 'failed'
  | 'cancelled';

export interface Job {
  requestId: string;
  jobId: string | null;
  frameName: string;
  layout: FrameLayout;
  prompt: string;
  seed: number;
  status: JobStatus;
  position: number | null;
  stage: Stage | null;
  step: number;
  total: number;
  elapsedMs: number;
  /** First denoising progress seen, for the pace estimate. */
  denoiseFrom: { step: number; elapsedMs: number } | null;
  cancelRequested: boolean;
  tiny: boolean;
  promptTruncated: boolean;
  error: string | null;
  insertedName: string | null;
  totalMs: number | null;
  /** From the bridge's `done`. */
  model: string | null;
  /** The selection stamp at Generate (plugin/messages.ts); -1 for restored jobs: never select. */
  selectionStamp: number;
  /** Remembered from an earlier session of the plugin. */
  restored: boolean;
  /** A regeneration: the result frame and nodes its images replace in place; null for a generation. */
  edit: EditTarget | null;
  /** The jobs this one was regenerated from, oldest first: it is version `lineage.length + 1`. */
  lineage: string[];
  /** Insert as a new frame, even a regeneration or a job inserted before. */
  asNew: boolean;
  /** The bridge's word on why the job waits (`queued.note`: no GPU worker free for its model, ...). */
  note: string | null;
}

export const ACTIVE: readonly JobStatus[] = ['held', 'sending', 'restored', 'refetching', 'queued', 'running'];

/** The bridge's per-connection limit when its welcome does not say (bridges before `jobsPerClient`). */
export const DEFAULT_JOBS_PER_CLIENT = 4;

/**
 * How many held jobs may be sent now: the bridge refuses a connection more than `limit` jobs
 * waiting or running (`queue_full`), so the rest wait here. Jobs restored from an earlier session
 * were queued by another connection and do not count.
 */
export function roomAtBridge(jobs: readonly Job[], limit: number): number {
  const atBridge = jobs.filter((j) => !j.restored && (j.status === 'sending' || j.status === 'queued' || j.status === 'running')).length;
  return Math.max(0, limit - atBridge);
}

export function isActive(job: Job): boolean {
  return ACTIVE.includes(job.status);
}

export function newJob(
  requestId: string,
  layout: FrameLayout,
  prompt: string,
  seed: number,
  selectionStamp = -1,
  edit: { target: EditTarget; lineage: string[] } | null = null,
): Job {
  return {
    requestId,
    jobId: null,
    frameName: layout.frameName,
    layout,
    prompt,
    seed,
    status: 'sending',
    position: null,
    stage: null,
    step: 0,
    total: 0,
    elapsedMs: 0,
    denoiseFrom: null,
    cancelRequested: false,
    tiny: false,
    promptTruncated: false,
    error: null,
    insertedName: null,
    totalMs: null,
    model: null,
    selectionStamp,
    restored: false,
    edit: edit?.target ?? null,
    lineage: edit?.lineage ?? [],
    asNew: false,
    note: null,
  };
}

/** The layer indices whose images the main thread needs: a regeneration in place needs only the new ones. */
export function neededLayers(job: Job): number[] {
  const all = job.layout.regions.map((_, i) => i);
  return job.edit && !job.asNew ? all.filter((i) => !job.edit!.layers[i].kept) : all;
}

/** Version numbers along a job's lineage, for the job list: `v1 → v2 → v3`. */
export function versionOf(job: Pick<Job, 'lineage'>): number {
  return job.lineage.length + 1;
}

/** A job remembered in clientStorage, to be fetched from the bridge again. */
export function restoredJob(stored: StoredJob): Job {
  const edit = stored.edit ? { target: stored.edit, lineage: stored.lineage } : null;
  return { ...newJob(stored.requestId, stored.layout, stored.prompt, stored.seed, -1, edit), jobId: stored.jobId, status: 'restored', restored: true };
}

function update(jobs: readonly Job[], match: (j: Job) => boolean, change: (j: Job) => Partial<Job>): Job[] {
  return jobs.map((j) => (match(j) ? { ...j, ...change(j) } : j));
}

/** Finds the job a bridge message is about: by job id, else by request id. */
export function jobFor(jobs: readonly Job[], ids: { jobId?: string; requestId?: string }): Job | undefined {
  return (
    (ids.jobId !== undefined ? jobs.find((j) => j.jobId === ids.jobId) : undefined) ??
    (ids.requestId !== undefined ? jobs.find((j) => j.requestId === ids.requestId) : undefined)
  );
}

export function applyBridgeMessage(jobs: readonly Job[], message: BridgeMessage): Job[] {
  switch (message.type) {
    case 'queued': {
      const job = jobFor(jobs, message);
      if (!job || !isActive(job)) return [...jobs];
      return update(jobs, (j) => j === job, () => ({
        jobId: message.jobId,
        position: message.position,
        status: message.position === 0 ? 'running' : 'queued',
        note: message.note ?? null,
      }));
    }
    case 'progress': {
      const job = jobFor(jobs, message);
      if (!job || !isActive(job)) return [...jobs];
      return update(jobs, (j) => j === job, (j) => {
        // The run's clock went back: the job started again on another worker (queued.note says
        // so), and the pace is measured anew.
        const from = message.elapsedMs < j.elapsedMs ? null : j.denoiseFrom;
        return {
          status: 'running',
          position: 0,
          stage: message.stage,
          step: message.step,
          total: message.total,
          elapsedMs: message.elapsedMs,
          denoiseFrom: message.stage === 'denoise' ? (from ?? { step: message.step, elapsedMs: message.elapsedMs }) : from,
        };
      });
    }
    case 'done': {
      const job = jobFor(jobs, message);
      if (!job || !isActive(job)) return [...jobs];
      return update(jobs, (j) => j === job, (j) => ({
        // A job that finished while the plugin was closed waits for the designer to insert it.
        status: j.restored && message.fetched ? 'ready' : 'inserting',
        model: message.model,
        seed: message.seed,
        tiny: message.tiny,
        promptTruncated: message.promptTruncated,
        totalMs: message.timings.total ?? null,
      }));
    }
    case 'error': {
      const job = jobFor(jobs, message);
      if (!job) return [...jobs];
      const cancelled = message.code === 'cancelled';
      return update(jobs, (j) => j === job, () => ({
        status: cancelled ? 'cancelled' : 'failed',
        error: cancelled ? null : errorText(message),
      }));
    }
    default:
      return [...jobs];
  }
}
