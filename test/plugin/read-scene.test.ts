import { test } from 'node:test';
import assert from 'node:assert/strict';
import { captionDraft } from '../../plugin/caption.ts';
import { frameLayout, type FrameLayout } from '../../plugin/layout.ts';
import { MAX_CAPTION_TEXTS, drawnBounds, readFrame } from '../../plugin/read-scene.ts';
import { FakeDocument, type NodeInit } from './fake-figma.ts';

function layoutOf(frame: NodeInit, resolution = 512): FrameLayout {
  const doc = new FakeDocument([[frame]]);
  const result = frameLayout(readFrame(doc.node(frame.id!)), resolution);
  if (!result.ok) throw new Error(result.message);
  return result.value;
}

const frame = (children: NodeInit[], extra: Partial<NodeInit> = {}): NodeInit => ({
  id: '1:1',
  type: 'FRAME',
  name: 'Card',
  width: 512,
  height: 512,
  children,
  ...extra,
});

test('a shadowed text: its box covers the shadow (bounding box united with render bounds)', () => {
  const l = layoutOf(
    frame([
      { id: '1:2', type: 'TEXT', name: 'Title', characters: 'Hi', x: 100, y: 100, width: 100, height: 32, renderMargin: { left: 4, top: 4, right: 36, bottom: 40 } },
    ]),
  );
  // Without the render bounds the box would be [96, 96, 208, 144] at best; the shadow reaches 236 x 172.
  assert.deepEqual(l.regions[2].box, [96, 96, 240, 176]);
});

test('render bounds are null for an invisible node, and then the bounding box alone counts', () => {
  const doc = new FakeDocument([[frame([{ id: '1:2', type: 'RECTANGLE', x: 10, y: 10, width: 20, height: 20, visible: false, renderMargin: { left: 9, top: 9, right: 9, bottom: 9 } }])]]);
  const node = doc.node('1:2');
  assert.equal(node.absoluteRenderBounds, null);
  assert.deepEqual(drawnBounds(node), { x: 10, y: 10, width: 20, height: 20 });
});

test('a mask group is one region clipped to its mask; a mask among the children clips the siblings above it', () => {
  const l = layoutOf(
    frame([
      {
        id: '1:2',
        type: 'GROUP',
        name: 'Avatar',
        children: [
          { id: '1:3', type: 'ELLIPSE', name: 'Mask', x: 32, y: 32, width: 64, height: 64, isMask: true },
          { id: '1:4', type: 'RECTANGLE', name: 'Photo', x: 0, y: 0, width: 256, height: 256 },
        ],
      },
      { id: '1:5', type: 'RECTANGLE', name: 'Backdrop', x: 0, y: 0, width: 512, height: 512 },
      { id: '1:6', type: 'RECTANGLE', name: 'Window', x: 256, y: 256, width: 128, height: 128, isMask: true },
      { id: '1:7', type: 'RECTANGLE', name: 'Sky', x: 0, y: 0, width: 512, height: 512 },
      { id: '1:8', type: 'RECTANGLE', name: 'Far', x: 0, y: 0, width: 64, height: 64 },
    ]),
  );
  assert.deepEqual(
    l.regions.slice(2).map((r) => [r.name, r.box]),
    [
      ['Avatar', [32, 32, 96, 96]],
      ['Backdrop', [0, 0, 512, 512]],
      ['Sky', [256, 256, 384, 384]],
    ],
  );
  assert.deepEqual(
    l.skipped.map((s) => [s.name, s.reason]),
    [
      ['Window', 'mask'],
      ['Far', 'masked-out'],
    ],
  );
});

test('slices draw nothing and are not layers; a frame of only slices and masks says so', () => {
  const l = layoutOf(frame([{ id: '1:2', type: 'SLICE', name: 'Export', width: 512, height: 512 }, { id: '1:3', type: 'RECTANGLE', name: 'Shape' }]));
  assert.deepEqual(l.regions.slice(2).map((r) => r.name), ['Shape']);
  assert.deepEqual(l.skipped, [{ nodeId: '1:2', name: 'Export', reason: 'slice' }]);
  const doc = new FakeDocument([[frame([{ id: '1:2', type: 'SLICE', name: 'Export' }])]]);
  const only = frameLayout(readFrame(doc.node('1:1')), 512);
  assert.equal(only.ok, false);
  assert.match(only.ok ? '' : only.message, /only slices and masks, which draw nothing/);
});

test('a rotated frame is refused with what to do; a rotated child is boxed by its rotated bounds', () => {
  const doc = new FakeDocument([[frame([{ type: 'RECTANGLE' }], { rotation: 15 })]]);
  const rotated = frameLayout(readFrame(doc.node('1:1')), 512);
  assert.equal(rotated.ok, false);
  assert.match(rotated.ok ? '' : rotated.message, /is rotated \(15°\)\. Set its rotation to 0/);
  const l = layoutOf(frame([{ id: '1:2', type: 'RECTANGLE', name: 'Tilted', x: 100, y: 200, width: 200, height: 100, rotation: 30 }]));
  // Rotated 30° counter-clockwise about its top-left corner: x 100..323.2, y 100..286.6.
  assert.deepEqual(l.regions[2].box, [96, 96, 336, 288]);
});

test('only the frame and its direct children are read for bounds; text comes from one search, shown text only', () => {
  const deep: NodeInit = { id: '1:2', type: 'GROUP', name: 'Deep', children: [] };
  let level = deep;
  for (let i = 0; i < 12; i++) {
    const next: NodeInit = { type: 'GROUP', name: `L${i}`, children: [{ type: 'TEXT', characters: `text ${i}`, x: 10, y: 10, width: 10, height: 10 }] };
    level.children!.push(next);
    level = next;
  }
  const doc = new FakeDocument([
    [frame([deep, { type: 'FRAME', name: 'Hidden panel', visible: false, children: [{ type: 'TEXT', characters: 'secret' }] }])],
  ]);
  let reads = 0;
  for (const node of doc.nodes.values()) {
    if (node.parent?.id === '1:1' || node.id === '1:1') continue;
    const proto = Object.getPrototypeOf(node) as object;
    const getter = Object.getOwnPropertyDescriptor(proto, 'absoluteBoundingBox')!.get!;
    Object.defineProperty(node, 'absoluteBoundingBox', {
      get() {
        reads++;
        return getter.call(this);
      },
    });
  }
  const plain = readFrame(doc.node('1:1'));
  assert.equal(plain.children?.length, 2);
  assert.ok(plain.children!.every((c) => c.children === undefined), 'grandchildren are not part of the tree');
  assert.equal(reads, 0, 'no bounds read below the direct children');
  assert.equal(plain.texts?.length, 12);
  assert.ok(!plain.texts!.includes('secret'), 'text in a hidden layer does not make the draft');
  assert.match(captionDraft(plain), /"text 0".*"text 11"/);
});

test('the caption reads at most MAX_CAPTION_TEXTS texts', () => {
  const texts = Array.from({ length: MAX_CAPTION_TEXTS + 40 }, (_, i): NodeInit => ({ type: 'TEXT', characters: `t${i}`, x: 1, y: 1, width: 1, height: 1 }));
  const doc = new FakeDocument([[frame([{ type: 'GROUP', name: 'Texts', children: texts }])]]);
  assert.equal(readFrame(doc.node('1:1')).texts?.length, MAX_CAPTION_TEXTS);
});
