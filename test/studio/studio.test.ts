/**
 * A studio with real parts: Debian's redis-server, GPU worker processes (`npm run worker` with the
 * fake pipeline), a front door (the bridge with --queue) and real WebSocket clients. Lock and
 * stalled-check timings are cut to seconds (TIMINGS) so failures recover within the test.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Queue } from 'bullmq';
import { TestClient, TOKEN, generateMessage, collectJob, decodePng, decomposeMessage, flatImage, type Received } from '../support/bridge.ts';
import { PROTOCOL_VERSION } from '../../bridge/protocol/messages.ts';
import { decomposedPixel, fakePixel } from '../support/fake-pipeline.ts';
import { TestRedis, REDIS_PASSWORD } from './redis-server.ts';
import { WorkerProcess, startFrontDoor, starts, type TestFrontDoor } from './studio-helpers.ts';
import { KEY_PREFIX, queueName } from '../../bridge/studio/keys.ts';

let redis: TestRedis;
let w1: WorkerProcess;
let w2: WorkerProcess;
let w3: WorkerProcess;
let door: TestFrontDoor;

before(async () => {
  redis = await TestRedis.start();
  [w1, w2, w3] = await Promise.all([
    WorkerProcess.start(redis, 'w1'),
    WorkerProcess.start(redis, 'w2'),
    WorkerProcess.start(redis, 'w3', { model: 'other', jobs: ['generate'] }),
  ]);
  door = await startFrontDoor(redis);
  // The front door listens at once and learns its workers at its first check: the fair-order test
  // below needs its first jobs to start as they are sent, not all at once when the models appear.
  await waitFor(async () => (await workersInHealth()).length === 3, 'the front door to see its 3 workers');
});

after(async () => {
  await door?.close();
  await Promise.all([w1, w2, w3].map((w) => w?.stop()));
  await redis?.stop();
});

const jobIdOf = async (client: TestClient, requestId: string) => {
  const q = await client.next((m) => m.type === 'queued' && m.requestId === requestId);
  return (q as { jobId: string }).jobId;
};

test('two designers\' batches interleave across two workers; BullMQ never holds more jobs than there are workers; the other model\'s worker gets none', async () => {
  const a = await TestClient.paired(door.url);
  const b = await TestClient.paired(door.url);
  const queue = new Queue(queueName('fake'), { connection: { host: '127.0.0.1', port: redis.port, password: REDIS_PASSWORD }, prefix: KEY_PREFIX });
  let most = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const c = await queue.getJobCounts('waiting', 'active', 'prioritized', 'delayed');
      most = Math.max(most, c.waiting + c.active + c.prioritized + c.delayed);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const ids: { client: TestClient; id: string; seed: number; who: string }[] = [];
  // Steps of 40 ms. a0 (0.6 s) and a1 (1.2 s) end apart, so each freed worker is one decision of
  // the fair queue, not two racing ones (a0 and a1 used to end together, and b0's and a2's starts
  // were then logged in either order): a0 ends -> b0 (b has none running), a1 ends -> a2 (a has
  // none), b0 ends -> b1, a2 ends -> b2; the starts are 0.4-0.6 s apart, and b's jobs are queued
  // long before a0 ends, even on a loaded machine.
  const aSteps = [15, 30, 25];
  for (let i = 0; i < 3; i++) {
    a.send(generateMessage(`a${i}`, { steps: aSteps[i], seed: 10 + i }));
    ids.push({ client: a, id: await jobIdOf(a, `a${i}`), seed: 10 + i, who: 'a' });
  }
  for (let i = 0; i < 3; i++) {
    b.send(generateMessage(`b${i}`, { steps: 25, seed: 20 + i }));
    ids.push({ client: b, id: await jobIdOf(b, `b${i}`), seed: 20 + i, who: 'b' });
  }
  const results = await Promise.all(ids.map((j) => collectJob(j.client, j.id, 30_000)));
  sampling = false;
  await sampler;
  await queue.close();

  results.forEach(({ messages }, k) => {
    const frame = messages.find((m) => m.type === 'binary' && m.frame.layerIndex === 2);
    assert.ok(frame?.type === 'binary');
    assert.deepEqual([...decodePng(frame.frame.png).data.subarray(0, 4)], fakePixel(ids[k].seed, 2, 0, 0), 'each job has its own seed\'s pixels');
  });
  const order = starts(door.log);
  const who = (jobId: string) => ids.find((j) => j.id === jobId)?.who;
  const mine = order.filter((s) => who(s.jobId) !== undefined);
  assert.equal(mine.length, 6, door.log.join('\n'));
  assert.deepEqual(new Set(mine.map((s) => s.worker)), new Set(['w1', 'w2']), 'both workers ran jobs, w3 (model "other") none');
  // a0 and a1 were handed out first (two idle workers), then the fair turns: b0, a2, b1, b2
  assert.equal(mine.map((s) => who(s.jobId)).join(''), 'aababb');
  assert.ok(most <= 2, `BullMQ held ${most} jobs at once; there are 2 workers for the model`);
  a.close();
  b.close();
});

test('welcome and /health list the models and workers; a job for the other model runs only on its worker; an unknown model is refused', async () => {
  const c = await TestClient.open(door.url, { origin: 'null' });
  c.send({ type: 'hello', protocol: PROTOCOL_VERSION, token: TOKEN });
  const welcome = await c.next((m) => m.type === 'welcome');
  assert.ok(welcome.type === 'welcome');
  assert.equal(welcome.model, 'fake', 'the default model comes first');
  assert.deepEqual(welcome.models.map((m) => m.model), ['fake', 'other']);

  type Health = { executor: string; workers: { name: string; model: string; provider: string; busy: boolean }[]; redis: { connected: boolean; address: string } };
  const read = async () => (await (await fetch(`http://127.0.0.1:${door.bridge.port}/health`)).json()) as Health;
  // Worker records are heartbeats: the last job's "busy" clears within a heartbeat.
  await waitFor(async () => (await read()).workers.every((w) => !w.busy), 'the workers to be idle in /health');
  const health = await read();
  assert.equal(health.executor, 'queue');
  assert.equal(health.redis.connected, true);
  assert.doesNotMatch(JSON.stringify(health), new RegExp(REDIS_PASSWORD), '/health never shows the Redis password');
  assert.deepEqual(
    health.workers.map((w) => [w.name, w.model, w.provider, w.busy]),
    [['w1', 'fake', 'cpu', false], ['w2', 'fake', 'cpu', false], ['w3', 'other', 'cpu', false]],
  );

  c.send({ ...generateMessage('o1', { steps: 3, seed: 5 }), model: 'other' });
  const id = await jobIdOf(c, 'o1');
  const { done } = await collectJob(c, id, 20_000);
  assert.ok(done.type === 'done' && done.model === 'other');
  assert.deepEqual(starts(door.log).filter((s) => s.jobId === id).map((s) => s.worker), ['w3']);

  c.send({ ...generateMessage('n1'), model: 'no-such-model' });
  const e = await c.error('invalid_params');
  assert.match(e.message, /offers "fake", "other", not "no-such-model"/);
  c.close();
});

test('decompose through the studio: welcome says which model decomposes; the image reaches a worker through Redis and its layers come back; the other model refuses', async () => {
  const c = await TestClient.paired(door.url);
  const welcome = c.received.find((m) => m.type === 'welcome');
  assert.ok(welcome?.type === 'welcome');
  assert.deepEqual(welcome.models.map((m) => [m.model, m.jobs]), [['fake', ['generate', 'decompose']], ['other', ['generate']]]);
  const { png } = flatImage();
  c.send(decomposeMessage('sd1', png.length, { steps: 2, seed: 12 }));
  c.ws.send(png);
  const id = await jobIdOf(c, 'sd1');
  const { done, messages } = await collectJob(c, id, 20_000);
  assert.ok(done.type === 'done' && done.job === 'decompose' && done.model === 'fake');
  const layer2 = messages.find((m) => m.type === 'binary' && m.frame.layerIndex === 2);
  assert.ok(layer2?.type === 'binary');
  const pixels = decodePng(layer2.frame.png).data;
  // Layer 2's box starts at (16, 16); the flat image's pixel there is (32, 64, 32), opaque.
  const image = { width: 128, height: 64, channels: 3 as const, pixels: new Uint8Array(128 * 64 * 3) };
  image.pixels.set([32, 64, 32], (16 * 128 + 16) * 3);
  assert.deepEqual([...pixels.subarray(0, 4)], decomposedPixel(image, 12, 2, 16, 16, 0, 0));
  c.send({ ...decomposeMessage('sd2', png.length), model: 'other' });
  c.ws.send(png);
  assert.equal((await c.error()).code, 'job_unsupported');
  c.close();
});

test('a client that disconnects mid-job fetches it after reconnecting: followed while running, then replayed from the store', async () => {
  const first = await TestClient.paired(door.url);
  first.send(generateMessage('d1', { steps: 25, seed: 9 }));
  const jobId = await jobIdOf(first, 'd1');
  await first.next((m) => m.type === 'progress' && m.jobId === jobId, 20_000);
  first.close();
  await first.closed;

  const second = await TestClient.paired(door.url);
  second.send({ type: 'fetch', jobId });
  const live = await collectJob(second, jobId, 20_000);
  assert.ok(live.done.type === 'done' && live.done.fetched === false && live.done.requestId === 'd1');
  const third = await TestClient.paired(door.url);
  third.send({ type: 'fetch', jobId });
  const replay = await collectJob(third, jobId);
  assert.ok(replay.done.type === 'done' && replay.done.fetched === true);
  assert.deepEqual(pngs(replay.messages), pngs(live.messages));
  second.close();
  third.close();
});

test('cancel reaches the worker running the job and stops it between steps; that worker then takes the next job', async () => {
  const client = await TestClient.paired(door.url);
  client.send(generateMessage('c1', { steps: 100, seed: 1 })); // 4 s if not cancelled
  const jobId = await jobIdOf(client, 'c1');
  await client.next((m) => m.type === 'progress' && m.jobId === jobId && m.step >= 2, 20_000);
  const worker = starts(door.log).find((s) => s.jobId === jobId)?.worker;
  await waitFor(async () => {
    const h = (await (await fetch(`http://127.0.0.1:${door.bridge.port}/health`)).json()) as { workers: { name: string; busy: boolean }[] };
    return h.workers.some((w) => w.name === worker && w.busy);
  }, `/health to show ${worker} busy`);
  const sentAt = Date.now();
  client.send({ type: 'cancel', jobId });
  const end = await client.next((m) => (m.type === 'error' || m.type === 'done') && 'jobId' in m && m.jobId === jobId, 20_000);
  assert.ok(end.type === 'error' && end.code === 'cancelled', JSON.stringify(end));
  const lastStep = Math.max(...client.received.flatMap((m) => (m.type === 'progress' && m.jobId === jobId ? [m.step] : [])));
  assert.ok(lastStep < 75, `the job ran ${lastStep} steps of 100 (cancel sent after ${Date.now() - sentAt} ms)`);
  const w = [w1, w2].find((x) => x.name === worker);
  assert.ok(w?.output.some((l) => l.includes(`job ${jobId}: cancelled`)), `worker ${worker} stopped the job itself`);
  // both workers are free again: two jobs run at once
  client.send(generateMessage('c2', { steps: 3 }));
  client.send(generateMessage('c3', { steps: 3 }));
  const [c2, c3] = [await jobIdOf(client, 'c2'), await jobIdOf(client, 'c3')];
  await Promise.all([collectJob(client, c2, 20_000), collectJob(client, c3, 20_000)]);
  client.close();
});

test('no worker with the needed model: the job waits and queued says why; it runs when such a worker starts', async () => {
  await w3.stop();
  await waitFor(async () => !(await workersInHealth()).includes('w3'), 'w3 to leave /health');
  const client = await TestClient.paired(door.url);
  client.send({ ...generateMessage('o2', { steps: 3, seed: 4 }), model: 'other' });
  const q = await client.next((m) => m.type === 'queued' && m.requestId === 'o2');
  assert.ok(q.type === 'queued' && q.note !== undefined && /no GPU worker with model "other"/.test(q.note), JSON.stringify(q));
  w3 = await WorkerProcess.start(redis, 'w3', { model: 'other' });
  const { done } = await collectJob(client, q.jobId, 20_000);
  assert.ok(done.type === 'done' && done.model === 'other');
  client.close();
});

test('Redis restarted mid-queue (nothing persisted): the front door submits again what Redis lost; every job completes once', async () => {
  const client = await TestClient.paired(door.url);
  const jobs: string[] = [];
  for (let i = 0; i < 4; i++) {
    client.send(generateMessage(`r${i}`, { steps: 25, seed: 30 + i }));
    jobs.push(await jobIdOf(client, `r${i}`));
  }
  await client.next((m) => m.type === 'progress' && m.jobId === jobs[0], 20_000);
  await redis.kill();
  await new Promise((r) => setTimeout(r, 500));
  await redis.run();
  const results = await Promise.all(jobs.map((id) => collectJob(client, id, 40_000)));
  results.forEach(({ done }, k) => assert.ok(done.type === 'done' && done.seed === 30 + k));
  const notes = client.received.filter((m) => m.type === 'queued' && m.note !== undefined && /Redis lost this job/.test(m.note));
  assert.ok(notes.length >= 1, 'the client is told its job was submitted again');
  for (const id of jobs) assert.equal(client.received.filter((m) => m.type === 'done' && m.jobId === id).length, 1, 'delivered once');
  client.close();
});

test('a worker killed with SIGKILL mid-job: the job runs again on the other worker, the client is told, and the layers are byte-identical to a clean run', async () => {
  const client = await TestClient.paired(door.url);
  client.send(generateMessage('k1', { steps: 30, seed: 77 }));
  const jobId = await jobIdOf(client, 'k1');
  await client.next((m) => m.type === 'progress' && m.jobId === jobId && m.step >= 3, 20_000);
  const victim = starts(door.log).find((s) => s.jobId === jobId)?.worker;
  const [dead, alive] = victim === 'w1' ? [w1, w2] : [w2, w1];
  dead.kill('SIGKILL');
  await dead.exited;
  const killed = await collectJob(client, jobId, 30_000);
  assert.deepEqual(starts(door.log).filter((s) => s.jobId === jobId).map((s) => s.worker), [dead.name, alive.name]);
  const note = client.received.find((m) => m.type === 'queued' && m.jobId === jobId && m.note !== undefined && /started again/.test(m.note));
  assert.ok(note, 'the client is told the job started again');

  client.send(generateMessage('k2', { steps: 30, seed: 77 }));
  const clean = await collectJob(client, await jobIdOf(client, 'k2'), 30_000);
  assert.deepEqual(pngs(killed.messages), pngs(clean.messages), 'same seed, same bytes');
  assert.equal(client.received.filter((m) => m.type === 'done' && m.jobId === jobId).length, 1, 'delivered once');
  const { readdir } = await import('node:fs/promises');
  assert.equal((await readdir(door.outputs)).filter((n) => n === jobId).length, 1, 'stored once');
  if (dead === w1) w1 = await WorkerProcess.start(redis, 'w1');
  else w2 = await WorkerProcess.start(redis, 'w2');
  client.close();
});

function pngs(messages: Received[]): string[] {
  return messages.flatMap((m) => (m.type === 'binary' && m.frame.kind === 'layer' ? [Buffer.from(m.frame.png).toString('base64')] : []));
}

async function workersInHealth(): Promise<string[]> {
  const h = (await (await fetch(`http://127.0.0.1:${door.bridge.port}/health`)).json()) as { workers: { name: string }[] };
  return h.workers.map((w) => w.name);
}

async function waitFor(ok: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
