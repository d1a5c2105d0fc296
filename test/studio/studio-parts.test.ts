/**
 * The studio's parts at their entry points: the --queue URL, the worker's and the front door's
 * command lines, the dispatch count, and the Redis transport of results (real redis-server:
 * bounds, expiry, missing and damaged parts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { parseRedisUrl, describeTarget, redisOptions } from '../../bridge/studio/redis-target.ts';
import { parseWorkerCli } from '../../bridge/studio/worker-args.ts';
import { parseCli } from '../../bridge/cli-args.ts';
import { idleWorkers } from '../../bridge/studio/capacity.ts';
import { RedisLayerStream, putResult, takeLayer, takeResult, putJob, takeJob, dropJobInput } from '../../bridge/studio/transport.ts';
import { keys, INPUT_TTL_MS, MAX_LAYER_BYTES, MAX_PENDING_LAYERS, RESULT_TTL_MS } from '../../bridge/studio/keys.ts';
import { jobDataSchema, type LayerRef, type WorkerRecord } from '../../bridge/studio/wire.ts';
import type { LayerPng } from '../../bridge/job-archive.ts';
import type { JobResult } from '../../bridge/executor.ts';
import { TestRedis, REDIS_PASSWORD } from './redis-server.ts';

let server: TestRedis;
let redis: Redis;
before(async () => {
  server = await TestRedis.start();
  const parsed = parseRedisUrl(server.url, { ART_REDIS_PASSWORD: REDIS_PASSWORD });
  assert.ok(parsed.ok);
  redis = new Redis(redisOptions(parsed.target));
});
after(async () => {
  redis?.disconnect();
  await server?.stop();
});

test('--queue URLs: redis and rediss, db, user and password; the environment password wins; bad ones say what is wrong', () => {
  const r = parseRedisUrl('rediss://art:s%40cret@redis.studio.lan:6380/2');
  assert.ok(r.ok);
  assert.deepEqual(r.target, { host: 'redis.studio.lan', port: 6380, db: 2, tls: true, username: 'art', password: 's@cret' });
  assert.equal(describeTarget(r.target), 'rediss://art@redis.studio.lan:6380/2 (with password)');
  assert.doesNotMatch(describeTarget(r.target), /s@cret/);
  assert.deepEqual(redisOptions(r.target).tls, { servername: 'redis.studio.lan' });
  assert.equal(redisOptions(r.target).maxRetriesPerRequest, null, 'BullMQ workers require null');
  const env = parseRedisUrl('redis://:inurl@10.0.0.5', { ART_REDIS_PASSWORD: 'fromenv' });
  assert.ok(env.ok && env.target.password === 'fromenv' && env.target.port === 6379 && env.target.db === 0 && !env.target.tls);
  for (const [url, why] of [
    ['http://host:6379', /redis:\/\/ or rediss:\/\//],
    ['redis://host:6379/abc', /database .* 0\.\.15/],
    ['redis://host:6379/16', /0\.\.15/],
    ['not a url', /takes a Redis URL/],
    ['redis://host/0?password=x', /no query/],
  ] as const) {
    const bad = parseRedisUrl(url);
    assert.ok(!bad.ok, url);
    assert.match(bad.error, why, url);
  }
});

test('command lines: the worker needs --queue and checks its numbers; the front door refuses pipeline options with --queue', () => {
  const ok = parseWorkerCli(['--queue', 'redis://127.0.0.1:7000', '--name', 'gpu-0', '--lock-ms', '5000', '--pipeline-options', '{"stepMs":3}'], {});
  assert.ok(ok.ok);
  assert.equal(ok.options.timings.lockMs, 5000);
  assert.equal(ok.options.name, 'gpu-0');
  assert.deepEqual(ok.options.pipelineOptions, { stepMs: 3 });
  for (const [argv, why] of [
    [[], /--queue <redis url> is required/],
    [['--queue', 'redis://h', '--lock-ms', '0'], /--lock-ms must be a positive integer/],
    [['--queue', 'redis://h', '--name', 'a b'], /--name takes/],
    [['--queue', 'redis://h', '--provider', 'tpu'], /--provider must be one of/],
    [['--queue', 'redis://h', '--pipeline-options', '[1]'], /JSON object/],
  ] as const) {
    const bad = parseWorkerCli([...argv], {});
    assert.ok(!bad.ok);
    assert.match(bad.error, why);
  }
  const door = parseCli(['--queue', 'redis://10.0.0.5:6379/1'], { ART_REDIS_PASSWORD: 'pw' });
  assert.ok(door.ok && door.options.queue?.password === 'pw' && door.options.queue.db === 1);
  const mixed = parseCli(['--queue', 'redis://10.0.0.5', '--model', 'models/art']);
  assert.ok(!mixed.ok);
  assert.match(mixed.error, /--model is a GPU worker's option/);
  const local = parseCli([]);
  assert.ok(local.ok && local.options.queue === undefined, 'without --queue the bridge runs its own pipeline');
});

test('dispatch count: one job per idle worker with the model, less foreign and own jobs; none without such a worker', () => {
  const info = (model: string) => ({ model, provider: 'cuda', tiny: false, maxLayers: 52, resolutions: [512, 1024], jobs: ['generate' as const] });
  const w = (name: string, model: string, jobId?: string): WorkerRecord => ({ name, info: info(model), host: 'h', pid: 1, startedAt: '', ...(jobId ? { jobId } : {}) });
  const workers = [w('a', 'art'), w('b', 'art', 'mine-1'), w('c', 'art', 'foreign'), w('d', 'other')];
  assert.equal(idleWorkers(workers, 'art', new Set()), 1, 'b and c are busy with jobs that are not this front door\'s');
  assert.equal(idleWorkers(workers, 'art', new Set(['mine-1'])), 1, 'b runs my job: counted once');
  assert.equal(idleWorkers(workers, 'art', new Set(['mine-1', 'mine-2'])), 0, 'mine-2 is handed out and not started yet');
  assert.equal(idleWorkers(workers, 'art', new Set(['mine-1']), new Set(['foreign'])), 2, 'a record naming an ended job is stale');
  assert.equal(idleWorkers(workers, 'missing', new Set()), undefined);
  assert.equal(idleWorkers([w('a', 'art', 'x')], 'art', new Set(['m1', 'm2'])), 0, 'never below zero');
});

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** A stand-in PNG: the signature, then `bytes - 8` bytes of `fill`. */
const png = (bytes: number, fill: number) => {
  const b = new Uint8Array(bytes).fill(fill);
  b.set(PNG_SIGNATURE);
  return b;
};
const layer = (index: number, bytes: number): LayerPng => ({ index, box: [0, 0, 16, 16], width: 16, height: 16, png: png(bytes, index + 1) });
const result = (layers: number, pngBytes: number): JobResult => ({
  layers: Array.from({ length: layers }, (_, i) => layer(i, pngBytes)),
  seed: 3,
  model: 'fake',
  provider: 'cpu',
  tiny: true,
  promptTruncated: false,
  timings: { denoise: 5 },
  latents: { layout: { width: 32, height: 32, boxes: [[0, 0, 32, 32], [0, 0, 32, 32]] }, tokens: Float32Array.from([1.5, -2, 3.25, 0]) },
});
const until = async (ok: () => boolean) => {
  while (!ok()) await new Promise((r) => setTimeout(r, 5));
};

test('streamed layers: written with an expiry and announced in order; never more than MAX_PENDING_LAYERS untaken in Redis; taken byte for byte, once', async () => {
  const announced: LayerRef[] = [];
  const upload = new RedisLayerStream(redis, 'job-s', 'run-1', async (ref) => void announced.push(ref), () => false);
  const sent = Array.from({ length: MAX_PENDING_LAYERS + 2 }, (_, i) => layer(i, 100 + i));
  sent.forEach((l) => upload.add(l));
  await until(() => announced.length >= MAX_PENDING_LAYERS);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(announced.length, MAX_PENDING_LAYERS, 'nobody took any: the worker waits before writing more');
  assert.equal((await redis.keys('art:layer:job-s:*')).length, MAX_PENDING_LAYERS);
  const ttl = await redis.pttl(keys.layer('job-s', 'run-1', 0));
  assert.ok(ttl > 0 && ttl <= RESULT_TTL_MS, `layers expire (pttl ${ttl})`);
  const taken: LayerPng[] = [];
  for (let i = 0; i < sent.length; i++) {
    await until(() => announced.length > i);
    taken.push(await takeLayer(redis, 'job-s', 'run-1', announced[i]));
  }
  await upload.done();
  assert.deepEqual(announced.map((r) => r.index), [0, 1, 2, 3, 4, 5], 'announced in index order');
  assert.deepEqual(taken.map((l) => Buffer.from(l.png).toString('hex')), sent.map((l) => Buffer.from(l.png).toString('hex')));
  assert.equal((await redis.keys('art:layer:job-s:*')).length, 0, 'taken layers are deleted');
  await assert.rejects(takeLayer(redis, 'job-s', 'run-1', announced[0]), /layer 0 of job job-s is missing from Redis/, 'a second take finds nothing');

  let cancelled = false;
  let written = 0;
  const stuck = new RedisLayerStream(redis, 'job-c', 'run-1', async () => void written++, () => cancelled);
  for (let i = 0; i <= MAX_PENDING_LAYERS; i++) stuck.add(layer(i, 50));
  await until(() => written >= MAX_PENDING_LAYERS);
  assert.equal(written, MAX_PENDING_LAYERS);
  cancelled = true;
  await assert.rejects(stuck.done(), /cancelled while its layers waited/, 'a cancel ends the wait for the front door');
});

test('a malformed or oversized layer entry in Redis is refused with a clear error; an oversized one is deleted unread', async () => {
  const ref = (bytes: number): LayerRef => ({ index: 2, box: [0, 0, 16, 16], width: 16, height: 16, bytes });
  const key = keys.layer('job-m', 'run-1', 2);
  await redis.set(key, Buffer.alloc(MAX_LAYER_BYTES + 1));
  await assert.rejects(takeLayer(redis, 'job-m', 'run-1', ref(MAX_LAYER_BYTES + 1)), /layer 2 of job job-m in Redis is 6\.0 MiB, over the 6\.0 MiB a layer may be; refused/);
  assert.equal(await redis.exists(key), 0, 'deleted');
  await redis.set(key, Buffer.from(png(100, 9)));
  await assert.rejects(takeLayer(redis, 'job-m', 'run-1', ref(120)), /has 100 bytes, its reference says 120; refused/);
  await redis.set(key, Buffer.alloc(100, 7));
  await assert.rejects(takeLayer(redis, 'job-m', 'run-1', ref(100)), /layer 2 of job job-m is not a PNG; refused/);
  const big = new RedisLayerStream(redis, 'job-m', 'run-2', async () => {}, () => false);
  big.add({ ...layer(1, 8), png: new Uint8Array(MAX_LAYER_BYTES + 1) });
  await assert.rejects(big.done(), /layer 1 is 6\.0 MiB, over the 6\.0 MiB a layer may send through Redis/);
  assert.equal(await redis.exists(keys.layer('job-m', 'run-2', 1)), 0, 'nothing written');
});

test('results through Redis: the manifest names the layers (no PNG in it), the latents come back exactly; a missed layer event is made good from Redis; a result over the bound is refused', async () => {
  const sent = result(3, 1000);
  const upload = new RedisLayerStream(redis, 'job-1', 'run-1', async () => {}, () => false);
  sent.layers.forEach((l) => upload.add(l));
  await upload.done();
  const manifest = await putResult(redis, 'job-1', 'run-1', 'w', sent);
  assert.ok(JSON.stringify(manifest).length < 2000, 'the BullMQ return value is small');
  const streamed = new Map([[0, await takeLayer(redis, 'job-1', 'run-1', manifest.layers[0])]]);
  const back = await takeResult(redis, 'job-1', manifest, streamed);
  assert.equal(back.layers[0], streamed.get(0), 'a streamed layer is not read again');
  assert.deepEqual(back.layers.map((l) => [...l.png.subarray(8, 10)]), [[1, 1], [2, 2], [3, 3]], 'layers 1 and 2 (events missed) come from Redis');
  assert.deepEqual([...back.latents.tokens], [1.5, -2, 3.25, 0]);
  assert.equal((await redis.keys('art:*:job-1:*')).length, 0, 'read parts are deleted');
  await assert.rejects(takeResult(redis, 'job-1', manifest), /missing from Redis/, 'a second read finds nothing');

  await assert.rejects(putResult(redis, 'job-2', 'run-1', 'w', result(4, 1000), 3000), /result is 4016 bytes, over the 3000 bytes a job may send through Redis/);
  assert.equal((await redis.keys('art:result:job-2:*')).length, 0, 'nothing written');
});

test('a base job\'s latents travel as an input part and come back exactly; a missing one is a clear error', async () => {
  const tokens = Float32Array.from({ length: 64 * 3 }, (_, i) => i / 7);
  const layout = { width: 32, height: 32, boxes: [[0, 0, 32, 32], [0, 0, 32, 32]] as [number, number, number, number][] };
  const params = { prompt: 'p', layout, steps: 2, guidance: 4, trueCfg: 3.5, seed: 1, base: { model: 'fake', keep: [{ from: 1, to: 1 }], latents: { layout, tokens } } };
  const data = await putJob(redis, 'job-b', 'fake', { kind: 'generate', params });
  assert.ok(JSON.stringify(data).length < 2000, 'the latents are not in the job data');
  const back = await takeJob(redis, data);
  assert.ok(back.kind === 'generate');
  assert.deepEqual([...(back.params.base?.latents.tokens ?? [])], [...tokens]);
  await redis.del(keys.input('job-b', 'latents'));
  await assert.rejects(takeJob(redis, data), /base latents of job job-b are missing/);
});

test('a decomposition\'s image travels as an expiring input part, checked by length before it is read; a missing or resized one is a clear error', async () => {
  const width = 64, height = 32;
  const pixels = Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 31) & 255);
  const layout = { width, height, boxes: [[0, 0, width, height], [0, 0, width, height], [16, 0, 48, 32]] as [number, number, number, number][] };
  const params = { prompt: 'a poster', layout, steps: 2, guidance: 4, trueCfg: 3.5, seed: 3, conditioningScale: 0.9, image: { width, height, channels: 3 as const, pixels } };
  const data = await putJob(redis, 'job-d', 'fake', { kind: 'decompose', params });
  assert.ok(jobDataSchema.safeParse(data).success, 'the worker accepts it');
  assert.ok(JSON.stringify(data).length < 2000, 'the image is not in the job data');
  const ttl = await redis.pttl(keys.input('job-d', 'image'));
  assert.ok(ttl > 0 && ttl <= INPUT_TTL_MS, `the image expires (${ttl} ms)`);
  const back = await takeJob(redis, data);
  assert.ok(back.kind === 'decompose');
  assert.deepEqual([back.params.conditioningScale, back.params.image.width, back.params.image.height, back.params.image.channels], [0.9, width, height, 3]);
  assert.deepEqual(back.params.image.pixels, pixels);
  // Data that does not hang together is refused before any Redis read.
  assert.equal(jobDataSchema.safeParse({ ...data, image: { width: 32, height: 32 } }).success, false, 'an image of another size than its canvas');
  assert.equal(jobDataSchema.safeParse({ ...data, kind: 'generate' }).success, false, 'a generation with an image');
  await redis.set(keys.input('job-d', 'image'), Buffer.alloc(10));
  await assert.rejects(takeJob(redis, data), /has 10 bytes, not the 6144 of 64x32 RGB; refused/);
  await dropJobInput(redis, 'job-d');
  await assert.rejects(takeJob(redis, data), /image of job job-d is missing from Redis/);
});
