/**
 * The plugin window's jobs as a designer drives them (ui/job-desk.ts), with a bridge and a main
 * thread that behave as the real ones (desk-world.ts): generate, layers arriving, insert, close
 * and reopen, regenerate in place, cancel, the bridge lost, jobs held for the bridge's room.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DoneMessage } from '../../bridge/protocol/messages.ts';
import type { FrameLayout } from '../../plugin/layout.ts';
import type { ResultSelection } from '../../plugin/messages.ts';
import type { PlannedLayer } from '../../plugin/regenerate.ts';
import type { RememberedJob } from '../../plugin/remembered-jobs.ts';
import { editBlocker, generateBlocker, type PromptField } from '../../ui/job-desk.ts';
import { layoutOf } from '../plugin/trees.ts';
import { SETTINGS, WELCOME, frameItem, png, world, type World } from './desk-world.ts';

const POSTER = layoutOf('Poster', 2); // 4 layers: merged, background, 2 children
const CARD = layoutOf('Card', 1);
const DRAFT: PromptField = { text: '', edited: false };
const jobId = (n: number) => `0a1b2c3d-0000-4000-8000-${String(n).padStart(12, '0')}`;

function done(id: string, extra: Partial<DoneMessage> = {}): DoneMessage {
  return {
    type: 'done', jobId: id, layerCount: 4, seed: 77, model: 'tiny-art', provider: 'cpu', tiny: true, promptTruncated: false,
    timings: { total: 1234 }, fetched: false, ...extra,
  };
}

/** Paired, with `frames` selected (selection stamp 5). */
function ready(frames: FrameLayout[] = [POSTER], settings = SETTINGS): World {
  const w = world(settings);
  w.bridge.pair();
  w.desk.fromPlugin({ type: 'selection', items: frames.map((f) => frameItem(f)), resolution: 512, stamp: 5 });
  return w;
}

/** The bridge delivers every layer of a job, then `done`. */
function finish(w: World, id: string, layout: FrameLayout, extra: Partial<DoneMessage> = {}, tag = id) {
  layout.regions.forEach((_, i) => w.bridge.image(id, i, png(`${tag}/${i}`)));
  w.bridge.say(done(id, extra));
}

test('generate: the bridge gets the job with the settings; layers go to the main thread as they arrive; done inserts it once', () => {
  const w = ready();
  w.desk.generate({ text: '  a summer poster  ', edited: true });
  const [generate] = w.bridge.take('generate');
  assert.deepEqual(generate, {
    type: 'generate', requestId: 'r1', prompt: 'a summer poster', layout: POSTER.layout,
    params: { resolution: 512, steps: 3, guidance: 3.5, trueCfg: 2, seed: 77 },
  });
  assert.equal(w.jobIn('r1', 'sending').frameName, 'Poster');

  w.bridge.say({ type: 'queued', requestId: 'r1', jobId: jobId(1), position: 1 });
  assert.deepEqual(w.main.remembered.get(jobId(1)), {
    jobId: jobId(1), kind: 'generate', requestId: 'r1', layout: POSTER, seed: 77, prompt: 'a summer poster', queuedAt: 1_700_000_000_000,
    insertedFrameId: null, edit: null, lineage: [],
  }, 'remembered at queued: a closed window loses nothing');
  w.bridge.say({ type: 'queued', jobId: jobId(1), position: 0 });
  assert.equal(w.main.take('remember-job').length, 1, 'remembered once');
  w.bridge.say({ type: 'progress', jobId: jobId(1), stage: 'denoise', step: 1, total: 3, elapsedMs: 10 });
  w.bridge.image(jobId(1), 0, png('preview-1'), 'preview');
  w.bridge.image(jobId(1), 0, png('preview-2'), 'preview');
  assert.equal(w.desk.state.images['preview:r1'], w.urls.made[1]);
  assert.deepEqual(w.urls.revoked, [w.urls.made[0]], 'the older preview is let go');

  // Each layer is posted as it comes, before done; the main thread does not place it yet.
  w.bridge.image(jobId(1), 0, png('a/0'));
  w.bridge.image(jobId(1), 1, png('a/1'));
  assert.deepEqual(w.main.take('layer-image').map((m) => [m.requestId, m.index]), [['r1', 0], ['r1', 1]]);
  assert.match(w.desk.state.images['thumb:r1'], /hash:a\/0$/, 'the merged layer is the thumbnail');
  w.bridge.image(jobId(1), 2, png('a/2'));
  w.bridge.image(jobId(1), 3, png('a/3'));
  w.bridge.say(done(jobId(1), { seed: 78 }));
  assert.equal(w.jobIn('r1', 'inserting').result.totalMs, 1234);
  const [insert] = w.main.take('insert');
  assert.deepEqual(insert, {
    type: 'insert', requestId: 'r1', jobId: jobId(1), layout: POSTER, seed: 78, model: 'tiny-art', prompt: 'a summer poster', tiny: true,
    edit: null, asNew: false, place: 'beside', selectionStamp: 5,
  });
  w.bridge.say({ type: 'progress', jobId: jobId(1), stage: 'encode', step: 3, total: 3, elapsedMs: 30 });
  w.bridge.say({ type: 'queued', jobId: jobId(1), position: 0 });
  assert.deepEqual(w.main.take('insert'), [], 'a late message does not insert it twice');
  w.flush();
  assert.equal(w.main.placed.length, 1);
  assert.deepEqual(w.main.placed[0].images.map((i) => i.hash), ['hash:a/0', 'hash:a/1', 'hash:a/2', 'hash:a/3']);
  assert.equal(w.main.placed[0].kind, 'insert');
  const inserted = w.jobIn('r1', 'inserted');
  assert.deepEqual([inserted.insertedName, inserted.error, inserted.seed], ['Poster · ART · seed 78', null, 78]);
  assert.equal(w.main.take('layer-image').length, 2, 'each layer posted once');
  // A late layer frame after the insert is not posted again: the layers were let go, the job is done.
  assert.equal(w.main.images.held, 0, 'the main thread keeps nothing of an inserted job');
});

test('several frames make several jobs, newest first, each with its own draft and a random seed when asked', () => {
  const w = ready([POSTER, CARD], { ...SETTINGS, seedMode: 'random' });
  w.desk.generate(DRAFT);
  const sent = w.bridge.take('generate');
  assert.deepEqual(sent.map((m) => [m.requestId, m.prompt, m.params.seed]), [['r1', 'a poster', 1001], ['r2', 'a card', 1002]]);
  assert.deepEqual(w.desk.state.jobs.map((j) => j.requestId), ['r1', 'r2']);
  w.desk.generate({ text: '', edited: true });
  assert.deepEqual(w.bridge.take('generate').map((m) => m.prompt), ['a poster', 'a card'], 'an emptied prompt falls back to the drafts');
  assert.deepEqual(w.desk.state.jobs.map((j) => j.requestId), ['r3', 'r4', 'r1', 'r2']);
});

test('Generate says why it cannot run, and does nothing then', () => {
  const w = world();
  const why = (prompt = DRAFT) => generateBlocker(w.desk.state, prompt);
  assert.equal(why(), 'Connect to the bridge first.');
  w.desk.generate(DRAFT);
  assert.equal(w.bridge.connects.length, 1, 'the stored token connects on open');
  w.bridge.pair();
  assert.equal(why(), 'Select one or more frames on the canvas.');
  const result = resultOf(POSTER, jobId(9));
  w.desk.fromPlugin({ type: 'selection', items: [result], resolution: 512, stamp: 1 });
  assert.equal(why(), 'To generate anew, select the source frame; a result frame is edited above.');
  w.desk.fromPlugin({ type: 'selection', items: [{ kind: 'unusable', nodeId: '1:1', name: 'Text', message: 'not a frame' }], resolution: 512, stamp: 2 });
  assert.equal(why(), 'Select one or more frames on the canvas.');
  w.desk.fromPlugin({ type: 'selection', items: [frameItem(POSTER), frameItem(CARD, '')], resolution: 512, stamp: 2 });
  assert.equal(why(), 'Write a prompt.', 'one frame has no draft of its own');
  assert.equal(why({ text: '   ', edited: true }), 'Write a prompt.');
  assert.equal(why({ text: `${'x'.repeat(4000)}  `, edited: true }), null, 'spaces around the prompt do not count');
  assert.equal(why({ text: ' x ', edited: true }), null);
  assert.equal(why({ text: 'x'.repeat(4001), edited: true }), 'The prompt is longer than 4000 characters.');
  assert.equal(why({ text: 'x'.repeat(4000), edited: true }), null);
  w.desk.generate(DRAFT);
  w.desk.generate({ text: 'x'.repeat(4001), edited: true });
  assert.deepEqual(w.bridge.sent, []);
  assert.deepEqual(w.desk.state.jobs, []);
});

test('jobs beyond the bridge’s per-window limit are held and sent in order as jobs leave the bridge', () => {
  const w = world();
  w.bridge.pair({ ...WELCOME, jobsPerClient: 2 });
  w.desk.fromPlugin({ type: 'selection', items: [frameItem(POSTER), frameItem(CARD), frameItem(layoutOf('Flyer', 1))], resolution: 512, stamp: 1 });
  w.desk.generate(DRAFT);
  assert.deepEqual(w.bridge.take('generate').map((m) => m.requestId), ['r1', 'r2']);
  assert.deepEqual(w.desk.state.jobs.map((j) => j.status), ['sending', 'sending', 'held']);
  w.bridge.say({ type: 'queued', requestId: 'r1', jobId: jobId(1), position: 0 });
  w.bridge.say({ type: 'queued', requestId: 'r2', jobId: jobId(2), position: 1 });
  w.bridge.say({ type: 'progress', jobId: jobId(1), stage: 'denoise', step: 1, total: 3, elapsedMs: 5 });
  assert.deepEqual(w.bridge.sent, [], 'still no room');
  w.desk.generate(DRAFT); // three more, behind the held one
  assert.deepEqual(w.desk.state.jobs.map((j) => j.status), ['held', 'held', 'held', 'running', 'queued', 'held']);
  w.bridge.say({ type: 'error', code: 'generation_failed', message: 'out of memory', jobId: jobId(1) });
  assert.deepEqual(w.bridge.take('generate').map((m) => m.requestId), ['r3'], 'the oldest held job takes the free place');
  w.bridge.say({ type: 'queued', requestId: 'r3', jobId: jobId(3), position: 1 });
  finish(w, jobId(2), CARD);
  assert.deepEqual(w.bridge.take('generate').map((m) => m.requestId), ['r4']);
  // Cancel: held jobs end at once, without a word to the bridge; sent ones are asked to stop.
  w.desk.cancel();
  assert.deepEqual(w.desk.state.jobs.map((j) => [j.requestId, j.status]), [
    ['r4', 'sending'], ['r5', 'cancelled'], ['r6', 'cancelled'], ['r1', 'failed'], ['r2', 'inserting'], ['r3', 'queued'],
  ]);
  assert.deepEqual(w.bridge.take('cancel'), [{ type: 'cancel', jobId: jobId(3) }]);
  w.bridge.say({ type: 'error', code: 'cancelled', message: 'cancelled', jobId: jobId(3) });
  assert.deepEqual(w.bridge.sent, [], 'a cancelled held job is never sent');
});

test('cancel: a running job is asked to stop and ends cancelled; one not yet queued is stopped as soon as it is', () => {
  const w = ready([POSTER, CARD]);
  w.desk.generate(DRAFT);
  w.bridge.take('generate');
  w.bridge.say({ type: 'queued', requestId: 'r1', jobId: jobId(1), position: 0 });
  w.desk.cancel();
  assert.deepEqual(w.bridge.take('cancel'), [{ type: 'cancel', jobId: jobId(1) }]);
  assert.equal(w.jobIn('r1', 'running').cancelRequested, true);
  assert.equal(w.jobIn('r2', 'sending').cancelRequested, true);
  w.bridge.say({ type: 'queued', requestId: 'r2', jobId: jobId(2), position: 1 });
  assert.deepEqual(w.bridge.take('cancel'), [{ type: 'cancel', jobId: jobId(2) }]);
  assert.equal(w.jobIn('r2', 'queued').cancelRequested, true);
  w.bridge.say({ type: 'error', code: 'cancelled', message: 'the job was cancelled', jobId: jobId(1) });
  w.bridge.say({ type: 'error', code: 'cancelled', message: 'the job was cancelled', jobId: jobId(2) });
  assert.deepEqual(w.desk.state.jobs.map((j) => j.status), ['cancelled', 'cancelled']);
  assert.deepEqual([...w.main.remembered.keys()], [], 'cancelled jobs are forgotten');
  // A finished job has nothing to cancel.
  const v = ready();
  v.desk.generate(DRAFT);
  v.bridge.say({ type: 'queued', requestId: 'r1', jobId: jobId(1), position: 0 });
  finish(v, jobId(1), POSTER);
  v.flush();
  v.bridge.take('generate');
  v.desk.cancel();
  assert.deepEqual(v.bridge.sent, []);
  assert.equal(v.job('r1').status, 'inserted');
});

test('a bridge error about no job is a notice; the next Generate clears it', () => {
  const w = ready();
  w.bridge.say({ type: 'error', code: 'shutting_down', message: 'bye' });
  assert.equal(w.desk.state.notice, 'The bridge is shutting down. Start it again with npm start.');
  w.desk.generate(DRAFT);
  assert.equal(w.desk.state.notice, null);
  w.bridge.say({ type: 'progress', jobId: jobId(99), stage: 'denoise', step: 1, total: 2, elapsedMs: 1 });
  w.bridge.image(jobId(99), 0, png('stray'));
  assert.deepEqual([w.desk.state.notice, w.main.fromUi, w.urls.made], [null, [], []], 'messages about no job of this window change nothing');
  w.bridge.say({ type: 'error', code: 'queue_full', message: 'full', requestId: 'r1' });
  assert.match(w.jobIn('r1', 'failed').error, /as many jobs as it takes/);
  assert.deepEqual(w.main.take('remember-job'), [], 'refused before it was queued: nothing to remember');
  assert.equal(w.desk.state.notice, null, 'an error about a job goes on the job');
});

test('bridge lost: jobs wait; once paired again the bridge is asked for them and held jobs go out', () => {
  const w = world();
  w.bridge.pair({ ...WELCOME, jobsPerClient: 1 });
  w.desk.fromPlugin({ type: 'selection', items: [frameItem(POSTER), frameItem(CARD)], resolution: 512, stamp: 1 });
  w.desk.generate(DRAFT);
  w.bridge.take('generate');
  w.bridge.say({ type: 'queued', requestId: 'r1', jobId: jobId(1), position: 0 });
  w.bridge.image(jobId(1), 0, png('lost/0'));
  w.bridge.drop();
  assert.equal(w.desk.state.connection.status, 'unreachable');
  assert.equal(w.jobIn('r1', 'running').jobId, jobId(1), 'the job is not given up');
  w.desk.generate(DRAFT); // nothing: not paired
  assert.equal(w.desk.state.jobs.length, 2);
  w.desk.connect();
  w.bridge.pair({ ...WELCOME, jobsPerClient: 1 });
  assert.deepEqual(w.bridge.take('fetch'), [{ type: 'fetch', jobId: jobId(1) }]);
  assert.deepEqual(w.bridge.sent, [], 'the held job waits: the fetched one still takes the room');
  // The replay brings every layer again; each is posted once.
  finish(w, jobId(1), POSTER, { fetched: true }, 'lost');
  assert.deepEqual(w.main.take('layer-image').map((m) => m.index), [0, 1, 2, 3]);
  assert.deepEqual(w.bridge.take('generate').map((m) => m.requestId), ['r2']);
  w.flush();
  assert.equal(w.job('r1').status, 'inserted', 'a job of this session is inserted even when its done is a replay');
});

test('close and reopen: a remembered job finished while closed waits for Insert; one still running is inserted when done', () => {
  const stored = (n: number, extra: Partial<RememberedJob> = {}): RememberedJob => ({
    jobId: jobId(n), kind: n === 2 ? 'decompose' : 'generate', requestId: `old${n}`, layout: n === 1 ? POSTER : CARD, seed: n, prompt: `p${n}`, queuedAt: n, insertedFrameId: null,
    edit: null, lineage: [], ...extra,
  });
  const w = world(SETTINGS, [stored(1), stored(2)]);
  assert.deepEqual(w.bridge.connects, [{ url: SETTINGS.bridgeUrl, token: 'tok' }]);
  assert.deepEqual(w.desk.state.jobs.map((j) => [j.requestId, j.status, j.kind]), [['old1', 'restored', 'generate'], ['old2', 'restored', 'decompose']], 'a remembered decomposition comes back as one');
  w.bridge.pair({ ...WELCOME, jobsPerClient: 1 });
  assert.deepEqual(w.bridge.take('fetch').map((m) => m.jobId), [jobId(1), jobId(2)]);
  finish(w, jobId(1), POSTER, { fetched: true });
  const waiting = w.jobIn('old1', 'ready');
  assert.ok(w.main.remembered.has(jobId(1)), 'still remembered until it is inserted');
  assert.deepEqual(w.main.take('insert'), [], 'finished while closed: the designer decides');
  assert.equal(w.main.take('layer-image').length, 4, 'its images are already with the main thread');
  w.desk.insert(waiting, 'beside');
  const [insert] = w.main.take('insert');
  assert.deepEqual([insert.requestId, insert.selectionStamp, insert.place, insert.asNew], ['old1', -1, 'beside', false]);
  w.flush();
  assert.equal(w.job('old1').status, 'inserted');
  // Restored jobs were queued by another connection: they take no room from new ones.
  w.desk.fromPlugin({ type: 'selection', items: [frameItem(POSTER)], resolution: 512, stamp: 3 });
  w.desk.generate(DRAFT);
  assert.equal(w.bridge.take('generate').length, 1);
  // Still running: it goes on and is inserted as soon as it is done.
  w.bridge.say({ type: 'queued', jobId: jobId(2), position: 0 });
  finish(w, jobId(2), CARD);
  assert.equal(w.main.take('insert').length, 1);
  w.flush();
  assert.equal(w.job('old2').status, 'inserted');
  // A remembered job the bridge no longer has is forgotten.
  const v = world(SETTINGS, [stored(3)]);
  v.bridge.pair();
  v.bridge.say({ type: 'error', code: 'unknown_job', message: 'no such job', jobId: jobId(3) });
  assert.match(v.jobIn('old3', 'failed').error, /no longer has this job/);
  assert.equal(v.main.remembered.size, 0);
});

/** A result frame of `layout` made by `base`, with the layers at `redraw` regenerated in place. */
function resultOf(layout: FrameLayout, base: string, redraw: number[] = [2], lineage: string[] = []): ResultSelection {
  const layers: PlannedLayer[] = layout.regions.map((_, i) => ({ nodeId: `77:${i}`, baseIndex: i, kept: i !== 0 && !redraw.includes(i) }));
  const keep = layers.flatMap((l, i) => (l.kept ? [{ from: i, to: i }] : []));
  const variations: PlannedLayer[] = layers.map((l, i) => ({ ...l, kept: i === 1 }));
  return {
    kind: 'result', nodeId: '77:0', name: `${layout.frameName} · ART · seed 1`, selectedLayers: redraw.length,
    result: { v: 1, jobId: base, sourceNodeId: layout.frameId, model: 'tiny-art', seed: 1, prompt: 'the old prompt', canvas: layout.layout, scaleX: 1, scaleY: 1, layerCount: layout.regions.length, lineage },
    regenerate: { ok: true, value: { layout, layers, keep, regenerated: redraw.length } },
    variations: { ok: true, value: { layout, layers: variations, keep: [{ from: 1, to: 1 }], regenerated: layout.regions.length - 2 } },
  };
}

test('regenerate in place: only the redrawn layers go to the main thread, which replaces them on the result frame', () => {
  const w = world({ ...SETTINGS, seedMode: 'random' });
  w.bridge.pair();
  const item = resultOf(POSTER, jobId(1), [2], [jobId(0)]);
  w.desk.fromPlugin({ type: 'selection', items: [item], resolution: 512, stamp: 8 });
  w.desk.edit(item, 'selected', DRAFT);
  const [generate] = w.bridge.take('generate');
  assert.deepEqual([generate.prompt, generate.params.seed, generate.base], ['the old prompt', 1001, { jobId: jobId(1), keep: [{ from: 1, to: 1 }, { from: 3, to: 3 }] }]);
  assert.equal(editBlocker(w.desk.state, DRAFT, item), 'This frame is being regenerated; wait for it to finish.');
  w.desk.edit(item, 'variations', DRAFT);
  assert.deepEqual(w.bridge.sent, [], 'one edit of a frame at a time');
  w.bridge.say({ type: 'queued', requestId: 'r1', jobId: jobId(2), position: 0 });
  assert.deepEqual(w.main.remembered.get(jobId(2))?.lineage, [jobId(0), jobId(1)]);
  finish(w, jobId(2), POSTER);
  assert.deepEqual(w.main.take('layer-image').map((m) => m.index), [0, 2], 'the merged preview and the redrawn layer');
  const [insert] = w.main.take('insert');
  assert.deepEqual([insert.edit?.frameId, insert.asNew], ['77:0', false]);
  w.flush();
  const [placement] = w.main.placed;
  assert.equal(placement.kind, 'replace');
  assert.deepEqual(placement.images.map((i) => i.index), [0, 2]);
  const job = w.jobIn('r1', 'inserted');
  assert.deepEqual([job.lineage, job.insertedName], [[jobId(0), jobId(1)], 'Poster · ART · seed 77']);
  assert.equal(editBlocker(w.desk.state, DRAFT, item), null);
  // Variations draw every child layer anew with a new seed, the background kept.
  w.desk.edit(item, 'variations', { text: 'a brighter poster', edited: true });
  const [variations] = w.bridge.take('generate');
  assert.deepEqual([variations.prompt, variations.params.seed, variations.base?.keep], ['a brighter poster', 1002, [{ from: 1, to: 1 }]]);
});

test('a regeneration whose frame is gone is inserted as a new frame from the layers it kept, every layer sent then', () => {
  const w = ready();
  const item = resultOf(POSTER, jobId(1));
  w.desk.edit(item, 'selected', DRAFT);
  w.bridge.say({ type: 'queued', requestId: 'r1', jobId: jobId(2), position: 0 });
  w.main.failNext = 'The result frame this job was made for is gone. Insert the result as a new frame instead.';
  const frames = POSTER.regions.map((_, i) => png(`${jobId(2)}/${i}`));
  frames.forEach((bytes, i) => w.bridge.image(jobId(2), i, bytes));
  // The WebSocket's buffer is reused once a message is handled: the desk keeps its own copies.
  for (const bytes of frames) bytes.fill(0, 8);
  w.bridge.say(done(jobId(2)));
  w.flush();
  const failed = w.jobIn('r1', 'insert-failed');
  assert.match(failed.error, /is gone/);
  assert.deepEqual(w.main.take('layer-image').map((m) => m.index), [0, 2]);
  w.desk.insertAsNew(failed);
  assert.deepEqual(w.main.take('layer-image').map((m) => m.index), [1, 3], 'the kept layers, not sent before');
  assert.equal(w.jobIn('r1', 'inserting').asNew, true);
  assert.deepEqual(w.main.take('insert').map((m) => [m.place, m.asNew]), [['beside', false], ['beside', true]]);
  w.flush();
  assert.deepEqual([w.main.placed[0].kind, w.main.placed[0].images.map((i) => i.hash)], ['insert', POSTER.regions.map((_, i) => `hash:${jobId(2)}/${i}`)]);
  assert.equal(w.job('r1').status, 'inserted');
  assert.deepEqual(w.bridge.take('fetch'), [], 'no trip to the bridge: the layers were kept');
});

test('an insert that failed is tried again on the page without sending a layer twice', () => {
  const w = ready();
  w.desk.generate(DRAFT);
  w.bridge.say({ type: 'queued', requestId: 'r1', jobId: jobId(1), position: 0 });
  w.main.failNext = 'No page to insert into. Open a page, then insert again.';
  finish(w, jobId(1), POSTER);
  w.flush();
  const failed = w.jobIn('r1', 'insert-failed');
  assert.equal(failed.error, 'No page to insert into. Open a page, then insert again.');
  w.main.take('layer-image');
  w.main.take('insert');
  w.desk.insert(failed, 'page');
  assert.deepEqual(w.main.take('layer-image'), []);
  assert.deepEqual(w.main.take('insert').map((m) => m.place), ['page']);
  w.flush();
  assert.equal(w.jobIn('r1', 'inserted').insertedName, 'Poster · ART · seed 77');
});

test('an earlier version replaced in its frame is inserted again as a new frame: its layers are asked of the bridge again', () => {
  const w = ready();
  const item = resultOf(POSTER, jobId(1));
  w.desk.edit(item, 'selected', DRAFT);
  w.bridge.say({ type: 'queued', requestId: 'r1', jobId: jobId(2), position: 0 });
  finish(w, jobId(2), POSTER);
  w.flush();
  w.main.take('layer-image');
  assert.deepEqual(w.main.take('insert').map((m) => m.asNew), [false]);
  const inserted = w.jobIn('r1', 'inserted');
  w.bridge.drop();
  w.desk.insertAsNew(inserted);
  assert.equal(w.jobIn('r1', 'inserted').error, 'Connect to the bridge first, then insert again.');
  w.desk.connect();
  w.bridge.pair();
  w.desk.insertAsNew(w.jobIn('r1', 'inserted'));
  assert.deepEqual(w.bridge.take('fetch'), [{ type: 'fetch', jobId: jobId(2) }]);
  assert.equal(w.jobIn('r1', 'refetching').asNew, true);
  finish(w, jobId(2), POSTER, { fetched: true }, 'again');
  assert.deepEqual(w.main.take('layer-image').map((m) => m.index), [0, 1, 2, 3], 'every layer, for a whole new frame');
  assert.equal(w.main.take('insert')[0].asNew, true);
  w.flush();
  assert.deepEqual([w.main.placed[1].kind, w.main.placed[1].images.map((i) => i.hash)], ['insert', ['hash:again/0', 'hash:again/1', 'hash:again/2', 'hash:again/3']]);
  assert.deepEqual(w.jobIn('r1', 'inserted').error, null);
  // The bridge pruned it since: the designer is told, and it is forgotten.
  w.main.remembered.set(jobId(2), { jobId: jobId(2), kind: 'generate', requestId: 'r1', layout: POSTER, seed: 1, prompt: 'p', queuedAt: 1, insertedFrameId: 'x', edit: null, lineage: [] });
  w.desk.insertAsNew(w.jobIn('r1', 'inserted'));
  w.bridge.say({ type: 'error', code: 'unknown_job', message: 'no such job', jobId: jobId(2) });
  assert.match(w.jobIn('r1', 'failed').error, /no longer has this job/);
  assert.equal(w.main.remembered.size, 0);
});

test('a layer Figma cannot read fails the job, naming the layer; the rest of it is let go', () => {
  const w = ready();
  w.desk.generate(DRAFT);
  w.bridge.say({ type: 'queued', requestId: 'r1', jobId: jobId(1), position: 0 });
  w.bridge.image(jobId(1), 0, png('ok'));
  w.bridge.image(jobId(1), 2, new Uint8Array([1, 2, 3]));
  w.flush();
  assert.equal(w.jobIn('r1', 'failed').error, 'Figma could not read the image of layer “Poster 0” (Image type is unsupported). Generate again.');
  assert.equal(w.main.images.held, 0);
  w.bridge.say(done(jobId(1)));
  assert.deepEqual(w.main.take('insert'), [], 'a failed job is not inserted');
});

test('settings: changes are kept by the plugin; connect uses the address and token; the window closing disconnects', () => {
  const w = world({ ...SETTINGS, token: '' });
  assert.deepEqual(w.bridge.connects, [], 'no token: no connection on open');
  assert.equal(w.desk.state.loaded, true);
  w.desk.changeSettings({ token: 'new-token', bridgeUrl: 'ws://localhost:8766' });
  assert.deepEqual(w.main.take('save-settings').map((m) => [m.settings.token, m.settings.bridgeUrl, m.settings.steps]), [['new-token', 'ws://localhost:8766', 3]]);
  w.desk.connect();
  assert.deepEqual(w.bridge.connects, [{ url: 'ws://localhost:8766', token: 'new-token' }]);
  const seen: string[] = [];
  const off = w.desk.subscribe((s) => seen.push(s.connection.status));
  w.bridge.pair();
  w.desk.disconnect();
  off();
  w.desk.connect();
  assert.deepEqual(seen, ['paired', 'idle']);
  w.desk.close();
  assert.equal(w.desk.state.connection.status, 'idle');
});

test('edits: the seed follows the setting for a regeneration, never for Variations; a plan that cannot run sends nothing', () => {
  const w = world();
  const item = resultOf(POSTER, jobId(1));
  assert.equal(editBlocker(w.desk.state, DRAFT, item), 'Connect to the bridge first.');
  w.desk.edit(item, 'selected', DRAFT);
  w.bridge.pair();
  assert.equal(editBlocker(w.desk.state, { text: 'x'.repeat(4001), edited: true }, item), 'The prompt is longer than 4000 characters.');
  assert.equal(editBlocker(w.desk.state, { text: ` ${'x'.repeat(4000)} `, edited: true }, item), null);
  w.desk.edit(item, 'selected', { text: 'x'.repeat(4001), edited: true });
  w.desk.edit({ ...item, regenerate: { ok: false, message: 'The frame was rotated.' } }, 'selected', DRAFT);
  assert.deepEqual(w.bridge.sent, []);
  w.desk.fromPlugin({ type: 'selection', items: [frameItem(CARD), item], resolution: 512, stamp: 3 });
  w.desk.generate(DRAFT);
  w.bridge.take('generate');
  assert.equal(editBlocker(w.desk.state, DRAFT, item), null, 'a generation elsewhere does not block the edit');
  w.bridge.say({ type: 'error', code: 'cancelled', message: 'x', requestId: 'r1' });
  w.desk.edit(item, 'selected', { text: 'the draft on show', edited: false });
  assert.equal(w.bridge.take('generate')[0].prompt, 'the old prompt', 'a prompt the designer did not type is the job’s own');
  w.bridge.say({ type: 'error', code: 'cancelled', message: 'x', requestId: 'r2' });
  w.desk.edit(item, 'selected', { text: '  ', edited: true });
  const [regenerate] = w.bridge.take('generate');
  assert.deepEqual([regenerate.params.seed, regenerate.prompt], [77, 'the old prompt'], 'the fixed seed; a blank prompt keeps the job’s own');
  w.bridge.say({ type: 'error', code: 'invalid_keep', message: 'no', requestId: 'r3' });
  w.desk.edit({ ...item, regenerate: { ok: false, message: 'x' } }, 'variations', { text: ' brighter ', edited: true });
  const [variations] = w.bridge.take('generate');
  assert.deepEqual([variations.params.seed, variations.prompt], [1001, 'brighter'], 'Variations always draw a new seed');
  assert.equal(w.jobIn('r4', 'sending').selectionStamp, 3);
});

test('cancel reaches a job remembered from the last session; its failure or cancel forgets it, a failure of this session’s job does not', () => {
  const remembered: RememberedJob = { jobId: jobId(1), kind: 'generate', requestId: 'old1', layout: POSTER, seed: 1, prompt: 'p', queuedAt: 1, insertedFrameId: null, edit: null, lineage: [] };
  const w = world(SETTINGS, [remembered]);
  w.bridge.pair();
  w.bridge.take('fetch');
  w.desk.cancel();
  assert.deepEqual(w.bridge.take('cancel'), [{ type: 'cancel', jobId: jobId(1) }]);
  assert.equal(w.jobIn('old1', 'restored').cancelRequested, true);
  w.bridge.say({ type: 'error', code: 'generation_failed', message: 'boom', jobId: jobId(1) });
  assert.equal(w.main.remembered.size, 0, 'a remembered job that failed is not asked for again');
  w.desk.fromPlugin({ type: 'selection', items: [frameItem(CARD)], resolution: 512, stamp: 2 });
  w.desk.generate(DRAFT);
  w.bridge.say({ type: 'queued', requestId: 'r1', jobId: jobId(2), position: 0 });
  w.bridge.say({ type: 'error', code: 'generation_failed', message: 'boom', jobId: jobId(2) });
  assert.deepEqual([...w.main.remembered.keys()], [jobId(2)], 'this session’s failed job stays remembered');
});

test('answers about jobs that are not being inserted change nothing; a refused layer past the layout is named by its index', () => {
  const w = ready();
  w.desk.generate(DRAFT);
  w.bridge.say({ type: 'queued', requestId: 'r1', jobId: jobId(1), position: 0 });
  const before = w.desk.state.jobs;
  w.desk.fromPlugin({ type: 'inserted', requestId: 'r1', jobId: jobId(1), sourceFrameId: 'x', frameId: 'y', frameName: 'Y', layerCount: 2, already: false });
  w.desk.fromPlugin({ type: 'insert-failed', requestId: 'r1', message: 'no' });
  w.desk.fromPlugin({ type: 'replaced', requestId: 'nobody', jobId: jobId(1), frameId: 'y', frameName: 'Y', replaced: 1, added: 0, kept: 0 });
  w.desk.fromPlugin({ type: 'layer-refused', requestId: 'nobody', index: 0, message: 'no' });
  w.desk.fromPlugin({ type: 'insert-failed', requestId: 'nobody', message: 'no' });
  assert.equal(w.desk.state.jobs, before);
  w.desk.fromPlugin({ type: 'layer-refused', requestId: 'r1', index: 9, message: 'too big' });
  const failed = w.jobIn('r1', 'failed');
  assert.deepEqual([failed.error, failed.jobId], ['Figma could not read the image of layer “layer 9” (too big). Generate again.', jobId(1)]);
});

test('once paired again, only the jobs still running are asked for; finished ones are not', () => {
  const w = ready([POSTER, CARD]);
  w.desk.generate(DRAFT);
  w.bridge.say({ type: 'queued', requestId: 'r1', jobId: jobId(1), position: 0 });
  w.bridge.say({ type: 'queued', requestId: 'r2', jobId: jobId(2), position: 1 });
  finish(w, jobId(1), POSTER);
  w.flush();
  w.bridge.drop();
  w.desk.connect();
  w.bridge.pair();
  assert.deepEqual(w.bridge.take('fetch'), [{ type: 'fetch', jobId: jobId(2) }]);
});
