import { test } from 'node:test';
import assert from 'node:assert/strict';
import { frameLayout } from '../../plugin/layout.ts';
import { applyBridgeMessage, isActive, neededLayers, newJob, restoredJob, roomAtBridge, type Job } from '../../ui/jobs.ts';
import { errorText, remainingMs, seconds } from '../../ui/words.ts';
import { frame, rect } from '../plugin/trees.ts';

const result = frameLayout(frame('Card', { x: 0, y: 0, width: 100, height: 100 }, [rect('A', 0, 0, 50, 50)]), 512);
if (!result.ok) throw new Error(result.message);
const layout = result.value;
const JOB = '0a1b2c3d-0000-4000-8000-000000000001';

function start(): Job[] {
  return [newJob('r1', layout, 'a card', 41), newJob('r2', layout, 'other', 7)];
}

test('a job moves from sending to queued, running, and inserting on done; other jobs are untouched', () => {
  let jobs = start();
  jobs = applyBridgeMessage(jobs, { type: 'queued', requestId: 'r1', jobId: JOB, position: 2 });
  assert.deepEqual([jobs[0].status, jobs[0].jobId, jobs[0].position], ['queued', JOB, 2]);
  jobs = applyBridgeMessage(jobs, { type: 'progress', jobId: JOB, stage: 'denoise', step: 1, total: 10, elapsedMs: 1000 });
  jobs = applyBridgeMessage(jobs, { type: 'progress', jobId: JOB, stage: 'denoise', step: 5, total: 10, elapsedMs: 3000 });
  assert.equal(jobs[0].status, 'running');
  assert.deepEqual(jobs[0].denoiseFrom, { step: 1, elapsedMs: 1000 }, 'the pace is measured from the first step seen');
  jobs = applyBridgeMessage(jobs, {
    type: 'done', jobId: JOB, requestId: 'r1', layerCount: 3, seed: 41, model: 'tiny', provider: 'cpu',
    tiny: true, promptTruncated: true, timings: { total: 4200 }, fetched: false,
  });
  assert.deepEqual([jobs[0].status, jobs[0].tiny, jobs[0].promptTruncated, jobs[0].totalMs], ['inserting', true, true, 4200]);
  assert.equal(isActive(jobs[0]), false);
  assert.deepEqual(jobs[1], start()[1]);
});

test('a job that started again on another worker: the note shows and the pace is measured anew', () => {
  let jobs = applyBridgeMessage(start(), { type: 'queued', requestId: 'r1', jobId: JOB, position: 0 });
  jobs = applyBridgeMessage(jobs, { type: 'progress', jobId: JOB, stage: 'denoise', step: 1, total: 10, elapsedMs: 1000 });
  jobs = applyBridgeMessage(jobs, { type: 'progress', jobId: JOB, stage: 'denoise', step: 6, total: 10, elapsedMs: 6000 });
  const note = 'the job started again from the beginning on worker gpu2 (attempt 2); its earlier run on gpu1 was lost';
  jobs = applyBridgeMessage(jobs, { type: 'queued', requestId: 'r1', jobId: JOB, position: 0, note });
  jobs = applyBridgeMessage(jobs, { type: 'progress', jobId: JOB, stage: 'text', step: 1, total: 2, elapsedMs: 300 });
  assert.equal(jobs[0].denoiseFrom, null, 'the first run\'s pace is dropped');
  jobs = applyBridgeMessage(jobs, { type: 'progress', jobId: JOB, stage: 'denoise', step: 2, total: 10, elapsedMs: 2500 });
  assert.deepEqual(jobs[0].denoiseFrom, { step: 2, elapsedMs: 2500 });
  assert.equal(jobs[0].note, note, 'progress leaves the note in place');
  assert.equal(jobs[0].step, 2);
});

test('errors end the job in designer words; a cancel is not an error', () => {
  let jobs = applyBridgeMessage(start(), { type: 'queued', requestId: 'r1', jobId: JOB, position: 0 });
  const failed = applyBridgeMessage(jobs, { type: 'error', code: 'generation_failed', message: 'out of memory', jobId: JOB });
  assert.equal(failed[0].status, 'failed');
  assert.match(failed[0].error!, /terminal running it says more: out of memory/);
  jobs = applyBridgeMessage(jobs, { type: 'error', code: 'cancelled', message: 'the job was cancelled', jobId: JOB });
  assert.deepEqual([jobs[0].status, jobs[0].error], ['cancelled', null]);
  // A finished job ignores late progress.
  const late = applyBridgeMessage(jobs, { type: 'progress', jobId: JOB, stage: 'denoise', step: 9, total: 10, elapsedMs: 1 });
  assert.equal(late[0].status, 'cancelled');
});

test('error texts keep the bridge’s specifics where they matter', () => {
  assert.match(errorText({ code: 'unauthorized', message: 'x' }), /token does not match/);
  assert.equal(errorText({ code: 'invalid_layout', message: 'box 3 is empty' }), 'This frame’s layout cannot be generated: box 3 is empty');
  assert.equal(errorText({ code: 'internal', message: 'something specific' }), 'something specific');
});

test('time left follows the pace of the steps so far', () => {
  assert.equal(remainingMs({ step: 1, elapsedMs: 1000 }, { step: 1, total: 10, elapsedMs: 1000 }), null);
  assert.equal(remainingMs({ step: 1, elapsedMs: 1000 }, { step: 5, total: 10, elapsedMs: 3000 }), 2500);
  assert.equal(seconds(2500), '2.5 s');
  assert.equal(seconds(45_000), '45 s');
  assert.equal(seconds(150_000), '2 min 30 s');
});

test('a job remembered from the last session: still running, it is inserted when done; finished while closed, it waits for Insert', () => {
  const stored = { jobId: JOB, requestId: 'r9', layout, seed: 5, prompt: 'saved', queuedAt: 1, insertedFrameId: null, edit: null, lineage: [] };
  const restored = restoredJob(stored);
  assert.deepEqual([restored.status, restored.jobId, restored.restored, restored.selectionStamp], ['restored', JOB, true, -1]);
  assert.equal(isActive(restored), true, 'asked of the bridge again once paired');
  const done = {
    type: 'done' as const, jobId: JOB, layerCount: 3, seed: 5, model: 'tiny', provider: 'cpu',
    tiny: true, promptTruncated: false, timings: {}, fetched: true,
  };
  // Finished while the plugin was closed: the bridge replays it (fetched), and the designer decides.
  assert.deepEqual(applyBridgeMessage([restored], done).map((j) => [j.status, j.model]), [['ready', 'tiny']]);
  // Still running when the plugin came back: queued first, then a live done, inserted at once.
  const running = applyBridgeMessage([restored], { type: 'queued', jobId: JOB, position: 0 });
  assert.equal(running[0].status, 'running');
  assert.equal(applyBridgeMessage(running, { ...done, fetched: false })[0].status, 'inserting');
  // A job of this session is inserted at once even if its done is a replay after a reconnect.
  const live = { ...newJob('r1', layout, 'a card', 41, 3), jobId: JOB, status: 'running' as const };
  assert.equal(applyBridgeMessage([live], done)[0].status, 'inserting');
});

test('a regeneration in place needs only its new layers’ images; as a new frame, all of them', () => {
  const target = { frameId: '12:1', baseJobId: JOB, layers: layout.regions.map((_, i) => ({ nodeId: `12:${i}`, baseIndex: i, kept: i === 1 })) };
  const edit = newJob('r3', layout, 'again', 9, 4, { target, lineage: [JOB] });
  assert.deepEqual(neededLayers(edit), [0, 2], 'the merged preview and the child layer; the kept background is in place');
  assert.deepEqual(neededLayers({ ...edit, asNew: true }), [0, 1, 2]);
  assert.deepEqual(neededLayers(newJob('r4', layout, 'plain', 1)), [0, 1, 2]);
  // Remembered and restored, it still knows where its images go.
  const stored = { jobId: JOB, requestId: 'r3', layout, seed: 9, prompt: 'again', queuedAt: 1, insertedFrameId: null, edit: target, lineage: [JOB] };
  const restored = restoredJob(stored);
  assert.deepEqual([restored.edit, restored.lineage, neededLayers(restored)], [target, [JOB], [0, 2]]);
});

test('jobs beyond the bridge’s per-connection limit are held; restored and finished jobs take no room', () => {
  const at = (status: Job['status'], restored = false): Job => ({ ...newJob(`r-${status}`, layout, 'p', 1), status, restored });
  assert.equal(roomAtBridge([], 4), 4);
  assert.equal(roomAtBridge([at('sending'), at('queued'), at('running'), at('held')], 4), 1);
  assert.equal(roomAtBridge([at('running'), at('running', true), at('inserting'), at('inserted'), at('failed'), at('refetching')], 2), 1);
  assert.equal(roomAtBridge([at('queued'), at('queued'), at('queued')], 2), 0, 'never negative');
  // The bridge's queue note reaches the job.
  const sent = at('sending');
  const queued = applyBridgeMessage([sent], { type: 'queued', requestId: sent.requestId, jobId: JOB, position: 2, note: 'No GPU worker has this model yet.' });
  assert.deepEqual([queued[0].status, queued[0].note], ['queued', 'No GPU worker has this model yet.']);
});
