/**
 * A GPU worker: loads the pipeline (on its own thread, as the single-machine bridge does), takes
 * jobs for its model from BullMQ one at a time, reports progress and previews as BullMQ progress
 * events, puts each layer in Redis as soon as it is encoded (announced by a progress event),
 * stops a job between steps when the front door cancels it, and puts the latents in Redis at the end. A heartbeat record tells the front door it is there, what it runs, and whether it is
 * busy. One process per GPU.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { PipelineInfo, Progress } from '../../gpu-server/pipeline/types.ts';
import { LocalExecutor, type LocalPipeline } from '../local-executor.ts';
import { executorJob, JobAborted, type JobRun } from '../executor.ts';
import { shouldSendProgress, type LastSent } from '../progress-throttle.ts';
import { redisOptions, type RedisTarget } from './redis-target.ts';
import { heartbeatTtl, KEY_PREFIX, keys, queueName, type StudioTimings } from './keys.ts';
import { RedisLayerStream, putResult, takeJob } from './transport.ts';
import { CANCELLED_REASON, jobDataSchema, type ResultManifest, type RunEvent, type WorkerRecord } from './wire.ts';

export interface GpuWorkerOptions {
  target: RedisTarget;
  /** Unique among the workers on this Redis (default: host name and pid). */
  name: string;
  pipeline: LocalPipeline;
  timings: StudioTimings;
  progressIntervalMs: number;
  log: (line: string) => void;
}

export interface GpuWorker {
  readonly info: PipelineInfo;
  readonly name: string;
  /** Stops taking jobs, lets the running one finish, leaves Redis, stops the pipeline. */
  close(): Promise<void>;
}

export async function startGpuWorker(o: GpuWorkerOptions): Promise<GpuWorker> {
  const { log, timings, name } = o;
  const executor = await LocalExecutor.start(o.pipeline, log);
  const { info } = executor;
  const redis = new Redis(redisOptions(o.target));
  const sub = redis.duplicate();
  let redisDown = false;
  const onRedisError = (error: Error) => {
    if (!redisDown) log(`lost Redis (${error.message}); not taking jobs until it is back`);
    redisDown = true;
  };
  redis.on('error', onRedisError);
  sub.on('error', () => {});
  redis.on('ready', () => {
    if (redisDown) log('Redis is back');
    redisDown = false;
    void heartbeat();
  });

  let current: { jobId: string; run?: JobRun; cancelled: boolean } | undefined;
  const startedAt = new Date().toISOString();

  const heartbeat = async () => {
    const record: WorkerRecord = { name, info, host: hostname(), pid: process.pid, startedAt, ...(current ? { jobId: current.jobId } : {}) };
    try {
      await redis
        .multi()
        .set(keys.worker(name), JSON.stringify(record), 'PX', heartbeatTtl(timings))
        // The first worker of a model records it; the front door offers the models it knows.
        .hsetnx(keys.models, info.model, JSON.stringify(info))
        .exec();
    } catch {
      // Redis is away; the record expires and the front door stops counting this worker.
    }
  };
  await heartbeat();
  const beat = setInterval(() => void heartbeat(), timings.heartbeatMs);

  await sub.subscribe(keys.cancelChannel);
  sub.on('message', (_channel: string, jobId: string) => {
    if (current?.jobId !== jobId) return;
    log(`job ${jobId}: cancel requested`);
    current.cancelled = true;
    current.run?.cancel();
  });

  const processJob = async (job: Job): Promise<ResultManifest> => {
    const parsed = jobDataSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`job data is not what this worker understands (${parsed.error.issues[0]?.message}); is the front door another version?`);
    const data = parsed.data;
    if (data.model !== info.model) throw new UnrecoverableError(`job is for model "${data.model}", this worker runs "${info.model}"`);
    const state: { jobId: string; run?: JobRun; cancelled: boolean } = { jobId: data.jobId, cancelled: false };
    current = state;
    void heartbeat();
    const run = randomUUID();
    const report = (event: RunEvent) => {
      job.updateProgress(event).catch(() => {}); // a lost event is a lost progress tick, not a lost job
    };
    try {
      if (await redis.exists(keys.cancel(data.jobId))) throw new JobAborted('cancelled before it started');
      report({ type: 'started', run, worker: name, attempt: job.attemptsStarted });
      log(`job ${data.jobId}: started (attempt ${job.attemptsStarted})`);
      const request = await takeJob(redis, data);
      let last: LastSent | undefined;
      const onProgress = (progress: Progress) => {
        const now = Date.now();
        if (!shouldSendProgress(last, progress, now, o.progressIntervalMs)) return;
        last = { stage: progress.stage, at: now };
        report({ type: 'progress', run, progress });
      };
      const onPreview = (png: Uint8Array, step: number) => report({ type: 'preview', run, step, png: Buffer.from(png).toString('base64') });
      // Events go out in the order they are sent (one connection), so each layer's event follows `started`.
      const upload = new RedisLayerStream(redis, data.jobId, run, (ref) => job.updateProgress({ type: 'layer', run, ...ref } satisfies RunEvent), () => state.cancelled);
      state.run = executor.start(executorJob(data.jobId, data.model, request), { onProgress, onPreview, onNote: () => {}, onLayer: (layer) => upload.add(layer) });
      if (state.cancelled) state.run.cancel();
      const result = await state.run.result;
      await upload.done();
      if (state.cancelled) throw new JobAborted('cancelled after the last step');
      const manifest = await putResult(redis, data.jobId, run, name, result);
      log(`job ${data.jobId}: done (${result.layers.length} layers)`);
      return manifest;
    } catch (error) {
      if (error instanceof JobAborted) {
        log(`job ${data.jobId}: cancelled`);
        throw new UnrecoverableError(CANCELLED_REASON);
      }
      const message = error instanceof Error ? error.message : String(error);
      log(`job ${data.jobId}: failed: ${message}`);
      throw new UnrecoverableError(message);
    } finally {
      current = undefined;
      void heartbeat();
    }
  };

  const worker = new Worker(queueName(info.model), processJob, {
    connection: redisOptions(o.target),
    prefix: KEY_PREFIX,
    name,
    concurrency: 1,
    lockDuration: timings.lockMs,
    stalledInterval: timings.stalledMs,
    maxStalledCount: timings.maxStalls,
    // The front door removes a job once it has its result; these are backstops.
    removeOnComplete: { age: 3600, count: 1000 },
    removeOnFail: { age: 3600, count: 1000 },
  });
  worker.on('error', (error: Error) => onRedisError(error));
  await worker.waitUntilReady();

  return {
    info,
    name,
    async close() {
      await worker.close();
      clearInterval(beat);
      await redis.del(keys.worker(name)).catch(() => {});
      sub.disconnect();
      redis.disconnect();
      await executor.dispose();
    },
  };
}
