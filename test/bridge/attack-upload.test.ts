/**
 * Attacks on the one binary thing a client sends, a decomposition's image, against a real bridge
 * (fake pipeline): bombs, truncated and corrupt files, absurd headers, frames without their
 * message and messages without their frame, two frames, an upload cut off, a slow upload, a flood
 * of uploads, and big frames before pairing. After each: the refusal's code, nothing stored, the
 * bridge's buffers back where they were, and the witness (attack-helpers.ts) still served.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { crc32, deflateSync } from 'node:zlib';
import { startTestBridge, TestClient, TOKEN, decomposeMessage, flatImage, type TestBridge } from '../support/bridge.ts';
import { RawWebSocket, clientFrame, text } from '../support/raw-socket.ts';
import { Witness, sleep } from './attack-helpers.ts';
import { pngFile } from '../../gpu-server/pipeline/png.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const MiB = 2 ** 20;
const UPLOAD_TIMEOUT_MS = 600;

let tb: TestBridge;
let witness: Witness;
let baseBuffers = 0;
before(async () => {
  tb = await startTestBridge({ fake: { stepMs: 1 }, limits: { uploadTimeoutMs: UPLOAD_TIMEOUT_MS } });
  witness = await Witness.start(tb);
  baseBuffers = arrayBuffers();
});
after(async () => {
  witness.close();
  await tb.close();
});

function arrayBuffers(): number {
  gc();
  return process.memoryUsage().arrayBuffers;
}

const jobFolders = async () => (await readdir(tb.outputs)).sort();

/** Runs an attack; then: nothing new in the job store, buffers back near the baseline, the witness served. */
async function attack(what: string, fn: () => Promise<void>): Promise<void> {
  const before = await jobFolders();
  await fn();
  assert.deepEqual(await jobFolders(), before, `${what}: nothing stored`);
  let left = arrayBuffers() - baseBuffers;
  for (let waited = 0; left >= 4 * MiB && waited < 5000; waited += 100) {
    await sleep(100);
    left = arrayBuffers() - baseBuffers;
  }
  assert.ok(left < 4 * MiB, `${what}: ${(left / MiB).toFixed(1)} MiB of buffers stayed`);
  await witness.check(what);
}

/** A PNG of the helpers' 128 x 64 canvas around `idat` (any bytes), IHDR of `width` x `height`. */
const pngAround = (idat: Uint8Array, width = 128, height = 64) => pngFile(width, height, 6, idat);

/** Sends decompose announcing `png.length` bytes, then `png`; returns the first error's code. */
async function upload(client: TestClient, requestId: string, png: Uint8Array): Promise<{ code: string; message: string; requestId?: string }> {
  client.send(decomposeMessage(requestId, png.length));
  client.ws.send(png);
  return client.error();
}

test('upload attack: bombs are refused, by their header or at the size it implies, and nothing is kept', async () => {
  await attack('bombs', async () => {
    const client = await TestClient.paired(tb.url);
    // Dimensions of 10^10 pixels over data that is not even zlib: refused by the header alone.
    const giant = await upload(client, 'b1', pngAround(Buffer.alloc(64, 0xab), 100_000, 100_000));
    assert.equal(giant.code, 'image_size_mismatch');
    // The canvas' own size over 64 kB of data that would inflate to 64 MiB: stopped at 33 kB.
    const bomb = deflateSync(Buffer.alloc(64 * MiB), { level: 9 });
    const inflated = await upload(client, 'b2', pngAround(bomb));
    assert.deepEqual([inflated.code, inflated.requestId], ['image_too_large', 'b2']);
    assert.match(inflated.message, /decompression bomb/);
    client.close();
  });
});

test('upload attack: truncated and corrupt files, 0x0 and 100000x1 headers each get their code', async () => {
  await attack('truncated and corrupt files', async () => {
    const client = await TestClient.paired(tb.url);
    const { png } = flatImage();
    const cases: [string, Uint8Array, string][] = [
      ['cut before IEND', png.subarray(0, png.length - 12), 'image_truncated'],
      ['cut inside IDAT', png.subarray(0, 60), 'image_truncated'],
      ['the signature only', png.subarray(0, 8), 'image_truncated'],
      ['not a PNG', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'), 'image_not_png'],
      ['a flipped bit in IDAT', (() => { const c = Buffer.from(png); c[60] ^= 4; return c; })(), 'image_corrupt'],
      ['0 x 0', pngAround(deflateSync(Buffer.alloc(0)), 0, 0), 'image_size_mismatch'],
      ['100000 x 1', pngAround(deflateSync(Buffer.alloc(400_001)), 100_000, 1), 'image_size_mismatch'],
      ['interlaced', (() => { const c = Buffer.from(png); c[28] = 1; c.writeUInt32BE(crc32(c.subarray(12, 29)), 29); return c; })(), 'image_unsupported'],
    ];
    for (const [i, [name, file, code]] of cases.entries()) assert.equal((await upload(client, `c${i}`, file)).code, code, name);
    client.close();
  });
});

test('upload attack: a frame without its message, a message without its frame, two frames', async () => {
  await attack('frames and messages out of order', async () => {
    const client = await TestClient.paired(tb.url);
    const { png } = flatImage();
    client.ws.send(png);
    assert.equal((await client.error()).code, 'binary_not_allowed');
    // The message, then another message instead of the image; then the message and silence.
    client.send(decomposeMessage('m1', png.length));
    client.send({ type: 'ping', id: 1 });
    const missing = await client.error();
    assert.deepEqual([missing.code, missing.requestId], ['image_missing', 'm1']);
    await client.next((m) => m.type === 'pong');
    client.send(decomposeMessage('m2', png.length));
    const late = await client.error(undefined, UPLOAD_TIMEOUT_MS * 10);
    assert.deepEqual([late.code, late.requestId], ['image_missing', 'm2']);
    client.ws.send(png); // after the deadline: a frame without its message
    assert.equal((await client.error()).code, 'binary_not_allowed');
    client.close();
  });
  // Two frames after one message: the first is the image (a job), the second has no message.
  const client = await TestClient.paired(tb.url);
  const { png } = flatImage();
  client.send(decomposeMessage('two', png.length, { steps: 1 }));
  client.ws.send(png);
  client.ws.send(png);
  const queued = await client.next((m) => m.type === 'queued' && m.requestId === 'two');
  assert.equal((await client.error()).code, 'binary_not_allowed');
  await client.next((m) => m.type === 'done' && m.jobId === (queued as { jobId: string }).jobId, 10_000);
  client.close();
  await witness.check('after two frames');
});

test('upload attack: an upload cut off mid-frame (the socket closes) leaves nothing behind', async () => {
  await attack('an upload cut off', async () => {
    for (let i = 0; i < 5; i++) {
      const raw = await RawWebSocket.paired(tb.bridge.port, TOKEN);
      const image = Buffer.alloc(3 * MiB, 7); // any bytes: the frame never completes
      raw.write(text(JSON.stringify(decomposeMessage(`cut${i}`, image.length))));
      const frame = clientFrame(0x2, image);
      raw.write(frame.subarray(0, frame.length >> 1));
      await sleep(50);
      raw.destroy();
    }
    await sleep(200);
  });
});

test('upload attack: a slow upload misses its deadline (image_missing) and holds up no one meanwhile', async () => {
  await attack('a slow upload', async () => {
    const raw = await RawWebSocket.paired(tb.bridge.port, TOKEN);
    const { png } = flatImage();
    raw.write(text(JSON.stringify(decomposeMessage('slow', png.length))));
    const frame = clientFrame(0x2, Buffer.from(png));
    let at = 0;
    const drip = setInterval(() => {
      if (at < frame.length && !raw.socket.destroyed) raw.write(frame.subarray(at, (at += 64)));
    }, 20);
    try {
      // While the frame trickles in, another client is served.
      const other = await TestClient.paired(tb.url);
      other.send({ type: 'ping', id: 'meanwhile' });
      await other.next((m) => m.type === 'pong');
      other.close();
      await raw.until(() => raw.errorCodes().includes('image_missing'), UPLOAD_TIMEOUT_MS * 10);
      await raw.until(() => at >= frame.length, 60_000);
      // The frame finally completes: no decompose owns it any more.
      await raw.until(() => raw.errorCodes().includes('binary_not_allowed'), 5000);
      assert.deepEqual(raw.errorCodes(), ['image_missing', 'binary_not_allowed']);
    } finally {
      clearInterval(drip);
      raw.destroy();
    }
  });
});

test('upload attack: a flood of uploads (valid headers, bad data) is refused and rate-limited, and memory comes back', async () => {
  await attack('a flood of uploads', async () => {
    // Each file inflates to its full 128 x 64 size and fails at its last row: the most work a refused upload costs.
    const rows = Buffer.alloc(64 * (1 + 128 * 4));
    rows[63 * (1 + 128 * 4)] = 9; // row 63's filter type
    const worst = pngAround(deflateSync(rows));
    const floods = await Promise.all(Array.from({ length: 4 }, () => RawWebSocket.paired(tb.bridge.port, TOKEN)));
    const message = (i: number) => text(JSON.stringify(decomposeMessage(`f${i}`, worst.length)));
    const burst = Buffer.concat(Array.from({ length: 100 }, (_, i) => Buffer.concat([message(i), clientFrame(0x2, Buffer.from(worst))])));
    for (const f of floods) f.write(burst);
    await Promise.all(floods.map((f) => f.until(() => f.ended || f.errorCodes().includes('image_corrupt'), 20_000)));
    await sleep(500);
    for (const f of floods) {
      const codes = new Set(f.errorCodes());
      assert.ok(codes.has('image_corrupt') && codes.has('rate_limited'), `refused and rate-limited: ${[...codes]}`);
      f.destroy();
    }
  });
});

/** The longest witness ping round trip while `uploader` sends 3 rounds of 4 uploads of `png` (for a 1024 x 1024 layout), each round answered. */
async function pingsDuring(png: Uint8Array, code: string): Promise<number> {
  const uploader = await TestClient.paired(tb.url);
  const pinger = await TestClient.paired(tb.url);
  const message = (id: string) => ({ ...decomposeMessage(id, png.length), layout: { width: 1024, height: 1024, boxes: [[0, 0, 1024, 1024], [0, 0, 1024, 1024]] }, params: { ...decomposeMessage(id, 0).params, resolution: 1024 } });
  let worst = 0;
  let pinging = true;
  const pings = (async () => {
    for (let i = 0; pinging; i++) {
      const t0 = performance.now();
      pinger.send({ type: 'ping', id: i });
      await pinger.next((m) => m.type === 'pong' && m.id === i, 30_000);
      worst = Math.max(worst, performance.now() - t0);
      await sleep(50); // 20 a second: within the message budget
    }
  })();
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 4; i++) {
      uploader.send(message(`p${round}-${i}`));
      uploader.ws.send(png);
    }
    for (let i = 0; i < 4; i++) assert.equal((await uploader.error(undefined, 30_000)).code, code);
  }
  pinging = false;
  await pings;
  uploader.close();
  pinger.close();
  return worst;
}

test('upload attack: decoding uploads (1024 px, refused at their last row) holds up no one: pings meanwhile as after header-refused ones of the same size', async () => {
  // Made inside the attack: the test's own 12 MB must not count as what the bridge kept.
  await attack('decoding uploads', async () => {
    // Incompressible rows, the last one's filter type invalid: the whole file is inflated and unfiltered, then refused.
    const rows = new Uint8Array(1024 * (1 + 1024 * 4));
    let seed = 7;
    for (let i = 0; i < rows.length; i++) rows[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    for (let y = 0; y < 1024; y++) rows[y * (1 + 4096)] = y === 1023 ? 9 : 4;
    const worst = pngFile(1024, 1024, 6, deflateSync(rows, { level: 1 }));
    // The same bytes with a header of another size: refused before anything is inflated.
    const harmless = new Uint8Array(worst);
    harmless.set(pngFile(1008, 1024, 6, new Uint8Array(0)).subarray(0, 33));
    const baseline = await pingsDuring(harmless, 'image_size_mismatch');
    const decoding = await pingsDuring(worst, 'image_corrupt');
    // Decoded on the main thread, each upload held the loop for its whole decode (40-250 ms here).
    const ratio = decoding / Math.max(baseline, 20);
    assert.ok(ratio < 4, `longest ping while decoding ${decoding.toFixed(0)} ms vs ${baseline.toFixed(0)} ms while refusing headers = ${ratio.toFixed(1)}x`);
  });
});

test('upload attack: before pairing a frame over 1 MiB closes the socket (1009); once paired, an image up to the cap is read', async () => {
  const stranger = await RawWebSocket.open(tb.bridge.port);
  stranger.write(clientFrame(0x2, Buffer.alloc(2 * MiB)));
  await stranger.until(() => stranger.ended, 10_000);
  assert.equal(stranger.closeCode, 1009);
  // A paired client's 3 MiB frame is read (and refused by its content, not its size).
  const client = await TestClient.paired(tb.url);
  const big = pngAround(Buffer.alloc(3 * MiB, 1));
  assert.equal((await upload(client, 'big', big)).code, 'image_corrupt');
  // Text stays small: a paired client's 2 MiB text frame still closes its socket.
  const talker = await RawWebSocket.paired(tb.bridge.port, TOKEN);
  talker.write(text(' '.repeat(2 * MiB)));
  await talker.until(() => talker.ended, 10_000);
  assert.equal(talker.closeCode, 1009);
  client.close();
  await witness.check('after big frames');
});
