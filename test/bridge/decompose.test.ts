/**
 * A decomposition through a real bridge (fake pipeline): the welcome and /health say which jobs
 * the model runs; `decompose` and its image frame make a job whose layers come from the uploaded
 * pixels (transparency over white); the image is stored with the job, `fetch` replays it as a
 * decomposition, and a later generation can keep its layers. A model that cannot decompose refuses.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestBridge, TestClient, collectJob, decodePng, decomposeMessage, flatImage, generateMessage, type TestBridge } from '../support/bridge.ts';
import { healthOnce } from './attack-helpers.ts';
import { decomposedPixel } from '../support/fake-pipeline.ts';
import { MAX_FLAT_IMAGE_BYTES } from '../../domain/layout.ts';
import type { SourceImage } from '../../gpu-server/pipeline/types.ts';

let tb: TestBridge;
before(async () => {
  tb = await startTestBridge({ fake: { stepMs: 1 } });
});
after(async () => {
  await tb.close();
});

/** The image as the pipeline must see it: RGB, every pixel over white. */
function overWhite(rgba: Uint8Array, width: number, height: number): SourceImage {
  const pixels = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++)
    for (let c = 0; c < 3; c++) pixels[p * 3 + c] = Math.round((rgba[p * 4 + c] * rgba[p * 4 + 3] + 255 * (255 - rgba[p * 4 + 3])) / 255);
  return { width, height, channels: 3, pixels };
}

test('decompose: welcome and /health say which jobs the model runs, and the largest image', async () => {
  const client = await TestClient.open(tb.url, { origin: 'null' });
  client.send({ type: 'hello', protocol: 2, token: 'test-token-0123456789abcdef' });
  const welcome = await client.next((m) => m.type === 'welcome');
  assert.ok(welcome.type === 'welcome');
  assert.deepEqual(welcome.models.map((m) => m.jobs), [['generate', 'decompose']]);
  assert.equal(welcome.maxImageBytes, MAX_FLAT_IMAGE_BYTES);
  const { body } = await healthOnce(tb.bridge.port);
  assert.deepEqual((body as unknown as { jobs: string[] }).jobs, ['generate', 'decompose']);
  client.close();
});

test('decompose: the uploaded image reaches the pipeline (transparency over white), is stored with the job, and fetch replays it as a decomposition', async () => {
  const client = await TestClient.paired(tb.url);
  const { rgba, png } = flatImage();
  const message = decomposeMessage('d1', png.length, { seed: 99, conditioningScale: 0.7, steps: 3 });
  client.send(message);
  client.ws.send(png);
  const q = await client.next((m) => m.type === 'queued' && m.requestId === 'd1');
  const jobId = (q as { jobId: string }).jobId;
  const { done, messages } = await collectJob(client, jobId);
  assert.equal(done.job, 'decompose');
  assert.equal(done.layerCount, message.layout.boxes.length);
  const image = overWhite(rgba, 128, 64);
  assert.deepEqual([...image.pixels.subarray(0, 3)], [255, 255, 255], 'the transparent pixel is white');
  for (const m of messages) {
    if (m.type !== 'binary') continue;
    const [x1, y1, x2, y2] = message.layout.boxes[m.frame.layerIndex];
    const layer = decodePng(m.frame.png);
    assert.deepEqual([layer.width, layer.height], [x2 - x1, y2 - y1]);
    for (const [x, y] of [[0, 0], [layer.width - 1, layer.height - 1], [5, 3]])
      assert.deepEqual([...layer.data.subarray((y * layer.width + x) * 4, (y * layer.width + x) * 4 + 4)], decomposedPixel(image, 99, m.frame.layerIndex, x1, y1, x, y), `layer ${m.frame.layerIndex} at ${x},${y}`);
  }
  // Stored: the upload byte for byte, the job kind and the adapter's weight.
  const dir = join(tb.outputs, jobId);
  assert.deepEqual(new Uint8Array(await readFile(join(dir, 'image.png'))), png);
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { job: string; params: { conditioningScale: number }; image: { bytes: number } };
  assert.deepEqual([manifest.job, manifest.params.conditioningScale, manifest.image.bytes], ['decompose', 0.7, png.length]);

  client.send({ type: 'fetch', jobId });
  const replay = await client.next((m) => m.type === 'done' && m.jobId === jobId && m.fetched);
  assert.ok(replay.type === 'done' && replay.job === 'decompose');

  // A decomposition is a base like any other: regenerate layer 3, keep the background and layer 2.
  const regen = { ...generateMessage('r1', { seed: 5 }), base: { jobId, keep: [{ from: 1, to: 1 }, { from: 2, to: 2 }] } };
  client.send(regen);
  const q2 = await client.next((m) => m.type === 'queued' && m.requestId === 'r1');
  const second = await collectJob(client, (q2 as { jobId: string }).jobId);
  assert.equal(second.done.job, undefined, 'a generation');
  const kept = second.messages.find((m) => m.type === 'binary' && m.frame.layerIndex === 2);
  const original = messages.find((m) => m.type === 'binary' && m.frame.layerIndex === 2);
  assert.ok(kept?.type === 'binary' && original?.type === 'binary' && Buffer.from(kept.frame.png).equals(Buffer.from(original.frame.png)), 'kept layer 2 byte for byte');
  client.close();
});

test('decompose: a model that cannot decompose refuses (job_unsupported), discards the image unread, and stores nothing', async () => {
  const plain = await startTestBridge({ fake: { stepMs: 1, jobs: ['generate'] } });
  try {
    const client = await TestClient.paired(plain.url);
    const { png } = flatImage();
    client.send(decomposeMessage('d2', png.length));
    client.ws.send(png);
    const error = await client.error();
    assert.equal(error.code, 'job_unsupported');
    assert.match(error.message, /cannot decompose .*adapter/);
    client.send({ type: 'ping', id: 'after' });
    await client.next((m) => m.type === 'pong');
    assert.deepEqual(client.received.filter((m) => m.type === 'error').map((m) => m.type === 'error' && m.code), ['job_unsupported'], 'the image frame was not answered');
    assert.deepEqual(await readdir(plain.outputs), []);
    client.close();
  } finally {
    await plain.close();
  }
});

test('decompose: a refused message (bad layout) owns its frame; an image of the wrong size or a cut one is refused with its code', async () => {
  const client = await TestClient.paired(tb.url);
  const { png } = flatImage();
  const bad = decomposeMessage('d3', png.length);
  bad.layout = { ...bad.layout, boxes: [[0, 0, 128, 64]] };
  client.send(bad);
  client.ws.send(png);
  assert.equal((await client.error()).code, 'invalid_layout');

  const wrong = flatImage(64, 64).png;
  client.send(decomposeMessage('d4', wrong.length));
  client.ws.send(wrong);
  const mismatch = await client.error();
  assert.deepEqual([mismatch.code, mismatch.requestId], ['image_size_mismatch', 'd4']);
  assert.match(mismatch.message, /64x64 but the layout's canvas is 128x64/);

  client.send(decomposeMessage('d5', png.length));
  client.ws.send(png.subarray(0, png.length - 10));
  assert.equal((await client.error()).code, 'image_truncated');

  client.send(decomposeMessage('d6', MAX_FLAT_IMAGE_BYTES + 1));
  const tooBig = await client.error();
  assert.equal(tooBig.code, 'image_too_large');
  client.send(decomposeMessage('d7', png.length, { conditioningScale: 2.5 }));
  client.ws.send(png);
  const scale = await client.error();
  assert.deepEqual([scale.code, scale.requestId], ['invalid_params', 'd7']);
  assert.match(scale.message, /params\.conditioningScale/);
  client.send({ type: 'ping', id: 'end' });
  await client.next((m) => m.type === 'pong');
  assert.equal(client.received.filter((m) => m.type === 'error').length, 5, 'one answer each, none for the discarded frames');
  client.close();
});
