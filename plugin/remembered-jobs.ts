/**
 * Jobs that outlive the plugin window. At `queued` the UI hands the main thread what inserting
 * needs (job id, request id, the source frame's layout with its regions and scale, seed, prompt);
 * it is kept in figma.clientStorage, so after the window closes and opens again the plugin can
 * fetch the finished job from the bridge and insert it, once: inserted jobs are marked.
 *
 * clientStorage holds 5 MB per plugin in all (Figma, Version 1 Update 109: "The total client
 * storage limit is now 5 MB"), shared with the settings, so the list is bounded by count and by
 * size, oldest dropped first. Stored data may be damaged or from another version: every entry is
 * checked on load and anything unusable is dropped.
 */
import { z } from 'zod';
import { frameLayoutSchema, type FrameLayout } from './layout.ts';
import { editTargetSchema, type EditTarget } from './regenerate.ts';
import { MAX_LINEAGE } from './result-data.ts';
import { JOB_KINDS, type JobKind } from '../domain/job-kind.ts';
import type { SettingsStore } from './settings.ts';

export const REMEMBERED_JOBS_KEY = 'art-for-figma/jobs/v1';
/** Most jobs remembered; a designer rarely has more in flight or uninserted. */
export const MAX_REMEMBERED_JOBS = 40;
/** Most characters of JSON the list may take (a 52-layer layout is ~8 kB): 1 MB of the 5 MB. */
export const MAX_REMEMBERED_CHARS = 1_000_000;

export interface RememberedJob {
  jobId: string;
  /** A generation or a decomposition: what the job list calls it when it comes back. */
  kind: JobKind;
  requestId: string;
  /** The layout the job was generated from: source frame id and name, regions, scale. */
  layout: FrameLayout;
  seed: number;
  prompt: string;
  /** ms since the epoch, when the bridge queued it. */
  queuedAt: number;
  /** The result frame's id once inserted; null while not. */
  insertedFrameId: string | null;
  /** A regeneration: the result frame and nodes its images go to; null for a generation. */
  edit: EditTarget | null;
  /** The jobs this one was regenerated from, oldest first. */
  lineage: string[];
}

const rememberedJobSchema: z.ZodType<RememberedJob, z.ZodTypeDef, unknown> = z
  .object({
    jobId: z.string(),
    kind: z.enum(JOB_KINDS),
    requestId: z.string(),
    layout: frameLayoutSchema,
    seed: z.number().finite(),
    prompt: z.string(),
    queuedAt: z.number().finite(),
    insertedFrameId: z.string().nullable(),
    edit: editTargetSchema.nullable(),
    lineage: z.array(z.string()).max(MAX_LINEAGE),
  })
  .refine((j) => !j.edit || j.edit.layers.length === j.layout.regions.length, 'an edit plan has one layer per region');

/** The usable entries of whatever was stored (nothing, another version, damage). */
export function parseRememberedJobs(raw: unknown): RememberedJob[] {
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((entry) => {
    const parsed = rememberedJobSchema.safeParse(entry);
    return parsed.success ? [parsed.data] : [];
  });
}

/** Drops the oldest entries until the list fits both bounds. */
function bounded(jobs: RememberedJob[]): RememberedJob[] {
  const kept = [...jobs].sort((a, b) => a.queuedAt - b.queuedAt);
  while (kept.length > MAX_REMEMBERED_JOBS) kept.shift();
  while (kept.length > 0 && JSON.stringify(kept).length > MAX_REMEMBERED_CHARS) kept.shift();
  return kept;
}

/** Adds or replaces (same job id) an entry. */
export function withJob(jobs: readonly RememberedJob[], job: RememberedJob): RememberedJob[] {
  return bounded([...jobs.filter((j) => j.jobId !== job.jobId), job]);
}

export function withInserted(jobs: readonly RememberedJob[], jobId: string, frameId: string): RememberedJob[] {
  return jobs.map((j) => (j.jobId === jobId ? { ...j, insertedFrameId: frameId } : j));
}

export function withoutJob(jobs: readonly RememberedJob[], jobId: string): RememberedJob[] {
  return jobs.filter((j) => j.jobId !== jobId);
}

/**
 * The list in clientStorage. Changes are applied one after another (each reads what the last
 * wrote), so two messages handled close together cannot lose each other's update. A failed write
 * (quota) is reported to the caller and leaves the last good list stored.
 */
export class RememberedJobs {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly storage: SettingsStore) {}

  async list(): Promise<RememberedJob[]> {
    await this.queue.catch(() => undefined);
    return parseRememberedJobs(await this.storage.getAsync(REMEMBERED_JOBS_KEY));
  }

  update(change: (jobs: RememberedJob[]) => RememberedJob[]): Promise<RememberedJob[]> {
    const run = this.queue
      .catch(() => undefined)
      .then(async () => {
        const next = change(parseRememberedJobs(await this.storage.getAsync(REMEMBERED_JOBS_KEY)));
        await this.storage.setAsync(REMEMBERED_JOBS_KEY, next);
        return next;
      });
    this.queue = run;
    return run;
  }
}
