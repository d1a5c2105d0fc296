/**
 * Every close the bridge makes on purpose carries a code and a reason (bridge/PROTOCOL.md,
 * "Close codes"): 200 WebSocket clients at once from one address against the default limits
 * (64 connections, 32 per address), each saying hello with the right token. Each one is either
 * welcomed or closed with 1013 and a reason; none sees 1006 (abnormal closure, what a crash looks
 * like), which is what the oldest unpaired ones used to see when they were dropped to make room.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { PROTOCOL_VERSION } from '../../bridge/protocol/messages.ts';
import { startTestBridge, TOKEN } from '../support/bridge.ts';

interface Outcome {
  welcomed: boolean;
  code?: number;
  reason?: string;
  error?: string;
}

function connect(url: string): { ws: WebSocket; outcome: Promise<Outcome> } {
  const ws = new WebSocket(url, { origin: 'null' });
  const seen: Outcome = { welcomed: false };
  const outcome = new Promise<Outcome>((resolve) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, token: TOKEN, client: 'close-codes test' })));
    ws.on('message', (data) => {
      if ((JSON.parse(String(data)) as { type: string }).type === 'welcome') {
        seen.welcomed = true;
        resolve(seen);
      }
    });
    ws.on('error', (error) => (seen.error = error.message));
    ws.on('close', (code, reason) => {
      seen.code = code;
      seen.reason = reason.toString();
      resolve(seen);
    });
  });
  return { ws, outcome };
}

test('200 concurrent connections from one address: each is welcomed or closed with 1013 and a reason, none with 1006', { timeout: 60_000 }, async () => {
  const tb = await startTestBridge();
  try {
    const clients = Array.from({ length: 200 }, () => connect(tb.url));
    const outcomes = await Promise.all(clients.map((c) => c.outcome));
    // Paired clients keep their slot; a moment more shows a close that came after a welcome.
    await new Promise((r) => setTimeout(r, 300));
    const welcomed = outcomes.filter((o) => o.welcomed && o.code === undefined);
    const closed = outcomes.filter((o) => o.code !== undefined);
    const codes = new Map<number, number>();
    for (const o of closed) codes.set(o.code as number, (codes.get(o.code as number) ?? 0) + 1);
    assert.equal(closed.filter((o) => o.code === 1006).length, 0, `codes seen: ${JSON.stringify([...codes])}`);
    assert.deepEqual([...codes.keys()], closed.length ? [1013] : [], `codes seen: ${JSON.stringify([...codes])}`);
    assert.ok(closed.every((o) => /bridge full/.test(o.reason ?? '')), JSON.stringify(closed.slice(0, 3)));
    assert.ok(welcomed.length >= 1 && welcomed.length <= 32, `${welcomed.length} welcomed`);
    assert.equal(welcomed.length + closed.length, 200);
    clients.forEach((c) => c.ws.close());
  } finally {
    await tb.close();
  }
});
