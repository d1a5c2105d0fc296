/**
 * Picks where jobs run, once, at start-up: this machine's pipeline thread (the default), or GPU
 * workers behind Redis (`--queue`).
 */
import { LocalRunner, type LocalPipeline } from './local-runner.ts';
import type { JobRunner } from './runner.ts';
import type { RedisTarget } from './studio/redis-target.ts';

export type RunnerChoice =
  | { kind: 'local'; pipeline: LocalPipeline }
  /**
   * A studio's front door: `checkMs` is how often it reads the worker list and checks its jobs,
   * `stalledMs` how often it looks for jobs whose worker stopped renewing their lock.
   */
  | { kind: 'queue'; target: RedisTarget; checkMs: number; stalledMs: number };

export async function openRunner(choice: RunnerChoice, log: (line: string) => void): Promise<JobRunner> {
  switch (choice.kind) {
    case 'local':
      return LocalRunner.start(choice.pipeline, log);
    case 'queue': {
      // Loaded only here: the single-machine bridge never loads BullMQ nor needs Redis.
      const { QueueRunner } = await import('./studio/queue-runner.ts');
      return QueueRunner.connect({ target: choice.target, checkMs: choice.checkMs, stalledMs: choice.stalledMs, log });
    }
  }
}
