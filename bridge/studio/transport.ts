/**
 * Binary parts through Redis: a finished run's layer PNGs and latents (worker -> front door), and
 * a job's base latents (front door -> worker). Each part is one Redis string with an expiry,
 * written in one MULTI; the BullMQ return value is only the small manifest naming them. Sizes are
 * checked against MAX_RESULT_BYTES before anything is written, and against the manifest when read.
 */
import type { Redis } from 'ioredis';
import type { GenerateParams } from '../../gpu-server/pipeline/types.ts';
import type { JobResult } from '../runner.ts';
import { INPUT_TTL_MS, keys, MAX_RESULT_BYTES, RESULT_TTL_MS } from './keys.ts';
import type { JobData, ResultManifest } from './wire.ts';

const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const layerPart = (index: number) => `layer-${index}`;
const size = (n: number) => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${n} bytes`);

function floats(buf: Buffer): Float32Array {
  // Copied into a fresh, aligned buffer (a Buffer from ioredis may sit at any offset of a pool).
  const out = new Float32Array(buf.byteLength / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

/** Writes a result's parts; returns the manifest for the BullMQ return value. Throws if too large. */
export async function putResult(redis: Redis, jobId: string, run: string, worker: string, result: JobResult, maxBytes = MAX_RESULT_BYTES): Promise<ResultManifest> {
  const latentBytes = result.latents.tokens.byteLength;
  const total = result.layers.reduce((n, l) => n + l.png.byteLength, latentBytes);
  if (total > maxBytes)
    throw new Error(`the result is ${size(total)}, over the ${size(maxBytes)} a job may send through Redis; use fewer or smaller layers`);
  const multi = redis.multi();
  for (const l of result.layers) multi.set(keys.result(jobId, run, layerPart(l.index)), Buffer.from(l.png.buffer, l.png.byteOffset, l.png.byteLength), 'PX', RESULT_TTL_MS);
  multi.set(keys.result(jobId, run, 'latents'), bytesOf(result.latents.tokens), 'PX', RESULT_TTL_MS);
  await multi.exec();
  return {
    run,
    worker,
    layers: result.layers.map((l) => ({ index: l.index, box: l.box, width: l.width, height: l.height, bytes: l.png.byteLength })),
    latents: { layout: result.latents.layout, bytes: latentBytes },
    seed: result.seed,
    model: result.model,
    provider: result.provider,
    tiny: result.tiny,
    promptTruncated: result.promptTruncated,
    timings: result.timings,
  };
}

/** Reads (and deletes) the parts a manifest names; throws saying what is missing or wrong. */
export async function takeResult(redis: Redis, jobId: string, m: ResultManifest): Promise<JobResult> {
  const total = m.layers.reduce((n, l) => n + l.bytes, m.latents.bytes);
  if (total > MAX_RESULT_BYTES) throw new Error(`the worker's result claims ${total} bytes, over the ${MAX_RESULT_BYTES} allowed`);
  const names = [...m.layers.map((l) => layerPart(l.index)), 'latents'];
  const redisKeys = names.map((part) => keys.result(jobId, m.run, part));
  const values = await redis.mgetBuffer(...redisKeys);
  await redis.del(...redisKeys);
  const expected = [...m.layers.map((l) => l.bytes), m.latents.bytes];
  values.forEach((v, i) => {
    if (!v) throw new Error(`result part ${names[i]} of job ${jobId} is missing from Redis (expired after ${RESULT_TTL_MS / 60_000} min, or Redis restarted); generate again`);
    if (v.byteLength !== expected[i]) throw new Error(`result part ${names[i]} of job ${jobId} has ${v.byteLength} bytes, the manifest says ${expected[i]}`);
  });
  const latents = values[values.length - 1] as Buffer;
  if (latents.byteLength % 4 !== 0) throw new Error(`latents of job ${jobId} are not float32 values`);
  return {
    layers: m.layers.map((l, i) => ({ index: l.index, box: l.box, width: l.width, height: l.height, png: new Uint8Array(values[i] as Buffer) })),
    seed: m.seed,
    model: m.model,
    provider: m.provider,
    tiny: m.tiny,
    promptTruncated: m.promptTruncated,
    timings: m.timings,
    latents: { layout: m.latents.layout, tokens: floats(latents) },
  };
}

/** The job's BullMQ data, writing its base latents (if any) as an input part first. */
export async function putJob(redis: Redis, jobId: string, model: string, params: GenerateParams): Promise<JobData> {
  const { base, ...plain } = params;
  if (!base) return { jobId, model, params: plain };
  await redis.set(keys.input(jobId, 'latents'), bytesOf(base.latents.tokens), 'PX', INPUT_TTL_MS);
  return { jobId, model, params: { ...plain, base: { model: base.model, layout: base.latents.layout, keep: base.keep, latentValues: base.latents.tokens.length } } };
}

/** The job's pipeline parameters, reading its base latents (if any) back. */
export async function takeJob(redis: Redis, data: JobData): Promise<GenerateParams> {
  const { base, ...plain } = data.params;
  if (!base) return plain;
  const buf = await redis.getBuffer(keys.input(data.jobId, 'latents'));
  if (!buf) throw new Error(`the base latents of job ${data.jobId} are missing from Redis (expired, or Redis restarted); generate the base again`);
  if (buf.byteLength !== base.latentValues * 4) throw new Error(`the base latents of job ${data.jobId} have ${buf.byteLength} bytes, expected ${base.latentValues * 4}`);
  return { ...plain, base: { model: base.model, keep: base.keep, latents: { layout: base.layout, tokens: floats(buf) } } };
}

/** Drops a job's input parts once it has ended. */
export async function dropJobInput(redis: Redis, jobId: string): Promise<void> {
  await redis.del(keys.input(jobId, 'latents'));
}
