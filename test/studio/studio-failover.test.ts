/**
 * A job whose only worker is killed (SIGKILL) on Debian's redis-server: the client hears at once
 * that the worker stopped, the front door's own stalled-job check (--stalled-ms) puts the job back
 * in the queue although no worker of its model is left to check, and the next worker to start
 * takes it at once and runs it to the end. Times are cut to seconds (TIMINGS).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Queue } from 'bullmq';
import { TestClient, generateMessage, collectJob } from '../support/bridge.ts';
import { TestRedis, REDIS_PASSWORD } from './redis-server.ts';
import { TIMINGS, WorkerProcess, startFrontDoor, starts, type TestFrontDoor } from './studio-helpers.ts';
import { KEY_PREFIX, queueName } from '../../bridge/studio/keys.ts';

let redis: TestRedis | undefined;
let door: TestFrontDoor | undefined;
let worker: WorkerProcess | undefined;
let queue: Queue | undefined;

after(async () => {
  await queue?.close();
  await door?.close();
  await worker?.stop();
  await redis?.stop();
});

test('the only worker killed mid-job: the client is told at once, the front door puts the job back in the queue, the next worker runs it', { timeout: 90_000 }, async () => {
  redis = await TestRedis.start();
  const first = await WorkerProcess.start(redis, 'only', { stepMs: 200 });
  door = await startFrontDoor(redis);
  queue = new Queue(queueName('fake'), { connection: { host: '127.0.0.1', port: redis.port, password: REDIS_PASSWORD }, prefix: KEY_PREFIX });
  const client = await TestClient.paired(door.url);
  client.send(generateMessage('solo', { steps: 100, seed: 9 }));
  const q = await client.next((m) => m.type === 'queued' && m.requestId === 'solo', 20_000);
  const { jobId } = q as { jobId: string };
  await client.next((m) => m.type === 'progress' && m.jobId === jobId && m.step >= 3, 20_000);
  first.kill('SIGKILL');
  await first.exited;
  const killedAt = Date.now();

  // The heartbeat (3 x 300 ms) is gone long before the lock (1.5 s) is found expired.
  const told = await client.next((m) => m.type === 'queued' && m.jobId === jobId && /worker only stopped \(no heartbeat/.test(m.note ?? ''), 10_000);
  assert.ok(told);

  // No worker runs: only the front door's check can move the job back (before, it stayed active).
  const deadline = killedAt + TIMINGS.lockMs + 3 * TIMINGS.stalledMs + 5000;
  let state = await queue.getJobState(jobId);
  while (state !== 'waiting' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    state = await queue.getJobState(jobId);
  }
  assert.equal(state, 'waiting', `the job is ${state} ${Date.now() - killedAt} ms after its worker was killed`);

  worker = await WorkerProcess.start(redis, 'next');
  const { done } = await collectJob(client, jobId, 30_000);
  assert.ok(done.type === 'done' && done.seed === 9);
  assert.deepEqual(starts(door.log).filter((s) => s.jobId === jobId).map((s) => s.worker), ['only', 'next']);
  assert.ok(client.received.some((m) => m.type === 'queued' && m.jobId === jobId && /started again from the beginning on worker next/.test(m.note ?? '')));
  client.close();
});
