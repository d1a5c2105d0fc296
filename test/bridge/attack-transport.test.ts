/**
 * Transport-level attacks with raw sockets against a real bridge (fake pipeline): resets around
 * the upgrade, bad frames and opcodes, half requests and half frames, many connections.
 * After each, the witness checks the bridge still serves (see attack-helpers.ts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBridge, type TestBridge } from './helpers.ts';
import { tcp, upgradeRequest } from './raw-socket.ts';
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
