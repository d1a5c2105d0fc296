import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { BoxTuple } from '../../domain/layout.ts';
import { ThreadLayerStream, type Encoder } from '../../bridge/thread-layer-stream.ts';
import type { JobManifest, LayerPng } from '../../bridge/job-archive.ts';
import { ClientLayerStream } from '../../bridge/client-layer-stream.ts';
import type { BridgeMessage } from '../../bridge/protocol/messages.ts';
import { decodeImageFrame } from '../../bridge/protocol/image-frame.ts';
import type { LayerImage } from '../../gpu-server/pipeline/types.ts';
import { startTestBridge, TestClient, generateMessage, collectJob, decodePng, type TestBridge, type Received } from '../support/bridge.ts';
import { fakePixel } from '../support/fake-pipeline.ts';

const layer = (index: number): LayerImage => ({ index, box: [0, 0, 1, 1] as BoxTuple, width: 1, height: 1, rgba: Uint8Array.of(index, 0, 0, 255) });

/** An encoder whose encodes finish when the test says, in any order. */
function manualEncoder() {
  const calls: { index: number; resolve: (png: Uint8Array) => void; reject: (e: Error) => void }[] = [];
  const encoder: Encoder = {
    encode: (_w, _h, rgba) => new Promise((resolve, reject) => calls.push({ index: rgba[0], resolve, reject })),
  };
  return { encoder, calls };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('ThreadLayerStream encodes every layer at once but sends them in index order as they become ready', async () => {
  const { encoder, calls } = manualEncoder();
  const sent: number[] = [];
  const stream = new ThreadLayerStream(encoder, (l) => sent.push(l.index));
  stream.add([layer(0), layer(1), layer(2)]);
  assert.deepEqual(calls.map((c) => c.index), [0, 1, 2], 'all three are handed to the encoder immediately');
  calls[2].resolve(Uint8Array.of(2));
  calls[1].resolve(Uint8Array.of(1));
  await tick();
  assert.deepEqual(sent, [], 'layer 1 and 2 wait for layer 0');
  calls[0].resolve(Uint8Array.of(0));
  // The pipeline returns all its layers at the end; those already streamed are not encoded again.
  stream.add([layer(0), layer(1), layer(2), layer(3)]);
  assert.deepEqual(calls.map((c) => c.index), [0, 1, 2, 3]);
  calls[3].resolve(Uint8Array.of(3));
  await stream.finish();
  assert.deepEqual(sent, [0, 1, 2, 3]);
  assert.equal(stream.sentCount, 4);
});

test('ThreadLayerStream: a failed encode rejects finish once, sends nothing after it, and raises no unhandled rejection', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const { encoder, calls } = manualEncoder();
    const sent: number[] = [];
    const stream = new ThreadLayerStream(encoder, (l: LayerPng) => sent.push(l.index));
    stream.add([layer(0), layer(1), layer(2)]);
    calls[1].reject(new Error('RGBA has 3 bytes'));
    calls[2].reject(new Error('second failure'));
    calls[0].resolve(Uint8Array.of(0));
    await assert.rejects(stream.finish(), /RGBA has 3 bytes/);
    await tick();
    assert.deepEqual(sent, [0]);
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

// Through a real bridge: the fake pipeline hands its layers over, then "runs the VAE" for DECODE_MS
// without holding its thread (as onnxruntime's run does) before it returns.
const DECODE_MS = 1000;
let tb: TestBridge;
before(async () => {
  tb = await startTestBridge({ fake: { stepMs: 1, decodeMs: DECODE_MS } });
});
after(() => tb.close());

test('layers reach the client while the pipeline is still decoding, and a client that follows the job midway gets every layer once', async () => {
  const a = await TestClient.paired(tb.url);
  const b = await TestClient.paired(tb.url);
  const request = generateMessage('stream-1', { steps: 2, seed: 5 });
  a.send(request);
  const queued = await a.next<Extract<Received, { type: 'queued' }>>((m) => m.type === 'queued');
  const firstLayer = await a.next((m) => m.type === 'binary', 5000);
  const decodeDone = a.received.findIndex((m) => m.type === 'progress' && m.stage === 'decode');
  assert.equal(decodeDone, -1, 'the first layer arrived before the pipeline finished decoding');
  assert.ok(firstLayer.type === 'binary' && firstLayer.frame.layerIndex === 0);
  b.send({ type: 'fetch', jobId: queued.jobId });
  const [doneA, doneB] = await Promise.all([collectJob(a, queued.jobId), collectJob(b, queued.jobId)]);
  const kindsA = doneA.messages.map((m) => m.type);
  assert.ok(kindsA.indexOf('binary') < kindsA.findIndex((k, i) => k === 'progress' && doneA.messages[i].type === 'progress' && (doneA.messages[i] as { stage: string }).stage === 'decode'));
  for (const { messages, done } of [doneA, doneB]) {
    const frames = messages.flatMap((m) => (m.type === 'binary' ? [m.frame] : []));
    assert.deepEqual(frames.map((f) => f.layerIndex), request.layout.boxes.map((_, i) => i), 'each layer once, in order');
    assert.ok(done.type === 'done' && done.layerCount === request.layout.boxes.length);
    const png = decodePng(frames[2].png);
    assert.deepEqual([...png.data.subarray(0, 4)], fakePixel(5, 2, 0, 0));
  }
  a.close();
  b.close();
});

// ---- ClientLayerStream: every subscriber at its own pace --------------------------------------------------

/**
 * A connection as job-lifecycle.ts's Subscriber documents it: `drained()` resolves true once the client has
 * read what was sent, false once it closed or was dropped; sending to a closed one does nothing.
 * Here the test decides when it has read.
 */
function feedClient() {
  const got: string[] = [];
  let release: ((ok: boolean) => void)[] = [];
  const client = {
    open: true,
    send: (m: BridgeMessage) => client.open && got.push(m.type === 'layer' ? `layer${m.index}` : m.type),
    sendFrame: (f: Uint8Array) => client.open && got.push(`frame${decodeImageFrame(f).layerIndex}`),
    drained: () => new Promise<boolean>((resolve) => release.push(resolve)),
  };
  const read = async (ok = true) => {
    for (let i = 0; i < 5 && release.length === 0; i++) await tick();
    const r = release;
    release = [];
    r.forEach((f) => f(ok));
    await tick();
  };
  return { client, got, read };
}

const manifestFor = (jobId: string, count: number): JobManifest => ({
  format: 1, jobId, requestId: 'r', prompt: '', layout: { width: 1, height: 1, boxes: [] }, params: { resolution: 512, steps: 1, guidance: 4, trueCfg: 3.5, seed: 1 },
  seed: 1, model: 'm', provider: 'cpu', tiny: true, promptTruncated: false, timings: {}, createdAt: '', finishedAt: '', job: 'generate', latents: { file: '', values: 0 },
  layers: Array.from({ length: count }, (_, index) => ({ index, box: [0, 0, 1, 1] as BoxTuple, width: 1, height: 1, file: '' })),
});
const png = (index: number): LayerPng => ({ index, box: [0, 0, 1, 1], width: 1, height: 1, png: Uint8Array.of(index) });
const JOB = '0c5b2c7e-3f4a-4b8e-9a1d-2f6e8c9b0a1d';

test('ClientLayerStream sends each layer only after the client read the last, from the first layer for a late follower, then done once stored', async () => {
  const feed = new ClientLayerStream(JOB);
  const early = feedClient();
  const following = feed.follow(early.client);
  feed.push(png(0));
  feed.push(png(1));
  await tick();
  assert.deepEqual(early.got, [], 'nothing before the client can take it');
  await early.read();
  assert.deepEqual(early.got, ['layer0', 'frame0']);
  const late = feedClient();
  const lateFollowing = feed.follow(late.client);
  await late.read();
  await late.read();
  assert.deepEqual(late.got, ['layer0', 'frame0', 'layer1', 'frame1'], 'a late follower starts at the first layer');
  feed.push(png(2));
  feed.push(png(1)); // twice: ignored
  feed.finish(manifestFor(JOB, 3));
  await early.read();
  await early.read();
  await late.read();
  await Promise.all([following, lateFollowing]);
  assert.deepEqual(early.got, ['layer0', 'frame0', 'layer1', 'frame1', 'layer2', 'frame2', 'done']);
  assert.deepEqual(late.got.slice(4), ['layer2', 'frame2', 'done']);
});

test('ClientLayerStream: a client dropped for not reading gets no more, an aborted job sends no done, and followers end', async () => {
  const feed = new ClientLayerStream(JOB);
  const dropped = feedClient();
  const reader = feedClient();
  const a = feed.follow(dropped.client);
  const b = feed.follow(reader.client);
  feed.push(png(0));
  await dropped.read(false);
  await reader.read();
  feed.push(png(1));
  feed.abort();
  await reader.read();
  await Promise.all([a, b]);
  assert.deepEqual(dropped.got, []);
  assert.deepEqual(reader.got, ['layer0', 'frame0'], 'nothing after the abort, and no done');
});
