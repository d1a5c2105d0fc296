import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { frameLayout, type FrameLayout } from '../../plugin/layout.ts';
import { FRAME_GAP, insertLayers, insertSummary, resultFrameName } from '../../plugin/insert.ts';
import type { LayerPng } from '../../plugin/messages.ts';
import { FakeFrame, FakeParent, FakeRect, FakeScene } from './fake-figma.ts';
import { frame, rect, text } from './trees.ts';

function png(width: number, height: number, seed: number): Uint8Array {
  const image = new PNG({ width, height });
  for (let i = 0; i < image.data.length; i++) image.data[i] = (i * 31 + seed * 17) & 0xff;
  return new Uint8Array(PNG.sync.write(image));
}

function layersFor(l: FrameLayout): LayerPng[] {
  return l.regions.map((r, index) => {
    const [x1, y1, x2, y2] = r.box;
    return { index, png: png(x2 - x1, y2 - y1, index) };
  });
}

const source = { name: 'Poster', x: 100, y: 200, width: 800, height: 300 };
const children = [rect('Sky', 100, 200, 800, 150), rect('Sun', 617, 233, 90.5, 90.5), text('Title', 'Hello', 150, 420)];
const layout = (resolution: number): FrameLayout => {
  const result = frameLayout(frame('Poster', { x: 100, y: 200, width: 800, height: 300 }, children), resolution);
  if (!result.ok) throw new Error(result.message);
  return result.value;
};

for (const resolution of [512, 1024]) {
  test(`insert at ${resolution}: new frame beside the source, layers at their boxes in order, one undo step`, () => {
    const scene = new FakeScene();
    const parent = new FakeParent();
    const l = layout(resolution);
    const layers = layersFor(l);
    const result = insertLayers(scene, parent, { source, layout: l, seed: 1234, layers });

    assert.deepEqual(parent.children, [result]);
    assert.equal(result.name, 'Poster · ART · seed 1234');
    assert.deepEqual([result.x, result.y, result.width, result.height], [source.x + source.width + FRAME_GAP, 200, 800, 300]);
    assert.deepEqual(result.fills, []);

    const names = result.children.map((c) => c.name);
    assert.deepEqual(names, ['Background', 'Sky', 'Sun', 'Title', 'Merged preview']);
    const [bg, ...rest] = result.children;
    const merged = rest[rest.length - 1];
    assert.equal(bg.locked, true);
    assert.equal(merged.visible, false);
    assert.ok(rest.slice(0, -1).every((c) => c.visible && !c.locked));

    // Every rectangle sits at its box scaled back to frame units and shows that layer's PNG.
    const regionIndex = [1, 2, 3, 4, 0];
    result.children.forEach((child, k) => {
      const [x1, y1, x2, y2] = l.regions[regionIndex[k]].box;
      assert.ok(Math.abs(child.x - x1 / l.scaleX) < 1e-9 && Math.abs(child.y - y1 / l.scaleY) < 1e-9, child.name);
      assert.ok(Math.abs(child.width - (x2 - x1) / l.scaleX) < 1e-9, child.name);
      assert.ok(Math.abs(child.height - (y2 - y1) / l.scaleY) < 1e-9, child.name);
      const fills = child.fills as readonly Paint[];
      assert.equal(fills.length, 1);
      const paint = fills[0];
      assert.equal(paint.type, 'IMAGE');
      const bytes = scene.images.get((paint as ImagePaint).imageHash!);
      assert.ok(bytes, `${child.name} image`);
      const decoded = PNG.sync.read(Buffer.from(bytes));
      assert.deepEqual([decoded.width, decoded.height], [x2 - x1, y2 - y1]);
      assert.deepEqual(bytes, layers[regionIndex[k]].png);
    });
    // The Sky fills the top half of the frame exactly (its box is grid-aligned at both sizes).
    assert.deepEqual([rest[0].x, rest[0].y, rest[0].width, rest[0].height], [0, 0, 800, 150]);

    // All images decoded before any node exists; edits bracketed by commitUndo.
    const firstNode = scene.events.indexOf('createFrame');
    assert.ok(scene.events.slice(0, firstNode).every((e) => e === 'createImage' || e === 'commitUndo'));
    assert.equal(scene.events.filter((e) => e === 'createImage').length, l.regions.length);
    assert.equal(scene.events.at(-1), 'commitUndo');
    assert.equal(scene.events.filter((e) => e === 'commitUndo').length, 2);
    assert.ok(scene.events.indexOf('commitUndo') < firstNode);
  });
}

test('an unreadable image leaves nothing behind and names the layer', () => {
  const scene = new FakeScene();
  const parent = new FakeParent();
  const l = layout(512);
  const layers = layersFor(l);
  layers[3] = { index: 3, png: new Uint8Array([1, 2, 3, 4]) };
  assert.throws(() => insertLayers(scene, parent, { source, layout: l, seed: 1, layers }), /layer “Sun”/);
  assert.deepEqual(parent.children, []);
  assert.deepEqual(scene.created, []);
});

test('an oversized image fails the same way', () => {
  const scene = new FakeScene();
  const l = layout(512);
  const layers = layersFor(l);
  layers[0] = { index: 0, png: png(4097, 1, 0) };
  assert.throws(() => insertLayers(scene, new FakeParent(), { source, layout: l, seed: 1, layers }), /Merged preview.*too large/);
  assert.deepEqual(scene.created, []);
});

test('a failure halfway removes every node created so far', () => {
  const scene = new FakeScene();
  const parent = new FakeParent();
  const doomed = new FakeFrame();
  doomed.failOnAppend = 3;
  scene.nextFrame = doomed;
  const l = layout(512);
  assert.throws(() => insertLayers(scene, parent, { source, layout: l, seed: 1, layers: layersFor(l) }), /appendChild failed/);
  assert.deepEqual(parent.children, []);
  assert.ok(scene.created.length >= 4);
  assert.ok(scene.created.every((n) => n.removed), 'all created nodes removed');
});

test('a missing layer is refused before anything is created', () => {
  const scene = new FakeScene();
  const l = layout(512);
  const layers = layersFor(l).filter((x) => x.index !== 2);
  assert.throws(() => insertLayers(scene, new FakeParent(), { source, layout: l, seed: 1, layers }), /missing 2/);
  assert.deepEqual(scene.events, []);
});

test('the source frame is not touched', () => {
  const scene = new FakeScene();
  const parent = new FakeParent();
  const original = new FakeFrame();
  original.name = 'Poster';
  const kid = new FakeRect();
  original.appendChild(kid);
  parent.appendChild(original);
  const before = JSON.stringify({ ...original, parent: null, children: original.children.map((c) => ({ ...c, parent: null })) });
  const l = layout(512);
  insertLayers(scene, parent, { source, layout: l, seed: 7, layers: layersFor(l) });
  assert.equal(parent.children.length, 2);
  assert.equal(parent.children[0], original);
  assert.equal(JSON.stringify({ ...original, parent: null, children: original.children.map((c) => ({ ...c, parent: null })) }), before);
});

test('names and the notify summary stay under Figma’s 100 characters', () => {
  assert.equal(resultFrameName('Card', 41), 'Card · ART · seed 41');
  const short = insertSummary('Card · ART · seed 41', 3, false);
  assert.equal(short, 'Inserted “Card · ART · seed 41”: 3 layers');
  const long = insertSummary(`${'Very long frame name '.repeat(10)} · ART · seed 4294967295`, 50, true);
  assert.ok(long.length < 100, `${long.length}`);
  assert.match(long, /…”: 50 layers \(tiny test model: noise\)$/);
});
