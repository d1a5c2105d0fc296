import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startTestBridge, TestClient, generateMessage, collectJob } from '../support/bridge.ts';
import type { ProgressMessage } from '../../bridge/protocol/messages.ts';

const jobIdOf = async (client: TestClient, requestId: string) =>
  ((await client.next((m) => m.type === 'queued' && m.requestId === requestId)) as { jobId: string }).jobId;

test('shutdown mid-job (finish): the running job completes and is delivered, waiting jobs are refused, sockets close 1001', async () => {
  const tb = await startTestBridge({ fake: { stepMs: 20 } });
  try {
    const client = await TestClient.paired(tb.url);
    client.send(generateMessage('s-run', { steps: 15 }));
    const running = await jobIdOf(client, 's-run');
    client.send(generateMessage('s-wait', { steps: 15 }));
    const waiting = await jobIdOf(client, 's-wait');
    await client.next((m) => m.type === 'progress');

    const closing = tb.bridge.close();
    const refused = await client.error('shutting_down');
    assert.equal(refused.jobId, waiting);
    // no new connections while shutting down
    await assert.rejects(TestClient.open(tb.url, { origin: 'null' }), /503/);

    const { done } = await collectJob(client, running);
    assert.ok(done.type === 'done' && done.fetched === false);
    assert.ok(existsSync(join(tb.outputs, running, 'manifest.json')));
    const closed = await client.closed;
    assert.equal(closed.code, 1001);
    assert.equal(closed.reason, 'bridge shutting down');
    await closing;
  } finally {
    await tb.close();
  }
});

test('shutdown mid-job with cancelOnShutdown: the running job is cancelled at its next step', async () => {
  const tb = await startTestBridge({ fake: { stepMs: 20 }, cancelOnShutdown: true });
  try {
    const client = await TestClient.paired(tb.url);
    client.send(generateMessage('k-run', { steps: 100 }));
    const running = await jobIdOf(client, 'k-run');
    const progress = (await client.next((m) => m.type === 'progress' && m.step >= 3)) as ProgressMessage;
    const started = performance.now();
    await tb.bridge.close();
    // Far from the rest of the job, timed by the job's own pace in this run (normal: one step).
    const remaining = ((progress.total - progress.step) * progress.elapsedMs) / progress.step;
    const took = performance.now() - started;
    assert.ok(took < 0.5 * remaining, `close took ${took.toFixed(0)} ms, the job had ${remaining.toFixed(0)} ms left: it waited for the job`);
    const e = await client.error('cancelled');
    assert.equal(e.jobId, running);
    assert.match(e.message, /shutting down/);
    assert.equal((await client.closed).code, 1001);
    assert.equal(existsSync(join(tb.outputs, running)), false);
  } finally {
    await tb.close();
  }
});

test('the port is free after shutdown', async () => {
  const tb = await startTestBridge();
  const port = tb.bridge.port;
  await tb.close();
  await assert.rejects(fetch(`http://127.0.0.1:${port}/health`));
});
