/**
 * How many more jobs the front door may hand BullMQ for a model: one per worker with that model,
 * less the workers busy with jobs that are not this front door's (another front door, or one
 * before a restart), less this front door's own jobs for the model (dispatched or running). Never
 * more, so the fair order decided in `job-lifecycle.ts` holds: BullMQ never holds a backlog to reorder.
 * Pure: worker records in, a count out.
 */
import type { WorkerRecord } from './wire.ts';

/**
 * @param mine this front door's unfinished jobs for `model`
 * @param ended jobs this front door saw end recently: a worker record naming one is stale (written
 *   before the end), and that worker is idle
 * @returns undefined when no worker has the model
 */
export function idleWorkers(workers: readonly WorkerRecord[], model: string, mine: ReadonlySet<string>, ended: ReadonlySet<string> = new Set()): number | undefined {
  const withModel = workers.filter((w) => w.info.model === model);
  if (withModel.length === 0) return undefined;
  const foreign = withModel.filter((w) => w.jobId !== undefined && !mine.has(w.jobId) && !ended.has(w.jobId)).length;
  return Math.max(0, withModel.length - foreign - mine.size);
}
