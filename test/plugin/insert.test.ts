import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { frameLayout, type FrameLayout } from '../../plugin/layout.ts';
import { exactImageFill, frameBox, insertLayers, insertSummary, resultFrameName, type JobInfo } from '../../plugin/insert.ts';
import { resolveTarget } from '../../plugin/insert-target.ts';
import { readFrame } from '../../plugin/read-scene.ts';
import {
  LAYER_NODE_KEY,
  RESULT_FRAME_KEY,
  parseLayerNodeData,
  parseResultFrameData,
  type LayerHash,
} from '../../plugin/result-data.ts';
import { FakeDocument, FakeNode, nodeState, type NodeInit } from './fake-figma.ts';

function png(width: number, height: number, seed: number): Uint8Array {
  const image = new PNG({ width, height });
  for (let i = 0; i < image.data.length; i++) image.data[i] = (i * 31 + seed * 17) & 0xff;
  return new Uint8Array(PNG.sync.write(image));
}

const JOB: JobInfo = { jobId: '0a1b2c3d-0000-4000-8000-000000000009', model: 'tiny', seed: 1234, prompt: 'a poster' };

const POSTER: NodeInit = {
  id: '5:1',
  type: 'FRAME',
  name: 'Poster',
  x: 100,
  y: 200,
  width: 800,
  height: 300,
  children: [
    { id: '5:2', type: 'RECTANGLE', name: 'Sky', x: 0, y: 0, width: 800, height: 150 },
    { id: '5:3', type: 'ELLIPSE', name: 'Sun', x: 517, y: 33, width: 90.5, height: 90.5 },
    { id: '5:4', type: 'TEXT', name: 'Title', x: 50, y: 220, width: 100, height: 20, characters: 'Hello' },
  ],
};

function layoutOf(doc: FakeDocument, id: string, resolution: number): FrameLayout {
  const result = frameLayout(readFrame(doc.node(id)), resolution);
  if (!result.ok) throw new Error(result.message);
  return result.value;
}

/** Streams every layer's PNG through createImage, as the main thread does, and returns the hashes. */
function stream(doc: FakeDocument, l: FrameLayout): { hashes: LayerHash[]; pngs: Uint8Array[] } {
  const pngs = l.regions.map((r, index) => png(r.box[2] - r.box[0], r.box[3] - r.box[1], index));
  return { hashes: pngs.map((bytes, index) => ({ index, hash: doc.createImage(bytes).hash })), pngs };
}

for (const resolution of [512, 1024]) {
  test(`insert at ${resolution}: layers at their boxes, exact image fills, plugin data, one undo step`, () => {
    const doc = new FakeDocument([[POSTER]]);
    const l = layoutOf(doc, '5:1', resolution);
    const { hashes, pngs } = stream(doc, l);
    const page = doc.currentPage;
    const frame = insertLayers(doc, page, { sourceName: 'Poster', position: { x: 940, y: 200 }, layout: l, job: JOB, layers: hashes });

    assert.equal(frame.parent, page);
    assert.equal(frame.name, 'Poster · ART · seed 1234');
    assert.deepEqual([frame.x, frame.y, frame.width, frame.height], [940, 200, 800, 300]);
    assert.deepEqual(frame.fills, []);
    assert.deepEqual(frame.children.map((c) => c.name), ['Background', 'Sky', 'Sun', 'Title', 'Merged preview']);
    const [bg, ...rest] = frame.children;
    assert.equal(bg.locked, true);
    assert.equal(rest[rest.length - 1].visible, false);

    const frameData = parseResultFrameData(frame.getPluginData(RESULT_FRAME_KEY));
    assert.deepEqual(frameData, {
      v: 1,
      jobId: JOB.jobId,
      sourceNodeId: '5:1',
      model: 'tiny',
      seed: 1234,
      prompt: 'a poster',
      canvas: { width: l.layout.width, height: l.layout.height },
      scaleX: l.scaleX,
      scaleY: l.scaleY,
      layerCount: 5,
      lineage: [],
    });
    const regionIndex = [1, 2, 3, 4, 0];
    frame.children.forEach((child, k) => {
      const index = regionIndex[k];
      const box = frameBox(l, index);
      assert.ok(Math.abs(child.x - box[0]) < 1e-9 && Math.abs(child.y - box[1]) < 1e-9, child.name);
      assert.ok(Math.abs(child.width - (box[2] - box[0])) < 1e-9 && Math.abs(child.height - (box[3] - box[1])) < 1e-9, child.name);
      // The image is stretched onto exactly the node: CROP with the identity transform, never FILL.
      assert.deepEqual(child.fills, [exactImageFill(hashes[index].hash)]);
      assert.deepEqual(doc.getImageByHash(hashes[index].hash)?.bytes, pngs[index]);
      assert.deepEqual(parseLayerNodeData(child.getPluginData(LAYER_NODE_KEY)), {
        v: 1,
        jobId: JOB.jobId,
        index,
        sourceNodeId: l.regions[index].nodeId,
        box,
        model: 'tiny',
        seed: 1234,
      });
    });
    assert.deepEqual(parseLayerNodeData(rest[1].getPluginData(LAYER_NODE_KEY))?.sourceNodeId, '5:3', 'Sun knows its source node');
    assert.deepEqual([rest[0].x, rest[0].y, rest[0].width, rest[0].height], [0, 0, 800, 150]);
    // commitUndo before the first node and after the last: one undo step.
    assert.equal(doc.undoCommits, 2);
    assert.equal(doc.log.at(-1), 'commitUndo');
    assert.ok(doc.log.indexOf('commitUndo') < doc.log.findIndex((e) => e.startsWith('createFrame')));
  });
}

test('exact placement: a 375x812 frame at 512 has x and y scales that differ, and no layer is cropped', () => {
  const doc = new FakeDocument([[{ id: '6:1', type: 'FRAME', name: 'Phone', width: 375, height: 812, children: [{ type: 'RECTANGLE', width: 375, height: 812 }] }]]);
  const l = layoutOf(doc, '6:1', 512);
  assert.ok(Math.abs(l.scaleX - l.scaleY) > 0.005, `${l.scaleX} vs ${l.scaleY}`);
  const frame = insertLayers(doc, doc.currentPage, { sourceName: 'Phone', position: { x: 0, y: 0 }, layout: l, job: JOB, layers: stream(doc, l).hashes });
  for (const child of frame.children) {
    const paint = (child.fills as readonly Paint[])[0] as ImagePaint;
    assert.equal(paint.scaleMode, 'CROP');
    assert.deepEqual(paint.imageTransform, [
      [1, 0, 0],
      [0, 1, 0],
    ]);
  }
});

test('a lost image leaves nothing behind and names the layer', () => {
  const doc = new FakeDocument([[POSTER]]);
  const l = layoutOf(doc, '5:1', 512);
  const { hashes } = stream(doc, l);
  hashes[3] = { index: 3, hash: 'no-such-image' };
  const before = doc.currentPage.children.length;
  assert.throws(
    () => insertLayers(doc, doc.currentPage, { sourceName: 'Poster', position: { x: 0, y: 0 }, layout: l, job: JOB, layers: hashes }),
    /image of layer “Sun”/,
  );
  assert.equal(doc.currentPage.children.length, before);
  assert.equal(doc.undoCommits, 0);
});

test('createImage refuses what Figma refuses: not an image, over 4096 pixels', () => {
  const doc = new FakeDocument();
  assert.throws(() => doc.createImage(new Uint8Array([1, 2, 3, 4])), /unsupported/);
  assert.throws(() => doc.createImage(png(4097, 1, 0)), /too large/);
  assert.ok(doc.createImage(png(4096, 1, 0)).hash);
});

test('a failure halfway removes every node created so far', () => {
  const doc = new FakeDocument([[POSTER]]);
  const l = layoutOf(doc, '5:1', 512);
  const { hashes } = stream(doc, l);
  const created: FakeNode[] = [];
  const scene = {
    createFrame: () => {
      const f = doc.createFrame();
      f.failOnAppend = 3;
      created.push(f);
      return f;
    },
    createRectangle: () => {
      const r = doc.createRectangle();
      created.push(r);
      return r;
    },
    getImageByHash: (h: string) => doc.getImageByHash(h),
    commitUndo: () => doc.commitUndo(),
  };
  assert.throws(
    () => insertLayers(scene, doc.currentPage, { sourceName: 'Poster', position: { x: 0, y: 0 }, layout: l, job: JOB, layers: hashes }),
    /appendChild failed/,
  );
  assert.deepEqual(doc.currentPage.children.map((c) => c.id), ['5:1'], 'only the source is left on the page');
  assert.ok(created.length >= 4 && created.every((n) => n.removed), 'all created nodes removed');
});

test('a missing layer is refused before anything is created', () => {
  const doc = new FakeDocument([[POSTER]]);
  const l = layoutOf(doc, '5:1', 512);
  const hashes = stream(doc, l).hashes.filter((x) => x.index !== 2);
  doc.log.length = 0;
  assert.throws(
    () => insertLayers(doc, doc.currentPage, { sourceName: 'Poster', position: { x: 0, y: 0 }, layout: l, job: JOB, layers: hashes }),
    /missing 2/,
  );
  assert.deepEqual(doc.log, []);
});


test('the source frame is not touched: the insert finds it, reads it, places beside it, and leaves it as it was', async () => {
  const doc = new FakeDocument([[POSTER]]);
  const source = doc.node('5:1');
  const before = JSON.stringify(nodeState(source));
  const l = layoutOf(doc, '5:1', 512);
  const { hashes } = stream(doc, l);
  const target = await resolveTarget(doc, l, 'beside');
  assert.equal(target.besideSource, true);
  const frame = insertLayers(doc, target.container, { sourceName: target.sourceName, position: target.position, layout: l, job: JOB, layers: hashes });
  assert.equal(JSON.stringify(nodeState(source)), before);
  assert.deepEqual(doc.currentPage.children.map((c) => c.id), ['5:1', frame.id]);
});

test('names and the notify summary stay under Figma’s 100 characters', () => {
  assert.equal(resultFrameName('Card', 41), 'Card · ART · seed 41');
  assert.equal(resultFrameName('Card · ART · seed 41', 7), 'Card · ART · seed 7', 'a result of a result');
  assert.equal(resultFrameName('Card · ART · seed 41 copy', 7), 'Card · ART · seed 41 copy · ART · seed 7');
  const short = insertSummary('Card · ART · seed 41', 3, false);
  assert.equal(short, 'Inserted “Card · ART · seed 41”: 3 layers');
  const long = insertSummary(`${'Very long frame name '.repeat(10)} · ART · seed 4294967295`, 50, true);
  assert.ok(long.length < 100, `${long.length}`);
  assert.match(long, /…”: 50 layers \(tiny test model: noise\)$/);
});
