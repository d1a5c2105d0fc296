/**
 * Decompose as a designer drives it (ui/job-desk.ts): a flat picture with marks selected, the
 * image exported by the main thread, the `decompose` message and its PNG frame, progress, insert.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DoneMessage } from '../../bridge/protocol/messages.ts';
import { canDecompose, decomposeBlocker, generateBlocker, type FlatSelection } from '../../ui/job-desk.ts';
import { layoutOf } from '../plugin/trees.ts';
import { DECOMPOSING, SETTINGS, WELCOME, flatItem, png, world, type World } from './desk-world.ts';

const POSTER = layoutOf('Poster', 3); // merged, background, 3 marks
const ITEM = flatItem(POSTER, 'A Poster design with a logo.') as FlatSelection;
const ID = '0a1b2c3d-0000-4000-8000-000000000042';

function selected(welcome = DECOMPOSING): World {
  const w = world();
  w.bridge.pair(welcome);
  w.desk.fromPlugin({ type: 'selection', items: [ITEM], resolution: 512, stamp: 9 });
  return w;
}

function done(extra: Partial<DoneMessage> = {}): DoneMessage {
  return {
    type: 'done', jobId: ID, layerCount: 5, seed: 77, model: 'tiny-art', provider: 'cpu', tiny: true, promptTruncated: false,
    timings: { total: 900 }, fetched: false, job: 'decompose', ...extra,
  };
}

test('Decompose is offered only when the bridge’s model decomposes, and says why not otherwise', () => {
  const plain = selected(WELCOME);
  assert.equal(canDecompose(plain.desk.state), false);
  assert.match(decomposeBlocker(plain.desk.state, { text: '', edited: false }, ITEM) ?? '', /cannot decompose.*adapter/);
  plain.desk.decompose(ITEM, { text: '', edited: false });
  assert.deepEqual(plain.main.take('export-image'), [], 'nothing exported for a bridge that cannot use it');
  assert.deepEqual(plain.desk.state.jobs, []);
  // Another model decomposing is not enough: the default model runs the job.
  const other = selected({ ...DECOMPOSING, models: [{ ...DECOMPOSING.models[0], model: 'other' }] });
  assert.equal(canDecompose(other.desk.state), false);
  const w = selected();
  assert.equal(canDecompose(w.desk.state), true);
  assert.equal(decomposeBlocker(w.desk.state, { text: '', edited: false }, ITEM), null);
  assert.match(generateBlocker(w.desk.state, { text: 'x', edited: true }) ?? '', /decomposed above/, 'Generate says where the flat picture went');
  assert.match(decomposeBlocker(w.desk.state, { text: 'x'.repeat(5000), edited: true }, ITEM) ?? '', /longer than/);
  w.bridge.drop();
  assert.equal(decomposeBlocker(w.desk.state, { text: '', edited: false }, ITEM), 'Connect to the bridge first.');
});

test('decompose: the main thread exports the image at the canvas size, then the message and its PNG go out together; done inserts it', () => {
  const w = selected();
  w.desk.decompose(ITEM, { text: '  a poster with a red logo  ', edited: true });
  const [asked] = w.main.take('export-image');
  assert.deepEqual(asked, { type: 'export-image', requestId: 'r1', imageNodeId: ITEM.imageNodeId, width: POSTER.layout.width, height: POSTER.layout.height });
  const job = w.jobIn('r1', 'held');
  assert.equal(job.kind, 'decompose');
  assert.deepEqual(w.bridge.take('decompose'), [], 'nothing is sent before the image is there');

  w.flush();
  const [message] = w.bridge.take('decompose');
  const [frame] = w.bridge.images;
  assert.deepEqual(message, {
    type: 'decompose', requestId: 'r1', prompt: 'a poster with a red logo', layout: POSTER.layout,
    params: { resolution: 512, steps: 3, guidance: 3.5, trueCfg: 2, seed: 77, conditioningScale: 0.9 },
    image: { bytes: frame.png.length },
  });
  assert.equal(frame.after, 'r1', 'the PNG is the frame right after its message');
  assert.equal(new TextDecoder().decode(frame.png.subarray(8)), `flat:${ITEM.imageNodeId}:${POSTER.layout.width}x${POSTER.layout.height}`);
  w.jobIn('r1', 'sending');

  w.bridge.say({ type: 'queued', requestId: 'r1', jobId: ID, position: 0 });
  w.bridge.say({ type: 'progress', jobId: ID, stage: 'denoise', step: 2, total: 3, elapsedMs: 20 });
  assert.equal(w.jobIn('r1', 'running').progress.step, 2);
  POSTER.regions.forEach((_, i) => w.bridge.image(ID, i, png(`d/${i}`)));
  w.bridge.say(done());
  const [insert] = w.main.take('insert');
  assert.deepEqual([insert.layout, insert.edit, insert.selectionStamp, insert.tiny], [POSTER, null, 9, true]);
  w.flush();
  assert.deepEqual(w.main.placed[0].images.map((i) => i.hash), POSTER.regions.map((_, i) => `hash:d/${i}`));
  assert.equal(w.jobIn('r1', 'inserted').kind, 'decompose');
});

test('decompose: a refused export or a picture over the bridge’s cap fails the job with what to do; cancel before the export sends nothing', () => {
  const w = selected();
  w.main.exportFails = 'node is gone';
  w.desk.decompose(ITEM, { text: '', edited: false });
  w.flush();
  assert.match(w.jobIn('r1', 'failed').error, /could not export the image: node is gone/);

  w.main.exportPadding = 200;
  w.bridge.pair({ ...DECOMPOSING, maxImageBytes: 100 });
  w.desk.decompose(ITEM, { text: '', edited: false });
  w.flush();
  assert.match(w.jobIn('r2', 'failed').error, /more than the bridge takes.*lower resolution/);

  w.main.exportPadding = 0;
  w.desk.decompose(ITEM, { text: '', edited: false });
  w.desk.cancel();
  assert.equal(w.job('r3').status, 'cancelled');
  w.flush();
  assert.deepEqual([w.bridge.take('decompose'), w.bridge.images], [[], []], 'a cancelled decomposition is never sent');
  assert.equal(w.job('r3').status, 'cancelled');
});
