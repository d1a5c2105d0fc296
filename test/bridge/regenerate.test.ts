/**
 * Protocol 2's `generate.base` through a real bridge: coded errors, lineage, kept PNG bytes, the
 * latents in the job archive, pruned and damaged bases, and a version-1 client. The fake pipeline
 * (fake-pipeline.ts) holds kept tokens as the real one ends (exactly the base's); the real tiny
 * model is checked at the end.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { BoxTuple, Layout } from '../../domain/layout.ts';
import { PACKED_CHANNELS } from '../../gpu-server/constants.ts';
import { transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
import { startTestBridge, TestClient, TOKEN, decodePng, layout, type Received, type TestBridge } from '../support/bridge.ts';

type Done = Extract<Received, { type: 'done' }>;
type Keep = { from: number; to: number }[];

const A: BoxTuple = [16, 16, 64, 48];
const B: BoxTuple = [64, 0, 128, 32];
const C: BoxTuple = [0, 32, 48, 64];
const baseLayout = layout(128, 64, [A, B, C]);

function generate(requestId: string, opts: { layout?: Layout; seed?: number; steps?: number; prompt?: string; base?: { jobId: string; keep: Keep } } = {}) {
  const l = opts.layout ?? baseLayout;
  return {
    type: 'generate',
    requestId,
    prompt: opts.prompt ?? 'a poster with "HELLO" in big letters',
    layout: l,
    params: { resolution: Math.max(l.width, l.height), steps: opts.steps ?? 2, guidance: 4, trueCfg: 3.5, seed: opts.seed ?? 7 },
    ...(opts.base ? { base: opts.base } : {}),
  };
}

/** Sends a job and waits for its end: done (with layers' PNGs by index) or an error. */
async function runJob(client: TestClient, message: ReturnType<typeof generate>, timeoutMs = 10_000) {
  client.send(message);
  const first = await client.next((m) => (m.type === 'queued' || m.type === 'error') && m.requestId === message.requestId, timeoutMs);
  if (first.type === 'error') return { error: first };
  const jobId = (first as { jobId: string }).jobId;
  const end = await client.next((m) => (m.type === 'done' || m.type === 'error') && 'jobId' in m && m.jobId === jobId, timeoutMs);
  if (end.type === 'error') return { error: end, jobId };
  const pngs = new Map<number, Uint8Array>();
  for (const m of client.received.slice(0, client.received.indexOf(end)))
    if (m.type === 'binary' && m.frame.kind === 'layer' && m.frame.jobId === jobId) pngs.set(m.frame.layerIndex, new Uint8Array(m.frame.png));
  return { jobId, done: end as Done, pngs };
}

async function finished(client: TestClient, message: ReturnType<typeof generate>) {
  const r = await runJob(client, message);
  assert.ok(r.done, `expected done, got ${JSON.stringify(r.error)}`);
  return r as { jobId: string; done: Done; pngs: Map<number, Uint8Array> };
}

async function refused(client: TestClient, message: ReturnType<typeof generate>, code: string, pattern: RegExp) {
  const r = await runJob(client, message);
  assert.ok(r.error, `expected error ${code}, got done`);
  assert.equal(r.error.type === 'error' && r.error.code, code, JSON.stringify(r.error));
  assert.match(r.error.type === 'error' ? r.error.message : '', pattern);
  return r;
}

async function storedLatents(tb: TestBridge, jobId: string): Promise<Float32Array> {
  const bytes = await readFile(join(tb.outputs, jobId, 'latents.f32'));
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

function layerSlice(tokens: Float32Array, l: Layout, index: number): Float32Array {
  const cells = transformerTokens(l).layers[index];
  return tokens.subarray(cells.offset * PACKED_CHANNELS, (cells.offset + cells.count) * PACKED_CHANNELS);
}

let tb: TestBridge;
let client: TestClient;
let base: { jobId: string; done: Done; pngs: Map<number, Uint8Array> };
before(async () => {
  tb = await startTestBridge({ fake: { stepMs: 5 } });
  client = await TestClient.paired(tb.url);
  base = await finished(client, generate('base', { seed: 11 }));
});
after(async () => {
  client?.close();
  await tb?.close();
});

test('a plain job archives its latents (the token grid of its layout) beside its PNGs; no lineage', async () => {
  const latents = await storedLatents(tb, base.jobId);
  assert.equal(latents.length, transformerTokens(baseLayout).count * PACKED_CHANNELS);
  const manifest = JSON.parse(await readFile(join(tb.outputs, base.jobId, 'manifest.json'), 'utf8'));
  assert.deepEqual(manifest.latents, { file: 'latents.f32', values: latents.length });
  assert.equal(manifest.base, undefined);
  assert.equal(base.done.base, undefined);
});

test('regenerate: kept layers carry the base PNG bytes exactly, others are new; lineage in done and the manifest', async () => {
  // C moved (regenerated), a new layer D on top, B kept below A: order B, A, C', D.
  const movedC: BoxTuple = [0, 16, 48, 48];
  const D: BoxTuple = [96, 32, 128, 64];
  const next = layout(128, 64, [B, A, movedC, D]);
  const keep = [{ from: 1, to: 1 }, { from: 3, to: 2 }, { from: 2, to: 3 }];
  const r = await finished(client, generate('regen', { layout: next, seed: 12, base: { jobId: base.jobId, keep } }));
  assert.deepEqual(r.done.base, { jobId: base.jobId, keep });
  assert.equal(r.done.layerCount, 6);
  for (const { from, to } of keep) assert.deepEqual(r.pngs.get(to), base.pngs.get(from), `layer ${to} is base layer ${from}, byte for byte`);
  for (const fresh of [0, 4, 5]) {
    const png = decodePng(r.pngs.get(fresh)!);
    const [x1, y1, x2, y2] = next.boxes[fresh];
    assert.deepEqual([png.width, png.height], [x2 - x1, y2 - y1], `layer ${fresh} at its new box`);
  }
  assert.notDeepEqual(r.pngs.get(0), base.pngs.get(0), 'the merged layer is regenerated');
  // In index order, kept and new layers alike (kept ones are not encoded but slotted in).
  const order = client.received.filter((m) => m.type === 'layer' && m.jobId === r.jobId).map((m) => (m.type === 'layer' ? m.index : -1));
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
  const manifest = JSON.parse(await readFile(join(tb.outputs, r.jobId, 'manifest.json'), 'utf8'));
  assert.deepEqual(manifest.base, { jobId: base.jobId, keep });
  // The stored files are the sent bytes, and the kept tokens are the base's in the stored latents.
  assert.deepEqual(new Uint8Array(await readFile(join(tb.outputs, r.jobId, 'layer-02.png'))), base.pngs.get(3));
  const mine = await storedLatents(tb, r.jobId), theirs = await storedLatents(tb, base.jobId);
  for (const { from, to } of keep) assert.deepEqual(layerSlice(mine, next, to), layerSlice(theirs, baseLayout, from));
  // A replay says the same.
  client.send({ type: 'fetch', jobId: r.jobId });
  const replay = await client.next<Done>((m) => m.type === 'done' && m.jobId === r.jobId && m.fetched);
  assert.deepEqual(replay.base, { jobId: base.jobId, keep });
});

test('each coded error, with a message that says what to do; nothing stored for a refusal', async () => {
  const before = (await readdir(tb.outputs)).sort();
  await refused(client, generate('nf', { base: { jobId: randomUUID(), keep: [] } }), 'base_not_found', /not in the job archive.*--keep-jobs/);
  await refused(client, generate('k0', { base: { jobId: base.jobId, keep: [{ from: 0, to: 0 }] } }), 'invalid_keep', /layer 0 is the merged image/);
  await refused(client, generate('kto', { base: { jobId: base.jobId, keep: [{ from: 2, to: 5 }] } }), 'invalid_keep', /new layout has layers 1\.\.4/);
  await refused(client, generate('kfrom', { layout: layout(128, 64, [A, B, C, A]), base: { jobId: base.jobId, keep: [{ from: 5, to: 5 }] } }), 'invalid_keep', /base job has layers 1\.\.4/);
  await refused(client, generate('kbig', { base: { jobId: base.jobId, keep: [{ from: 99, to: 2 }] } }), 'invalid_keep', /base\.keep\.0\.from/);
  await refused(client, generate('ktwice', { base: { jobId: base.jobId, keep: [{ from: 2, to: 2 }, { from: 2, to: 3 }] } }), 'invalid_keep', /kept twice/);
  await refused(client, generate('box', { layout: layout(128, 64, [[16, 32, 64, 64], B, C]), base: { jobId: base.jobId, keep: [{ from: 2, to: 2 }] } }), 'keep_box_mismatch', /differs from base layer 2's box \[16,16,64,48\].*regenerate/);
  await refused(client, generate('canvas', { layout: layout(128, 128, [A]), base: { jobId: base.jobId, keep: [] } }), 'base_mismatch', /canvas is 128x64/);
  await refused(client, generate('badid', { base: { jobId: 'not-a-job', keep: [] } }), 'invalid_message', /base\.jobId/);
  // Another model: the base's manifest says so (e.g. made before the bridge was restarted with another folder).
  const other = await finished(client, generate('other', { seed: 3 }));
  const path = join(tb.outputs, other.jobId, 'manifest.json');
  await writeFile(path, (await readFile(path, 'utf8')).replace('"model": "fake"', '"model": "art-v1"'));
  await refused(client, generate('model', { base: { jobId: other.jobId, keep: [] } }), 'base_mismatch', /model "art-v1".*runs "fake"/);
  assert.deepEqual((await readdir(tb.outputs)).sort(), [...before, other.jobId].sort());
  // The bridge still serves.
  await finished(client, generate('after-errors', { base: { jobId: base.jobId, keep: [{ from: 1, to: 1 }] } }));
});

test('a base still waiting or running is refused with base_running', async () => {
  client.send(generate('slow', { steps: 40 }));
  const queued = await client.next<Extract<Received, { type: 'queued' }>>((m) => m.type === 'queued' && m.requestId === 'slow');
  await refused(client, generate('on-running', { base: { jobId: queued.jobId, keep: [] } }), 'base_running', /still (running|waiting); wait for its done/);
  // Behind it, a job on a finished base and a plain one: the plain one must not start while the
  // other reads its base (one pipeline, one job at a time).
  client.send(generate('behind-base', { base: { jobId: base.jobId, keep: [{ from: 2, to: 2 }] } }));
  const behind = await client.next<Extract<Received, { type: 'queued' }>>((m) => m.type === 'queued' && m.requestId === 'behind-base');
  assert.ok(behind.position > 0, 'queued behind the slow job');
  const plain = await runJob(client, generate('behind-plain', { seed: 8 }));
  assert.ok(plain.done, JSON.stringify(plain.error));
  const onBase = await client.next((m) => (m.type === 'done' || m.type === 'error') && 'jobId' in m && m.jobId === behind.jobId);
  assert.equal(onBase.type, 'done', JSON.stringify(onBase));
  await client.next((m) => m.type === 'done' && m.jobId === queued.jobId, 10_000);
  await finished(client, generate('on-finished', { base: { jobId: queued.jobId, keep: [{ from: 2, to: 2 }] } }));
});

test('damaged latents are reported as base_not_found when the job starts, never half-read', async () => {
  const victim = await finished(client, generate('victim', { seed: 21 }));
  await truncate(join(tb.outputs, victim.jobId, 'latents.f32'), 100);
  await refused(client, generate('on-damaged', { base: { jobId: victim.jobId, keep: [{ from: 2, to: 2 }] } }), 'base_not_found', /latents file has 100 bytes/);
  const nan = await finished(client, generate('nan', { seed: 22 }));
  const file = join(tb.outputs, nan.jobId, 'latents.f32');
  const bytes = await readFile(file);
  bytes.writeFloatLE(Number.NaN, 8);
  await writeFile(file, bytes);
  await refused(client, generate('on-nan', { base: { jobId: nan.jobId, keep: [] } }), 'base_not_found', /non-finite value at 2/);
});

test('a pruned base: refused at once, or, pruned while the job waited, base_not_found when it starts', async () => {
  const small = await startTestBridge({ fake: { stepMs: 5 }, keepJobs: 1 });
  const c = await TestClient.paired(small.url);
  try {
    const first = await finished(c, generate('first', { seed: 1 }));
    // Two slow jobs run; a job on `first` waits behind them; the first one's save prunes `first`
    // while the second runs (the executor may start the next job while the previous one is saved).
    c.send(generate('slow1', { steps: 30, seed: 2 }));
    c.send(generate('slow', { steps: 30, seed: 3 }));
    const slow = await c.next<Extract<Received, { type: 'queued' }>>((m) => m.type === 'queued' && m.requestId === 'slow');
    const r = await runJob(c, generate('late', { base: { jobId: first.jobId, keep: [{ from: 1, to: 1 }] } }));
    assert.ok(r.error && r.jobId, `accepted, then refused as it starts: ${JSON.stringify(r.error)}`);
    assert.equal(r.error.type === 'error' && r.error.code, 'base_not_found');
    assert.match(r.error.type === 'error' ? r.error.message : '', /can no longer be read: it is not in the job archive/);
    await c.next((m) => m.type === 'done' && m.jobId === slow.jobId);
    assert.deepEqual(await readdir(small.outputs), [slow.jobId], 'the refused job archived nothing');
    await refused(c, generate('gone', { base: { jobId: first.jobId, keep: [] } }), 'base_not_found', /pruned/);
    await finished(c, generate('still-serves', { base: { jobId: slow.jobId, keep: [{ from: 3, to: 3 }] } }));
  } finally {
    c.close();
    await small.close();
  }
});

test('real tiny model: kept layers are the base PNG bytes, regenerated ones change, latents kept exactly (numbers only: the tiny model draws noise)', async () => {
  const real = await startTestBridge({ real: true });
  const c = await TestClient.paired(real.url);
  try {
    const l = layout(512, 32, [[0, 0, 128, 32], [256, 0, 512, 16], [96, 16, 320, 32]]);
    const first = await finished(c, generate('real-base', { layout: l, seed: 5, steps: 2 }));
    const keep = [{ from: 1, to: 1 }, { from: 2, to: 2 }, { from: 4, to: 4 }];
    const r = await finished(c, generate('real-regen', { layout: l, seed: 6, steps: 2, base: { jobId: first.jobId, keep } }));
    for (const { from, to } of keep) assert.deepEqual(r.pngs.get(to), first.pngs.get(from));
    assert.notDeepEqual(decodePng(r.pngs.get(3)!).data, decodePng(first.pngs.get(3)!).data, 'layer 3 regenerated');
    const mine = await storedLatents(real, r.jobId), theirs = await storedLatents(real, first.jobId);
    for (const { from, to } of keep) assert.deepEqual(layerSlice(mine, l, to), layerSlice(theirs, l, from), `tokens of kept layer ${to}`);
    assert.notDeepEqual(layerSlice(mine, l, 3), layerSlice(theirs, l, 3));
  } finally {
    c.close();
    await real.close();
  }
});
