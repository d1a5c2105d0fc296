/**
 * The job lifecycle: queue a generate request, start jobs in fair order as the runner has idle
 * pipelines for them, forward their progress, previews and layers (each as soon as it is
 * encoded: layer-feed.ts), store each result before `done`, cancel, and replay stored jobs on `fetch`. Knows nothing of sockets (it talks to
 * `Subscriber`s) nor of where jobs run (it talks to a `JobRunner`).
 */
import { randomUUID } from 'node:crypto';
import { MERGED_LAYER } from '../gpu-server/constants.ts';
import { checkKeep, KeepError } from '../gpu-server/pipeline/keep.ts';
import type { GenerateParams, PipelineInfo, Progress } from '../gpu-server/pipeline/types.ts';
import { encodeImageFrame, imageFrameHeaderBytes, writeImageFrameHeader, type BridgeMessage, type ErrorCode, type GenerateMessage, type Timings } from './protocol.ts';
import { doneMessage, LayerFeed, layerMessage } from './layer-feed.ts';
import { JobQueue } from './queue.ts';
import { JobStore, type JobManifest, type LayerPng, type StoredLayer } from './job-store.ts';
import { JobAborted, type JobRun, type JobRunner, type StartCheck } from './runner.ts';
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

export interface JobsOptions {
  /** Job store folder and how many finished jobs it keeps. */
  outputs: string;
  keepJobs: number;
  /** Where jobs run (chosen at start-up); `Jobs` disposes it. */
  runner: JobRunner;
  /** At shutdown, cancel the running jobs instead of letting them finish. */
  cancelOnShutdown: boolean;
  limits: JobLimits;
  log: (line: string) => void;
}

interface Job {
  id: string;
  requestId: string;
  clientId: string;
  message: GenerateMessage;
  /** The model the job was made for; none yet: the default, once a studio's first worker announces one. */
  model: string | undefined;
  params: GenerateParams;
  subscribers: Set<Subscriber>;
  queuedAt: number;
  createdAt: string;
  lastPosition?: number;
  lastNote?: string;
  run?: JobRun;
  cancelRequested: boolean;
  lastProgress?: LastSent;
  /** Its layers on their way to the subscribers, from when it starts running. */
  feed?: LayerFeed;
}

/** A job refused with a code before or while it runs (e.g. its base was pruned meanwhile). */
class JobRefused extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

type Refusal = { code: ErrorCode; message: string };

/** Why a job without a model waits, and what a studio front door's welcome says before its first worker. */
export const NO_MODEL_YET = 'no GPU worker has announced a model yet; jobs wait for the first one (npm run worker -- --queue <url> --model <dir>)';

export class Jobs {
  private readonly queue: JobQueue<Job>;
  /** Waiting and running jobs by id. */
  private readonly active = new Map<string, Job>();
  private readonly running = new Set<Promise<void>>();
  /** Finished jobs still being sent to their subscribers (shutdown lets them finish). */
  private readonly deliveries = new Set<Promise<void>>();
  private closing = false;
  /** A starting job is reading its base from the store (see run). */
  private readingBase = false;
  private readonly runner: JobRunner;

  private constructor(
    private readonly options: JobsOptions,
    private readonly store: JobStore,
  ) {
    this.runner = options.runner;
    this.queue = new JobQueue<Job>({ perClient: options.limits.jobsPerClient, global: options.limits.queueLength });
    this.runner.onCapacity(() => {
      this.adoptDefaultModel();
      if (!this.closing) this.pump();
      this.updatePositions();
    });
  }

  /** Opens the job store; the runner is already started. */
  static async open(options: JobsOptions): Promise<Jobs> {
    const store = new JobStore(options.outputs, options.keepJobs);
    await store.open();
    return new Jobs(options, store);
  }

  /** The default model: what a job is made for unless it names another (the first the runner offers); none before a studio's first worker. */
  defaultModel(): PipelineInfo | undefined {
    return this.runner.models()[0];
  }

  /** Every model jobs can be made for, the default first. */
  models(): PipelineInfo[] {
    return this.runner.models();
  }

  /** What `/health` shows about where jobs run. */
  runnerHealth(): Record<string, unknown> {
    return this.runner.health();
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
    if (!message.base) return this.enqueue(client, message, model);
    const { requestId } = message;
    if (model === undefined) throw new Error('a request with a base names its model');
    this.baseRefusal(message, model).then(
      (refusal) => {
        if (refusal) return client.send({ type: 'error', ...refusal, requestId });
        if (this.closing) return client.send({ type: 'error', code: 'shutting_down', message: 'the bridge is shutting down; start it again', requestId });
        this.enqueue(client, message, model);
      },
      (error: unknown) => client.send({ type: 'error', code: 'internal', message: `could not read the base job: ${String(error)}; try again`, requestId }),
    );
  }

  /** Why a request's base cannot be used, or undefined: unknown, still running, another model or canvas, a bad keep list. */
  private async baseRefusal(message: GenerateMessage, model: string): Promise<Refusal | undefined> {
    if (!message.base) return undefined;
    const { jobId, keep } = message.base;
    const active = this.active.get(jobId);
    if (active)
      return {
        code: 'base_running',
        message: `base job ${jobId} is still ${this.queue.position(jobId) === undefined ? 'running' : 'waiting'}; wait for its done, then regenerate from it`,
      };
    const manifest = await this.store.loadManifest(jobId);
    if (!manifest || !manifest.latents)
      return {
        code: 'base_not_found',
        message: manifest
          ? `base job ${jobId} was stored before the bridge kept latents, so its layers cannot be kept; generate anew`
          : `base job ${jobId} is not in the job store (never existed, or pruned: the bridge keeps the last ${this.options.keepJobs} jobs, see --keep-jobs); generate anew`,
      };
    try {
      checkKeep(message.layout, { model: manifest.model, layout: manifest.layout }, keep, model);
    } catch (error) {
      if (!(error instanceof KeepError)) throw error;
      return { code: error.code === 'base_latents' ? 'base_not_found' : error.code, message: error.message };
    }
    return undefined;
  }

  private enqueue(client: Subscriber, message: GenerateMessage, model: string | undefined): void {
    const { requestId } = message;
    const job: Job = {
      id: randomUUID(),
      requestId,
      clientId: client.id,
      message,
      model,
      params: {
        prompt: message.prompt,
        layout: message.layout,
        steps: message.params.steps,
        guidance: message.params.guidance,
        trueCfg: message.params.trueCfg,
        seed: message.params.seed,
      },
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

  /** Follows a job still waiting or running, or replays a finished one from the job store. */
  async fetch(client: Subscriber, jobId: string): Promise<void> {
    const active = this.active.get(jobId);
    if (active) {
      // Still waiting or running: follow it from here on. The request id is the submitter's, not sent.
      const position = this.queue.position(jobId) ?? 0;
      client.send({ type: 'queued', jobId, position });
      this.follow(active, client);
      return;
    }
    const manifest = await this.store.manifest(jobId);
    if (!manifest)
      return client.send({ type: 'error', code: 'unknown_job', message: `no finished job ${jobId} in the job store (never existed, pruned, or lost because the bridge restarted before it finished: generate it again)`, jobId });
    // One layer at a time, read from disk straight into its frame, as fast as the client reads.
    const frameOf = async (layer: StoredLayer) => {
      const frame = await this.store.readLayer(jobId, layer.index, imageFrameHeaderBytes(jobId));
      writeImageFrameHeader(frame, { kind: 'layer', jobId, layerIndex: layer.index });
      return frame;
    };
    await deliver(client, manifest, frameOf, true);
  }

  /** Adds a subscriber; once the job runs, it is sent every layer so far, then the rest as they come. */
  private follow(job: Job, client: Subscriber): void {
    if (job.subscribers.has(client)) return;
    job.subscribers.add(client);
    if (job.feed) this.track(job.feed.follow(client));
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

  /** Stops the runner; call after `shutdown`. */
  dispose(): Promise<void> {
    return this.runner.dispose();
  }

  /**
   * Reads a job's base from the store as it starts (it may have been pruned since it was queued)
   * into its params; returns the base's PNGs of the kept layers, by their new index.
   */
  private async attachBase(job: Job): Promise<Map<number, LayerPng>> {
    const base = job.message.base;
    if (!base) return new Map();
    const read = await this.store.loadBase(base.jobId, base.keep.map((k) => k.from));
    if (!read.ok) throw new JobRefused('base_not_found', `base job ${base.jobId} can no longer be read: ${read.why}; generate anew`);
    job.params.base = { model: read.manifest.model, latents: read.latents, keep: base.keep };
    return new Map(base.keep.map(({ from, to }) => {
      const png = read.layers.get(from) as LayerPng;
      return [to, { ...png, index: to }];
    }));
  }

  private requestCancel(job: Job): void {
    job.cancelRequested = true;
    job.run?.cancel();
  }

  private startCheck(job: Job): StartCheck {
    return job.model === undefined ? { ok: false, why: NO_MODEL_YET } : this.runner.canStart(job.model);
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

  /** Starts waiting jobs, in fair order, while the runner has an idle pipeline for them. */
  private pump(): void {
    for (;;) {
      const next = this.queue.start((job) => !this.readingBase && this.startCheck(job).ok);
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
    const { limits, log } = this.options;
    if (job.lastPosition !== 0) broadcast(job, { type: 'queued', requestId: job.requestId, jobId: job.id, position: 0 });
    job.lastPosition = 0;
    const startedAt = Date.now();
    // Each layer goes out as soon as it is encoded, to every subscriber at its own pace; `done` once stored.
    const feed = new LayerFeed(job.id);
    job.feed = feed;
    for (const c of job.subscribers) this.track(feed.follow(c));
    try {
      const onProgress = (progress: Progress) => {
        const now = Date.now();
        if (!shouldSendProgress(job.lastProgress, progress, now, limits.progressIntervalMs)) return;
        job.lastProgress = { stage: progress.stage, at: now };
        broadcast(job, { type: 'progress', jobId: job.id, ...progress });
      };
      const onPreview = (png: Uint8Array) => {
        const frame = encodeImageFrame({ kind: 'preview', jobId: job.id, layerIndex: MERGED_LAYER, png });
        job.subscribers.forEach((c) => c.sendFrame(frame));
      };
      const onNote = (note: string) => broadcast(job, { type: 'queued', requestId: job.requestId, jobId: job.id, position: 0, note });
      let kept = new Map<number, LayerPng>();
      if (job.message.base) {
        // No other job starts while this one reads its base: the runner is not yet told it is busy.
        this.readingBase = true;
        try {
          kept = await this.attachBase(job);
        } finally {
          this.readingBase = false;
        }
      }
      // Kept layers carry the base's PNG bytes, byte for byte (a runner need not encode them):
      // each goes out in index order, before the first streamed layer above it.
      const keptOrder = [...kept.keys()].sort((a, b) => a - b);
      const onLayer = (layer: LayerPng) => {
        for (const k of keptOrder) if (k < layer.index && !feed.has(k)) feed.push(kept.get(k) as LayerPng);
        feed.push(kept.get(layer.index) ?? layer);
      };
      if (job.model === undefined) throw new Error('never: a job starts only once its model is known (startCheck)');
      job.run = this.runner.start({ jobId: job.id, model: job.model, params: job.params }, { onProgress, onPreview, onNote, onLayer });
      if (job.message.base && !this.closing) this.pump();
      if (job.cancelRequested) job.run.cancel();
      const result = await job.run.result;
      job.params.base = undefined; // the base's latents are not needed any more
      if (job.cancelRequested) throw new JobAborted('cancelled after the last step');
      const byIndex = new Map(result.layers.map((l) => [l.index, l]));
      for (const [index, png] of kept) byIndex.set(index, png);
      const layers = [...byIndex.values()].sort((a, b) => a.index - b.index);
      // Layers a runner did not stream go out now, in index order.
      for (const layer of layers) if (!feed.has(layer.index)) feed.push(layer);
      const finished = Date.now();
      const timings: Timings = { ...result.timings, queue: startedAt - job.queuedAt, total: finished - job.queuedAt };
      const manifest = await this.store.save(
        {
          jobId: job.id,
          requestId: job.requestId,
          prompt: job.message.prompt,
          layout: job.message.layout,
          params: job.message.params,
          seed: result.seed,
          model: result.model,
          provider: result.provider,
          tiny: result.tiny,
          promptTruncated: result.promptTruncated,
          timings,
          createdAt: job.createdAt,
          finishedAt: new Date(finished).toISOString(),
          ...(job.message.base ? { base: job.message.base } : {}),
        },
        layers,
        result.latents,
      );
      log(`job ${job.id} done in ${timings.total} ms (${layers.length} layers${kept.size ? `, ${kept.size} kept from ${job.message.base?.jobId}` : ''})`);
      feed.finish(manifest);
    } catch (error) {
      feed.abort();
      if (error instanceof JobRefused) {
        log(`job ${job.id} refused: ${error.message}`);
        broadcast(job, { type: 'error', code: error.code, message: error.message, requestId: job.requestId, jobId: job.id });
      } else if (error instanceof JobAborted || job.cancelRequested) {
        const why = this.closing && this.options.cancelOnShutdown ? 'the bridge is shutting down' : 'cancel was requested';
        log(`job ${job.id} cancelled`);
        broadcast(job, { type: 'error', code: 'cancelled', message: `job cancelled: ${why}`, requestId: job.requestId, jobId: job.id });
      } else {
        const message = error instanceof Error ? error.message : String(error);
        log(`job ${job.id} failed: ${message}`);
        broadcast(job, {
          type: 'error',
          code: 'generation_failed',
          message: `generation failed: ${message}. Check the bridge's console; try again or restart the bridge.`,
          requestId: job.requestId,
          jobId: job.id,
        });
      }
    }
  }
}

function broadcast(job: Job, message: BridgeMessage): void {
  job.subscribers.forEach((c) => c.send(message));
}

/**
 * Replays a stored job: each layer's header then its PNG frame, then `done`. Waits before each
 * layer until the client has read what was sent (see Subscriber.drained), so a client that does
 * not read costs at most a high-water mark of memory, never a whole job per request.
 */
async function deliver(client: Subscriber, manifest: JobManifest, frameOf: (layer: StoredLayer) => Promise<Uint8Array>, fetched: boolean): Promise<void> {
  for (const layer of manifest.layers) {
    if (!(await client.drained())) return;
    const frame = await frameOf(layer);
    if (!client.open) return;
    client.send(layerMessage(manifest.jobId, layer, frame));
    client.sendFrame(frame);
  }
  client.send(doneMessage(manifest, fetched));
}
