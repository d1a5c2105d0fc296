/**
 * Layers streamed from GPU workers through Redis to the clients, attacked: a worker that sent its
 * layers and then dies, a restarted run whose layers differ from the ones sent, a worker that
 * writes a bad layer entry, a client that stops reading. The fake pipeline's `decodeMs` holds a
 * job after its layers are handed over, so "sent, not yet done" is a state the test can act in.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { readdir } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { TestClient, generateMessage, collectJob, type Received } from '../support/bridge.ts';
import { TestRedis, REDIS_PASSWORD } from './redis-server.ts';
import { WorkerProcess, startFrontDoor, starts, TIMINGS, type TestFrontDoor } from './studio-helpers.ts';
import { KEY_PREFIX, keys, MAX_LAYER_BYTES, queueName } from '../../bridge/studio/keys.ts';
import { CANCELLED_REASON, type RunEvent, type WorkerRecord } from '../../bridge/studio/wire.ts';
import { RedisLayerStream, putResult, refOf } from '../../bridge/studio/transport.ts';

const DECODE_MS = 2500;
let server: TestRedis;
let redis: Redis;
let workers: WorkerProcess[] = [];
let door: TestFrontDoor;
let rogue: Worker | undefined;
let rogueBeat: NodeJS.Timeout | undefined;
const rogueSaw: string[] = [];

before(async () => {
  server = await TestRedis.start();
  redis = new Redis({ host: '127.0.0.1', port: server.port, password: REDIS_PASSWORD, maxRetriesPerRequest: null });
  workers = await Promise.all([
    WorkerProcess.start(server, 's1', { decodeMs: DECODE_MS }),
    WorkerProcess.start(server, 's2', { decodeMs: DECODE_MS }),
    WorkerProcess.start(server, 'v1', { model: 'vary', decodeMs: DECODE_MS }),
    WorkerProcess.start(server, 'v2', { model: 'vary', decodeMs: DECODE_MS, variant: 1 }),
  ]);
  await startRogue();
  door = await startFrontDoor(server);
});

after(async () => {
  await door?.close();
  clearInterval(rogueBeat);
  await rogue?.close();
  await Promise.all(workers.map((w) => w.stop()));
  redis?.disconnect();
  await server?.stop();
});

const jobIdOf = async (client: TestClient, requestId: string) => ((await client.next((m) => m.type === 'queued' && m.requestId === requestId)) as { jobId: string }).jobId;
const layerFrames = (received: Received[], jobId: string) => received.flatMap((m) => (m.type === 'binary' && m.frame.kind === 'layer' && m.frame.jobId === jobId ? [m.frame] : []));
const LAYERS = generateMessage('x').layout.boxes.length;

async function waitFor(ok: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Kills the worker running `jobId` once the client holds every layer of it (the job is still decoding). */
async function killAfterLayers(client: TestClient, jobId: string): Promise<WorkerProcess> {
  await waitFor(() => layerFrames(client.received, jobId).length === LAYERS, 'every layer to reach the client');
  assert.equal(client.received.filter((m) => m.type === 'done' && m.jobId === jobId).length, 0, 'the job is not done yet');
  const name = starts(door.log).find((s) => s.jobId === jobId)?.worker;
  const victim = workers.find((w) => w.name === name);
  assert.ok(victim, `job ${jobId} started on a worker of this test (${name})`);
  victim.kill('SIGKILL');
  await victim.exited;
  return victim;
}

async function restart(victim: WorkerProcess, fake: Parameters<typeof WorkerProcess.start>[2]): Promise<void> {
  workers = workers.filter((w) => w !== victim);
  workers.push(await WorkerProcess.start(server, victim.name, fake));
}

test('each layer reaches the client while the worker is still running the job, in index order, and travels through Redis only until the front door takes it', async () => {
  const client = await TestClient.paired(door.url);
  client.send(generateMessage('l1', { steps: 3, seed: 4 }));
  const jobId = await jobIdOf(client, 'l1');
  const { messages } = await collectJob(client, jobId, 30_000);
  const lastLayer = Math.max(...messages.map((m, i) => (m.type === 'binary' && m.frame.kind === 'layer' ? i : -1)));
  const decode = messages.findIndex((m) => m.type === 'progress' && m.stage === 'decode');
  assert.ok(decode > lastLayer && lastLayer >= 0, `every layer came before the worker finished decoding (last layer at ${lastLayer}, decode progress at ${decode})`);
  assert.deepEqual(layerFrames(messages, jobId).map((f) => f.layerIndex), [0, 1, 2, 3]);
  assert.deepEqual(await redis.keys(`${KEY_PREFIX}:layer:${jobId}:*`), [], 'nothing of the job is left in Redis');
  client.close();
});

test('a worker that sent every layer and then died: the job runs again elsewhere, the client is told once and gets each layer once; the stored job is the same bytes', async () => {
  const client = await TestClient.paired(door.url);
  client.send(generateMessage('k1', { steps: 3, seed: 21 }));
  const jobId = await jobIdOf(client, 'k1');
  const victim = await killAfterLayers(client, jobId);
  const { done, messages } = await collectJob(client, jobId, 30_000);
  assert.ok(done.type === 'done');
  assert.equal(starts(door.log).filter((s) => s.jobId === jobId).length, 2, 'the job started twice');
  assert.ok(messages.some((m) => m.type === 'queued' && m.note !== undefined && /started again/.test(m.note)), 'the client is told it started again');
  assert.deepEqual(layerFrames(messages, jobId).map((f) => f.layerIndex), [0, 1, 2, 3], 'no layer twice');
  const replay = await TestClient.paired(door.url);
  replay.send({ type: 'fetch', jobId });
  const stored = await collectJob(replay, jobId);
  const hex = (r: Received[]) => layerFrames(r, jobId).map((f) => Buffer.from(f.png).toString('hex'));
  assert.deepEqual(hex(stored.messages), hex(messages), 'the store holds what the client got');
  assert.deepEqual(await redis.keys(`${KEY_PREFIX}:layer:${jobId}:*`), [], 'neither run left a layer in Redis');
  await restart(victim, { decodeMs: DECODE_MS });
  client.close();
  replay.close();
});

test('a job that started again on a worker whose layers differ fails with a clear error instead of mixing two runs\' layers; nothing is stored', async () => {
  const client = await TestClient.paired(door.url);
  client.send({ ...generateMessage('m1', { steps: 3, seed: 8 }), model: 'vary' });
  const jobId = await jobIdOf(client, 'm1');
  const victim = await killAfterLayers(client, jobId);
  const end = await client.next((m) => (m.type === 'error' || m.type === 'done') && 'jobId' in m && m.jobId === jobId, 30_000);
  assert.ok(end.type === 'error' && end.code === 'generation_failed', JSON.stringify(end));
  assert.match(end.message, /started again on worker v[12], whose layer 0 differs from the one the first run already sent/);
  assert.equal(layerFrames(client.received, jobId).length, LAYERS, 'no layer of the second run reached the client');
  assert.ok(!(await readdir(door.outputs)).includes(jobId), 'nothing stored');
  await restart(victim, { model: 'vary', decodeMs: DECODE_MS, ...(victim.name === 'v2' ? { variant: 1 } : {}) });
  client.close();
});

test('a worker that writes a bad layer entry (not a PNG; over the bound): the job fails saying so, its run is cancelled, the front door goes on serving', async () => {
  const client = await TestClient.paired(door.url);
  for (const [requestId, why] of [
    ['bad1', /layer 0 of job \S+ is not a PNG; refused/],
    ['BIG1', /layer 0 of job \S+ in Redis is 6\.0 MiB, over the 6\.0 MiB a layer may be; refused/],
  ] as const) {
    client.send({ ...generateMessage(requestId, { prompt: requestId }), model: 'rogue' });
    const jobId = await jobIdOf(client, requestId);
    const e = await client.error('generation_failed', 20_000);
    assert.equal(e.jobId, jobId);
    assert.match(e.message, why);
    await waitFor(() => rogueSaw.includes(`${jobId} cancelled`), 'the rogue run to see the cancel');
    assert.equal(await redis.exists(keys.layer(jobId, 'rogue-run', 0)), 0, 'the bad entry is gone from Redis');
  }
  client.send(generateMessage('ok1', { steps: 2 }));
  const { done } = await collectJob(client, await jobIdOf(client, 'ok1'), 30_000);
  assert.equal(done.type, 'done');
  client.close();
});

test('a layer from a run that is not the current one (it lost its lock) is dropped and deleted; the current run\'s layers are the job', async () => {
  const client = await TestClient.paired(door.url);
  client.send({ ...generateMessage('STALE1', { prompt: 'STALE1' }), model: 'rogue' });
  const jobId = await jobIdOf(client, 'STALE1');
  const { done, messages } = await collectJob(client, jobId, 20_000);
  assert.ok(done.type === 'done');
  assert.deepEqual(
    layerFrames(messages, jobId).map((f) => Buffer.from(f.png).toString()),
    Array.from({ length: LAYERS }, (_, i) => stalePng('rogue-run', i).toString()),
    'only the current run\'s layers, each once',
  );
  assert.equal(await redis.exists(keys.layer(jobId, 'lost-run', 0)), 0, 'the lost run\'s layer is gone from Redis');
  client.close();
});

test('a client that stops reading holds up nobody: the job is stored and another follower gets it; once it reads again it gets every layer in order, then done', async () => {
  const slow = await TestClient.paired(door.url);
  slow.send(generateMessage('s1', { steps: 3, seed: 12 }));
  const jobId = await jobIdOf(slow, 's1');
  slow.ws.pause();
  const other = await TestClient.paired(door.url);
  other.send({ type: 'fetch', jobId });
  const live = await collectJob(other, jobId, 30_000);
  assert.ok(live.done.type === 'done' && live.done.fetched === false, 'followed while running');
  const replay = await TestClient.paired(door.url);
  replay.send({ type: 'fetch', jobId });
  assert.equal((await collectJob(replay, jobId)).done.type, 'done', 'stored while the slow client still reads nothing');
  assert.equal(slow.received.filter((m) => m.type === 'done').length, 0);
  slow.ws.resume();
  const mine = await collectJob(slow, jobId, 30_000);
  assert.deepEqual(layerFrames(mine.messages, jobId).map((f) => f.layerIndex), [0, 1, 2, 3]);
  [slow, other, replay].forEach((c) => c.close());
});

test('an edit of a finished job through the studio: kept layers are the base\'s bytes, regenerated ones stream from the worker, in index order; the result can be edited again', async () => {
  const client = await TestClient.paired(door.url);
  client.send(generateMessage('b0', { steps: 2, seed: 30 }));
  const baseId = await jobIdOf(client, 'b0');
  const base = await collectJob(client, baseId, 30_000);
  const hex = (r: Received[], id: string) => layerFrames(r, id).map((f) => Buffer.from(f.png).toString('hex'));
  client.send({ ...generateMessage('b1', { steps: 2, seed: 31 }), base: { jobId: baseId, keep: [{ from: 2, to: 2 }] } });
  const editId = await jobIdOf(client, 'b1');
  const edit = await collectJob(client, editId, 30_000);
  assert.ok(edit.done.type === 'done' && edit.done.base?.jobId === baseId);
  assert.deepEqual(layerFrames(edit.messages, editId).map((f) => f.layerIndex), [0, 1, 2, 3]);
  const [b, e] = [hex(base.messages, baseId), hex(edit.messages, editId)];
  assert.equal(e[2], b[2], 'the kept layer is the base\'s bytes');
  assert.notEqual(e[3], b[3], 'layer 3 is regenerated (another seed)');
  client.send({ ...generateMessage('b2', { steps: 2, seed: 32 }), base: { jobId: editId, keep: [{ from: 2, to: 2 }, { from: 3, to: 3 }] } });
  const again = await collectJob(client, await jobIdOf(client, 'b2'), 30_000);
  const a = hex(again.messages, again.done.jobId);
  assert.deepEqual([a[2], a[3]], [b[2], e[3]], 'the edit\'s latents came back through Redis: it is a base in turn');
  client.close();
});

const stalePng = (run: string, index: number) => Buffer.concat([PNG_SIGNATURE, Buffer.from(`${run}:${index}`)]);
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A run that lost its lock still sends a layer after the current run started: it must not count. */
async function staleThenCurrent(job: Job, send: (e: RunEvent) => Promise<void>) {
  const jobId = job.id as string;
  const boxes = (job.data as { params: { layout: { boxes: [number, number, number, number][] } } }).params.layout.boxes;
  const layer = (run: string, index: number) => {
    const [x0, y0, x1, y1] = boxes[index];
    return { index, box: boxes[index], width: x1 - x0, height: y1 - y0, png: new Uint8Array(stalePng(run, index)) };
  };
  const lost = layer('lost-run', 0);
  await redis.set(keys.layer(jobId, 'lost-run', 0), Buffer.from(lost.png), 'PX', 60_000);
  await send({ type: 'layer', run: 'lost-run', ...refOf(lost) });
  const layers = boxes.map((_, i) => layer('rogue-run', i));
  const upload = new RedisLayerStream(redis, jobId, 'rogue-run', (ref) => send({ type: 'layer', run: 'rogue-run', ...ref }), () => false);
  layers.forEach((l) => upload.add(l));
  await upload.done();
  const latents = { layout: { width: 128, height: 64, boxes }, tokens: new Float32Array(4) };
  return putResult(redis, jobId, 'rogue-run', 'rogue', { layers, seed: 1, model: 'rogue', provider: 'cpu', tiny: true, promptTruncated: false, timings: {}, latents });
}

/** A worker of "another version" for model "rogue", in this process: it writes a bad layer entry and waits for its cancel. */
async function startRogue(): Promise<void> {
  const info = { model: 'rogue', provider: 'cpu', tiny: true, maxLayers: 52, resolutions: [128], jobs: ['generate' as const] };
  const record: WorkerRecord = { name: 'rogue', info, host: hostname(), pid: process.pid, startedAt: new Date().toISOString() };
  const beat = () => redis.multi().set(keys.worker('rogue'), JSON.stringify(record), 'PX', 3 * TIMINGS.heartbeatMs).hsetnx(keys.models, 'rogue', JSON.stringify(info)).exec();
  await beat();
  rogueBeat = setInterval(() => void beat(), TIMINGS.heartbeatMs);
  const run = 'rogue-run';
  rogue = new Worker(
    queueName('rogue'),
    async (job: Job) => {
      const jobId = job.id as string;
      const send = (e: RunEvent) => job.updateProgress(e);
      await send({ type: 'started', run, worker: 'rogue', attempt: 1 });
      if ((job.data as { params: { prompt: string } }).params.prompt.startsWith('STALE')) return staleThenCurrent(job, send);
      const entry = (job.data as { params: { prompt: string } }).params.prompt.startsWith('BIG') ? Buffer.alloc(MAX_LAYER_BYTES + 1, 1) : Buffer.alloc(100, 7);
      await redis.set(keys.layer(jobId, run, 0), entry, 'PX', 60_000);
      await send({ type: 'layer', run, index: 0, box: [0, 0, 128, 64], width: 128, height: 64, bytes: entry.byteLength });
      await waitFor(async () => (await redis.exists(keys.cancel(jobId))) === 1, 'the cancel');
      rogueSaw.push(`${jobId} cancelled`);
      throw new UnrecoverableError(CANCELLED_REASON);
    },
    { connection: { host: '127.0.0.1', port: server.port, password: REDIS_PASSWORD, maxRetriesPerRequest: null }, prefix: KEY_PREFIX, lockDuration: TIMINGS.lockMs, stalledInterval: TIMINGS.stalledMs },
  );
  await rogue.waitUntilReady();
}
