/**
 * Jobs run on this machine: one pipeline worker thread, one job at a time. A worker thread that
 * died (a native crash) is replaced before the next job, loading the same pipeline.
 */
import type { PipelineInfo } from '../gpu-server/pipeline/types.ts';
import { PipelineHost } from './pipeline-host.ts';
import { jobRequest, type JobRun, type JobExecutor, type RunEvents, type ExecutorJob, type StartCheck } from './executor.ts';
import type { PipelineFactoryOptions } from './worker-messages.ts';

export interface LocalPipeline {
  /** URL or absolute path of a module exporting `createPipeline(options)`. */
  factory: string;
  options: PipelineFactoryOptions;
}

export class LocalExecutor implements JobExecutor {
  private busy = false;
  private readonly listeners: (() => void)[] = [];

  private constructor(
    private readonly pipeline: LocalPipeline,
    private host: PipelineHost,
    private readonly log: (line: string) => void,
  ) {}

  /** Starts the pipeline worker and waits until the pipeline is loaded (rejects with the load error). */
  static async start(pipeline: LocalPipeline, log: (line: string) => void): Promise<LocalExecutor> {
    return new LocalExecutor(pipeline, await PipelineHost.start(pipeline.factory, pipeline.options), log);
  }

  /** What the worker loaded at start (a restarted worker loads the same). */
  get info(): PipelineInfo {
    return this.host.info;
  }

  models(): PipelineInfo[] {
    return [this.host.info];
  }

  canStart(model: string): StartCheck {
    if (model !== this.host.info.model) return { ok: false, why: `this bridge runs model "${this.host.info.model}" only` };
    return this.busy ? { ok: false } : { ok: true };
  }

  start(job: ExecutorJob, events: RunEvents): JobRun {
    this.busy = true;
    let seq: number | undefined;
    let cancelled = false;
    const result = (async () => {
      const request = await jobRequest(job);
      if (!this.host.alive) {
        this.log('pipeline worker is gone; starting a new one');
        this.host = await PipelineHost.start(this.pipeline.factory, this.pipeline.options);
      }
      const run = this.host.run(request, events.onProgress, events.onPreview, events.onLayer);
      seq = run.seq;
      if (cancelled) this.host.cancel(run.seq);
      return run.result;
    })().finally(() => {
      this.busy = false;
      // After the caller's own handlers (it frees the job's queue slot first).
      queueMicrotask(() => this.listeners.forEach((l) => l()));
    });
    return {
      result,
      cancel: () => {
        cancelled = true;
        if (seq !== undefined) this.host.cancel(seq);
      },
    };
  }

  onCapacity(listener: () => void): void {
    this.listeners.push(listener);
  }

  health(): Record<string, unknown> {
    return {};
  }

  dispose(): Promise<void> {
    return this.host.dispose();
  }
}
