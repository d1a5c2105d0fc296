import { test } from 'node:test';
import assert from 'node:assert/strict';
import { frameLayout } from '../../plugin/layout.ts';
import { applyBridgeMessage, isActive, jobIdOf, newJob, restoredJob, roomAtBridge, type Job, type JobIn } from '../../ui/jobs.ts';
import { errorText, remainingMs, seconds } from '../../ui/words.ts';
import { frame, rect } from '../plugin/trees.ts';

const result = frameLayout(frame('Card', { x: 0, y: 0, width: 100, height: 100 }, [rect('A', 0, 0, 50, 50)]), 512);
if (!result.ok) throw new Error(result.message);
const layout = result.value;
const JOB = '0a1b2c3d-0000-4000-8000-000000000001';

/** Two jobs the bridge has been sent. */
function start(): Job[] {
  return [sending(newJob('r1', layout, 'a card', 41, 0)), sending(newJob('r2', layout, 'other', 7, 0))];
}

function sending(job: Job): Job {
  return { ...job, status: 'sending', cancelRequested: false };
}

function inStatus<S extends Job['status']>(job: Job | undefined, status: S): JobIn<S> {
  assert.equal(job?.status, status);
  return job as JobIn<S>;
}

test('a job moves from sending to queued, running, and inserting on done; other jobs are untouched', () => {
  let jobs = start();
  jobs = applyBridgeMessage(jobs, { type: 'queued', requestId: 'r1', jobId: JOB, position: 2 });
  const queued = inStatus(jobs[0], 'queued');
  assert.deepEqual([queued.jobId, queued.position], [JOB, 2]);
  jobs = applyBridgeMessage(jobs, { type: 'progress', jobId: JOB, stage: 'denoise', step: 1, total: 10, elapsedMs: 1000 });
  jobs = applyBridgeMessage(jobs, { type: 'progress', jobId: JOB, stage: 'denoise', step: 5, total: 10, elapsedMs: 3000 });
  const running = inStatus(jobs[0], 'running');
  assert.deepEqual(running.progress, { stage: 'denoise', step: 5, total: 10, elapsedMs: 3000, denoiseFrom: { step: 1, elapsedMs: 1000 } },
    'the pace is measured from the first step seen');
  // A repeated `queued` at position 0 (the bridge resends it) keeps the progress.
  jobs = applyBridgeMessage(jobs, { type: 'queued', jobId: JOB, position: 0, note: 'started again' });
  assert.deepEqual([inStatus(jobs[0], 'running').progress.step, inStatus(jobs[0], 'running').note], [5, 'started again']);
  jobs = applyBridgeMessage(jobs, {
    type: 'done', jobId: JOB, requestId: 'r1', layerCount: 3, seed: 41, model: 'tiny', provider: 'cpu',
    tiny: true, promptTruncated: true, timings: { total: 4200 }, fetched: false,
  });
  assert.deepEqual(inStatus(jobs[0], 'inserting').result, { model: 'tiny', tiny: true, promptTruncated: true, totalMs: 4200 });
  assert.equal(isActive(jobs[0]), false);
  assert.deepEqual(jobs[1], start()[1]);
});

test('a job that started again on another worker: the note shows and the pace is measured anew', () => {
  let jobs = applyBridgeMessage(start(), { type: 'queued', requestId: 'r1', jobId: JOB, position: 0 });
  jobs = applyBridgeMessage(jobs, { type: 'progress', jobId: JOB, stage: 'denoise', step: 1, total: 10, elapsedMs: 1000 });
  jobs = applyBridgeMessage(jobs, { type: 'progress', jobId: JOB, stage: 'denoise', step: 6, total: 10, elapsedMs: 6000 });
  const note = 'the job started again from the beginning on worker gpu2 (attempt 2); its earlier run on gpu1 was lost';
  jobs = applyBridgeMessage(jobs, { type: 'queued', requestId: 'r1', jobId: JOB, position: 0, note });
  const running = (job: Job) => {
    assert.ok(job.status === 'running');
    return job;
  };
  jobs = applyBridgeMessage(jobs, { type: 'progress', jobId: JOB, stage: 'text', step: 1, total: 2, elapsedMs: 300 });
  assert.equal(running(jobs[0]).progress.denoiseFrom, null, 'the first run\'s pace is dropped');
  jobs = applyBridgeMessage(jobs, { type: 'progress', jobId: JOB, stage: 'denoise', step: 2, total: 10, elapsedMs: 2500 });
  const now = running(jobs[0]);
  assert.deepEqual(now.progress.denoiseFrom, { step: 2, elapsedMs: 2500 });
  assert.equal(now.note, note, 'progress leaves the note in place');
  assert.equal(now.progress.step, 2);
});

test('errors end the job in designer words; a cancel is not an error', () => {
  let jobs = applyBridgeMessage(start(), { type: 'queued', requestId: 'r1', jobId: JOB, position: 0 });
  const failed = applyBridgeMessage(jobs, { type: 'error', code: 'generation_failed', message: 'out of memory', jobId: JOB });
  assert.match(inStatus(failed[0], 'failed').error, /terminal running it says more: out of memory/);
  assert.equal(inStatus(failed[0], 'failed').jobId, JOB);
  jobs = applyBridgeMessage(jobs, { type: 'error', code: 'cancelled', message: 'the job was cancelled', jobId: JOB });
  assert.deepEqual(jobs[0], { ...newJob('r1', layout, 'a card', 41, 0), status: 'cancelled', jobId: JOB });
  // Refused before it was queued: no job id.
  const refused = applyBridgeMessage(start(), { type: 'error', code: 'queue_full', message: 'full', requestId: 'r2' });
  assert.deepEqual([jobIdOf(refused[1]), refused[0]], [null, start()[0]]);
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
  const stored = { jobId: JOB, kind: 'generate' as const, requestId: 'r9', layout, seed: 5, prompt: 'saved', queuedAt: 1, insertedFrameId: null, edit: null, lineage: [] };
  const restored = restoredJob(stored);
  assert.deepEqual([restored.status, restored.jobId, restored.restored, restored.selectionStamp, restored.prompt], ['restored', JOB, true, -1, 'saved']);
  assert.equal(isActive(restored), true, 'asked of the bridge again once paired');
  const done = {
    type: 'done' as const, jobId: JOB, layerCount: 3, seed: 5, model: 'tiny', provider: 'cpu',
    tiny: true, promptTruncated: false, timings: {}, fetched: true,
  };
  // Finished while the plugin was closed: the bridge replays it (fetched), and the designer decides.
  const ready = inStatus(applyBridgeMessage([restored], done)[0], 'ready');
  assert.deepEqual([ready.result.model, ready.jobId], ['tiny', JOB]);
  // Still running when the plugin came back: queued first, then a live done, inserted at once.
  const running = applyBridgeMessage([restored], { type: 'queued', jobId: JOB, position: 0 });
  assert.equal(running[0].status, 'running');
  assert.equal(applyBridgeMessage(running, { ...done, fetched: false })[0].status, 'inserting');
  // A job of this session is inserted at once even if its done is a replay after a reconnect.
  const live = applyBridgeMessage([sending(newJob('r1', layout, 'a card', 41, 3))], { type: 'queued', requestId: 'r1', jobId: JOB, position: 0 })[0];
  assert.equal(applyBridgeMessage([live], done)[0].status, 'inserting');
});

test('a remembered regeneration still knows where its images go', () => {
  const target = { frameId: '12:1', baseJobId: JOB, layers: layout.regions.map((_, i) => ({ nodeId: `12:${i}`, baseIndex: i, kept: i === 1 })) };
  const stored = { jobId: JOB, kind: 'generate' as const, requestId: 'r3', layout, seed: 9, prompt: 'again', queuedAt: 1, insertedFrameId: null, edit: target, lineage: [JOB] };
  const restored = restoredJob(stored);
  assert.deepEqual([restored.edit, restored.lineage, restored.asNew], [target, [JOB], false]);
});

test('jobs beyond the bridge’s per-connection limit are held; restored and finished jobs take no room', () => {
  const at = (status: Job['status'], restored = false) => ({ ...newJob(`r-${status}`, layout, 'p', 1, 0), status, restored }) as Job;
  assert.equal(roomAtBridge([], 4), 4);
  assert.equal(roomAtBridge([at('sending'), at('queued'), at('running'), at('held')], 4), 1);
  assert.equal(roomAtBridge([at('running'), at('running', true), at('inserting'), at('inserted'), at('failed'), at('refetching')], 2), 1);
  assert.equal(roomAtBridge([at('queued'), at('queued'), at('queued')], 2), 0, 'never negative');
  // The bridge's queue note reaches the job.
  const sent = at('sending');
  const queued = applyBridgeMessage([sent], { type: 'queued', requestId: sent.requestId, jobId: JOB, position: 2, note: 'No GPU worker has this model yet.' });
  assert.equal(inStatus(queued[0], 'queued').note, 'No GPU worker has this model yet.');
});
