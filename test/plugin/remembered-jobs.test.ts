import { test } from 'node:test';
import assert from 'node:assert/strict';
import { frameLayout } from '../../plugin/layout.ts';
import {
  REMEMBERED_JOBS_KEY,
  RememberedJobs,
  MAX_REMEMBERED_CHARS,
  MAX_REMEMBERED_JOBS,
  parseRememberedJobs,
  withInserted,
  withJob,
  withoutJob,
  type RememberedJob,
} from '../../plugin/remembered-jobs.ts';
import { CLIENT_STORAGE_BYTES, FakeDocument } from './fake-figma.ts';
import { frame, rect } from './trees.ts';

const result = frameLayout(
  frame('Card', { x: 0, y: 0, width: 300, height: 200 }, [rect('Photo', 0, 0, 100, 100), rect('Logo', 150, 20, 40, 40)]),
  1024,
);
if (!result.ok) throw new Error(result.message);
const layout = result.value;

function job(i: number, extra: Partial<RememberedJob> = {}): RememberedJob {
  return {
    jobId: `0a1b2c3d-0000-4000-8000-${String(i).padStart(12, '0')}`,
    kind: 'generate',
    requestId: `r${i}`,
    layout,
    seed: i,
    prompt: `prompt ${i}`,
    queuedAt: 1_000 + i,
    insertedFrameId: null,
    edit: null,
    lineage: [],
    ...extra,
  };
}

test('a remembered job survives a round trip through clientStorage with everything inserting needs', async () => {
  const doc = new FakeDocument();
  const store = new RememberedJobs(doc.clientStorage);
  await store.update((list) => withJob(list, job(1)));
  await store.update((list) => withJob(list, job(2)));
  await store.update((list) => withInserted(list, job(1).jobId, '9:9'));
  // Another launch of the plugin: a fresh store over the same storage.
  const again = await new RememberedJobs(doc.clientStorage).list();
  assert.deepEqual(again, [job(1, { insertedFrameId: '9:9' }), job(2)]);
  assert.deepEqual(again[1].layout.regions, layout.regions);
  await store.update((list) => withoutJob(list, job(2).jobId));
  assert.deepEqual((await store.list()).map((j) => j.requestId), ['r1']);
});

test('changes made close together are all kept (each reads what the last wrote)', async () => {
  const doc = new FakeDocument();
  const store = new RememberedJobs(doc.clientStorage);
  await Promise.all([1, 2, 3, 4, 5].map((i) => store.update((list) => withJob(list, job(i)))));
  assert.equal((await store.list()).length, 5);
});

test('bounded: at most MAX_REMEMBERED_JOBS, oldest dropped, and never more than MAX_REMEMBERED_CHARS', () => {
  let list: RememberedJob[] = [];
  for (let i = 0; i < MAX_REMEMBERED_JOBS + 7; i++) list = withJob(list, job(i));
  assert.equal(list.length, MAX_REMEMBERED_JOBS);
  assert.equal(list[0].requestId, 'r7', 'the oldest went first');
  const huge = 'x'.repeat(MAX_REMEMBERED_CHARS / 4);
  list = [];
  for (let i = 0; i < 6; i++) list = withJob(list, job(i, { prompt: huge }));
  assert.ok(JSON.stringify(list).length <= MAX_REMEMBERED_CHARS);
  assert.deepEqual(list.map((j) => j.requestId), ['r3', 'r4', 'r5']);
});

test('damaged or foreign stored data is dropped entry by entry', () => {
  assert.deepEqual(parseRememberedJobs(undefined), []);
  assert.deepEqual(parseRememberedJobs('junk'), []);
  const bad = [
    job(1),
    { ...job(2), layout: { ...layout, regions: 'no' } },
    { ...job(3), seed: 'x' },
    { ...job(4), layout: { ...layout, scaleX: 0 } },
    null,
    job(5),
  ];
  assert.deepEqual(parseRememberedJobs(bad).map((j) => j.requestId), ['r1', 'r5']);
});

test('clientStorage refuses writes past its 5 MB, and the last good list stays', async () => {
  const doc = new FakeDocument();
  await assert.rejects(doc.clientStorage.setAsync('big', 'x'.repeat(CLIENT_STORAGE_BYTES)), /quota/);
  const store = new RememberedJobs(doc.clientStorage);
  await store.update((list) => withJob(list, job(1)));
  await doc.clientStorage.setAsync('filler', 'x'.repeat(CLIENT_STORAGE_BYTES - 20_000));
  await assert.rejects(store.update((list) => withJob(list, job(2, { prompt: 'y'.repeat(50_000) }))), /quota/);
  assert.deepEqual((await store.list()).map((j) => j.requestId), ['r1']);
  assert.ok((await doc.clientStorage.keysAsync()).includes(REMEMBERED_JOBS_KEY));
});

test('a regeneration is remembered with where its images go; an entry that does not fit is dropped', async () => {
  const edit = {
    frameId: '12:1',
    baseJobId: job(1).jobId,
    layers: layout.regions.map((_, i) => ({ nodeId: `12:${i + 2}`, baseIndex: i, kept: i === 1 })),
  };
  const doc = new FakeDocument();
  const store = new RememberedJobs(doc.clientStorage);
  await store.update((list) => withJob(list, job(2, { edit, lineage: [job(1).jobId] })));
  assert.deepEqual(await new RememberedJobs(doc.clientStorage).list(), [job(2, { edit, lineage: [job(1).jobId] })]);

  const { edit: _e, lineage: _l, ...older } = job(3);
  const damaged = [
    older,
    job(7, { lineage: Array.from({ length: 51 }, (_, i) => `j${i}`) }),
    { ...job(8), layout: { ...layout, regions: layout.regions.slice(1) } },
    { ...job(9), layout: { ...layout, scaleX: 0 } },
    job(10, { lineage: Array.from({ length: 50 }, (_, i) => `j${i}`) }),
    job(4, { edit: { ...edit, layers: edit.layers.slice(1) } }),
    job(5, { edit: { ...edit, layers: edit.layers.map((l) => ({ ...l, kept: 'yes' as unknown as boolean })) } }),
    job(6, { lineage: [7 as unknown as string] }),
  ];
  assert.deepEqual(
    parseRememberedJobs(damaged).map((j) => [j.requestId, j.edit, j.lineage]),
    [['r10', null, Array.from({ length: 50 }, (_, i) => `j${i}`)]],
    'an entry missing its edit and lineage, a layout without a region per box, a zero scale, a plan that does not fit its layout, or a bad or too long lineage, is dropped',
  );
});
