/**
 * Transport-level attacks with raw sockets against a real bridge (fake pipeline): resets around
 * the upgrade, bad frames and opcodes, half requests and half frames, many connections.
 * After each, the witness checks the bridge still serves (see attack-helpers.ts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBridge, TOKEN, type TestBridge } from '../support/bridge.ts';
import { RawWebSocket, clientFrame, tcp, text, upgradeRequest } from '../support/raw-socket.ts';
import { Witness, healthOnce, sleep } from './attack-helpers.ts';

const HEADERS_TIMEOUT_MS = 600;
let tb: TestBridge;
let witness: Witness;
before(async () => {
  tb = await startTestBridge({ fake: { stepMs: 1 }, limits: { headersTimeoutMs: HEADERS_TIMEOUT_MS } });
  witness = await Witness.start(tb);
});
after(async () => {
  witness.close();
  await tb.close();
});

/** Sends an upgrade request and resets the connection at once (RST, not FIN). */
async function upgradeThenReset(headers: Record<string, string>): Promise<void> {
  const socket = await tcp(tb.bridge.port);
  socket.on('error', () => {});
  socket.write(upgradeRequest(tb.bridge.port, headers));
  socket.resetAndDestroy();
}

test('transport: refused upgrades (foreign origin) followed by a reset do not crash the bridge', async () => {
  for (let i = 0; i < 200; i++) {
    await upgradeThenReset({ Origin: 'https://evil.example' });
    if (i % 10 === 0) await sleep(1);
  }
  await sleep(50);
  await witness.check('after 200 refused-then-reset upgrades');
});

test('transport: accepted upgrades reset before, during and right after the handshake', async () => {
  for (let i = 0; i < 100; i++) {
    const socket = await tcp(tb.bridge.port);
    socket.on('error', () => {});
    const request = upgradeRequest(tb.bridge.port, { Origin: 'null' });
    if (i % 3 === 0) socket.write(request.slice(0, 40)); // mid-request
    else socket.write(request);
    if (i % 3 === 2) await sleep(1); // after the 101
    socket.resetAndDestroy();
  }
  await sleep(50);
  await witness.check('after 100 resets around the handshake');
});

/** A frame with its header bytes tampered with (RSV bits, no mask, a length that lies). */
function rawFrame(first: number, second: number, rest: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([Buffer.from([first, second]), rest]);
}

const frameAttacks: { name: string; bytes: () => Buffer; close: number }[] = [
  { name: 'reserved opcode 0x3', bytes: () => clientFrame(0x3, 'x'), close: 1002 },
  { name: 'reserved control opcode 0xb', bytes: () => clientFrame(0xb, ''), close: 1002 },
  { name: 'RSV1 set without an extension', bytes: () => { const f = text('{"type":"ping"}'); f[0] |= 0x40; return f; }, close: 1002 },
  { name: 'unmasked client frame', bytes: () => rawFrame(0x81, 0x05, Buffer.from('hello')), close: 1002 },
  { name: 'control frame over 125 bytes', bytes: () => clientFrame(0x9, Buffer.alloc(200)), close: 1002 },
  { name: 'fragmented control frame', bytes: () => clientFrame(0x9, 'x', false), close: 1002 },
  { name: 'continuation without a start', bytes: () => clientFrame(0x0, 'x'), close: 1002 },
  { name: 'invalid UTF-8 in a text frame', bytes: () => clientFrame(0x1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), close: 1007 },
  { name: 'a length header of 2^62 bytes', bytes: () => { const b = Buffer.alloc(14); b[0] = 0x81; b[1] = 0xff; b.writeBigUInt64BE(2n ** 62n, 2); return b; }, close: 1009 },
  { name: 'fragments adding up past the 1 MiB frame limit', bytes: () => Buffer.concat([clientFrame(0x1, Buffer.alloc(600_000, 0x20), false), clientFrame(0x0, Buffer.alloc(600_000, 0x20))]), close: 1009 },
];

for (const attack of frameAttacks)
  test(`transport: ${attack.name} -> closed with ${attack.close}, bridge serves on`, async () => {
    const ws = await RawWebSocket.paired(tb.bridge.port, TOKEN);
    ws.write(attack.bytes());
    await ws.until(() => ws.ended, 10_000);
    assert.equal(ws.closeCode, attack.close);
    await witness.check(attack.name);
  });

test('transport: a valid fragmented message is read as one', async () => {
  const ws = await RawWebSocket.paired(tb.bridge.port, TOKEN);
  const message = Buffer.from(JSON.stringify({ type: 'ping', id: 'fragmented' }));
  ws.write(Buffer.concat([clientFrame(0x1, message.subarray(0, 5), false), clientFrame(0x0, message.subarray(5, 12), false), clientFrame(0x9, 'interleaved ping'), clientFrame(0x0, message.subarray(12))]));
  await ws.until(() => ws.texts.some((t) => t.includes('"fragmented"')));
  ws.destroy();
});

test('transport: slowloris (half an upgrade request, an idle socket, a trickle of header bytes) is cut off; /health serves meanwhile', async () => {
  const half = await tcp(tb.bridge.port);
  half.write(upgradeRequest(tb.bridge.port, { Origin: 'null' }).slice(0, 60));
  const idle = await tcp(tb.bridge.port);
  const trickle = await tcp(tb.bridge.port);
  const request = upgradeRequest(tb.bridge.port, { Origin: 'null' });
  let at = 0;
  const drip = setInterval(() => !trickle.destroyed && at < request.length - 4 && trickle.write(request[at++]), 50);
  const closed = (s: typeof half) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));
  for (const s of [half, idle, trickle]) s.on('error', () => {});
  assert.equal((await healthOnce(tb.bridge.port)).body.ok, true);
  // Cut off once the headers deadline has passed (checked every connectionsCheckingInterval).
  await Promise.race([Promise.all([closed(half), closed(idle), closed(trickle)]), sleep(HEADERS_TIMEOUT_MS * 10 + 5000)]);
  clearInterval(drip);
  assert.deepEqual([half.destroyed || half.readableEnded, idle.destroyed || idle.readableEnded, trickle.destroyed || trickle.readableEnded], [true, true, true]);
  [half, idle, trickle].forEach((s) => s.destroy());
  await witness.check('after slowloris');
});

test('transport: 300 connections opened at once and dropped are all cleaned up', async () => {
  const sockets = await Promise.all(Array.from({ length: 300 }, () => tcp(tb.bridge.port).catch(() => undefined)));
  for (const s of sockets) {
    s?.on('error', () => {});
    s?.write(upgradeRequest(tb.bridge.port, { Origin: 'null' }));
  }
  await sleep(200);
  sockets.forEach((s) => s?.destroy());
  await sleep(200);
  await witness.check('after 300 connections');
});
