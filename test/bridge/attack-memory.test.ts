/**
 * Memory under attack: a paired client that stops reading (its socket paused, as a hostile or
 * hung process would) must cost the bridge at most about the high-water mark, be dropped when
 * it never drains, and leave memory where it was. Bounds are in bytes against this run's own
 * baseline and against what unbounded buffering would cost (60 replays of a ~4 MB job).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { startTestBridge, TestClient, collectJob, TOKEN, generateMessage, type TestBridge } from '../support/bridge.ts';
import { RawWebSocket, text } from '../support/raw-socket.ts';
import { Witness, sleep } from './attack-helpers.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const MiB = 2 ** 20;
const HIGH_WATER = 2 * MiB;

let tb: TestBridge;
let witness: Witness;
before(async () => {
  tb = await startTestBridge({ fake: { stepMs: 1 }, limits: { highWaterBytes: HIGH_WATER, drainTimeoutMs: 1500 } });
  witness = await Witness.start(tb);
});
after(async () => {
  witness.close();
  await tb.close();
});

/** A job of four layers of incompressible pixels (~1 MB of PNG each at 512 a side). */
function noiseJob(requestId: string, side = 512) {
  const m = generateMessage(requestId, { prompt: 'NOISE for the memory test', steps: 1 });
  const whole: [number, number, number, number] = [0, 0, side, side];
  m.layout = { width: side, height: side, boxes: [whole, whole, whole, whole] };
  m.params.resolution = side;
  return m;
}

function arrayBuffers(): number {
  gc();
  return process.memoryUsage().arrayBuffers;
}

/** Peak of arrayBuffers (sampled every 10 ms) until `done` resolves or `ms` pass. */
async function peakWhile(done: Promise<unknown>, ms: number): Promise<number> {
  let peak = process.memoryUsage().arrayBuffers;
  let finished = false;
  void done.finally(() => (finished = true));
  const end = Date.now() + ms;
  while (!finished && Date.now() < end) {
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    await sleep(10);
  }
  return Math.max(peak, process.memoryUsage().arrayBuffers);
}

test('memory: a client that does not read and asks fetch 60 times costs about the high-water mark, then is dropped', async () => {
  const owner = await TestClient.paired(tb.url);
  owner.send(noiseJob('big'));
  const q = await owner.next((m) => m.type === 'queued' && m.requestId === 'big');
  const jobId = (q as { jobId: string }).jobId;
  const { messages } = await collectJob(owner, jobId, 30_000);
  const jobBytes = messages.reduce((n, m) => n + (m.type === 'binary' ? m.frame.png.length : 0), 0);
  owner.close();
  assert.ok(jobBytes > 3 * MiB, `the job is big enough to matter (${jobBytes} bytes)`);

  const base = arrayBuffers();
  const hog = await RawWebSocket.paired(tb.bridge.port, TOKEN);
  hog.socket.pause(); // reads nothing from here on
  // Spread under the message limit (30 a second): a replay is asked for whenever one may be.
  const asking = (async () => {
    for (let i = 0; i < 60 && !hog.ended; i++) {
      hog.write(text(JSON.stringify({ type: 'fetch', jobId })));
      await sleep(40);
    }
  })();
  const dropped = hog.until(() => hog.ended, 20_000).catch(() => undefined);
  const peak = await peakWhile(dropped, 20_000);
  await asking;
  hog.socket.resume();
  // Closed with 1008 and dropped a grace second later: what the kernel still holds is read first.
  await hog.until(() => hog.ended, 10_000).catch(() => undefined);
  assert.ok(hog.ended, 'the bridge dropped the client that never drained');
  const grew = peak - base;
  // Unbounded buffering would hold 60 x jobBytes (> 180 MiB); backpressure holds the high-water
  // mark plus the layer being sent and a few small answers.
  const bound = HIGH_WATER + 3 * jobBytes;
  assert.ok(grew < bound, `peak grew ${(grew / MiB).toFixed(1)} MiB; bound ${(bound / MiB).toFixed(1)} MiB (unbounded: ${((60 * jobBytes) / MiB).toFixed(0)} MiB)`);
  // The dropped socket's buffers are released once its close completes (a few ticks later on a
  // loaded machine): memory must come back, not merely be low at one instant.
  let left = arrayBuffers() - base;
  for (let waited = 0; left >= 2 * MiB && waited < 5000; waited += 100) {
    await sleep(100);
    left = arrayBuffers() - base;
  }
  assert.ok(left < 2 * MiB, `5 s after the client was dropped ${(left / MiB).toFixed(1)} MiB stayed`);
  await witness.check('after a client that did not read');
});

test('memory: a client that stops reading its own finished jobs does not hold up the queue for others', async () => {
  const hog = await RawWebSocket.paired(tb.bridge.port, TOKEN);
  hog.socket.pause();
  for (let i = 0; i < 3; i++) hog.write(text(JSON.stringify(noiseJob(`hog${i}`))));
  await sleep(100);
  // Delivery waits for each reader on its own: the witness's job, queued behind the hog's,
  // completes while the hog reads nothing.
  await witness.check('while another client does not read its results');
  hog.destroy();
});

test('memory: a client that does not answer pings (half a frame, then silence) is dropped by the heartbeat', async () => {
  const beat = await startTestBridge({ fake: { stepMs: 1 }, limits: { heartbeatMs: 200 } });
  try {
    const silent = await RawWebSocket.paired(beat.bridge.port, TOKEN);
    silent.answerPings = false;
    silent.write(text(JSON.stringify({ type: 'ping', id: 1 })).subarray(0, 5)); // half a frame
    const polite = await RawWebSocket.paired(beat.bridge.port, TOKEN);
    await silent.until(() => silent.ended, 10_000);
    assert.equal(polite.ended, false, 'a client that answers pings stays');
    polite.destroy();
  } finally {
    await beat.close();
  }
});
