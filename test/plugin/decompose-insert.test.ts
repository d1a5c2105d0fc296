/**
 * A decomposition lands like a generation (plugin/insert.ts on the flat picture's layout): a new
 * frame with the whole image, the background and one named layer per mark at the mark's place,
 * one undo step, the source and its marks untouched; and it is a result like any other, so
 * moving a layer and regenerating redraws only that layer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { exportFlatImage, flatLayout } from '../../plugin/flat-image.ts';
import { insertLayers } from '../../plugin/insert.ts';
import { readFrame, readResultFrame } from '../../plugin/read-scene.ts';
import { redrawnLayers, regeneratePlan } from '../../plugin/regenerate.ts';
import { parseResultFrameData, RESULT_FRAME_KEY } from '../../plugin/result-data.ts';
import { FakeDocument, nodeState, type NodeInit } from './fake-figma.ts';

function png(width: number, height: number, seed: number): Uint8Array {
  const image = new PNG({ width, height });
  for (let i = 0; i < image.data.length; i++) image.data[i] = (i * 13 + seed * 29) & 0xff;
  return new Uint8Array(PNG.sync.write(image));
}

const FLAT: NodeInit = {
  id: '9:1',
  type: 'FRAME',
  name: 'Sale poster',
  x: -300,
  y: 40,
  width: 600,
  height: 400,
  children: [
    { id: '9:2', type: 'RECTANGLE', name: 'Flat', width: 600, height: 400, image: png(60, 40, 1) },
    { id: '9:3', type: 'RECTANGLE', name: 'Logo', x: 30, y: 30, width: 120, height: 90 },
    { id: '9:4', type: 'ELLIPSE', name: 'Badge', x: 420, y: 40, width: 140, height: 140 },
    { id: '9:5', type: 'RECTANGLE', name: 'Headline', x: 60, y: 280, width: 480, height: 80 },
  ],
};

const JOB = { jobId: '0a1b2c3d-0000-4000-8000-000000000077', model: 'tiny', seed: 31, prompt: 'a sale poster' };

test('a decomposition is inserted as a result frame: image, background and one named layer per mark at its place, one undo step, the source untouched', async () => {
  const doc = new FakeDocument([[FLAT]]);
  const source = doc.node('9:1');
  const before = nodeState(source);
  const read = flatLayout(readFrameOf(doc), 1024);
  assert.ok(read?.ok);
  const l = read.value.layout;
  // 600 x 400 at 1024: 1024 x 688 (682.7 snapped), the marks' boxes on it.
  assert.deepEqual([l.layout.width, l.layout.height], [1024, 688]);
  const flat = await exportFlatImage(doc, doc.node(read.value.imageNodeId), l.layout.width, l.layout.height);
  assert.deepEqual([PNG.sync.read(Buffer.from(flat)).width, PNG.sync.read(Buffer.from(flat)).height], [1024, 688]);

  const layers = l.regions.map((r, index) => ({ index, hash: doc.createImage(png(r.box[2] - r.box[0], r.box[3] - r.box[1], index)).hash }));
  const commits = doc.undoCommits;
  const frame = insertLayers(doc, doc.currentPage, { sourceName: source.name, position: { x: 360, y: 40 }, layout: l, job: JOB, layers });
  assert.equal(doc.undoCommits - commits, 2, 'commitUndo before and after: one undo step');
  assert.deepEqual(frame.children.map((c) => c.name), ['Background', 'Logo', 'Badge', 'Headline', 'Merged preview']);
  // Each mark's layer sits on the mark's snapped box, in frame units (600 / 1024 per pixel across, 400 / 688 down).
  const badge = frame.children[2];
  const [x1, y1, x2, y2] = l.regions[3].box;
  assert.deepEqual([x1, y1, x2, y2], [704, 64, 960, 320]);
  assert.deepEqual([badge.x, badge.y, badge.width, badge.height].map((v) => Math.round(v * 100) / 100), [412.5, 37.21, 150, 148.84]);
  assert.deepEqual(nodeState(source), before, 'the flat picture and its marks are untouched');
  assert.equal(parseResultFrameData(frame.getPluginData(RESULT_FRAME_KEY))?.jobId, JOB.jobId);

  // A result like any other: move the badge, and Regenerate redraws it alone (the merged preview always).
  doc.endUserAction();
  badge.x -= 200;
  const data = parseResultFrameData(frame.getPluginData(RESULT_FRAME_KEY))!;
  const plan = regeneratePlan(readResultFrame(frame, data, new Set()), 'selected');
  assert.ok(plan.ok, plan.ok ? '' : plan.message);
  assert.deepEqual(redrawnLayers(plan.value.layers), [3]);
  assert.deepEqual(plan.value.keep, [{ from: 1, to: 1 }, { from: 2, to: 2 }, { from: 4, to: 4 }], 'background, logo and headline kept from the decomposition');
});

function readFrameOf(doc: FakeDocument) {
  return readFrame(doc.node('9:1'));
}
