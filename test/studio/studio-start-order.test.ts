/**
 * The front door is up before any GPU worker (the order a service manager starts them in), on
 * Debian's redis-server with nothing in it: it listens, /health says it waits for a worker,
 * plugins pair, and a job waits with `queued.note` until a worker with its model arrives. The same
 * once every worker has gone.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestClient, generateMessage, collectJob } from '../support/bridge.ts';
import { TestRedis } from './redis-server.ts';
import { WorkerProcess, startFrontDoor, type TestFrontDoor } from './studio-helpers.ts';

let redis: TestRedis | undefined;
let door: TestFrontDoor | undefined;
let worker: WorkerProcess | undefined;

after(async () => {
  await door?.close();
  await worker?.stop();
  await redis?.stop();
});

interface Health {
  model: string | null;
  workers: { name: string }[];
  note?: string;
}

const health = async (d: TestFrontDoor) => (await (await fetch(`http://127.0.0.1:${d.bridge.port}/health`)).json()) as Health;

async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('front door first: it listens and pairs with no worker; a job waits with a note and runs when a worker arrives; again once every worker has gone', { timeout: 90_000 }, async () => {
  redis = await TestRedis.start();
  // Before: startBridge never returned (the runner waited for a worker before the bridge listened).
  const started = startFrontDoor(redis);
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the front door did not listen within 5 s without a worker')), 5000).unref());
  door = await Promise.race([started, timeout]);
  const d = door;

  const empty = await health(d);
  assert.deepEqual(empty.workers, []);
  assert.equal(empty.model, null);
  assert.match(empty.note ?? '', /no GPU worker is running; jobs wait until one starts/);

  const client = await TestClient.paired(d.url);
  const welcome = client.received.find((m) => m.type === 'welcome');
  assert.ok(welcome?.type === 'welcome');
  assert.deepEqual(welcome.models, []);
  assert.equal(welcome.model, '');
  assert.match(welcome.note ?? '', /no GPU worker has announced a model yet/);

  client.send(generateMessage('first', { steps: 3, seed: 5 }));
  const waiting = await client.next((m) => m.type === 'queued' && m.requestId === 'first');
  assert.ok(waiting.type === 'queued' && /no GPU worker has announced a model yet/.test(waiting.note ?? ''), JSON.stringify(waiting));

  worker = await WorkerProcess.start(redis, 'late');
  const first = await collectJob(client, waiting.jobId, 20_000);
  assert.ok(first.done.type === 'done' && first.done.model === 'fake' && first.done.seed === 5);
  assert.equal((await health(d)).model, 'fake');

  // Every worker gone: the front door stays up, says so, and the next job waits for one.
  await worker.stop();
  worker = undefined;
  const gone = await until(() => health(d), (h) => h.workers.length === 0, 'the worker to leave /health');
  assert.match(gone.note ?? '', /no GPU worker is running/);
  client.send(generateMessage('second', { steps: 3, seed: 6 }));
  const again = await client.next((m) => m.type === 'queued' && m.requestId === 'second');
  assert.ok(again.type === 'queued' && /no GPU worker with model "fake" is running; the job waits for one/.test(again.note ?? ''), JSON.stringify(again));
  worker = await WorkerProcess.start(redis, 'back');
  const second = await collectJob(client, again.jobId, 20_000);
  assert.ok(second.done.type === 'done' && second.done.seed === 6);
  client.close();
});
