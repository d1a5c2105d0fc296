/**
 * Floods and hostile values against a real bridge (fake pipeline): the worst frames a stranger
 * or a paired client can send cost about what a same-size harmless frame costs (ratios in this
 * run, never absolute times), bursts from a long-lived client do not add up to a disconnect,
 * connection caps never push out a paired client, and the queue limits hold at their defaults.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBridge, TestClient, TOKEN, generateMessage, type TestBridge } from '../support/bridge.ts';
import { DEFAULT_LIMITS } from '../../bridge/server.ts';
import { MAX_MESSAGE_BYTES } from '../../bridge/protocol/limits.ts';
import { RawWebSocket, text } from '../support/raw-socket.ts';
import { Witness, sleep } from './attack-helpers.ts';

let tb: TestBridge;
let witness: Witness;
before(async () => {
  tb = await startTestBridge({ fake: { stepMs: 1 } });
  witness = await Witness.start(tb);
});
after(async () => {
  witness.close();
  await tb.close();
});

/** The probe's frame: a generate just under 64 kB whose layout.boxes holds ~21 000 empty arrays. */
function worstFrame(): string {
  const m = generateMessage('worst');
  const head = JSON.stringify({ ...m, layout: { ...m.layout, boxes: [] } });
  const room = MAX_MESSAGE_BYTES - head.length - 16;
  const boxes = '[]' + ',[]'.repeat(Math.floor((room - 2) / 3));
  return head.replace('"boxes":[]', `"boxes":[${boxes}]`);
}

/** A harmless frame of the same size: an over-long prompt (refused after one length check). */
function sameSizeHarmless(size: number): string {
  const m = generateMessage('harmless');
  const head = JSON.stringify({ ...m, prompt: '' });
  return head.replace('"prompt":""', `"prompt":"${'x'.repeat(size - head.length)}"`);
}

/** Milliseconds from writing `count` frames on a paired connection to the last error answer; best of 3 rounds. */
async function answerTime(frame: string, count: number): Promise<number> {
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const client = await RawWebSocket.paired(tb.bridge.port, TOKEN);
    const bytes = Buffer.concat(Array.from({ length: count }, () => text(frame)));
    const t0 = performance.now();
    client.write(bytes);
    await client.until(() => client.errorCodes().length >= count, 60_000);
    best = Math.min(best, performance.now() - t0);
    client.destroy();
    await sleep(1100); // the next round starts with a full message budget
  }
  return best;
}

test('flood: a paired client\'s worst frame (21 000 empty boxes) costs about a same-size harmless frame', async () => {
  const worst = worstFrame();
  assert.ok(worst.length > 60_000 && worst.length <= MAX_MESSAGE_BYTES, `worst frame is ${worst.length} bytes`);
  const harmless = sameSizeHarmless(worst.length);
  const count = DEFAULT_LIMITS.burst; // all within the budget: each one is handled
  const baseline = await answerTime(harmless, count);
  const attack = await answerTime(worst, count);
  // Before the work caps, zod walked all 21 000 elements: 35-80x the harmless frame.
  // The 20 ms floor keeps a tiny baseline from turning scheduler noise into a ratio.
  const ratio = attack / Math.max(baseline, 20);
  assert.ok(ratio < 4, `worst/harmless answer time ${attack.toFixed(0)} / ${baseline.toFixed(0)} ms = ${ratio.toFixed(1)}x`);
  await witness.check('after worst-frame floods');
});

/** Witness ping round trip right after strangers write `frames` frames each on `conns` unpaired connections; best of 3. */
async function pingAfterStrangers(frame: string, conns: number, frames: number): Promise<number> {
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const strangers = await Promise.all(Array.from({ length: conns }, () => RawWebSocket.open(tb.bridge.port)));
    const bytes = Buffer.concat(Array.from({ length: frames }, () => text(frame)));
    const pinger = await TestClient.paired(tb.url);
    for (const s of strangers) s.write(bytes);
    const t0 = performance.now();
    pinger.send({ type: 'ping', id: round });
    await pinger.next((m) => m.type === 'pong', 60_000);
    best = Math.min(best, performance.now() - t0);
    pinger.close();
    strangers.forEach((s) => s.destroy());
    await sleep(200);
  }
  return best;
}

test('flood: strangers (no hello) sending the worst frame do not stall a paired client\'s pings', async () => {
  const worst = worstFrame();
  const baseline = await pingAfterStrangers(sameSizeHarmless(worst.length), 4, 60);
  const attack = await pingAfterStrangers(worst, 4, 60);
  // Before pairing was checked first, each worst frame ran the full schema (63-82 ms): pings waited seconds.
  const ratio = attack / Math.max(baseline, 20);
  assert.ok(ratio < 4, `ping after the worst unpaired flood ${attack.toFixed(0)} ms vs ${baseline.toFixed(0)} ms after a harmless one = ${ratio.toFixed(1)}x`);
  await witness.check('after unpaired worst-frame floods');
});

test('flood: a long-lived client that bursts now and then is never disconnected (drops decay)', async () => {
  const bursty = await startTestBridge({ fake: { stepMs: 1 }, limits: { burst: 10, perSecond: 20 } });
  try {
    const client = await TestClient.paired(bursty.url);
    // Each burst has 10 more messages than the budget; 12 bursts drop 120 in all, more than the
    // 10 x burst a sustained flood may drop, but the drops leak away between bursts.
    for (let b = 0; b < 12; b++) {
      for (let i = 0; i < 20; i++) client.send({ type: 'ping', id: b * 100 + i });
      await sleep(600);
    }
    client.send({ type: 'ping', id: 'still-here' });
    await client.next((m) => m.type === 'pong' && m.id === 'still-here');
    assert.ok(client.received.some((m) => m.type === 'error' && m.code === 'rate_limited'), 'the bursts were over the budget');
    client.close();
  } finally {
    await bursty.close();
  }
});

test('flood: hostile values in every message type are refused and pollute nothing', async () => {
  const client = await TestClient.paired(tb.url);
  const big = 'j'.repeat(50_000);
  const cases: { send: string; code: string }[] = [
    { send: JSON.stringify(generateMessage('p1')).replace('{', '{"__proto__":{"polluted":true},'), code: 'invalid_message' },
    { send: JSON.stringify({ ...generateMessage('p2'), layout: { ...generateMessage('p2').layout, constructor: { prototype: { polluted: true } } } }), code: 'invalid_layout' },
    { send: `{"type":"ping","id":{"__proto__":{"polluted":true}}}`, code: 'invalid_message' },
    { send: JSON.stringify({ type: 'ping', id: -0.5 }), code: 'invalid_message' },
    { send: JSON.stringify({ type: 'cancel', jobId: big }), code: 'invalid_message' },
    { send: JSON.stringify({ type: 'fetch', jobId: ['00000000-0000-4000-8000-000000000000'] }), code: 'invalid_message' },
    { send: JSON.stringify({ type: 'fetch' }), code: 'invalid_message' },
    { send: JSON.stringify({ ...generateMessage('p3'), params: { ...generateMessage('p3').params, seed: '7' } }), code: 'invalid_params' },
    { send: JSON.stringify({ ...generateMessage('p4'), prompt: '\u0085\u0085' }), code: 'invalid_prompt' },
    { send: JSON.stringify({ ...generateMessage('p5'), prompt: '\u200b\ufeff\u00ad' }), code: 'invalid_prompt' },
    { send: `{"type":"generate","requestId":"p6","layout":${'['.repeat(5000)}${']'.repeat(5000)}}`, code: 'invalid_layout' },
    { send: `{"type":"ping","id":1,"x":{${Array.from({ length: 3000 }, (_, i) => `"k${i}":0`).join(',')}}}`, code: 'invalid_message' },
  ];
  for (const [i, c] of cases.entries()) {
    client.ws.send(c.send);
    const error = await client.error();
    assert.equal(error.code, c.code, `case ${i}: ${error.message}`);
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
  client.close();
  await witness.check('after hostile values');
});

test('flood: fetch of a running job answers queued without the submitter\'s requestId; jobs are shared between paired clients', async () => {
  const slow = await startTestBridge({ fake: { stepMs: 20 } });
  try {
    const owner = await TestClient.paired(slow.url);
    owner.send(generateMessage('mine', { steps: 50 }));
    const q = await owner.next((m) => m.type === 'queued' && m.requestId === 'mine');
    const jobId = (q as { jobId: string }).jobId;
    const other = await TestClient.paired(slow.url);
    other.send({ type: 'fetch', jobId });
    const answer = await other.next((m) => m.type === 'queued');
    assert.deepEqual(answer, { type: 'queued', jobId, position: 0 });
    // Any paired client may cancel any job (they all hold the one token): documented in PROTOCOL.md.
    other.send({ type: 'cancel', jobId });
    assert.equal((await owner.error('cancelled')).jobId, jobId);
    owner.close();
    other.close();
  } finally {
    await slow.close();
  }
});

test('flood: the queue limits the README states hold at their defaults (4 per connection, 32 waiting)', async () => {
  const full = await startTestBridge({ fake: { stepMs: 50 } });
  try {
    const { jobsPerClient, queueLength } = DEFAULT_LIMITS;
    assert.deepEqual([jobsPerClient, queueLength], [4, 32], 'the README states these');
    const clients = await Promise.all(Array.from({ length: 9 }, () => TestClient.paired(full.url)));
    const ids: { client: TestClient; jobId: string }[] = [];
    let refusedGlobal = 0;
    for (const [c, client] of clients.entries()) {
      for (let i = 0; i < jobsPerClient; i++) client.send(generateMessage(`c${c}j${i}`, { steps: 100 }));
      for (let i = 0; i < jobsPerClient; i++) {
        const m = await client.next((x) => (x.type === 'queued' || x.type === 'error') && 'requestId' in x && x.requestId === `c${c}j${i}`);
        if (m.type === 'queued') ids.push({ client, jobId: m.jobId });
        else {
          assert.equal(m.type === 'error' && m.code, 'queue_full');
          assert.match((m as { message: string }).message, /32 jobs waiting/);
          refusedGlobal++;
        }
      }
    }
    // 9 x 4 = 36 asked: one runs, 32 wait, 3 are refused.
    assert.deepEqual([ids.length, refusedGlobal], [1 + queueLength, 9 * jobsPerClient - 1 - queueLength]);
    clients[0].send(generateMessage('c0-fifth'));
    assert.match((await clients[0].error('queue_full')).message, /already has 4 jobs/);
    for (const { client, jobId } of ids) client.send({ type: 'cancel', jobId });
    for (const { client, jobId } of ids) await client.next((m) => m.type === 'error' && m.code === 'cancelled' && m.jobId === jobId, 20_000);
    clients.forEach((c) => c.close());
  } finally {
    await full.close();
  }
});

test('flood: many connections: the oldest strangers make room, paired clients are never pushed out', async () => {
  const capped = await startTestBridge({ fake: { stepMs: 1 }, limits: { maxConnections: 8, connectionsPerAddress: 8 } });
  try {
    const paired = await Promise.all(Array.from({ length: 5 }, () => RawWebSocket.paired(capped.bridge.port, TOKEN)));
    const strangers: RawWebSocket[] = [];
    for (let i = 0; i < 12; i++) strangers.push(await RawWebSocket.open(capped.bridge.port));
    await sleep(100);
    // The 9 oldest were closed with 1013 and a reason (a raw socket that does not answer the close
    // frame is dropped a grace second later).
    assert.deepEqual(strangers.map((s) => s.closeCode), [...Array(9).fill(1013), undefined, undefined, undefined], 'only the 3 newest strangers hold a slot');
    assert.ok(paired.every((p) => !p.ended), 'no paired client was pushed out');
    // A designer connecting now gets in (a stranger makes room) and pairs.
    const designer = await TestClient.paired(capped.url);
    // With every slot paired, a new connection is closed at once with 1013 (try again later), and the paired stay.
    const more = await Promise.all([RawWebSocket.paired(capped.bridge.port, TOKEN), RawWebSocket.paired(capped.bridge.port, TOKEN)]);
    const late = await RawWebSocket.open(capped.bridge.port);
    await late.until(() => late.closeCode !== undefined);
    assert.equal(late.closeCode, 1013);
    assert.ok([...paired, ...more].every((p) => !p.ended));
    [...paired, ...more, ...strangers].forEach((s) => s.destroy());
    designer.close();
  } finally {
    await capped.close();
  }
});
