/**
 * Picks where jobs run, once, at start-up: this machine's pipeline thread (the default), or GPU
 * workers behind Redis (`--queue`).
 */
import { LocalExecutor, type LocalPipeline } from './local-executor.ts';
import type { JobExecutor } from './executor.ts';
import type { RedisTarget } from './studio/redis-target.ts';

export type ExecutorChoice =
  | { kind: 'local'; pipeline: LocalPipeline }
  /**
   * A studio's front door: `checkMs` is how often it reads the worker list and checks its jobs,
   * `stalledMs` how often it looks for jobs whose worker stopped renewing their lock.
   */
  | { kind: 'queue'; target: RedisTarget; checkMs: number; stalledMs: number };

export async function openExecutor(choice: ExecutorChoice, log: (line: string) => void): Promise<JobExecutor> {
  switch (choice.kind) {
    case 'local':
      return LocalExecutor.start(choice.pipeline, log);
    case 'queue': {
      // Loaded only here: the single-machine bridge never loads BullMQ nor needs Redis.
      const { QueueExecutor } = await import('./studio/queue-executor.ts');
      return QueueExecutor.connect({ target: choice.target, checkMs: choice.checkMs, stalledMs: choice.stalledMs, log });
    }
  }
}
