import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, readdir, mkdir, writeFile, chmod, readFile } from 'node:fs/promises';
import { tmpdir, homedir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Layout } from '../../domain/layout.ts';
import { JobArchive, NOT_ARCHIVED } from '../../bridge/job-archive.ts';
import { configDir, loadOrCreateToken, tokenMatches, CONFIG_DIR_ENV } from '../../bridge/pairing-token.ts';
import { GuessThrottle, TokenBucket } from '../../bridge/rate-limit.ts';
import { originAllowed } from '../../bridge/origin.ts';

const layout: Layout = { width: 32, height: 16, boxes: [[0, 0, 32, 16], [0, 0, 32, 16]] };
const manifestFor = (jobId: string, finishedAt: string) => ({
  jobId,
  prompt: 'p',
  layout,
  params: { resolution: 32, steps: 1, guidance: 4, trueCfg: 3.5, seed: 1 },
  seed: 1,
  model: 'm',
  provider: 'cpu',
  tiny: true,
  promptTruncated: false,
  timings: {},
  createdAt: finishedAt,
  finishedAt,
  job: 'generate' as const,
});
/** Zero latents of `layout`'s size (2 layers of 2 tokens). */
const latents = { layout, tokens: new Float32Array(2 * 2 * 64) };

test('job archive: save then read returns the manifest and the same PNG bytes; unknown, bad and corrupt ids say why; bad ids never reach the disk', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'art-store-'));
  try {
    const store = new JobArchive(dir, 10);
    await store.open();
    const id = randomUUID();
    const png = new Uint8Array([9, 8, 7]);
    await store.save(manifestFor(id, new Date().toISOString()), [{ index: 3, box: [0, 0, 32, 16], width: 32, height: 16, png }], latents);
    const read = await store.manifest(id);
    assert.ok(read.ok);
    assert.equal(read.manifest.jobId, id);
    assert.deepEqual(read.manifest.layers.map((l) => l.index), [3]);
    assert.deepEqual([...(await store.readLayer(id, 3, 2))], [0, 0, 9, 8, 7]);
    assert.deepEqual(await store.manifest(randomUUID()), { ok: false, why: NOT_ARCHIVED });
    assert.deepEqual(await store.manifest('../' + id), { ok: false, why: 'it is not a job id' });
    await assert.rejects(store.save(manifestFor('../evil', ''), [], latents), /not a bridge job id/);
    assert.deepEqual(await readdir(dir), [id]);
    await writeFile(join(dir, id, 'manifest.json'), '{"jobId": ');
    assert.deepEqual(await store.manifest(id), { ok: false, why: 'its manifest.json is not valid JSON' });
    assert.deepEqual(await store.loadBase(id, []), { ok: false, why: 'its manifest.json is not valid JSON' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('job archive: keeps the newest N jobs, and open() removes temporary folders a crash left', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'art-store-'));
  try {
    await mkdir(join(dir, '.tmp-leftover'));
    const store = new JobArchive(dir, 2);
    await store.open();
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    for (const [i, id] of ids.entries()) await store.save(manifestFor(id, `2025-01-0${i + 1}T00:00:00.000Z`), [], latents);
    assert.deepEqual((await readdir(dir)).sort(), [ids[1], ids[2]].sort());
    // A job whose manifest cannot be read counts as the oldest: it goes first, though written last.
    await writeFile(join(dir, ids[2], 'manifest.json'), 'not json');
    const newest = randomUUID();
    await store.save(manifestFor(newest, '2025-01-09T00:00:00.000Z'), [], latents);
    assert.deepEqual((await readdir(dir)).sort(), [ids[1], newest].sort());
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('pairing: token created once with mode 0600, reused after, tightened if loosened', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'art-cfg-'));
  try {
    const cfg = join(dir, 'nested', 'art-for-figma');
    const first = await loadOrCreateToken(cfg);
    assert.equal(first.created, true);
    assert.ok(first.token.length >= 40);
    assert.equal((await stat(first.path)).mode & 0o777, 0o600);
    const second = await loadOrCreateToken(cfg);
    assert.deepEqual([second.token, second.created], [first.token, false]);
    await chmod(first.path, 0o644);
    await loadOrCreateToken(cfg);
    assert.equal((await stat(first.path)).mode & 0o777, 0o600);
    await writeFile(first.path, '\n');
    const regenerated = await loadOrCreateToken(cfg);
    assert.equal(regenerated.created, true);
    assert.equal((await readFile(first.path, 'utf8')).trim(), regenerated.token);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('pairing: config dir from the env var, XDG_CONFIG_HOME, or ~/.config; tokens compared exactly', () => {
  assert.equal(configDir({ [CONFIG_DIR_ENV]: '/x/y' }), '/x/y');
  assert.equal(configDir({ XDG_CONFIG_HOME: '/xdg' }), '/xdg/art-for-figma');
  assert.equal(configDir({}), join(homedir(), '.config', 'art-for-figma'));
  assert.equal(tokenMatches('abc', 'abc'), true);
  assert.equal(tokenMatches('abc', 'abd'), false);
  assert.equal(tokenMatches('abc', 'abcd'), false);
  assert.equal(tokenMatches('abc', ''), false);
});

test('origins: null and absent allowed, others only when listed', () => {
  assert.equal(originAllowed('null', []), true);
  assert.equal(originAllowed(undefined, []), true);
  assert.equal(originAllowed('https://evil.example', []), false);
  assert.equal(originAllowed('https://ok.example', ['https://ok.example']), true);
  assert.equal(originAllowed('https://ok.example.evil', ['https://ok.example']), false);
});

test('rate limits: wrong tokens are free up to a count per window, then each answer waits longer, up to a cap', () => {
  const throttle = new GuessThrottle({ free: 3, windowMs: 1000, delayMs: 100, maxDelayMs: 450 });
  assert.deepEqual([0, 1, 2].map((t) => throttle.fail(t)), [0, 0, 0]);
  assert.deepEqual([3, 4, 5, 6].map((t) => throttle.fail(t)), [100, 200, 400, 450]);
  for (let t = 7; t < 500; t++) throttle.fail(t); // a long attack: the state stays bounded
  assert.equal(throttle.fail(600), 450);
  // Once the window has passed without failures, the free answers are back.
  assert.equal(throttle.fail(5000), 0);
});

test('rate limits: a bucket refills over time; time billed with charge is not earned back', () => {
  const bucket = new TokenBucket(2, 10, 0);
  assert.deepEqual([bucket.take(0), bucket.take(0), bucket.take(0)], [true, true, false]);
  assert.equal(bucket.take(50), false);
  assert.equal(bucket.take(100), true);
  // A message that took 300 ms to handle: the 3 tokens those 300 ms refill are billed back.
  const slow = new TokenBucket(2, 10, 0);
  assert.equal(slow.take(0), true);
  slow.charge(3, 300);
  assert.equal(slow.take(300), false);
  assert.equal(slow.take(500), true);
  // Debt is capped at one bucket: a client is never shut out for longer than capacity / rate.
  slow.charge(1e9, 500);
  assert.equal(slow.take(500 + 200), false); // -2 + 2 = 0
  assert.equal(slow.take(500 + 300), true); // -2 + 3 = 1
});
