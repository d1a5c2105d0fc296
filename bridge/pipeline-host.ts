/**
 * The main thread's handle on the pipeline worker: start it, run a job, cancel it, stop it.
 * One job at a time (LocalExecutor's `busy` guarantees it).
 */
import type { Worker } from 'node:worker_threads';
import type { PipelineInfo, Progress } from '../gpu-server/pipeline/types.ts';
import { startTsWorker } from './ts-worker.ts';
import type { FromWorker, PipelineFactoryOptions, ToWorker, WorkerInit } from './worker-messages.ts';
import type { LayerPng } from './job-archive.ts';
import { JobAborted, type JobRequest, type JobResult } from './executor.ts';

interface Pending {
  seq: number;
  onProgress: (progress: Progress) => void;
  onPreview: (png: Uint8Array, step: number) => void;
  onLayer: (layer: LayerPng) => void;
  layers: LayerPng[];
  resolve: (result: JobResult) => void;
  reject: (error: Error) => void;
}

export class PipelineHost {
  private pending: Pending | undefined;
  private seq = 0;
  private dead: Error | undefined;
  private disposed: (() => void) | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly cancelFlag: Int32Array,
    readonly info: PipelineInfo,
  ) {
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (error) => this.die(new Error(`pipeline worker crashed: ${error.message}`)));
    worker.on('exit', (code) => this.die(new Error(`pipeline worker exited (code ${code})`)));
  }

  /** Starts the worker and waits until the pipeline is loaded (rejects with the load error). */
  static start(factory: string, options: PipelineFactoryOptions): Promise<PipelineHost> {
    const cancelBuffer = new SharedArrayBuffer(4);
    const init: WorkerInit = { factory, options, cancelFlag: cancelBuffer };
    const worker = startTsWorker(new URL('./pipeline-worker.ts', import.meta.url), { workerData: init });
    return new Promise((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.type === 'ready') {
          cleanup();
          resolve(new PipelineHost(worker, new Int32Array(cancelBuffer), m.info));
        } else if (m.type === 'load_failed') {
          cleanup();
          void worker.terminate();
          reject(new Error(`could not load the pipeline: ${m.message}`));
        }
      };
      const onError = (error: Error) => {
        cleanup();
        reject(new Error(`pipeline worker failed to start: ${error.message}`));
      };
      const onExit = (code: number) => {
        cleanup();
        reject(new Error(`pipeline worker exited during start (code ${code})`));
      };
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
  }

  get alive(): boolean {
    return this.dead === undefined;
  }

  /**
   * Runs one job; `cancel(seq)` with the returned seq stops it between steps. `onLayer` gets each
   * layer's PNG as soon as it is encoded (in index order); the result holds them all.
   */
  run(
    request: JobRequest,
    onProgress: (p: Progress) => void,
    onPreview: (png: Uint8Array, step: number) => void,
    onLayer: (layer: LayerPng) => void,
  ): { seq: number; result: Promise<JobResult> } {
    const seq = ++this.seq;
    const result = new Promise<JobResult>((resolve, reject) => {
      if (this.dead) return reject(this.dead);
      if (this.pending) return reject(new Error('pipeline is busy (one job at a time)'));
      this.pending = { seq, onProgress, onPreview, onLayer, layers: [], resolve, reject };
      this.send({ type: 'run', seq, request });
    });
    return { seq, result };
  }

  cancel(seq: number): void {
    if (this.pending?.seq !== seq) return;
    Atomics.store(this.cancelFlag, 0, seq);
    this.send({ type: 'cancel', seq });
  }

  /** Disposes the pipeline and stops the worker. */
  async dispose(): Promise<void> {
    if (this.dead) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5000); // a stuck dispose must not hold shutdown
      this.disposed = () => {
        clearTimeout(timer);
        resolve();
      };
      this.send({ type: 'dispose' });
    });
    this.dead = new Error('pipeline was disposed');
    await this.worker.terminate();
  }

  private send(message: ToWorker): void {
    this.worker.postMessage(message);
  }

  private onMessage(m: FromWorker): void {
    const p = this.pending;
    switch (m.type) {
      case 'progress':
        if (p?.seq === m.seq) p.onProgress(m.progress);
        break;
      case 'preview':
        if (p?.seq === m.seq) p.onPreview(m.png, m.step);
        break;
      case 'layer':
        if (p?.seq === m.seq) {
          p.layers.push(m.layer);
          p.onLayer(m.layer);
        }
        break;
      case 'result':
        if (p?.seq === m.seq) {
          this.pending = undefined;
          const { layerCount, ...rest } = m.result;
          if (p.layers.length !== layerCount) p.reject(new Error(`the pipeline worker sent ${p.layers.length} of ${layerCount} layers`));
          else p.resolve({ ...rest, layers: p.layers });
        }
        break;
      case 'failed':
        if (p?.seq === m.seq) {
          this.pending = undefined;
          p.reject(m.aborted ? new JobAborted(m.message) : new Error(m.message));
        }
        break;
      case 'disposed':
        this.disposed?.();
        break;
      default:
        break;
    }
  }

  private die(error: Error): void {
    if (this.dead) return;
    this.dead = error;
    const p = this.pending;
    this.pending = undefined;
    p?.reject(error);
    this.disposed?.();
  }
}
