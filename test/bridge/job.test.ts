import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startTestBridge, TestClient, generateMessage, collectJob, decodePng, type TestBridge } from '../support/bridge.ts';
import { fakePixel } from '../support/fake-pipeline.ts';
import { PROTOCOL_VERSION } from '../../bridge/protocol/messages.ts';

let tb: TestBridge;
before(async () => {
  tb = await startTestBridge({ fake: { stepMs: 10 } });
});
after(() => tb.close());

test('a full job: queued, progress, one layer message + PNG frame per box, done; all stored before done', async () => {
  const client = await TestClient.paired(tb.url);
  const request = generateMessage('full-1', { steps: 6, seed: 11 });
  client.send(request);
  const queued = await client.next((m) => m.type === 'queued');
  assert.equal(queued.type === 'queued' && queued.requestId, 'full-1');
  const jobId = (queued as { jobId: string }).jobId;
  // Layers leave as they are encoded; the job archive is complete before `done`: check the disk then.
  let storedBeforeDone: boolean | undefined;
  client.ws.on('message', (data, isBinary) => {
    if (storedBeforeDone === undefined && !isBinary && String(data).includes('"type":"done"'))
      storedBeforeDone = existsSync(join(tb.outputs, jobId, 'manifest.json'));
  });
  const { done, messages } = await collectJob(client, jobId);
  assert.equal(storedBeforeDone, true);

  const kinds = messages.map((m) => m.type);
  const firstLayer = kinds.indexOf('layer');
  assert.ok(kinds.indexOf('progress') > 0 && kinds.indexOf('progress') < firstLayer, `order: ${kinds}`);
  assert.equal(kinds.at(-1), 'done');
  const afterFirst = messages.slice(firstLayer);
  assert.ok(afterFirst.every((m) => m.type !== 'progress' || m.stage === 'encode'), 'only encode progress after the first layer');
  // layer, binary, layer, binary, ... in index order, then done
  const tail = afterFirst.filter((m) => m.type !== 'progress').slice(0, -1);
  assert.deepEqual(tail.map((m) => m.type), request.layout.boxes.flatMap(() => ['layer', 'binary']));
  assert.deepEqual(tail.flatMap((m) => (m.type === 'layer' ? [m.index] : [])), request.layout.boxes.map((_, i) => i));

  for (const box of request.layout.boxes) {
    const index = request.layout.boxes.indexOf(box);
    const meta = messages.find((m) => m.type === 'layer' && m.index === index);
    const frame = messages.find((m) => m.type === 'binary' && m.frame.layerIndex === index);
    assert.ok(meta?.type === 'layer' && frame?.type === 'binary');
    const [x1, y1, x2, y2] = box;
    assert.deepEqual(meta.box, box);
    assert.equal(meta.bytes, frame.frame.png.length);
    assert.equal(frame.frame.kind, 'layer');
    const png = decodePng(frame.frame.png);
    assert.deepEqual([png.width, png.height], [x2 - x1, y2 - y1]);
    // The pixels are the pipeline's, unchanged by encoding and transport.
    const x = png.width - 1;
    const y = png.height - 1;
    assert.deepEqual([...png.data.subarray((y * png.width + x) * 4, (y * png.width + x) * 4 + 4)], fakePixel(11, index, x, y));
  }

  assert.ok(done.type === 'done');
  assert.equal(done.requestId, 'full-1');
  assert.equal(done.layerCount, request.layout.boxes.length);
  assert.equal(done.fetched, false);
  assert.equal(done.tiny, true);
  assert.ok((done.timings.total ?? -1) >= (done.timings.denoise ?? 0));

  // Stored: manifest + one PNG per layer, no temporary folder left.
  const manifest = JSON.parse(await readFile(join(tb.outputs, jobId, 'manifest.json'), 'utf8'));
  assert.equal(manifest.jobId, jobId);
  assert.equal(manifest.layers.length, request.layout.boxes.length);
  assert.deepEqual(await readdir(tb.outputs), [jobId]);
  client.close();
});

test('progress is throttled to about 10 a second', async () => {
  const client = await TestClient.paired(tb.url);
  client.send(generateMessage('throttle', { steps: 40 })); // 40 steps x 10 ms
  const queued = await client.next((m) => m.type === 'queued');
  const jobId = (queued as { jobId: string }).jobId;
  const { messages, done } = await collectJob(client, jobId);
  const progress = messages.filter((m) => m.type === 'progress' && m.stage === 'denoise');
  const layers = generateMessage('throttle').layout.boxes.length;
  const seconds = (done.type === 'done' ? (done.timings.denoise ?? 0) : 0) / 1000;
  // at most one per 100 ms, plus the first and the last step of the stage
  assert.deepEqual(messages.filter((m) => m.type === 'progress' && m.stage === 'encode').map((m) => m.type === 'progress' && [m.step, m.total]), [[0, layers], [layers, layers]]);
  assert.ok(progress.length >= 2, `saw ${progress.length}`);
  assert.ok(progress.length <= Math.floor(seconds * 10) + 2, `${progress.length} progress messages in ${seconds} s`);
  const last = progress.at(-1);
  assert.ok(last?.type === 'progress' && last.step === 40 && last.total === 40);
  client.close();
});

test('GET /health reports version, model, provider, protocol and queue, and no token', async () => {
  const res = await fetch(`http://127.0.0.1:${tb.bridge.port}/health`);
  assert.equal(res.status, 200);
  const text = await res.text();
  const health = JSON.parse(text);
  assert.equal(health.model, 'fake');
  assert.equal(health.provider, 'cpu');
  // startTestBridge passes version 'test'; the CLI passes package.json's (cli.test.ts).
  assert.equal(health.version, 'test');
  assert.equal(health.protocol, PROTOCOL_VERSION);
  assert.deepEqual(health.queue, { waiting: 0, running: 0 });
  assert.ok(!text.includes('test-token'));
  assert.equal((await fetch(`http://127.0.0.1:${tb.bridge.port}/other`)).status, 404);
});
