/**
 * Jobs run on GPU workers behind Redis: the front door's executor. It hands a job to BullMQ only
 * when a worker with the job's model is idle (the fair order stays in `job-lifecycle.ts`), follows the
 * job's events, hands each streamed layer on as soon as its event arrives (only the current
 * attempt's, in index order), reads the latents back from Redis, and keeps every job it accepted until
 * it ends: a job Redis lost (a restart without persistence) is submitted again, a completion whose
 * event was missed is picked up by a periodic check.
 */
import { Redis } from 'ioredis';
import { Queue, QueueEvents, Worker } from 'bullmq';
import type { PipelineInfo } from '../../gpu-server/pipeline/types.ts';
import { JobAborted, jobRequest, type JobRequest, type JobResult, type JobRun, type JobExecutor, type RunEvents, type ExecutorJob, type StartCheck } from '../executor.ts';
import { describeTarget, redisOptions, type RedisTarget } from './redis-target.ts';
import { CANCEL_TTL_MS, DEFAULT_STUDIO_TIMINGS, KEY_PREFIX, keys, queueName } from './keys.ts';
import { dropJobInput, putJob, takeLayer, takeResult } from './transport.ts';
import { CANCELLED_REASON, parseJson, type LayerRef, pipelineInfoSchema, resultManifestSchema, runEventSchema, workerRecordSchema, type WorkerRecord } from './wire.ts';
import { idleWorkers } from './capacity.ts';
import type { LayerPng } from '../job-archive.ts';

export interface QueueExecutorOptions {
  target: RedisTarget;
  /** How often the worker list and every accepted job's state are checked. */
  checkMs: number;
  /**
   * How often to look for jobs whose worker stopped renewing their lock (BullMQ's stalled-job
   * check, run here too so that a lost job is found even while no other worker of its model runs).
   */
  stalledMs: number;
  log: (line: string) => void;
}

interface Flight {
  job: ExecutorJob;
  events: RunEvents;
  resolve: (result: JobResult) => void;
  reject: (error: Error) => void;
  /** In BullMQ (added and not yet seen ending). */
  submitted: boolean;
  settled: boolean;
  /** The run (attempt) whose events count, and its worker. */
  run?: string;
  worker?: string;
  cancelRequested: boolean;
  /** Streamed layers are taken from Redis one after another, in event (= index) order. */
  taking: Promise<void>;
  /** The current run's layers taken so far (the result's layers). */
  layers: Map<number, LayerPng>;
  /**
   * Layers handed to the client by an earlier run (one that lost its worker): a new run's layer
   * with the same index must be byte-identical (same seed and model), or the job fails rather
   * than mix two runs' layers. Each is dropped once compared.
   */
  earlier: Map<number, LayerPng>;
  /** Every run seen, so their leftover layers in Redis are deleted when the job ends. */
  runs: Set<string>;
  /** Why the front door refused the job (a bad layer); a completion that comes later fails with it. */
  outputRefused?: Error;
  /** The run whose worker's heartbeat was seen gone (the client was told once). */
  lostRun?: string;
}

interface ModelQueue {
  queue: Queue;
  events: QueueEvents;
  /** Processes nothing: runs BullMQ's stalled-job check (moves a job whose lock expired back to waiting). */
  checker: Worker;
}

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

const START_WORKER = 'npm run worker -- --queue <url> --model <dir>';
const NO_WORKER = `no GPU worker is running; jobs wait until one starts (${START_WORKER})`;

export class QueueExecutor implements JobExecutor {
  private workers: WorkerRecord[] = [];
  private readonly infos = new Map<string, PipelineInfo>();
  private readonly queues = new Map<string, ModelQueue>();
  private readonly flights = new Map<string, Flight>();
  private readonly listeners: (() => void)[] = [];
  /** Jobs that ended lately, with when: worker records naming them may be stale. */
  private readonly ended = new Map<string, number>();
  private redisUp = false;
  /** The log said once that no worker is there (again when the last one leaves). */
  private toldNoWorker = false;
  private checking = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly options: QueueExecutorOptions,
    private readonly redis: Redis,
  ) {}

  /**
   * Connects and returns at once: the bridge listens before any worker (or Redis) is there. Jobs
   * wait (`canStart` says why) until a worker with their model announces itself.
   */
  static connect(options: QueueExecutorOptions): QueueExecutor {
    const redis = new Redis(redisOptions(options.target));
    const executor = new QueueExecutor(options, redis);
    redis.on('error', () => {}); // reported through 'close'/'ready' below
    redis.on('close', () => executor.setRedisUp(false));
    redis.on('ready', () => executor.setRedisUp(true));
    executor.timer = setInterval(() => void executor.check(), options.checkMs);
    return executor;
  }

  models(): PipelineInfo[] {
    return [...this.infos.values()].sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));
  }

  canStart(model: string): StartCheck {
    if (!this.redisUp) return { ok: false, why: 'the bridge lost its connection to Redis; the job waits until it is back' };
    const mine = [...this.flights.values()].filter((f) => f.job.model === model && !f.settled).map((f) => f.job.jobId);
    const idle = idleWorkers(this.workers, model, new Set(mine), new Set(this.ended.keys()));
    if (idle === undefined) return { ok: false, why: `no GPU worker with model "${model}" is running; the job waits for one (${START_WORKER})` };
    return idle > 0 ? { ok: true } : { ok: false };
  }

  start(job: ExecutorJob, events: RunEvents): JobRun {
    let flight!: Flight;
    const result = new Promise<JobResult>((resolve, reject) => {
      flight = { job, events, resolve, reject, submitted: false, settled: false, cancelRequested: false, taking: Promise.resolve(), layers: new Map(), earlier: new Map(), runs: new Set() };
    });
    this.flights.set(job.jobId, flight);
    void this.submit(flight);
    return { result, cancel: () => void this.cancel(flight) };
  }

  onCapacity(listener: () => void): void {
    this.listeners.push(listener);
  }

  health(): Record<string, unknown> {
    const flights = [...this.flights.values()].filter((f) => !f.settled);
    return {
      executor: 'queue',
      redis: { address: describeTarget(this.options.target), connected: this.redisUp },
      models: this.models().map((m) => ({ model: m.model, tiny: m.tiny, workers: this.workers.filter((w) => w.info.model === m.model).length })),
      workers: this.workers.map((w) => ({ name: w.name, model: w.info.model, provider: w.info.provider, busy: w.jobId !== undefined, host: w.host })),
      ...(this.workers.length === 0 ? { note: NO_WORKER } : {}),
      dispatched: { total: flights.length, started: flights.filter((f) => f.run !== undefined).length },
    };
  }

  async dispose(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    for (const { queue, events, checker } of this.queues.values()) await Promise.all([events.close(), queue.close(), checker.close()]);
    this.redis.disconnect();
  }

  // ---- submitting and cancelling ----------------------------------------------------------------

  private queueFor(model: string): ModelQueue {
    let q = this.queues.get(model);
    if (!q) {
      const name = queueName(model);
      const connection = redisOptions(this.options.target);
      q = {
        queue: new Queue(name, { connection, prefix: KEY_PREFIX }),
        events: new QueueEvents(name, { connection, prefix: KEY_PREFIX }),
        // No processor and no autorun: it never takes a job. BullMQ documents starting the check
        // by hand for a worker that does not run (https://docs.bullmq.io/patterns/manually-fetching-jobs).
        checker: new Worker(name, undefined, { connection, prefix: KEY_PREFIX, autorun: false, stalledInterval: this.options.stalledMs, maxStalledCount: DEFAULT_STUDIO_TIMINGS.maxStalls }),
      };
      q.queue.on('error', () => {});
      q.events.on('error', () => {});
      q.checker.on('error', () => {});
      void q.checker.startStalledCheckTimer();
      q.events.on('progress', ({ jobId, data }) => this.onRunEvent(jobId, data));
      q.events.on('completed', ({ jobId, returnvalue }) => void this.onCompleted(jobId, returnvalue));
      q.events.on('failed', ({ jobId, failedReason }) => this.onFailed(jobId, failedReason));
      q.events.on('stalled', ({ jobId }) => {
        const f = this.flights.get(jobId);
        if (f && !f.settled) f.events.onNote(`worker ${f.worker ?? '?'} stopped renewing this job's lock (killed, or cut off from Redis); the job starts again from the beginning on another worker`);
      });
      this.queues.set(model, q);
    }
    return q;
  }

  private async submit(flight: Flight): Promise<void> {
    const { job } = flight;
    let request: JobRequest;
    try {
      request = await jobRequest(job); // the flight holds its worker meanwhile (canStart counts it)
    } catch (error) {
      return this.end(flight, error instanceof Error ? error : new Error(String(error)));
    }
    try {
      const data = await putJob(this.redis, job.jobId, job.model, request);
      await this.queueFor(job.model).queue.add(job.kind, data, {
        jobId: job.jobId,
        // A failure of the pipeline is not retried (the same input fails the same way); a worker
        // that dies is handled by BullMQ's stalled-job check (maxStalledCount, on the workers).
        attempts: 1,
        removeOnComplete: { age: 3600 },
        removeOnFail: { age: 3600 },
      });
      flight.submitted = true;
      if (flight.cancelRequested) await this.cancel(flight);
    } catch (error) {
      this.end(flight, new Error(`could not hand the job to the queue: ${errorText(error)}`));
    }
  }

  private async cancel(flight: Flight): Promise<void> {
    flight.cancelRequested = true;
    if (!flight.submitted || flight.settled) return;
    const { jobId } = flight.job;
    try {
      await this.redis.multi().set(keys.cancel(jobId), '1', 'PX', CANCEL_TTL_MS).publish(keys.cancelChannel, jobId).exec();
      const { queue } = this.queueFor(flight.job.model);
      // Not started yet: take it out of the queue; running: the worker stops at its next step.
      if ((await queue.getJobState(jobId)) === 'waiting' && (await queue.remove(jobId)) === 1) this.end(flight, new JobAborted('cancelled before a worker took it'));
    } catch (error) {
      this.options.log(`job ${jobId}: could not send cancel: ${errorText(error)}`);
    }
  }

  // ---- events -----------------------------------------------------------------------------------

  private onRunEvent(jobId: string, data: unknown): void {
    const flight = this.flights.get(jobId);
    if (!flight || flight.settled) return;
    const parsed = runEventSchema.safeParse(data);
    if (!parsed.success) return;
    const event = parsed.data;
    if (event.type === 'started') {
      if (flight.run !== undefined && flight.run !== event.run)
        flight.events.onNote(`the job started again from the beginning on worker ${event.worker} (attempt ${event.attempt}); its earlier run on ${flight.worker} was lost`);
      if (flight.run !== event.run) this.newRun(flight);
      flight.run = event.run;
      flight.runs.add(event.run);
      flight.worker = event.worker;
      this.options.log(`job ${jobId} started on worker ${event.worker}`);
      return;
    }
    if (event.type === 'layer') {
      const { type: _, run, ...ref } = event;
      return this.onLayerEvent(flight, run, ref);
    }
    if (event.run !== flight.run) return; // a run that lost its lock and does not count
    if (event.type === 'progress') flight.events.onProgress(event.progress);
    else flight.events.onPreview(new Uint8Array(Buffer.from(event.png, 'base64')), event.step);
  }

  /** A run starts (again): what the earlier one handed on is kept to compare, its other layers are dropped. */
  private newRun(flight: Flight): void {
    for (const [index, layer] of flight.layers) flight.earlier.set(index, layer);
    flight.layers = new Map();
  }

  /**
   * Takes a layer from Redis (any run's: its key is deleted either way) and hands it on if its
   * run is still the current one. A layer that cannot be taken fails the job (and stops the run);
   * the front door goes on serving every other job.
   */
  private onLayerEvent(flight: Flight, run: string, ref: LayerRef): void {
    const { jobId } = flight.job;
    flight.taking = flight.taking.then(async () => {
      if (flight.settled && flight.run !== run) return;
      let layer: LayerPng;
      try {
        if (ref.index >= flight.job.params.layout.boxes.length) throw new Error(`the worker sent layer ${ref.index}, the job has ${flight.job.params.layout.boxes.length}; refused`);
        layer = await takeLayer(this.redis, jobId, run, ref);
      } catch (error) {
        if (run !== flight.run) return; // a lost run's leftovers do not matter
        return this.refuseWorkerOutput(flight, `from worker ${flight.worker ?? '?'}: ${errorText(error)}`);
      }
      if (run !== flight.run || this.flights.get(jobId) !== flight) return;
      flight.layers.set(layer.index, layer);
      const before = flight.earlier.get(layer.index);
      if (before) {
        flight.earlier.delete(layer.index);
        if (!Buffer.from(before.png).equals(Buffer.from(layer.png)))
          return this.refuseWorkerOutput(
            flight,
            `the job started again on worker ${flight.worker ?? '?'}, whose layer ${layer.index} differs from the one the first run already sent (another GPU or provider?); generate again`,
          );
        return; // the client has these bytes already
      }
      flight.events.onLayer(layer);
    });
  }

  /** Fails a job the front door cannot finish, and stops its run on the worker. */
  private refuseWorkerOutput(flight: Flight, why: string): void {
    if (flight.outputRefused) return;
    this.options.log(`job ${flight.job.jobId}: ${why}`);
    flight.outputRefused = new Error(why);
    if (flight.settled) return; // completing: `onCompleted` fails it once the layers are through
    void this.cancel(flight);
    this.end(flight, flight.outputRefused);
  }

  private async onCompleted(jobId: string, returnvalue: unknown): Promise<void> {
    const flight = this.flights.get(jobId);
    if (!flight || flight.settled) return;
    const manifest = typeof returnvalue === 'string' ? parseJson(resultManifestSchema, returnvalue) : resultManifestSchema.safeParse(returnvalue).data;
    if (!manifest) return this.end(flight, new Error(`worker ${flight.worker ?? '?'} returned a result this bridge cannot read (another version?)`));
    flight.settled = true; // before any await: a second completion (event and check) is ignored
    try {
      await flight.taking; // every announced layer is handed on first
      if (flight.outputRefused) throw flight.outputRefused;
      if (manifest.run !== flight.run) this.newRun(flight);
      flight.run = manifest.run;
      flight.runs.add(manifest.run);
      const result = await takeResult(this.redis, jobId, manifest, flight.layers);
      this.options.log(`job ${jobId} done on worker ${manifest.worker}`);
      this.release(flight, result);
    } catch (error) {
      this.release(flight, error instanceof Error ? error : new Error(String(error)));
    }
  }

  private onFailed(jobId: string, reason: string): void {
    const flight = this.flights.get(jobId);
    if (!flight || flight.settled) return;
    this.end(flight, reason === CANCELLED_REASON ? new JobAborted('cancelled on the worker') : new Error(`on worker ${flight.worker ?? '?'}: ${reason}`));
  }

  /** Ends a job once: the only way a job ends, whatever the reason (completed ends through `release` after its layers are through). */
  private end(flight: Flight, outcome: JobResult | Error): void {
    if (flight.settled) return;
    flight.settled = true;
    this.release(flight, outcome);
  }

  /** Hands a settled job's outcome to its caller and frees its Redis keys and worker slot. */
  private release(flight: Flight, outcome: JobResult | Error): void {
    const { jobId, model } = flight.job;
    this.flights.delete(jobId);
    this.ended.set(jobId, Date.now());
    if (outcome instanceof Error) flight.reject(outcome);
    else flight.resolve(outcome);
    const { queue } = this.queueFor(model);
    // Layers a run wrote and nobody took (a lost run, a cancel mid-stream): at most MAX_PENDING_LAYERS each, deleted now rather than at expiry.
    const leftovers = [...flight.runs].flatMap((run) => flight.job.params.layout.boxes.map((_, i) => keys.layer(jobId, run, i)));
    void Promise.all([queue.remove(jobId), dropJobInput(this.redis, jobId), leftovers.length ? this.redis.del(...leftovers) : 0]).catch(() => {});
    queueMicrotask(() => this.notify());
  }

  private notify(): void {
    this.listeners.forEach((l) => l());
  }

  private setRedisUp(up: boolean): void {
    if (this.redisUp === up) return;
    this.redisUp = up;
    if (!this.closed) this.options.log(up ? `connected to Redis ${describeTarget(this.options.target)}` : 'lost Redis; jobs wait in the bridge until it is back');
    if (up) void this.check();
    this.notify();
  }

  // ---- the periodic check -------------------------------------------------------------------------

  /** Reads the worker records and models. */
  private async refreshWorkers(): Promise<void> {
    const names: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await this.redis.scan(cursor, 'MATCH', keys.workerPattern, 'COUNT', 200);
      cursor = next;
      names.push(...found);
    } while (cursor !== '0');
    const records = names.length ? await this.redis.mget(...names) : [];
    const workers = records.flatMap((r) => parseJson(workerRecordSchema, r) ?? []).sort((a, b) => (a.name < b.name ? -1 : 1));
    const found = Object.entries(await this.redis.hgetall(keys.models)).flatMap(([model, json]) => {
      const info = parseJson(pipelineInfoSchema, json);
      return info && info.model === model && !this.infos.has(model) ? [info] : [];
    });
    // Jobs a previous front door left waiting have nobody to deliver to: dropped before this one
    // offers the model (no job of its own can be in that queue yet). The models are then added
    // together, so the default (the first by name) is the same whatever order they came in.
    for (const info of found) await this.queueFor(info.model).queue.drain(true);
    for (const info of found) this.infos.set(info.model, info);
    if (workers.length === 0 && (this.workers.length > 0 || !this.toldNoWorker)) this.options.log(`${NO_WORKER.replace('<url>', describeTarget(this.options.target))}`);
    this.toldNoWorker = true;
    const now = Date.now();
    for (const [id, at] of this.ended) if (now - at > 3 * this.options.checkMs) this.ended.delete(id);
    const before = JSON.stringify(this.workers);
    this.workers = workers;
    if (found.length > 0 || JSON.stringify(workers) !== before) this.notify();
  }

  /**
   * A running job whose worker's heartbeat is gone (killed, or cut off from Redis) will run again
   * elsewhere once BullMQ finds its lock expired: the client hears it now, not only then.
   */
  private noticeLostWorker(flight: Flight): void {
    const { worker, run } = flight;
    if (worker === undefined || run === undefined || flight.lostRun === run || this.workers.some((w) => w.name === worker)) return;
    flight.lostRun = run;
    this.options.log(`job ${flight.job.jobId}: worker ${worker} is gone (no heartbeat)`);
    flight.events.onNote(`worker ${worker} stopped (no heartbeat: killed, or cut off from Redis); the job starts again from the beginning on another worker once its lock expires`);
  }

  /** Worker list, then every accepted job: submitted again if Redis lost it, settled if its end event was missed. */
  private async check(): Promise<void> {
    if (this.checking || !this.redisUp || this.closed) return;
    this.checking = true;
    try {
      await this.refreshWorkers();
      for (const flight of [...this.flights.values()]) {
        if (!flight.submitted || flight.settled) continue;
        const { queue } = this.queueFor(flight.job.model);
        const state = await queue.getJobState(flight.job.jobId);
        if (flight.settled) continue;
        if (state === 'active') this.noticeLostWorker(flight);
        if (state === 'unknown') {
          this.options.log(`job ${flight.job.jobId} is gone from Redis (restarted?); submitting it again`);
          flight.submitted = false;
          flight.run = undefined;
          flight.events.onNote('Redis lost this job (it restarted); the bridge submitted it again, and it starts from the beginning');
          await this.submit(flight);
        } else if (state === 'completed' || state === 'failed') {
          const job = await queue.getJob(flight.job.jobId);
          if (!job) continue;
          if (state === 'completed') await this.onCompleted(flight.job.jobId, job.returnvalue);
          else this.onFailed(flight.job.jobId, job.failedReason);
        }
      }
    } catch (error) {
      if (!this.closed) this.options.log(`queue check failed: ${errorText(error)}`);
    } finally {
      this.checking = false;
    }
  }
}
