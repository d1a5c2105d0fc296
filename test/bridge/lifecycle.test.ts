import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startTestBridge, TestClient, generateMessage, collectJob, decodePng, type TestBridge, type Received } from '../support/bridge.ts';
import { fakePixel } from '../support/fake-pipeline.ts';
import { encodePng } from '../../gpu-server/pipeline/png.ts';
import type { ProgressMessage } from '../../bridge/protocol/messages.ts';

let tb: TestBridge;
before(async () => {
  tb = await startTestBridge({ fake: { stepMs: 20 } });
});
after(() => tb.close());

const jobIdOf = async (client: TestClient, requestId: string) => {
  const q = await client.next((m) => m.type === 'queued' && m.requestId === requestId);
  return (q as { jobId: string }).jobId;
};
const isEnd = (jobId: string) => (m: Received) => (m.type === 'done' || m.type === 'error') && 'jobId' in m && m.jobId === jobId;

test('cancel a waiting job and a running job; the bridge then runs the next job', async () => {
  const client = await TestClient.paired(tb.url);
  client.send(generateMessage('c-run', { steps: 100 }));
  const running = await jobIdOf(client, 'c-run');
  client.send(generateMessage('c-wait', { steps: 100 }));
  const waiting = await jobIdOf(client, 'c-wait');
  const queued = client.received.find((m) => m.type === 'queued' && m.jobId === waiting);
  assert.ok(queued?.type === 'queued' && queued.position === 1);

  client.send({ type: 'cancel', jobId: waiting });
  const e1 = await client.next(isEnd(waiting));
  assert.ok(e1.type === 'error' && e1.code === 'cancelled' && e1.requestId === 'c-wait');

  const progress = (await client.next((m) => m.type === 'progress' && m.jobId === running && m.step >= 3)) as ProgressMessage;
  const sentAt = performance.now();
  client.send({ type: 'cancel', jobId: running });
  const e2 = await client.next(isEnd(running));
  const latency = performance.now() - sentAt;
  assert.ok(e2.type === 'error' && e2.code === 'cancelled', JSON.stringify(e2));
  // It stops at the next step: far before the rest of the job, timed by the job's own pace in this
  // run (no absolute bound: loaded machines stretch everything). Normal: one step, 20-40 ms.
  const remaining = ((progress.total - progress.step) * progress.elapsedMs) / progress.step;
  console.log(`cancel of a running job: ${latency.toFixed(1)} ms; the job had ${remaining.toFixed(0)} ms left`);
  assert.ok(latency < 0.5 * remaining, `cancel took ${latency.toFixed(1)} ms, the job had only ${remaining.toFixed(0)} ms left: it was not stopped at the next step`);
  assert.equal(existsSync(join(tb.outputs, running)), false, 'a cancelled job is not stored');

  client.send(generateMessage('c-after', { steps: 2 }));
  const next = await jobIdOf(client, 'c-after');
  const { done } = await collectJob(client, next);
  assert.ok(done.type === 'done' && done.layerCount === 4);
  client.close();
});

test('two clients: round-robin order, each gets only its own results', async () => {
  const a = await TestClient.paired(tb.url);
  const b = await TestClient.paired(tb.url);
  const aIds: string[] = [];
  for (let i = 0; i < 3; i++) {
    a.send(generateMessage(`a${i}`, { steps: 3, seed: 100 + i }));
    aIds.push(await jobIdOf(a, `a${i}`));
  }
  b.send(generateMessage('b0', { steps: 3, seed: 200 }));
  const bId = await jobIdOf(b, 'b0');
  const bQueued = b.received.find((m) => m.type === 'queued' && m.jobId === bId);
  // a0 runs, b0 goes before a1 and a2
  assert.ok(bQueued?.type === 'queued' && bQueued.position === 1, JSON.stringify(bQueued));

  const finished: string[] = [];
  const results = await Promise.all([
    ...aIds.map((id) => collectJob(a, id).then((r) => (finished.push(id), r))),
    collectJob(b, bId).then((r) => (finished.push(bId), r)),
  ]);
  assert.deepEqual(finished, [aIds[0], bId, aIds[1], aIds[2]]);

  const mine = (client: TestClient, ids: string[]) =>
    client.received.every((m) => (m.type === 'binary' ? ids.includes(m.frame.jobId) : !('jobId' in m) || m.jobId === undefined || ids.includes(m.jobId)));
  assert.ok(mine(a, aIds), 'client a saw another client\'s job');
  assert.ok(mine(b, [bId]), 'client b saw another client\'s job');

  // pixels carry each job's own seed
  const seeds = [100, 101, 102, 200];
  results.forEach(({ messages }, k) => {
    const frame = messages.find((m) => m.type === 'binary' && m.frame.layerIndex === 2);
    assert.ok(frame?.type === 'binary');
    const png = decodePng(frame.frame.png);
    assert.deepEqual([...png.data.subarray(0, 4)], fakePixel(seeds[k], 2, 0, 0));
  });
  a.close();
  b.close();
});

test('a client that disconnects mid-job can fetch it after reconnecting (running, then stored)', async () => {
  const first = await TestClient.paired(tb.url);
  first.send(generateMessage('d1', { steps: 25, seed: 5 }));
  const jobId = await jobIdOf(first, 'd1');
  await first.next((m) => m.type === 'progress');
  first.close();
  await first.closed;

  const second = await TestClient.paired(tb.url);
  second.send({ type: 'fetch', jobId });
  const q = await second.next((m) => m.type === 'queued');
  assert.ok(q.type === 'queued' && q.jobId === jobId && q.position === 0);
  const live = await collectJob(second, jobId);
  assert.ok(live.done.type === 'done' && live.done.fetched === false && live.done.requestId === 'd1');

  const third = await TestClient.paired(tb.url);
  third.send({ type: 'fetch', jobId });
  const replay = await collectJob(third, jobId);
  assert.ok(replay.done.type === 'done' && replay.done.fetched === true && replay.done.layerCount === 4);
  const frames = (r: typeof replay) => r.messages.flatMap((m) => (m.type === 'binary' ? [Buffer.from(m.frame.png).toString('base64')] : []));
  assert.deepEqual(frames(replay), frames(live), 'the replay has the same PNGs');
  second.close();
  third.close();
});

test('ping is answered while a job runs and its PNGs are encoded: never blocked for a unit of the job\'s work', async () => {
  const client = await TestClient.paired(tb.url);
  const big = generateMessage('p1', { steps: 40 });
  big.layout = { width: 1024, height: 1024, boxes: [[0, 0, 1024, 1024], [0, 0, 1024, 1024], [0, 0, 1024, 512], [0, 512, 1024, 1024]] };
  big.params.resolution = 1024;
  // Baselines measured here, under this run's load: encoding the job's layers on this thread (what
  // the PNG pool keeps off the event loop).
  const encodeStart = performance.now();
  for (const [x1, y1, x2, y2] of big.layout.boxes) {
    const w = x2 - x1, h = y2 - y1;
    const rgba = new Uint8Array(w * h * 4);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgba.set(fakePixel(7, 2, x, y), (y * w + x) * 4);
    encodePng(w, h, rgba);
  }
  const encodeAllMs = performance.now() - encodeStart;
  client.send(big);
  const jobId = await jobIdOf(client, 'p1');
  await client.next((m) => m.type === 'progress');
  const rtts: number[] = [];
  const phases: string[] = [];
  let finished = false;
  const end = collectJob(client, jobId, 20_000).then(() => (finished = true));
  for (let id = 0; !finished && id < 400; id++) {
    // The client shares the bridge's event loop: a blocked loop shows as a late pong or a late
    // timer, so the whole cycle counts (less the 40 ms pause, under the 30 a second message limit).
    const sent = performance.now();
    client.send({ type: 'ping', id });
    await client.next((m) => m.type === 'pong' && m.id === id);
    phases.push(client.received.some((m) => m.type === 'layer') ? 'sending' : client.received.filter((m) => m.type === 'progress').length > 0 ? 'running' : 'queued');
    await new Promise((r) => setTimeout(r, 40));
    rtts.push(performance.now() - sent - 40);
  }
  await end;
  assert.ok(rtts.length >= 10, `only ${rtts.length} pings`);
  const worst = Math.max(...rtts);
  const at = rtts.indexOf(worst);
  const median = [...rtts].sort((x, y) => x - y)[rtts.length >> 1];
  // The fake's 40 steps hold its thread for 800 ms without yielding: run on the event loop, they
  // would block one ping for all of it; so would encoding the layers there in one go (a ping sent
  // into such a block waits for nearly all of it: 40 ms apart, one lands near its start).
  const denoiseMs = 40 * 20;
  const bound = 0.75 * Math.min(denoiseMs, encodeAllMs);
  console.log(`ping during a job: ${rtts.length} pings, worst ${worst.toFixed(1)} ms (ping ${at}, ${phases[at]}), median ${median.toFixed(1)} ms; bound ${bound.toFixed(0)} ms (encoding the layers here: ${encodeAllMs.toFixed(0)} ms)`);
  assert.ok(worst < bound, `worst ping ${worst.toFixed(1)} ms (ping ${at} of ${rtts.length}, while ${phases[at]}): the event loop was blocked for half the job's denoising or PNG encoding`);
  assert.ok(median < 0.1 * bound, `median ping ${median.toFixed(1)} ms: the event loop is slow throughout the job`);
  client.close();
});

test('a crashed pipeline worker fails its job, and the next job runs on a fresh worker', async () => {
  const client = await TestClient.paired(tb.url);
  client.send(generateMessage('crash', { prompt: 'please CRASH' }));
  const crashed = await jobIdOf(client, 'crash');
  const e = await client.next(isEnd(crashed));
  assert.ok(e.type === 'error' && e.code === 'generation_failed', JSON.stringify(e));
  assert.match(e.message, /worker/);
  client.send(generateMessage('after-crash', { steps: 2, seed: 3 }));
  const next = await jobIdOf(client, 'after-crash');
  const { done } = await collectJob(client, next, 15_000);
  assert.ok(done.type === 'done' && done.layerCount === 4);
  client.close();
});
