/**
 * Names and limits shared by the front door and the GPU workers: Redis keys, BullMQ queue names,
 * the bounds on what travels through Redis, and the default timings.
 */
import { createHash } from 'node:crypto';

/** Prefix of every key (BullMQ's queues included), so one Redis can hold other things too. */
export const KEY_PREFIX = 'art';

/** One BullMQ queue per model: a worker takes jobs only from its model's queue. */
export function queueName(model: string): string {
  // BullMQ keys use ':' as separator; the model name may hold anything, so it is slugged and hashed.
  const slug = model.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 40);
  const hash = createHash('sha256').update(model).digest('hex').slice(0, 8);
  return `jobs.${slug}.${hash}`;
}

export const keys = {
  /** A worker's heartbeat record (JSON, WorkerRecord), expiring unless renewed. */
  worker: (name: string) => `${KEY_PREFIX}:worker:${name}`,
  workerPattern: `${KEY_PREFIX}:worker:*`,
  /** Every model a worker ever announced: model name -> PipelineInfo JSON. */
  models: `${KEY_PREFIX}:models`,
  /** A job's binary input (a base job's latents, a decomposition's RGB image), written by the front door. */
  input: (jobId: string, part: string) => `${KEY_PREFIX}:input:${jobId}:${part}`,
  /** One run's binary result parts (its latents), written by the worker; `run` is unique per attempt. */
  result: (jobId: string, run: string, part: string) => `${KEY_PREFIX}:result:${jobId}:${run}:${part}`,
  /** One streamed layer's PNG, written by the worker as soon as it is encoded, taken (read and deleted) by the front door. */
  layer: (jobId: string, run: string, index: number) => `${KEY_PREFIX}:layer:${jobId}:${run}:${index}`,
  /** Set (with expiry) when a job is cancelled, for a worker that starts it later. */
  cancel: (jobId: string) => `${KEY_PREFIX}:cancel:${jobId}`,
  /** Pub/sub channel: a job id to cancel, for the worker running it now. */
  cancelChannel: `${KEY_PREFIX}:cancel`,
};

/**
 * Bounds on what travels through Redis per job. A 52-layer 1024x1024 job is at most 52 PNGs of
 * about 4.2 MB (RGBA that does not compress) plus latents of 52 x 4096 tokens x 64 x 4 bytes
 * (54.5 MB): about 275 MB. Anything larger is refused with a clear error, not stored.
 */
export const MAX_RESULT_BYTES = 320 * 2 ** 20;
/** One layer's PNG: a 1024x1024 RGBA layer that does not compress is about 4.2 MB. */
export const MAX_LAYER_BYTES = 6 * 2 ** 20;
/**
 * Streamed layers a run may have in Redis that the front door has not taken yet: the worker waits
 * before writing more, so a job never holds more than this many layers in Redis.
 */
export const MAX_PENDING_LAYERS = 4;
/** A worker that waited this long for the front door to take its layers gives the job up. */
export const LAYER_TAKE_TIMEOUT_MS = 60_000;
/** Result, layer and input parts expire if nobody reads them (a front door gone, a run abandoned). */
export const RESULT_TTL_MS = 10 * 60_000;
export const INPUT_TTL_MS = 60 * 60_000;
export const CANCEL_TTL_MS = 10 * 60_000;

export interface StudioTimings {
  /** How often a worker renews its heartbeat; the record expires after 3 of these. */
  heartbeatMs: number;
  /** BullMQ job lock: a worker that stops renewing it (killed, cut off) loses the job after this. */
  lockMs: number;
  /** How often workers look for jobs whose lock expired (BullMQ's stalledInterval). */
  stalledMs: number;
  /** Times a job may lose its worker and run again before it fails (BullMQ's maxStalledCount). */
  maxStalls: number;
}

export const DEFAULT_STUDIO_TIMINGS: StudioTimings = { heartbeatMs: 2000, lockMs: 10_000, stalledMs: 5_000, maxStalls: 3 };

export const heartbeatTtl = (t: Pick<StudioTimings, 'heartbeatMs'>) => 3 * t.heartbeatMs;
