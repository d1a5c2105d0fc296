/**
 * Progress is sent at most about every `intervalMs`; a new stage and the last step of a stage
 * always go through, so a client never misses where the job is.
 */
import type { Stage } from '../domain/stage.ts';
import type { Progress } from '../gpu-server/pipeline/types.ts';

export interface LastSent {
  stage: Stage;
  at: number;
}

export function shouldSendProgress(last: LastSent | undefined, progress: Progress, now: number, intervalMs: number): boolean {
  if (!last || last.stage !== progress.stage) return true;
  if (progress.step >= progress.total) return true;
  return now - last.at >= intervalMs;
}
