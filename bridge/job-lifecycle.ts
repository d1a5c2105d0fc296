/**
 * The job lifecycle: queue a generate request, start jobs in fair order as the executor has idle
 * pipelines for them, forward their progress, previews and layers (each as soon as it is encoded:
 * client-layer-stream.ts), store each result before `done`, cancel, and replay stored jobs on `fetch`. A
 * job's base and kept layers are kept-layers.ts's. Knows nothing of sockets (it talks to
 * `Subscriber`s) nor of where jobs run (it talks to a `JobExecutor`).
 */
import { randomUUID } from 'node:crypto';
import { MERGED_LAYER } from '../domain/layout.ts';
import type { DecomposeParams, GenerateParams, PipelineInfo, Progress, SourceImage } from '../gpu-server/pipeline/types.ts';
import type { BridgeMessage, DecomposeMessage, ErrorCode, GenerateMessage, JobMessage, Timings } from './protocol/messages.ts';
import { encodeImageFrame, imageFrameHeaderBytes, writeImageFrameHeader } from './protocol/image-frame.ts';
import { doneMessage, ClientLayerStream, layerMessage } from './client-layer-stream.ts';
import { JobQueue } from './queue.ts';
import { JobArchive, NOT_ARCHIVED, type JobManifest, type LayerPng, type ArchivedLayer } from './job-archive.ts';
import { baseRefusal, KeptLayers, readBase } from './kept-layers.ts';
import { JobAborted, JobRefused, type ExecutorJob, type JobRequest, type JobResult, type JobRun, type JobExecutor, type RunEvents, type StartCheck } from './executor.ts';
import { modelMisfit } from './model-fit.ts';
import { shouldSendProgress, type LastSent } from './progress-throttle.ts';

/** A connection that follows jobs; sending to a closed one does nothing. */
export interface Subscriber {
  readonly id: string;
  readonly open: boolean;
  send(message: BridgeMessage): void;
  sendFrame(frame: Uint8Array): void;
  /** True once the subscriber has read enough of what was sent to take more; false if it closed
   *  or was dropped for not reading. Delivery of each layer waits for it. */
  drained(): Promise<boolean>;
}

export interface JobLimits {
  /** Jobs one connection may have waiting or running. */
  jobsPerClient: number;
  /** Jobs waiting in all. */
  queueLength: number;
  progressIntervalMs: number;
}

export interface JobLifecycleOptions {
  /** Job archive folder and how many finished jobs it keeps. */
  outputs: string;
  keepJobs: number;
  /** Where jobs run (chosen at start-up); `Jobs` disposes it. */
  executor: JobExecutor;
  /** At shutdown, cancel the running jobs instead of letting them finish. */
  cancelOnShutdown: boolean;
  limits: JobLimits;
  log: (line: string) => void;
}

interface Job {
  id: string;
  requestId: string;
  clientId: string;
  message: JobMessage;
  /** The model the job was made for; none yet: the default, once a studio's first worker announces one. */
  model: string | undefined;
  /** What it asks of the pipeline; a generation's base is read when it starts (kept-layers.ts). */
  request: QueuedRequest;
  /** A decomposition's uploaded PNG, as received (checked): stored with the job. */
  image?: Uint8Array;
  subscribers: Set<Subscriber>;
  queuedAt: number;
  createdAt: string;
  lastPosition?: number;
  lastNote?: string;
  run?: JobRun;
  cancelRequested: boolean;
  lastProgress?: LastSent;
  /** Its layers on their way to the subscribers, from when it starts running. */
  stream?: ClientLayerStream;
}

/** Why a job without a model waits, and what a studio front door's welcome says before its first worker. */
export const NO_MODEL_YET = 'no GPU worker has announced a model yet; jobs wait for the first one (npm run worker -- --queue <url> --model <dir>)';

export class JobLifecycle {
  private readonly queue: JobQueue<Job>;
  /** Waiting and running jobs by id. */
  private readonly active = new Map<string, Job>();
  private readonly running = new Set<Promise<void>>();
  /** Finished jobs still being sent to their subscribers (shutdown lets them finish). */
  private readonly deliveries = new Set<Promise<void>>();
  private closing = false;
  private readonly executor: JobExecutor;

  private constructor(
    private readonly options: JobLifecycleOptions,
    private readonly archive: JobArchive,
  ) {
    this.executor = options.executor;
    this.queue = new JobQueue<Job>({ perClient: options.limits.jobsPerClient, global: options.limits.queueLength });
    this.executor.onCapacity(() => {
      this.adoptDefaultModel();
      if (!this.closing) this.pump();
      this.updatePositions();
    });
  }

  /** Opens the job archive; the executor is already started. */
  static async open(options: JobLifecycleOptions): Promise<JobLifecycle> {
    const archive = new JobArchive(options.outputs, options.keepJobs);
    await archive.open();
    return new JobLifecycle(options, archive);
  }

  /** The default model: what a job is made for unless it names another (the first the executor offers); none before a studio's first worker. */
  defaultModel(): PipelineInfo | undefined {
    return this.executor.models()[0];
  }

  /** Every model jobs can be made for, the default first. */
  models(): PipelineInfo[] {
    return this.executor.models();
  }

  /** What `/health` shows about where jobs run. */
  executorHealth(): Record<string, unknown> {
    return this.executor.health();
  }

  get shuttingDown(): boolean {
    return this.closing;
  }

  get counts(): { waiting: number; running: number } {
    return { waiting: this.queue.waitingCount, running: this.queue.runningCount };
  }

  /**
   * Queues a request that already fits `model`; answers `queued` or `queue_full`. A request
   * with a base is first checked against the stored base job (answers its coded error).
   */
  submit(client: Subscriber, message: GenerateMessage, model: string | undefined): void {
    const request: QueuedRequest = { kind: 'generate', params: generateParams(message) };
    if (!message.base) return this.enqueue(client, message, model, request);
    if (model === undefined) throw new Error('a request with a base names its model');
    const { requestId } = message;
    const { jobId } = message.base;
    const activeState = this.active.has(jobId) ? (this.queue.position(jobId) === undefined ? 'running' : 'waiting') : undefined;
    baseRefusal(this.archive, { layout: message.layout, base: message.base }, model, activeState, this.options.keepJobs).then(
      (refusal) => {
        if (refusal) return client.send({ type: 'error', ...refusal, requestId });
        if (this.closing) return client.send({ type: 'error', code: 'shutting_down', message: 'the bridge is shutting down; start it again', requestId });
        this.enqueue(client, message, model, request);
      },
      (error: unknown) => client.send({ type: 'error', code: 'internal', message: `could not read the base job: ${String(error)}; try again`, requestId }),
    );
  }

  /**
   * Queues a decomposition whose image was received and checked (`png` as uploaded, `image` its
   * pixels); answers `queued` or `queue_full`. A refused one keeps nothing of the image.
   */
  submitDecompose(client: Subscriber, message: DecomposeMessage, model: string, png: Uint8Array, image: SourceImage): void {
    const { prompt, layout, params } = message;
    const { steps, guidance, trueCfg, seed, conditioningScale } = params;
    this.enqueue(client, message, model, { kind: 'decompose', params: { image, prompt, layout, steps, guidance, trueCfg, seed, conditioningScale } }, png);
  }

  private enqueue(client: Subscriber, message: JobMessage, model: string | undefined, request: QueuedRequest, image?: Uint8Array): void {
    const { requestId } = message;
    const job: Job = {
      id: randomUUID(),
      requestId,
      clientId: client.id,
      message,
      model,
      request,
      ...(image ? { image } : {}),
      subscribers: new Set([client]),
      queuedAt: Date.now(),
      createdAt: new Date().toISOString(),
      cancelRequested: false,
    };
    const added = this.queue.add(job.id, client.id, job);
    if (!added.ok) {
      const { limits } = this.options;
      const why =
        added.reason === 'client_full'
          ? `this connection already has ${limits.jobsPerClient} jobs queued or running; wait for one to finish`
          : `the queue is full (${limits.queueLength} jobs waiting); try again later`;
      return client.send({ type: 'error', code: 'queue_full', message: why, requestId });
    }
    this.active.set(job.id, job);
    const check = this.startCheck(job);
    job.lastPosition = added.position;
    job.lastNote = check.ok ? undefined : check.why;
    client.send({ type: 'queued', requestId, jobId: job.id, position: added.position, ...(job.lastNote ? { note: job.lastNote } : {}) });
    this.pump();
  }

  /** Drops a waiting job at once; asks a running one to stop (it answers `cancelled` when it does). */
  cancel(client: Subscriber, jobId: string): void {
    const job = this.active.get(jobId);
    if (!job)
      return client.send({
        type: 'error',
        code: 'unknown_job',
        message: `job ${jobId} is not queued or running (finished, cancelled, or never existed)`,
        jobId,
      });
    this.follow(job, client);
    if (this.queue.remove(jobId)) {
      this.active.delete(jobId);
      broadcast(job, { type: 'error', code: 'cancelled', message: 'job cancelled before it started', requestId: job.requestId, jobId });
      this.updatePositions();
      return;
    }
    this.requestCancel(job);
  }

  /** Follows a job still waiting or running, or replays a finished one from the job archive. */
  async fetch(client: Subscriber, jobId: string): Promise<void> {
    const active = this.active.get(jobId);
    if (active) {
      // Still waiting or running: follow it from here on. The request id is the submitter's, not sent.
      const position = this.queue.position(jobId) ?? 0;
      client.send({ type: 'queued', jobId, position });
      this.follow(active, client);
      return;
    }
    const read = await this.archive.manifest(jobId);
    if (!read.ok)
      return client.send({
        type: 'error',
        code: 'unknown_job',
        message:
          read.why === NOT_ARCHIVED
            ? `no finished job ${jobId} in the job archive (never existed, pruned, or lost because the bridge restarted before it finished: generate it again)`
            : `finished job ${jobId} cannot be replayed: ${read.why}; generate it again`,
        jobId,
      });
    const { manifest } = read;
    // One layer at a time, read from disk straight into its frame, as fast as the client reads.
    const frameOf = async (layer: ArchivedLayer) => {
      const frame = await this.archive.readLayer(jobId, layer.index, imageFrameHeaderBytes(jobId));
      writeImageFrameHeader(frame, { kind: 'layer', jobId, layerIndex: layer.index });
      return frame;
    };
    await replay(client, manifest, frameOf);
  }

  /** Adds a subscriber; once the job runs, it is sent every layer so far, then the rest as they come. */
  private follow(job: Job, client: Subscriber): void {
    if (job.subscribers.has(client)) return;
    job.subscribers.add(client);
    if (job.stream) this.track(job.stream.follow(client));
  }

  /** Keeps a delivery in `deliveries` until it ends (shutdown waits for them). */
  private track(sending: Promise<void>): void {
    const tracked = sending.catch((error: unknown) => this.options.log(`delivering a job failed: ${String(error)}`)).finally(() => this.deliveries.delete(tracked));
    this.deliveries.add(tracked);
  }

  /** A disconnect does not cancel: the job runs on and is stored for `fetch`. */
  unsubscribe(client: Subscriber): void {
    for (const job of this.active.values()) job.subscribers.delete(client);
  }

  /** Refuses new jobs, drops the waiting ones, finishes (or cancels) the running ones. */
  async shutdown(): Promise<void> {
    this.closing = true;
    for (const { id, item: job } of this.queue.waitingJobs()) {
      this.queue.remove(id);
      this.active.delete(id);
      broadcast(job, {
        type: 'error',
        code: 'shutting_down',
        message: 'the bridge shut down before this job started; start it again and resend',
        requestId: job.requestId,
        jobId: id,
      });
    }
    if (this.options.cancelOnShutdown) for (const { item } of this.queue.runningJobs()) this.requestCancel(item);
    await Promise.all(this.running);
    // Bounded: a subscriber that does not read is dropped after the drain timeout.
    await Promise.all(this.deliveries);
  }

  /** Stops the executor; call after `shutdown`. */
  dispose(): Promise<void> {
    return this.executor.dispose();
  }

  private requestCancel(job: Job): void {
    job.cancelRequested = true;
    job.run?.cancel();
  }

  private startCheck(job: Job): StartCheck {
    return job.model === undefined ? { ok: false, why: NO_MODEL_YET } : this.executor.canStart(job.model);
  }

  /** Waiting jobs made before any model was known take the default once there is one; one that does not fit it fails. */
  private adoptDefaultModel(): void {
    const info = this.defaultModel();
    if (!info) return;
    for (const { id, item: job } of this.queue.waitingJobs()) {
      if (job.model !== undefined) continue;
      const misfit = modelMisfit(info, job.message);
      if (!misfit) {
        job.model = info.model;
        continue;
      }
      this.queue.remove(id);
      this.active.delete(id);
      broadcast(job, { type: 'error', code: misfit.code, message: misfit.message, requestId: job.requestId, jobId: id });
    }
  }

  /** Tells every waiting job's subscribers where it stands (and why it waits, if not its turn), when that changed. */
  private updatePositions(): void {
    for (const { item: job } of this.queue.waitingJobs()) {
      const position = this.queue.position(job.id);
      if (position === undefined) continue;
      const check = this.startCheck(job);
      const note = check.ok ? undefined : check.why;
      if (position === job.lastPosition && note === job.lastNote) continue;
      job.lastPosition = position;
      job.lastNote = note;
      broadcast(job, { type: 'queued', requestId: job.requestId, jobId: job.id, position, ...(note ? { note } : {}) });
    }
  }

  /** Starts waiting jobs, in fair order, while the executor has an idle pipeline for them. */
  private pump(): void {
    for (;;) {
      const next = this.queue.start((job) => this.startCheck(job).ok);
      if (!next) break;
      const running: Promise<void> = this.run(next.item).finally(() => {
        this.queue.finish(next.id);
        this.active.delete(next.id);
        this.running.delete(running);
        if (!this.closing) this.pump();
        this.updatePositions();
      });
      this.running.add(running);
    }
    this.updatePositions();
  }

  /** Runs one job to its end; never rejects (failures go to the subscribers as errors). */
  private async run(job: Job): Promise<void> {
    if (job.lastPosition !== 0) broadcast(job, { type: 'queued', requestId: job.requestId, jobId: job.id, position: 0 });
    job.lastPosition = 0;
    const startedAt = Date.now();
    // Each layer goes out as soon as it is encoded, to every subscriber at its own pace; `done` once stored.
    const stream = new ClientLayerStream(job.id);
    job.stream = stream;
    for (const c of job.subscribers) this.track(stream.follow(c));
    try {
      // The base is read while the job already holds its place on the executor; other jobs start meanwhile.
      let kept = new KeptLayers();
      const wireBase = job.message.type === 'generate' ? job.message.base : undefined;
      const base = wireBase
        ? readBase(this.archive, wireBase).then((read) => {
            kept = read.kept;
            return read.base;
          })
        : undefined;
      const onLayer = (layer: LayerPng) => kept.before(layer, (index) => stream.has(index)).forEach((l) => stream.push(l));
      const { id: jobId, model, request } = job;
      if (model === undefined) throw new Error('never: a job starts only once its model is known (startCheck)');
      const executorJob: ExecutorJob = request.kind === 'generate' ? { jobId, model, ...request, ...(base ? { base } : {}) } : { jobId, model, ...request };
      job.run = this.executor.start(executorJob, this.runEvents(job, onLayer));
      if (job.cancelRequested) job.run.cancel();
      const result = await job.run.result;
      if (job.cancelRequested) throw new JobAborted('cancelled after the last step');
      const layers = kept.merge(result.layers);
      // Layers a executor did not stream go out now, in index order.
      for (const layer of layers) if (!stream.has(layer.index)) stream.push(layer);
      const manifest = await this.save(job, result, layers, startedAt);
      this.options.log(`job ${job.id} done in ${manifest.timings.total} ms (${request.kind === 'decompose' ? 'decomposed, ' : ''}${layers.length} layers${kept.size ? `, ${kept.size} kept from ${wireBase?.jobId}` : ''})`);
      stream.finish(manifest);
    } catch (error) {
      stream.abort();
      const cancelWhy = this.closing && this.options.cancelOnShutdown ? 'the bridge is shutting down' : 'cancel was requested';
      const failure = failureOf(error, job.cancelRequested, cancelWhy, job.request.kind);
      this.options.log(`job ${job.id} ${failure.log}`);
      broadcast(job, { type: 'error', code: failure.code, message: failure.message, requestId: job.requestId, jobId: job.id });
    }
  }

  /** What a running job tells its subscribers: progress (throttled), previews, notes; its layers go to `onLayer`. */
  private runEvents(job: Job, onLayer: (layer: LayerPng) => void): RunEvents {
    const { progressIntervalMs } = this.options.limits;
    return {
      onProgress: (progress: Progress) => {
        const now = Date.now();
        if (!shouldSendProgress(job.lastProgress, progress, now, progressIntervalMs)) return;
        job.lastProgress = { stage: progress.stage, at: now };
        broadcast(job, { type: 'progress', jobId: job.id, ...progress });
      },
      onPreview: (png: Uint8Array) => {
        const frame = encodeImageFrame({ kind: 'preview', jobId: job.id, layerIndex: MERGED_LAYER, png });
        job.subscribers.forEach((c) => c.sendFrame(frame));
      },
      onNote: (note: string) => broadcast(job, { type: 'queued', requestId: job.requestId, jobId: job.id, position: 0, note }),
      onLayer,
    };
  }

  /** Stores a finished job (before its `done`); returns its manifest. */
  private save(job: Job, result: JobResult, layers: LayerPng[], startedAt: number): Promise<JobManifest> {
    const finished = Date.now();
    const timings: Timings = { ...result.timings, queue: startedAt - job.queuedAt, total: finished - job.queuedAt };
    const { message } = job;
    return this.archive.save(
      {
        jobId: job.id,
        requestId: job.requestId,
        prompt: message.prompt,
        layout: message.layout,
        params: message.params,
        seed: result.seed,
        model: result.model,
        provider: result.provider,
        tiny: result.tiny,
        promptTruncated: result.promptTruncated,
        timings,
        createdAt: job.createdAt,
        finishedAt: new Date(finished).toISOString(),
        job: job.request.kind,
        ...(message.type === 'generate' && message.base ? { base: message.base } : {}),
      },
      layers,
      result.latents,
      job.image,
    );
  }
}

/** A job's request as it waits: a generation's base is read when it starts (kept-layers.ts). */
type QueuedRequest = { kind: 'generate'; params: Omit<GenerateParams, 'base'> } | { kind: 'decompose'; params: DecomposeParams };

/** A generate message's pipeline parameters, its base aside. */
function generateParams(message: GenerateMessage): Omit<GenerateParams, 'base'> {
  const { steps, guidance, trueCfg, seed } = message.params;
  return { prompt: message.prompt, layout: message.layout, steps, guidance, trueCfg, seed };
}

/** The error a failed run sends, and the log line's end: refused with a code, cancelled, or failed. */
function failureOf(error: unknown, cancelRequested: boolean, cancelWhy: string, kind: JobRequest['kind']): { code: ErrorCode; message: string; log: string } {
  if (error instanceof JobRefused) return { code: error.code, message: error.message, log: `refused: ${error.message}` };
  if (error instanceof JobAborted || cancelRequested) return { code: 'cancelled', message: `job cancelled: ${cancelWhy}`, log: 'cancelled' };
  const message = error instanceof Error ? error.message : String(error);
  return {
    code: 'generation_failed',
    message: `${kind === 'decompose' ? 'decomposition' : 'generation'} failed: ${message}. Check the bridge's console; try again or restart the bridge.`,
    log: `failed: ${message}`,
  };
}

function broadcast(job: Job, message: BridgeMessage): void {
  job.subscribers.forEach((c) => c.send(message));
}

/**
 * Replays a stored job: each layer's header then its PNG frame, then `done` (`fetched: true`).
 * Waits before each layer until the client has read what was sent (see Subscriber.drained), so a
 * client that does not read costs at most a high-water mark of memory, never a whole job per request.
 */
async function replay(client: Subscriber, manifest: JobManifest, frameOf: (layer: ArchivedLayer) => Promise<Uint8Array>): Promise<void> {
  for (const layer of manifest.layers) {
    if (!(await client.drained())) return;
    const frame = await frameOf(layer);
    if (!client.open) return;
    client.send(layerMessage(manifest.jobId, layer, frame));
    client.sendFrame(frame);
  }
  client.send(doneMessage(manifest, true));
}
