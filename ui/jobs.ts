/**
 * The UI's record of one job and how bridge messages move it along: one shape per status, so a
 * field exists exactly where it means something (a job id once the bridge queued it, a result once
 * it is done). Pure: each function returns the next job list; images live in ui/job-desk.ts.
 */
import type { Stage } from '../domain/stage.ts';
import type { BridgeMessage } from '../bridge/protocol/messages.ts';
import type { RememberedJob } from '../plugin/remembered-jobs.ts';
import type { FrameLayout } from '../plugin/layout.ts';
import type { EditTarget } from '../plugin/regenerate.ts';
import { errorText } from './words.ts';

/**
 * What the designer asked for: layers drawn for a frame's layout, or a flat picture taken apart
 * along marks drawn over it. Every kind turns into the same layers on the canvas; each has its own
 * submit in ui/job-desk.ts.
 */
import type { JobKind } from '../domain/job-kind.ts';
export type { JobKind };

/** What every job carries, whatever its status. */
interface JobBase {
  kind: JobKind;
  requestId: string;
  frameName: string;
  /** The layout the layers land on: the source frame's, or the result frame's for a regeneration. */
  layout: FrameLayout;
  prompt: string;
  seed: number;
  /** The selection stamp at Generate (plugin/messages.ts); -1 for restored jobs: never select. */
  selectionStamp: number;
  /** Remembered from an earlier session of the plugin: queued by another connection. */
  restored: boolean;
  /** A regeneration: the result frame and nodes its images replace in place; null for a generation. */
  edit: EditTarget | null;
  /** The jobs this one was regenerated from, oldest first: it is version `lineage.length + 1`. */
  lineage: string[];
  /** Insert as a new frame, even a regeneration or a job inserted before. */
  asNew: boolean;
}

/** How far a running job is, from the bridge's `progress`. */
export interface Progress {
  stage: Stage | null;
  step: number;
  total: number;
  elapsedMs: number;
  /** First denoising progress seen, for the pace estimate. */
  denoiseFrom: { step: number; elapsedMs: number } | null;
}

/** What the bridge's `done` said of a finished job. */
export interface JobResult {
  model: string;
  tiny: boolean;
  promptTruncated: boolean;
  totalMs: number | null;
}

/**
 * `held`: not sent yet, because this window already has as many jobs at the bridge as it takes
 * from one connection; `restored`: remembered from an earlier session, asked of the bridge again;
 * `refetching`: an inserted job's layers asked of the bridge again, to insert that version as a
 * new frame; `ready`: finished while the plugin was closed, waiting for the designer's Insert;
 * `insert-failed`: the layers are kept and the insert can be tried again. `cancelRequested`: the
 * designer pressed Cancel and the bridge has not answered yet.
 */
export type Job = JobBase &
  (
    | { status: 'held' }
    | { status: 'sending'; cancelRequested: boolean }
    | { status: 'restored'; jobId: string; cancelRequested: boolean }
    | { status: 'queued'; jobId: string; position: number; note: string | null; cancelRequested: boolean }
    /** `note`: the bridge's word on why the job waits or started again (`queued.note`). */
    | { status: 'running'; jobId: string; progress: Progress; note: string | null; cancelRequested: boolean }
    | { status: 'refetching'; jobId: string; result: JobResult }
    | { status: 'inserting'; jobId: string; result: JobResult }
    | { status: 'ready'; jobId: string; result: JobResult }
    /** `error`: a later try to insert it again could not start. */
    | { status: 'inserted'; jobId: string; result: JobResult; insertedName: string; error: string | null }
    | { status: 'insert-failed'; jobId: string; result: JobResult; error: string }
    | { status: 'failed'; jobId: string | null; error: string }
    | { status: 'cancelled'; jobId: string | null }
  );

export type JobStatus = Job['status'];
export type JobIn<S extends JobStatus> = Extract<Job, { status: S }>;
/** A job the bridge has finished, with its result. */
export type FinishedJob = JobIn<'refetching' | 'inserting' | 'ready' | 'inserted' | 'insert-failed'>;

export const ACTIVE: readonly JobStatus[] = ['held', 'sending', 'restored', 'refetching', 'queued', 'running'];

export function isActive(job: Job): job is JobIn<'held' | 'sending' | 'restored' | 'refetching' | 'queued' | 'running'> {
  return ACTIVE.includes(job.status);
}

/** The bridge's job id, once it queued the job. */
export function jobIdOf(job: Job): string | null {
  return 'jobId' in job ? job.jobId : null;
}

/** The job's base, the fields every status carries (for moving it to another status). */
export function baseOf(job: Job): JobBase {
  const { kind, requestId, frameName, layout, prompt, seed, selectionStamp, restored, edit, lineage, asNew } = job;
  return { kind, requestId, frameName, layout, prompt, seed, selectionStamp, restored, edit, lineage, asNew };
}

/** A finished job's base, id and result (for moving it to another finished status). */
export function finishedBase(job: FinishedJob): JobBase & { jobId: string; result: JobResult } {
  return { ...baseOf(job), jobId: job.jobId, result: job.result };
}

/**
 * How many held jobs may be sent now: the bridge refuses a connection more than `limit` jobs
 * waiting or running (`queue_full`), so the rest wait here. Jobs restored from an earlier session
 * were queued by another connection and do not count.
 */
export function roomAtBridge(jobs: readonly Job[], limit: number): number {
  const atBridge = jobs.filter((j) => !j.restored && (j.status === 'sending' || j.status === 'queued' || j.status === 'running')).length;
  return Math.max(0, limit - atBridge);
}

/** A new job, held until the bridge has room for it. */
export function newJob(
  requestId: string,
  layout: FrameLayout,
  prompt: string,
  seed: number,
  selectionStamp: number,
  edit: { target: EditTarget; lineage: string[] } | null = null,
  kind: JobKind = 'generate',
): JobIn<'held'> {
  return {
    kind,
    requestId,
    frameName: layout.frameName,
    layout,
    prompt,
    seed,
    selectionStamp,
    restored: false,
    edit: edit?.target ?? null,
    lineage: edit?.lineage ?? [],
    asNew: false,
    status: 'held',
  };
}

/** Version numbers along a job's lineage, for the job list: `v1 → v2 → v3`. */
export function versionOf(job: Pick<Job, 'lineage'>): number {
  return job.lineage.length + 1;
}

/** A job remembered in clientStorage, to be fetched from the bridge again. */
export function restoredJob(stored: RememberedJob): JobIn<'restored'> {
  const edit = stored.edit ? { target: stored.edit, lineage: stored.lineage } : null;
  const base = newJob(stored.requestId, stored.layout, stored.prompt, stored.seed, -1, edit, stored.kind);
  return { ...base, restored: true, status: 'restored', jobId: stored.jobId, cancelRequested: false };
}

/** Finds the job a bridge message is about: by job id, else by request id; none for a message about no job. */
export function jobFor(jobs: readonly Job[], message: object): Job | undefined {
  const byJobId = 'jobId' in message ? jobs.find((j) => jobIdOf(j) === message.jobId) : undefined;
  return byJobId ?? ('requestId' in message ? jobs.find((j) => j.requestId === message.requestId) : undefined);
}

const NO_PROGRESS: Progress = { stage: null, step: 0, total: 0, elapsedMs: 0, denoiseFrom: null };

/** The job's next shape after one bridge message about it, or the job itself when the message changes nothing. */
function next(job: Job, message: BridgeMessage): Job {
  const base = baseOf(job);
  const cancelRequested = 'cancelRequested' in job && job.cancelRequested;
  switch (message.type) {
    case 'queued': {
      if (!isActive(job)) return job;
      const note = message.note ?? null;
      if (message.position > 0) return { ...base, status: 'queued', jobId: message.jobId, position: message.position, note, cancelRequested };
      const progress = job.status === 'running' ? job.progress : NO_PROGRESS;
      return { ...base, status: 'running', jobId: message.jobId, progress, note, cancelRequested };
    }
    case 'progress': {
      if (!isActive(job)) return job;
      // The run's clock went back: the job started again on another worker (queued.note says
      // so), and the pace is measured anew.
      const was = job.status === 'running' && message.elapsedMs >= job.progress.elapsedMs ? job.progress : NO_PROGRESS;
      const progress: Progress = {
        stage: message.stage,
        step: message.step,
        total: message.total,
        elapsedMs: message.elapsedMs,
        denoiseFrom: message.stage === 'denoise' ? (was.denoiseFrom ?? { step: message.step, elapsedMs: message.elapsedMs }) : was.denoiseFrom,
      };
      const note = job.status === 'queued' || job.status === 'running' ? job.note : null;
      return { ...base, status: 'running', jobId: message.jobId, progress, note, cancelRequested };
    }
    case 'done': {
      if (!isActive(job)) return job;
      const result: JobResult = {
        model: message.model,
        tiny: message.tiny,
        promptTruncated: message.promptTruncated,
        totalMs: message.timings.total ?? null,
      };
      // A job that finished while the plugin was closed waits for the designer to insert it.
      const status = job.restored && message.fetched ? 'ready' : 'inserting';
      return { ...base, seed: message.seed, status, jobId: message.jobId, result };
    }
    case 'error': {
      const jobId = jobIdOf(job);
      if (message.code === 'cancelled') return { ...base, status: 'cancelled', jobId };
      return { ...base, status: 'failed', jobId, error: errorText(message) };
    }
    default:
      return job;
  }
}

/** The job list after one bridge message: the job it is about moves on, the others stay. */
export function applyBridgeMessage(jobs: readonly Job[], message: BridgeMessage): Job[] {
  if (message.type !== 'queued' && message.type !== 'progress' && message.type !== 'done' && message.type !== 'error') return [...jobs];
  const job = jobFor(jobs, message);
  return jobs.map((j) => (j === job ? next(j, message) : j));
}
