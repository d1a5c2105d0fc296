/**
 * Pairing under attack: wrong tokens must not lock out the holder of the right one (every local
 * client shares 127.0.0.1), every failed hello is answered and closed (1008) and counts as a
 * try, and nothing but a small hello is read before pairing. Real bridge, fake pipeline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBridge, TestClient, TOKEN, generateMessage, type TestBridge } from '../support/bridge.ts';
import { PROTOCOL_VERSION } from '../../bridge/protocol/messages.ts';
import { DEFAULT_LIMITS, type BridgeLimits } from '../../bridge/server.ts';
import { RawWebSocket, text } from '../support/raw-socket.ts';
import { Witness } from './attack-helpers.ts';

const hello = (extra: Record<string, unknown> = {}) => ({ type: 'hello', protocol: PROTOCOL_VERSION, token: TOKEN, ...extra });

async function withBridge(limits: Partial<BridgeLimits> | undefined, fn: (tb: TestBridge) => Promise<void>): Promise<void> {
  const tb = await startTestBridge({ fake: { stepMs: 1 }, limits });
  try {
    await fn(tb);
  } finally {
    await tb.close();
  }
}

/** Sends one hello on a fresh connection; resolves with the error, the close code and when the answer came. */
async function failedHello(tb: TestBridge, message: unknown, raw?: string) {
  const client = await TestClient.open(tb.url, { origin: 'null' });
  const sentAt = performance.now();
  if (raw !== undefined) client.ws.send(raw);
  else client.send(message);
  const error = await client.error(undefined, 20_000);
  const answeredMs = performance.now() - sentAt;
  const { code } = await client.closed;
  return { error, close: code, answeredMs };
}

test('pairing at the default limits: wrong tokens never lock out the right one; beyond 5 a minute, wrong answers wait', async () => {
  await withBridge(undefined, async (tb) => {
    const { wrongTokens, wrongTokenDelayMs } = DEFAULT_LIMITS;
    for (let i = 0; i < wrongTokens; i++) {
      const r = await failedHello(tb, hello({ token: `guess-${i}` }));
      assert.deepEqual([r.error.code, r.close], ['unauthorized', 1008]);
    }
    // The next wrong tokens are answered only after the documented delay (doubling)...
    const pending = [failedHello(tb, hello({ token: 'guess-a' })), failedHello(tb, hello({ token: 'guess-b' }))];
    // ...while the right token, sent after them from the same address, is welcomed at once:
    // before either wrong answer arrives (ordering, not timing).
    const firstWrong = Promise.race(pending).then(() => 'wrong answered');
    const designer = TestClient.paired(tb.url).then((c) => {
      c.close();
      return 'welcomed';
    });
    assert.equal(await Promise.race([designer, firstWrong]), 'welcomed');
    const answers = await Promise.all(pending);
    for (const r of answers) assert.deepEqual([r.error.code, r.close], ['unauthorized', 1008]);
    // Timers never fire early, so these lower bounds hold on any machine.
    const sorted = answers.map((r) => r.answeredMs).sort((a, b) => a - b);
    assert.ok(sorted[0] >= wrongTokenDelayMs - 5, `6th wrong token answered after ${sorted[0].toFixed(0)} ms`);
    assert.ok(sorted[1] >= 2 * wrongTokenDelayMs - 5, `7th wrong token answered after ${sorted[1].toFixed(0)} ms`);
  });
});

test('pairing: a flood of wrong tokens from many connections leaves the designer able to pair and work', async () => {
  await withBridge({ wrongTokens: 2, wrongTokenDelayMs: 200, wrongTokenMaxDelayMs: 2000 }, async (tb) => {
    const witness = await Witness.start(tb);
    const guesses = Array.from({ length: 40 }, (_, i) => failedHello(tb, hello({ token: `flood-${i}` })).catch(() => undefined));
    const designer = await TestClient.paired(tb.url);
    designer.close();
    await witness.check('during a wrong-token flood');
    await Promise.all(guesses);
    witness.close();
  });
});

test('pairing: every malformed hello is answered with its code, closed with 1008, and counted as a try', async () => {
  // Nine failed tries are free, so the tenth wrong token is delayed only if all nine counted.
  const variants: { name: string; message?: unknown; raw?: string; code: string }[] = [
    { name: 'empty token', message: hello({ token: '' }), code: 'unauthorized' },
    { name: 'numeric token', message: hello({ token: 12345 }), code: 'unauthorized' },
    { name: '10 kB token', message: hello({ token: 'k'.repeat(10_000) }), code: 'unauthorized' },
    { name: 'missing token', message: { type: 'hello', protocol: PROTOCOL_VERSION }, code: 'unauthorized' },
    { name: 'protocol "1" (wrong token)', message: hello({ protocol: '1', token: 'nope' }), code: 'protocol_version' },
    { name: 'protocol 1.5 (wrong token)', message: hello({ protocol: 1.5, token: 'nope' }), code: 'protocol_version' },
    { name: 'protocol 1e999 (wrong token)', raw: `{"type":"hello","protocol":1e999,"token":"nope"}`, code: 'protocol_version' },
    { name: 'missing protocol (wrong token)', message: { type: 'hello', token: 'nope' }, code: 'protocol_version' },
    { name: 'prototype-pollution key', message: { ...hello({ token: 'nope' }), ['__proto__']: { paired: true } }, raw: `{"type":"hello","protocol":1,"token":"nope","__proto__":{"paired":true}}`, code: 'invalid_message' },
  ];
  await withBridge({ wrongTokens: variants.length, wrongTokenDelayMs: 400 }, async (tb) => {
    for (const v of variants) {
      const r = await failedHello(tb, v.message, v.raw);
      assert.deepEqual([r.error.code, r.close], [v.code, 1008], v.name);
      assert.ok(r.error.message.length > 10, `${v.name}: says what is wrong`);
    }
    // The right token with a bad protocol is closed too, but is no guess: not counted.
    for (const protocol of ['1', 1.5, 0]) {
      const r = await failedHello(tb, hello({ protocol }));
      assert.deepEqual([r.error.code, r.close], ['protocol_version', 1008], `right token, protocol ${protocol}`);
    }
    const tenth = await failedHello(tb, hello({ token: 'the tenth try' }));
    assert.equal(tenth.error.code, 'unauthorized');
    assert.ok(tenth.answeredMs >= 395, `the tenth wrong try was answered after ${tenth.answeredMs.toFixed(0)} ms: the malformed ones did not count`);
    // And the right one is still welcomed.
    (await TestClient.paired(tb.url)).close();
  });
});

test('one protocol version: an old plugin\'s hello (protocol 1, the right token) is told to update the plugin, a newer one to update the bridge; /health names the one version', async () => {
  await withBridge(undefined, async (tb) => {
    assert.equal(PROTOCOL_VERSION, 2);
    const old = await failedHello(tb, hello({ protocol: 1, client: 'plugin v1' }));
    assert.deepEqual([old.error.code, old.close], ['protocol_version', 1008]);
    assert.match(old.error.message, /speaks protocol 2, the plugin 1; the plugin is older than the bridge: update the plugin \(npm run build/);
    const newer = await failedHello(tb, hello({ protocol: 3 }));
    assert.deepEqual([newer.error.code, newer.close], ['protocol_version', 1008]);
    assert.match(newer.error.message, /update the bridge/);
    const health = await (await fetch(`http://127.0.0.1:${tb.bridge.port}/health`)).json();
    assert.deepEqual([health.protocol, health.protocols], [2, undefined]);
    const current = await TestClient.paired(tb.url);
    current.close();
  });
});

test('pairing: before hello nothing else is read; a big frame is a failed hello; the proto key does not pair', async () => {
  await withBridge(undefined, async (tb) => {
    const stranger = await RawWebSocket.open(tb.bridge.port);
    stranger.write(text(JSON.stringify(generateMessage('early'))));
    stranger.write(text(JSON.stringify({ type: 'ping', id: 1 })));
    stranger.write(text(JSON.stringify({ type: 'fetch', jobId: '00000000-0000-4000-8000-000000000000' })));
    await stranger.until(() => stranger.errorCodes().length === 3);
    assert.deepEqual(stranger.errorCodes(), ['unauthorized', 'unauthorized', 'unauthorized']);
    assert.ok(!stranger.texts.some((t) => t.includes('pong') || t.includes('queued')), 'nothing was acted on');
    // A frame over MAX_HELLO_BYTES before pairing: refused unread, closed.
    stranger.write(text(JSON.stringify({ ...hello(), padding: 'p'.repeat(2000) })));
    await stranger.until(() => stranger.closeCode !== undefined);
    assert.equal(stranger.closeCode, 1008);
    stranger.destroy();
  });
});

test('pairing: a connection that never says hello is closed after the hello deadline', async () => {
  await withBridge({ helloTimeoutMs: 300 }, async (tb) => {
    const silent = await RawWebSocket.open(tb.bridge.port);
    await silent.until(() => silent.closeCode !== undefined, 10_000);
    assert.equal(silent.closeCode, 1008);
    assert.deepEqual(silent.errorCodes(), ['unauthorized']);
    silent.destroy();
    (await TestClient.paired(tb.url)).close();
  });
});
