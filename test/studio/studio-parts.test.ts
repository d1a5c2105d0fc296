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
import { putResult, takeResult, putJob, takeJob } from '../../bridge/studio/transport.ts';
import { keys, RESULT_TTL_MS } from '../../bridge/studio/keys.ts';
import type { WorkerRecord } from '../../bridge/studio/wire.ts';
import type { JobResult } from '../../bridge/runner.ts';
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
  const info = (model: string) => ({ model, provider: 'cuda', tiny: false, maxLayers: 52, resolutions: [512, 1024] });
  const w = (name: string, model: string, jobId?: string): WorkerRecord => ({ name, info: info(model), host: 'h', pid: 1, startedAt: '', ...(jobId ? { jobId } : {}) });
  const workers = [w('a', 'art'), w('b', 'art', 'mine-1'), w('c', 'art', 'foreign'), w('d', 'other')];
  assert.equal(idleWorkers(workers, 'art', new Set()), 1, 'b and c are busy with jobs that are not this front door\'s');
  assert.equal(idleWorkers(workers, 'art', new Set(['mine-1'])), 1, 'b runs my job: counted once');
  assert.equal(idleWorkers(workers, 'art', new Set(['mine-1', 'mine-2'])), 0, 'mine-2 is handed out and not started yet');
  assert.equal(idleWorkers(workers, 'art', new Set(['mine-1']), new Set(['foreign'])), 2, 'a record naming an ended job is stale');
  assert.equal(idleWorkers(workers, 'missing', new Set()), undefined);
  assert.equal(idleWorkers([w('a', 'art', 'x')], 'art', new Set(['m1', 'm2'])), 0, 'never below zero');
});

const result = (layers: number, pngBytes: number): JobResult => ({
  layers: Array.from({ length: layers }, (_, i) => ({ index: i, box: [0, 0, 16, 16], width: 16, height: 16, png: new Uint8Array(pngBytes).fill(i + 1) })),
  seed: 3,
  model: 'fake',
  provider: 'cpu',
  tiny: true,
  promptTruncated: false,
  timings: { denoise: 5 },
  latents: { layout: { width: 32, height: 32, boxes: [[0, 0, 32, 32], [0, 0, 32, 32]] }, tokens: Float32Array.from([1.5, -2, 3.25, 0]) },
});

test('results through Redis: parts come back byte for byte, expire, are deleted once read; a result over the bound is refused', async () => {
  const sent = result(3, 1000);
  const manifest = await putResult(redis, 'job-1', 'run-1', 'w', sent);
  assert.ok(JSON.stringify(manifest).length < 2000, 'the BullMQ return value is small');
  const ttl = await redis.pttl(keys.result('job-1', 'run-1', 'layer-0'));
  assert.ok(ttl > 0 && ttl <= RESULT_TTL_MS, `parts expire (pttl ${ttl})`);
  const back = await takeResult(redis, 'job-1', manifest);
  assert.deepEqual(back.layers.map((l) => [...l.png.subarray(0, 2)]), [[1, 1], [2, 2], [3, 3]]);
  assert.deepEqual([...back.latents.tokens], [1.5, -2, 3.25, 0]);
  assert.equal(await redis.exists(keys.result('job-1', 'run-1', 'latents')), 0, 'read parts are deleted');
  await assert.rejects(takeResult(redis, 'job-1', manifest), /missing from Redis/, 'a second read finds nothing');

  await assert.rejects(putResult(redis, 'job-2', 'run-1', 'w', result(4, 1000), 3000), /result is 4016 bytes, over the 3000 bytes a job may send through Redis/);
  assert.equal((await redis.keys('art:result:job-2:*')).length, 0, 'nothing written');

  const m3 = await putResult(redis, 'job-3', 'run-1', 'w', result(2, 100));
  await redis.set(keys.result('job-3', 'run-1', 'layer-1'), Buffer.alloc(50));
  await assert.rejects(takeResult(redis, 'job-3', m3), /layer-1 of job job-3 has 50 bytes, the manifest says 100/);
});

test('a base job\'s latents travel as an input part and come back exactly; a missing one is a clear error', async () => {
  const tokens = Float32Array.from({ length: 64 * 3 }, (_, i) => i / 7);
  const layout = { width: 32, height: 32, boxes: [[0, 0, 32, 32], [0, 0, 32, 32]] as [number, number, number, number][] };
  const params = { prompt: 'p', layout, steps: 2, guidance: 4, trueCfg: 3.5, seed: 1, base: { model: 'fake', keep: [{ from: 1, to: 1 }], latents: { layout, tokens } } };
  const data = await putJob(redis, 'job-b', 'fake', params);
  assert.ok(JSON.stringify(data).length < 2000, 'the latents are not in the job data');
  const back = await takeJob(redis, data);
  assert.deepEqual([...(back.base?.latents.tokens ?? [])], [...tokens]);
  await redis.del(keys.input('job-b', 'latents'));
  await assert.rejects(takeJob(redis, data), /base latents of job job-b are missing/);
});
