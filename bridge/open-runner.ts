/**
 * Picks where jobs run, once, at start-up: this machine's pipeline thread (the default), or GPU
 * workers behind Redis (`--queue`).
 */
import { LocalRunner, type LocalPipeline } from './local-runner.ts';
import type { JobRunner } from './runner.ts';

export type RunnerChoice = { kind: 'local'; pipeline: LocalPipeline };

export async function openRunner(choice: RunnerChoice, log: (line: string) => void): Promise<JobRunner> {
  switch (choice.kind) {
    case 'local':
      return LocalRunner.start(choice.pipeline, log);
  }
}
