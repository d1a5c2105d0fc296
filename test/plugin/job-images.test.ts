/**
 * The main thread's side of a finished job (plugin/job-images.ts): images arrive one message each,
 * in any order with the job's `insert`; the job is placed once, as soon as every image it needs
 * is held, as a new frame or onto the result frame a regeneration came from.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JobImages, neededLayers } from '../../plugin/job-images.ts';
import type { InsertMessage } from '../../plugin/messages.ts';
import type { EditTarget } from '../../plugin/regenerate.ts';
import { layoutOf } from './trees.ts';

const LAYOUT = layoutOf('Poster', 2); // merged, background, two children
const EDIT: EditTarget = { frameId: '5:1', baseJobId: 'base', layers: LAYOUT.regions.map((_, i) => ({ nodeId: `5:${i + 2}`, baseIndex: i, kept: i === 1 || i === 3 })) };

function insert(extra: Partial<InsertMessage> = {}): InsertMessage {
  return {
    type: 'insert', requestId: 'r1', jobId: 'j1', layout: LAYOUT, seed: 3, model: 'tiny', prompt: 'p', tiny: true,
    edit: null, asNew: false, place: 'beside', selectionStamp: 1, ...extra,
  };
}

test('a regeneration in place needs only the layers it redrew; as a new frame, or a generation, all of them', () => {
  assert.deepEqual(neededLayers({ layout: LAYOUT, edit: EDIT, asNew: false }), [0, 2]);
  assert.deepEqual(neededLayers({ layout: LAYOUT, edit: EDIT, asNew: true }), [0, 1, 2, 3]);
  assert.deepEqual(neededLayers({ layout: LAYOUT, edit: null, asNew: false }), [0, 1, 2, 3]);
});

test('a job is placed once its insert and its last image are both in, whichever comes last', () => {
  const images = new JobImages();
  assert.equal(images.stored('r1', 3, 'h3'), null);
  assert.equal(images.stored('r1', 0, 'h0'), null);
  assert.equal(images.asked(insert()), null, 'two images still missing');
  assert.equal(images.stored('r1', 1, 'h1'), null);
  const placed = images.stored('r1', 2, 'h2');
  assert.deepEqual(placed, { kind: 'insert', job: insert(), images: [0, 1, 2, 3].map((index) => ({ index, hash: `h${index}` })) });
  assert.equal(images.stored('r1', 2, 'h2'), null, 'placed once: a repeated image does not place it again');
  // Images first, the insert last.
  for (const i of [0, 1, 2, 3]) images.stored('r2', i, `k${i}`);
  assert.equal(images.asked(insert({ requestId: 'r2', place: 'page' }))?.kind, 'insert');
  assert.equal(images.held, 2, 'kept until placed() or refused(): a failed insert is tried again');
  assert.deepEqual(images.asked(insert({ requestId: 'r2', place: 'page' }))?.job.place, 'page');
  images.placed('r2');
  images.refused('r1');
  assert.equal(images.held, 0);
});

test('a regeneration replaces its redrawn layers in place, or becomes a new frame when asked to', () => {
  const images = new JobImages();
  images.stored('r1', 0, 'h0');
  images.stored('r1', 2, 'h2');
  const replace = images.asked(insert({ edit: EDIT }));
  assert.deepEqual(replace, { kind: 'replace', job: insert({ edit: EDIT }), target: EDIT, images: [{ index: 0, hash: 'h0' }, { index: 2, hash: 'h2' }] });
  assert.equal(images.asked(insert({ edit: EDIT, asNew: true })), null, 'as a new frame it waits for the kept layers too');
  images.stored('r1', 1, 'h1');
  const asNew = images.stored('r1', 3, 'h3');
  assert.equal(asNew?.kind, 'insert');
  assert.deepEqual(asNew?.images.map((i) => i.hash), ['h0', 'h1', 'h2', 'h3']);
});
