import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkKeep } from '../../domain/keep.ts';
import { GRID } from '../../domain/layout.ts';
import { frameBox } from '../../plugin/insert.ts';
import { frameLayout, type FrameLayout } from '../../plugin/layout.ts';
import { redrawnLayers, regeneratePlan, type EditedChild, type EditedResultFrame, type RegeneratePlan } from '../../plugin/regenerate.ts';
import { RESULT_DATA_VERSION, type ResultFrameData } from '../../plugin/result-data.ts';
import { frame, rect, text } from './trees.ts';

const MODEL = 'tiny-test';
const JOB = '5f0c2a8e-1111-4222-8333-944455556666';
// A phone frame at 512 px: 375x812 -> 256x512, so the two axes scale differently (0.6827 / 0.6305).
const SOURCE = frame('Phone', { x: 40, y: 60, width: 375, height: 812 }, [
  rect('Backdrop', 40, 60, 375, 812),
  rect('Photo', 70.5, 130.25, 300, 333.3),
  text('Title', 'Summer sale', 101, 520),
  rect('Button', 120, 700, 180, 48),
]);
// The result frame sits elsewhere on the page: positions are read relative to it.
const AT = { x: 911.5, y: -233.25 };

function ok<T>(r: { ok: true; value: T } | { ok: false; message: string }): T {
  if (!r.ok) assert.fail(`expected a value, got: ${r.message}`);
  return r.value;
}

const base: FrameLayout = ok(frameLayout(SOURCE, 512));

/** The result frame as insertLayers leaves it: background, the child layers, merged on top. */
function resultFrame(): EditedResultFrame {
  const data: ResultFrameData = {
    v: RESULT_DATA_VERSION,
    jobId: JOB,
    sourceNodeId: SOURCE.id,
    model: MODEL,
    seed: 7,
    prompt: 'a summer poster',
    canvas: { width: base.layout.width, height: base.layout.height },
    scaleX: base.scaleX,
    scaleY: base.scaleY,
    layerCount: base.regions.length,
    lineage: [],
  };
  const node = (index: number): EditedChild => {
    const box = frameBox(base, index);
    return {
      ...rect(base.regions[index].name, AT.x + box[0], AT.y + box[1], box[2] - box[0], box[3] - box[1]),
      visible: index !== 0,
      layer: { v: RESULT_DATA_VERSION, jobId: JOB, index, sourceNodeId: base.regions[index].nodeId, box, model: MODEL, seed: 7 },
      selected: false,
    };
  };
  const children = [1, 2, 3, 4, 5, 0].map(node);
  return { id: '99:1', name: 'Phone · ART · seed 7', bounds: { x: AT.x, y: AT.y, width: 375, height: 812 }, data, children };
}

const named = (f: EditedResultFrame, name: string) => f.children.find((c) => c.name === name)!;

/** The bridge's own check accepts the plan against the base (same code the pipeline runs). */
function assertBridgeAccepts(plan: RegeneratePlan) {
  checkKeep(plan.layout.layout, { model: MODEL, layout: base.layout }, plan.keep, MODEL);
}

test('unchanged frame, one layer selected: that layer regenerated in place, every other kept at its base box', () => {
  const f = resultFrame();
  named(f, 'Photo').selected = true;
  const plan = ok(regeneratePlan(f, 'selected'));
  assert.deepEqual(plan.layout.layout, base.layout, 'an unchanged frame reads back to the base layout exactly');
  assert.deepEqual(plan.keep, [
    { from: 1, to: 1 },
    { from: 2, to: 2 },
    { from: 4, to: 4 },
    { from: 5, to: 5 },
  ]);
  assert.equal(plan.regenerated, 1);
  assert.deepEqual(redrawnLayers(plan.layers), [3], 'what "Regenerate 1 layer" counts: the merged preview is not a layer to the designer');
  assert.deepEqual(plan.layers[3], { nodeId: named(f, 'Photo').id, baseIndex: 3, kept: false });
  assert.deepEqual(plan.layers[0], { nodeId: named(f, 'Merged preview').id, baseIndex: 0, kept: false }, 'merged is never kept');
  assertBridgeAccepts(plan);
});

test('a moved and a resized layer are regenerated at their new boxes even when not selected', () => {
  const f = resultFrame();
  const title = named(f, 'Title');
  title.bounds = { ...title.bounds!, x: title.bounds!.x + 41.3 };
  const button = named(f, 'Button');
  button.bounds = { ...button.bounds!, height: button.bounds!.height + 60 };
  const plan = ok(regeneratePlan(f, 'selected'));
  assert.deepEqual(plan.keep, [
    { from: 1, to: 1 },
    { from: 2, to: 2 },
    { from: 3, to: 3 },
  ]);
  assert.equal(plan.regenerated, 2);
  const moved = plan.layout.layout.boxes[4];
  const x = (title.bounds.x - AT.x) * base.scaleX;
  assert.ok(moved[0] <= x && x < moved[0] + GRID, `title box ${moved} starts at the moved node (${x} px)`);
  assert.notDeepEqual(moved, base.layout.boxes[4]);
  const grown = plan.layout.layout.boxes[5];
  const bottom = (button.bounds.y + button.bounds.height - AT.y) * base.scaleY;
  assert.ok(grown[3] >= bottom && grown[3] < bottom + GRID, `button box ${grown} ends at the resized node (${bottom} px)`);
  assertBridgeAccepts(plan);
});

test('a layer shrunk within its token cell keeps its snapped box but is still regenerated: it was resized', () => {
  const f = resultFrame();
  const photo = named(f, 'Photo');
  // Result nodes sit on cell edges, so growing or moving changes the box; shrinking may not.
  photo.bounds = { ...photo.bounds!, width: photo.bounds!.width - 1.1 };
  const plan = ok(regeneratePlan(f, 'selected'));
  assert.deepEqual(plan.layout.layout.boxes[3], base.layout.boxes[3], 'same snapped box');
  assert.ok(!plan.keep.some((k) => k.from === 3), 'the shrunk layer is not kept');
  assert.equal(plan.regenerated, 1);
  assertBridgeAccepts(plan);
});

test('float noise on an unchanged layer is kept at its base box, not snapped to the next cell', () => {
  const f = resultFrame();
  const photo = named(f, 'Photo');
  // 4e-4 units is 1.6e-5 cells at this scale: past layout's snap epsilon, within "unmoved".
  photo.bounds = { ...photo.bounds!, width: photo.bounds!.width + 4e-4 };
  const plan = ok(regeneratePlan(f, 'selected'));
  assert.deepEqual(plan.keep.find((k) => k.from === 3), { from: 3, to: 3 });
  assert.deepEqual(plan.layout.layout.boxes[3], base.layout.boxes[3]);
  assert.deepEqual(plan.layout.regions[3].box, base.layout.boxes[3]);
  assert.equal(plan.regenerated, 0);
  assertBridgeAccepts(plan);
});

test("reordered, deleted and added layers: the design's current z-order, kept layers mapped from base to new index", () => {
  const f = resultFrame();
  // Button moved below Photo, Title deleted, a designer's sticker added on top (no art.layer).
  const [bg, backdrop, photo, , button, merged] = f.children;
  const sticker: EditedChild = { ...rect('Sticker', AT.x + 200, AT.y + 40, 90, 90), layer: null, selected: false };
  f.children = [bg, backdrop, button, photo, sticker, merged];
  const plan = ok(regeneratePlan(f, 'selected'));
  assert.deepEqual(plan.layout.regions.map((r) => r.name), ['Merged preview', 'Background', 'Backdrop', 'Button', 'Photo', 'Sticker']);
  assert.deepEqual(plan.keep, [
    { from: 1, to: 1 },
    { from: 2, to: 2 },
    { from: 5, to: 3 },
    { from: 3, to: 4 },
  ]);
  assert.deepEqual(plan.layers[5], { nodeId: null, baseIndex: null, kept: false }, 'an added node gets a new layer node');
  assert.equal(plan.regenerated, 1);
  assertBridgeAccepts(plan);
});

test('variations keep only the background, whatever is selected', () => {
  const f = resultFrame();
  named(f, 'Background').selected = true;
  named(f, 'Photo').selected = true;
  const plan = ok(regeneratePlan(f, 'variations'));
  assert.deepEqual(plan.keep, [{ from: 1, to: 1 }]);
  assert.equal(plan.regenerated, 4);
  assert.deepEqual(plan.layers.slice(2).map((l) => l.nodeId), [2, 3, 4, 5].map((i) => f.children[i - 1].id));
  assertBridgeAccepts(plan);
});

test('a selected background is regenerated; nothing selected and nothing changed regenerates nothing', () => {
  const f = resultFrame();
  const idle = ok(regeneratePlan(f, 'selected'));
  assert.equal(idle.regenerated, 0);
  assert.equal(idle.keep.length, 5);
  named(f, 'Background').selected = true;
  const plan = ok(regeneratePlan(f, 'selected'));
  assert.ok(!plan.keep.some((k) => k.from === 1), 'background not kept');
  assert.equal(plan.keep.length, 4);
  assertBridgeAccepts(plan);
});

test("layer nodes of another job, hidden or duplicated ones: never kept twice, never kept from the wrong job", () => {
  const f = resultFrame();
  const photo = named(f, 'Photo');
  named(f, 'Title').layer = { ...named(f, 'Title').layer!, jobId: 'another-job' };
  named(f, 'Button').visible = false;
  const copy: EditedChild = { ...photo, id: '77:7', name: 'Photo copy' };
  f.children.splice(f.children.length - 1, 0, copy);
  const plan = ok(regeneratePlan(f, 'selected'));
  assert.deepEqual(plan.layout.regions.map((r) => r.name), ['Merged preview', 'Background', 'Backdrop', 'Photo', 'Title', 'Photo copy']);
  assert.deepEqual(plan.keep, [
    { from: 1, to: 1 },
    { from: 2, to: 2 },
    { from: 3, to: 3 },
  ]);
  assert.deepEqual(plan.layers[4], { nodeId: null, baseIndex: null, kept: false }, "another job's layer is a new layer here");
  assert.deepEqual(plan.layers[5], { nodeId: '77:7', baseIndex: 3, kept: false }, 'the copy is regenerated in place');
  assertBridgeAccepts(plan);
});

test('a resized result frame is refused with what to do next', () => {
  const f = resultFrame();
  f.bounds = { ...f.bounds!, width: 500 };
  const r = regeneratePlan(f, 'selected');
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.message, /resized.*Generate anew/);
});

test('a frame resized in height only is refused too; a rotated one gets the layout’s own message', () => {
  // A landscape job's frame made taller keeps its width's scale: only the canvas height differs.
  const taller = resultFrame();
  taller.data = { ...taller.data, canvas: { width: 512, height: 256 } }; // made from an 812x375 frame
  taller.bounds = { ...taller.bounds!, width: 812, height: 475 };
  const r = regeneratePlan(taller, 'selected');
  assert.match(r.ok ? '' : r.message, /resized/);
  const turned = resultFrame();
  turned.rotation = 90;
  const t = regeneratePlan(turned, 'variations');
  assert.match(t.ok ? '' : t.message, /is rotated \(90°\)/);
});

test('a merged preview the designer made visible is still layer 0, not a child layer of the new job', () => {
  const f = resultFrame();
  named(f, 'Merged preview').visible = true;
  const plan = ok(regeneratePlan(f, 'selected'));
  assert.equal(plan.layout.regions.length, base.regions.length);
  assert.deepEqual(plan.layers.map((l) => l.baseIndex), [0, 1, 2, 3, 4, 5]);
  assert.equal(plan.regenerated, 0);
});
