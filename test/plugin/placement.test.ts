import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { insertLayers, type JobInfo } from '../../plugin/insert.ts';
import { resolveTarget } from '../../plugin/insert-target.ts';
import { frameLayout, type FrameLayout } from '../../plugin/layout.ts';
import { FRAME_GAP, centredAt, contains, freeSpot } from '../../plugin/placement.ts';
import { readFrame } from '../../plugin/read-scene.ts';
import type { Rect } from '../../plugin/scene.ts';
import { FakeDocument, type FakeNode, type NodeInit } from './fake-figma.ts';

const JOB: JobInfo = { jobId: '0a1b2c3d-0000-4000-8000-00000000000a', model: 'tiny', seed: 3, prompt: 'p' };

function overlap(a: Rect, b: Rect): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

test('free spot: right of the source when free, past whatever is in the way, else below when that is nearer', () => {
  const src = { x: 0, y: 0, width: 100, height: 100 };
  const size = { width: 100, height: 100 };
  assert.deepEqual(freeSpot(src, size, [src]), { x: 100 + FRAME_GAP, y: 0 });
  // A previous result right beside it: the next one goes below (a shorter move than past it).
  const first = { x: 140, y: 0, width: 100, height: 100 };
  assert.deepEqual(freeSpot(src, size, [src, first]), { x: 0, y: 140 });
  // A row of screens closer than their width, and a column below: slide right past the row.
  const row = [0, 1, 2, 3].map((i) => ({ x: i * 110, y: 0, width: 100, height: 100 }));
  const column = [1, 2, 3, 4, 5, 6].map((i) => ({ x: 0, y: i * 110, width: 100, height: 100 }));
  const spot = freeSpot(row[0], size, [...row, ...column]);
  assert.deepEqual(spot, { x: 3 * 110 + 100 + FRAME_GAP, y: 0 });
  for (const o of [...row, ...column]) assert.ok(!overlap({ ...spot, ...size }, o));
});

test('centred and contains', () => {
  assert.deepEqual(centredAt({ x: 500, y: 300 }, { width: 200, height: 100 }), { x: 400, y: 250 });
  assert.ok(contains({ x: 0, y: 0, width: 10, height: 10 }, { x: 1, y: 1, width: 9, height: 9 }));
  assert.ok(!contains({ x: 0, y: 0, width: 10, height: 10 }, { x: 1, y: 1, width: 10, height: 9 }));
});

function png(width: number, height: number): Uint8Array {
  return new Uint8Array(PNG.sync.write(new PNG({ width, height })));
}

function card(id: string, x = 0, y = 0, extra: Partial<NodeInit> = {}): NodeInit {
  return {
    id,
    type: 'FRAME',
    name: `Card ${id}`,
    x,
    y,
    width: 200,
    height: 120,
    children: [{ type: 'RECTANGLE', name: 'Photo', x: 10, y: 10, width: 100, height: 60 }],
    ...extra,
  };
}

/** Resolves the target and inserts, as plugin/main.ts does; returns the new frame. */
async function generateAndInsert(doc: FakeDocument, id: string, place: 'beside' | 'page' = 'beside'): Promise<FakeNode> {
  const result = frameLayout(readFrame(doc.node(id)), 512);
  if (!result.ok) throw new Error(result.message);
  const l: FrameLayout = result.value;
  const layers = l.regions.map((r, index) => ({ index, hash: doc.createImage(png(r.box[2] - r.box[0], r.box[3] - r.box[1])).hash }));
  const target = await resolveTarget(doc, l, place);
  return insertLayers(doc, target.container, { sourceName: target.sourceName, position: target.position, layout: l, job: JOB, layers });
}

test('a frame inside an auto-layout frame: the result goes on the page beside the list, the list is not re-flowed', async () => {
  const list: NodeInit = {
    id: '1:1',
    type: 'FRAME',
    name: 'List',
    x: 50,
    y: 60,
    width: 200,
    height: 260,
    layoutMode: 'VERTICAL',
    itemSpacing: 20,
    children: [card('1:2', 0, 0), card('1:3', 0, 140)],
  };
  const doc = new FakeDocument([[list]]);
  const listNode = doc.node('1:1');
  const before = listNode.children.map((c) => [c.id, c.x, c.y]);
  // As in Figma, an auto-layout child's x is the layout's: setting it does nothing.
  doc.node('1:3').x = 99;
  assert.equal(doc.node('1:3').x, 140 - 140);
  const frame = await generateAndInsert(doc, '1:3');
  assert.equal(frame.parent, doc.currentPage);
  assert.deepEqual(listNode.children.map((c) => [c.id, c.x, c.y]), before, 'the designer’s list is untouched');
  assert.deepEqual([listNode.width, listNode.height], [200, 260]);
  // Beside the top-level list (the card's right side is inside it), level with the card.
  assert.deepEqual([frame.x, frame.y], [50 + 200 + FRAME_GAP, 60 + 140]);
});

test('the fake refuses what Figma refuses, and re-flows auto layout on append', () => {
  const doc = new FakeDocument([
    [
      { id: '2:1', type: 'INSTANCE', name: 'Button', width: 100, height: 40, children: [{ id: '2:2', type: 'FRAME', name: 'Inner' }] },
      { id: '2:3', type: 'COMPONENT_SET', name: 'Variants', children: [{ id: '2:4', type: 'COMPONENT', name: 'State=Default' }] },
      { id: '2:5', type: 'FRAME', name: 'Row', layoutMode: 'HORIZONTAL', itemSpacing: 10, width: 50, height: 50 },
    ],
  ]);
  assert.throws(() => doc.node('2:1').appendChild(doc.createFrame()), /New parent is an instance or is inside of an instance/);
  assert.throws(() => doc.node('2:2').appendChild(doc.createFrame()), /inside of an instance/);
  assert.throws(() => doc.node('2:3').appendChild(doc.createFrame()), /COMPONENT_SET node cannot have children of type other than COMPONENT/);
  const a = doc.createFrame();
  a.resize(30, 20);
  a.x = 500;
  const b = doc.createFrame();
  b.resize(40, 10);
  doc.node('2:5').appendChild(a);
  doc.node('2:5').appendChild(b);
  assert.deepEqual([a.x, b.x, doc.node('2:5').width], [0, 40, 80], 'moved and resized by the layout');
});

test('a frame inside an instance, and a component variant inside a component set: the result goes on the page', async () => {
  const doc = new FakeDocument([
    [
      { id: '3:1', type: 'INSTANCE', name: 'Screen instance', x: 0, y: 0, width: 400, height: 300, children: [card('3:2', 20, 20)] },
      { id: '3:3', type: 'COMPONENT_SET', name: 'Cards', x: 0, y: 500, width: 460, height: 160, children: [{ ...card('3:4', 20, 20), type: 'COMPONENT' }] },
    ],
  ]);
  const inInstance = await generateAndInsert(doc, '3:2');
  const variant = await generateAndInsert(doc, '3:4');
  assert.equal(inInstance.parent, doc.currentPage);
  assert.equal(variant.parent, doc.currentPage);
  // Below the instance (a shorter move than past its right side), and right below the variant.
  assert.deepEqual([inInstance.x, inInstance.y], [20, 300 + FRAME_GAP]);
  assert.deepEqual([variant.x, variant.y], [20, 520 + 120 + FRAME_GAP]);
  assert.equal(doc.node('3:3').children.length, 1, 'the component set still holds only its variant');
});

test('a frame inside a section: the result goes into the section, positioned in its coordinates', async () => {
  const doc = new FakeDocument([
    [{ id: '4:1', type: 'SECTION', name: 'Flows', x: 1000, y: 2000, width: 1200, height: 800, children: [card('4:2', 100, 100)] }],
  ]);
  const frame = await generateAndInsert(doc, '4:2');
  assert.equal(frame.parent, doc.node('4:1'));
  assert.deepEqual([frame.x, frame.y], [100 + 200 + FRAME_GAP, 100]);
  assert.deepEqual(frame.absoluteBoundingBox, { x: 1340, y: 2100, width: 200, height: 120 });
});

test('a source on a page that is not loaded: the page is loaded first (dynamic-page), the result lands there', async () => {
  const doc = new FakeDocument([[], [card('5:1', 0, 0)]]);
  const other = doc.pages[1];
  assert.equal(other.loaded, false);
  assert.throws(() => other.appendChild(doc.createFrame()), /loadAsync/);
  const frame = await generateAndInsert(doc, '5:1');
  assert.equal(other.loaded, true);
  assert.equal(frame.parent, other);
});

test('two generations of one frame, and a row of screens closer than their width: nothing is covered', async () => {
  const doc = new FakeDocument([[card('6:1', 0, 0), card('6:2', 220, 0), card('6:3', 440, 0)]]);
  const results = [await generateAndInsert(doc, '6:1'), await generateAndInsert(doc, '6:1'), await generateAndInsert(doc, '6:2')];
  const boxes = doc.currentPage.children.map((c) => c.absoluteBoundingBox!);
  for (let i = 0; i < boxes.length; i++)
    for (let j = i + 1; j < boxes.length; j++) assert.ok(!overlap(boxes[i], boxes[j]), `${i} and ${j} overlap`);
  assert.deepEqual([results[0].x, results[0].y], [0, 120 + FRAME_GAP], 'below: the right side is taken by the next screen');
});

test('the source was deleted: the result is centred in view, or on request on the current page', async () => {
  const doc = new FakeDocument([[card('7:1', 0, 0)]]);
  const result = frameLayout(readFrame(doc.node('7:1')), 512);
  if (!result.ok) throw new Error(result.message);
  doc.node('7:1').remove();
  doc.viewport.center = { x: 5000, y: 3000 };
  const target = await resolveTarget(doc, result.value, 'beside');
  assert.equal(target.besideSource, false);
  assert.equal(target.container, doc.currentPage);
  assert.deepEqual(target.position, { x: 5000 - 100, y: 3000 - 60 });
  assert.equal(target.sourceName, 'Card 7:1');
});
