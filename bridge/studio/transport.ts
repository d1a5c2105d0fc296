/**
 * Binary parts through Redis: each layer's PNG as soon as it is encoded and a finished run's
 * latents (worker -> front door), and a job's input (front door -> worker): a base's latents, a
 * decomposition's image. Each part is
 * one Redis string with an expiry; BullMQ's events and return value carry only references to
 * them. Sizes are checked before anything is written, and against the reference when read.
 */
import type { Redis } from 'ioredis';
import type { LayerPng } from '../job-archive.ts';
import { JobAborted, type JobRequest, type JobResult } from '../executor.ts';
import { INPUT_TTL_MS, keys, LAYER_TAKE_TIMEOUT_MS, MAX_LAYER_BYTES, MAX_PENDING_LAYERS, MAX_RESULT_BYTES, RESULT_TTL_MS } from './keys.ts';
import type { JobData, LayerRef, ResultManifest } from './wire.ts';

const bytesOf = (a: Uint8Array | Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const size = (n: number) => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${n} bytes`);
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function floats(buf: Buffer): Float32Array {
  // Copied into a fresh, aligned buffer (a Buffer from ioredis may sit at any offset of a pool).
  const out = new Float32Array(buf.byteLength / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

export const refOf = (l: LayerPng): LayerRef => ({ index: l.index, box: [l.box[0], l.box[1], l.box[2], l.box[3]], width: l.width, height: l.height, bytes: l.png.byteLength });

/**
 * A worker's layers on their way into Redis, one at a time in the order they are added: each is
 * written, then announced (`announce`, a BullMQ progress event). Before writing one it waits until
 * the front door has taken all but MAX_PENDING_LAYERS - 1 of the earlier ones, so Redis holds at
 * most MAX_PENDING_LAYERS of a run's layers; a front door that takes none for
 * LAYER_TAKE_TIMEOUT_MS fails the run (`done` rejects), and so does a cancel while it waits.
 */
export class RedisLayerStream {
  private chain: Promise<void> = Promise.resolve();
  private readonly written: number[] = [];

  constructor(
    private readonly redis: Redis,
    private readonly jobId: string,
    private readonly run: string,
    private readonly announce: (ref: LayerRef) => Promise<void>,
    /** True once the job is cancelled: a wait for the front door ends there. */
    private readonly cancelled: () => boolean,
    private readonly pollMs = 5,
  ) {}

  add(layer: LayerPng): void {
    if (layer.png.byteLength > MAX_LAYER_BYTES) {
      this.chain = this.chain.then(() => {
        throw new Error(`layer ${layer.index} is ${size(layer.png.byteLength)}, over the ${size(MAX_LAYER_BYTES)} a layer may send through Redis`);
      });
    } else this.chain = this.chain.then(() => this.put(layer));
    this.chain.catch(() => undefined); // surfaces once, through `done`
  }

  /** Resolves when every added layer is written and announced; rejects with the first failure. */
  async done(): Promise<void> {
    await this.chain;
    await this.announced;
  }

  private async put(layer: LayerPng): Promise<void> {
    const deadline = Date.now() + LAYER_TAKE_TIMEOUT_MS;
    while (this.written.length >= MAX_PENDING_LAYERS) {
      const oldest = keys.layer(this.jobId, this.run, this.written[0]);
      if ((await this.redis.exists(oldest)) === 0) {
        this.written.shift();
        continue;
      }
      if (this.cancelled()) throw new JobAborted('cancelled while its layers waited for the front door');
      if (Date.now() > deadline)
        throw new Error(`the front door took none of this job's last ${MAX_PENDING_LAYERS} layers from Redis within ${LAYER_TAKE_TIMEOUT_MS / 1000} s; is it running and connected to this Redis?`);
      await new Promise((r) => setTimeout(r, this.pollMs));
    }
    await this.redis.set(keys.layer(this.jobId, this.run, layer.index), bytesOf(layer.png), 'PX', RESULT_TTL_MS);
    this.written.push(layer.index);
    // Not awaited before the next layer's write: announcements go out in call order on one
    // connection, each after its layer is in Redis; `done` waits for the last.
    const announced = this.announce(refOf(layer));
    announced.catch(() => undefined); // surfaces once, through `done`
    this.announced = this.announced.then(() => announced);
    this.announced.catch(() => undefined);
  }

  private announced: Promise<void> = Promise.resolve();
}

/** Reads and deletes one streamed layer; throws saying what is wrong (missing, over the bound, not what the reference says). */
export async function takeLayer(redis: Redis, jobId: string, run: string, ref: LayerRef): Promise<LayerPng> {
  const key = keys.layer(jobId, run, ref.index);
  const what = `layer ${ref.index} of job ${jobId}`;
  // The length first: a value over the bound is deleted unread, never pulled into this process.
  const length = await redis.strlen(key);
  if (length > MAX_LAYER_BYTES) {
    await redis.del(key);
    throw new Error(`${what} in Redis is ${size(length)}, over the ${size(MAX_LAYER_BYTES)} a layer may be; refused (a worker of another version, or something else writing to this Redis?)`);
  }
  const [[, value]] = ((await redis.multi().getBuffer(key).del(key).exec()) ?? [[null, null]]) as [[Error | null, Buffer | null]];
  if (!value) throw new Error(`${what} is missing from Redis (expired after ${RESULT_TTL_MS / 60_000} min, or Redis restarted); generate again`);
  if (value.byteLength !== ref.bytes) throw new Error(`${what} has ${value.byteLength} bytes, its reference says ${ref.bytes}; refused`);
  if (!value.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error(`${what} is not a PNG; refused (a worker of another version?)`);
  return { index: ref.index, box: ref.box, width: ref.width, height: ref.height, png: new Uint8Array(value) };
}

/** Checks a run's size and writes its latents; returns the manifest for the BullMQ return value (its layers were streamed). */
export async function putResult(redis: Redis, jobId: string, run: string, worker: string, result: JobResult, maxBytes = MAX_RESULT_BYTES): Promise<ResultManifest> {
  const latentBytes = result.latents.tokens.byteLength;
  const total = result.layers.reduce((n, l) => n + l.png.byteLength, latentBytes);
  if (total > maxBytes)
    throw new Error(`the result is ${size(total)}, over the ${size(maxBytes)} a job may send through Redis; use fewer or smaller layers`);
  await redis.set(keys.result(jobId, run, 'latents'), bytesOf(result.latents.tokens), 'PX', RESULT_TTL_MS);
  return {
    run,
    worker,
    layers: result.layers.map(refOf),
    latents: { layout: result.latents.layout, bytes: latentBytes },
    seed: result.seed,
    model: result.model,
    provider: result.provider,
    tiny: result.tiny,
    promptTruncated: result.promptTruncated,
    timings: result.timings,
  };
}

/**
 * The result a manifest describes: the layers already taken (`streamed`, this run's), any the
 * manifest names that were not (a missed event: still in Redis), and the latents (read and
 * deleted). Throws saying what is missing or wrong.
 */
export async function takeResult(redis: Redis, jobId: string, m: ResultManifest, streamed: ReadonlyMap<number, LayerPng> = new Map()): Promise<JobResult> {
  const total = m.layers.reduce((n, l) => n + l.bytes, m.latents.bytes);
  if (total > MAX_RESULT_BYTES) throw new Error(`the worker's result claims ${total} bytes, over the ${MAX_RESULT_BYTES} allowed`);
  const layers: LayerPng[] = [];
  for (const ref of m.layers) {
    const have = streamed.get(ref.index);
    if (have && have.png.byteLength !== ref.bytes) throw new Error(`layer ${ref.index} of job ${jobId} was streamed with ${have.png.byteLength} bytes, the manifest says ${ref.bytes}`);
    layers.push(have ?? (await takeLayer(redis, jobId, m.run, ref)));
  }
  const key = keys.result(jobId, m.run, 'latents');
  const [[, latents]] = ((await redis.multi().getBuffer(key).del(key).exec()) ?? [[null, null]]) as [[Error | null, Buffer | null]];
  if (!latents) throw new Error(`the latents of job ${jobId} are missing from Redis (expired after ${RESULT_TTL_MS / 60_000} min, or Redis restarted); generate again`);
  if (latents.byteLength !== m.latents.bytes) throw new Error(`the latents of job ${jobId} have ${latents.byteLength} bytes, the manifest says ${m.latents.bytes}`);
  if (latents.byteLength % 4 !== 0) throw new Error(`latents of job ${jobId} are not float32 values`);
  return {
    layers,
    seed: m.seed,
    model: m.model,
    provider: m.provider,
    tiny: m.tiny,
    promptTruncated: m.promptTruncated,
    timings: m.timings,
    latents: { layout: m.latents.layout, tokens: floats(latents) },
  };
}

/**
 * The job's BullMQ data, writing its binary input first as expiring input parts: a generation's
 * base latents, a decomposition's image (RGB of the canvas, at most 1024 x 1024 x 3 bytes).
 */
export async function putJob(redis: Redis, jobId: string, model: string, request: JobRequest): Promise<JobData> {
  if (request.kind === 'decompose') {
    const { image, ...plain } = request.params;
    if (image.channels !== 3 || image.pixels.length !== image.width * image.height * 3)
      throw new Error(`job ${jobId}'s image is not 8-bit RGB of ${image.width}x${image.height}`);
    await redis.set(keys.input(jobId, 'image'), bytesOf(image.pixels), 'PX', INPUT_TTL_MS);
    return { jobId, model, kind: 'decompose', image: { width: image.width, height: image.height }, params: plain };
  }
  const { base, ...plain } = request.params;
  if (!base) return { jobId, model, kind: 'generate', params: plain };
  await redis.set(keys.input(jobId, 'latents'), bytesOf(base.latents.tokens), 'PX', INPUT_TTL_MS);
  return { jobId, model, kind: 'generate', params: { ...plain, base: { model: base.model, layout: base.latents.layout, keep: base.keep, latentValues: base.latents.tokens.length } } };
}

/** What the job asks of the pipeline, reading its input parts back (sizes checked against the data). */
export async function takeJob(redis: Redis, data: JobData): Promise<JobRequest> {
  const { base, conditioningScale, ...plain } = data.params;
  if (data.kind === 'decompose') {
    if (!data.image || conditioningScale === undefined) throw new Error(`job ${data.jobId}'s data has no image or conditioningScale (jobDataSchema refuses that)`);
    const { width, height } = data.image;
    const key = keys.input(data.jobId, 'image');
    const expected = width * height * 3;
    // The length first: a value of another size is never pulled into this process.
    const length = await redis.strlen(key);
    if (length === 0) throw new Error(`the image of job ${data.jobId} is missing from Redis (expired after ${INPUT_TTL_MS / 60_000} min, or Redis restarted); decompose again`);
    if (length !== expected) throw new Error(`the image of job ${data.jobId} in Redis has ${length} bytes, not the ${expected} of ${width}x${height} RGB; refused (a front door of another version?)`);
    const pixels = await redis.getBuffer(key);
    if (!pixels || pixels.byteLength !== expected) throw new Error(`the image of job ${data.jobId} changed or vanished while being read; decompose again`);
    return { kind: 'decompose', params: { ...plain, conditioningScale, image: { width, height, channels: 3, pixels: new Uint8Array(pixels) } } };
  }
  if (!base) return { kind: 'generate', params: plain };
  const buf = await redis.getBuffer(keys.input(data.jobId, 'latents'));
  if (!buf) throw new Error(`the base latents of job ${data.jobId} are missing from Redis (expired, or Redis restarted); generate the base again`);
  if (buf.byteLength !== base.latentValues * 4) throw new Error(`the base latents of job ${data.jobId} have ${buf.byteLength} bytes, expected ${base.latentValues * 4}`);
  return { kind: 'generate', params: { ...plain, base: { model: base.model, keep: base.keep, latents: { layout: base.layout, tokens: floats(buf) } } } };
}

/** Drops a job's input parts once it has ended. */
export async function dropJobInput(redis: Redis, jobId: string): Promise<void> {
  await redis.del(keys.input(jobId, 'latents'), keys.input(jobId, 'image'));
}
