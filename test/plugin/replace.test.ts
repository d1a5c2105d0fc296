/**
 * plugin/replace.ts on the fake Figma: a result inserted by insertLayers, edited as a designer
 * would, read back by readResultFrame and planned by regeneratePlan (the path main.ts takes), then
 * replaced in place. Checks what stays, what changes, the undo step, and refusals that change nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { BACKGROUND_LAYER, MERGED_LAYER } from '../../domain/layout.ts';
import { exactImageFill, frameBox, insertLayers, type JobInfo } from '../../plugin/insert.ts';
import { frameLayout } from '../../plugin/layout.ts';
import { readFrame, readResultFrame } from '../../plugin/read-scene.ts';
import { regeneratePlan, type RegenerateMode, type RegeneratePlan } from '../../plugin/regenerate.ts';
import { replaceLayers, replaceSummary, withImage, type ReplaceInput } from '../../plugin/replace.ts';
import { LAYER_NODE_KEY, MAX_LINEAGE, RESULT_FRAME_KEY, parseLayerNodeData, parseResultFrameData } from '../../plugin/result-data.ts';
import { FakeDocument, FakeNode, nodeState, type NodeInit } from './fake-figma.ts';

const BASE: JobInfo = { jobId: '0a1b2c3d-0000-4000-8000-000000000001', model: 'tiny', seed: 11, prompt: 'a poster' };
const NEXT: JobInfo = { jobId: '0a1b2c3d-0000-4000-8000-000000000002', model: 'tiny', seed: 22, prompt: 'a sunnier poster' };

// 375x812 at 512 px: the two axes scale differently (256/375 vs 512/812), as on a phone frame.
const PHONE: NodeInit = {
  id: '7:1',
  type: 'FRAME',
  name: 'Phone',
  x: 0,
  y: 0,
  width: 375,
  height: 812,
  children: [
    { id: '7:2', type: 'RECTANGLE', name: 'Photo', x: 30, y: 70, width: 300, height: 333 },
    { id: '7:3', type: 'TEXT', name: 'Title', x: 61, y: 460, width: 200, height: 40, characters: 'Sale' },
    { id: '7:4', type: 'RECTANGLE', name: 'Button', x: 80, y: 640, width: 180, height: 48 },
  ],
};

function png(width: number, height: number, seed: number): Uint8Array {
  const image = new PNG({ width, height });
  for (let i = 0; i < image.data.length; i++) image.data[i] = (i * 29 + seed * 53) & 0xff;
  return new Uint8Array(PNG.sync.write(image));
}

/** A document with the phone frame and its inserted result (job BASE). */
function inserted() {
  const doc = new FakeDocument([[PHONE]]);
  const read = frameLayout(readFrame(doc.node('7:1')), 512);
  if (!read.ok) throw new Error(read.message);
  const layout = read.value;
  const layers = layout.regions.map((r, index) => ({ index, hash: doc.createImage(png(r.box[2] - r.box[0], r.box[3] - r.box[1], index)).hash }));
  const frame = insertLayers(doc, doc.currentPage, { sourceName: 'Phone', position: { x: 500, y: 0 }, layout, job: BASE, layers });
  const byName = (name: string) => frame.children.find((c) => c.name === name)!;
  return { doc, frame, byName };
}

/** What main.ts does on a selection: read the frame, plan the edit. */
function plan(frame: FakeNode, selected: string[], mode: RegenerateMode = 'selected'): RegeneratePlan {
  const data = parseResultFrameData(frame.getPluginData(RESULT_FRAME_KEY))!;
  const result = regeneratePlan(readResultFrame(frame, data, new Set(selected)), mode);
  if (!result.ok) throw new Error(result.message);
  return result.value;
}

/** The new job's images for every regenerated layer, made with createImage as the stream does. */
function input(doc: FakeDocument, p: RegeneratePlan, job = NEXT): ReplaceInput {
  const images = p.layers.flatMap((l, index) => {
    if (l.kept) return [];
    const [x1, y1, x2, y2] = p.layout.regions[index].box;
    return [{ index, hash: doc.createImage(png(x2 - x1, y2 - y1, 100 + index)).hash }];
  });
  return { baseJobId: BASE.jobId, layout: p.layout, layers: p.layers, images, job };
}


const hashOf = (n: FakeNode) => ((n.fills as readonly Paint[]).find((p) => p.type === 'IMAGE') as ImagePaint).imageHash!;

test('one selected layer: its image is swapped on the same node, everything the designer set is kept, the rest untouched', () => {
  const { doc, frame, byName } = inserted();
  const photo = byName('Photo');
  // The designer's own touches on the node that will be regenerated.
  photo.name = 'Hero photo';
  photo.fills = [{ ...exactImageFill(hashOf(photo)), opacity: 0.5, blendMode: 'MULTIPLY' }, { type: 'SOLID', color: { r: 1, g: 0, b: 0 }, opacity: 0.2 }];
  photo.locked = true;
  doc.endUserAction();
  const others = frame.children.filter((c) => c !== photo && c.name !== 'Merged preview').map((c) => JSON.stringify(nodeState(c)));

  const sources = new Map(frame.children.map((c) => [c.id, parseLayerNodeData(c.getPluginData(LAYER_NODE_KEY))!.sourceNodeId]));
  const p = plan(frame, [photo.id]);
  const job = input(doc, p);
  const summary = replaceLayers(doc, frame, job);

  assert.deepEqual(summary, { replaced: 1, added: 0, kept: 3 });
  assert.equal(photo.name, 'Hero photo');
  assert.equal(photo.locked, true);
  const index = p.layers.findIndex((l) => l.nodeId === photo.id);
  const paints = photo.fills as readonly Paint[];
  assert.deepEqual(paints[0], { ...exactImageFill(job.images.find((i) => i.index === index)!.hash), opacity: 0.5, blendMode: 'MULTIPLY' });
  assert.deepEqual(paints[1], { type: 'SOLID', color: { r: 1, g: 0, b: 0 }, opacity: 0.2 }, 'the designer’s own paint stays');
  assert.deepEqual(
    frame.children.filter((c) => c !== photo && c.name !== 'Merged preview').map((c) => {
      const s = nodeState(c) as { data: unknown };
      return JSON.stringify({ ...s, data: undefined });
    }),
    others.map((o) => JSON.stringify({ ...(JSON.parse(o) as object), data: undefined })),
    'kept nodes: same geometry, same images, same everything but their plugin data',
  );
  // Every node now belongs to the new job, at its index in the new layout.
  frame.children.forEach((c) => {
    const data = parseLayerNodeData(c.getPluginData(LAYER_NODE_KEY));
    const i = p.layers.findIndex((l) => l.nodeId === c.id);
    assert.deepEqual([data?.jobId, data?.index, data?.seed], [NEXT.jobId, i, NEXT.seed], c.name);
    assert.deepEqual(data?.box, frameBox(p.layout, i));
    assert.equal(data?.sourceNodeId, sources.get(c.id), `${c.name} still names the source frame's node`);
  });
  const frameData = parseResultFrameData(frame.getPluginData(RESULT_FRAME_KEY))!;
  assert.deepEqual([frameData.jobId, frameData.seed, frameData.prompt, frameData.lineage], [NEXT.jobId, NEXT.seed, NEXT.prompt, [BASE.jobId]]);
  assert.equal(frame.name, 'Phone · ART · seed 22', 'the name insert gave it follows the seed');
  assert.notEqual(hashOf(byName('Merged preview')), undefined);
  assert.equal(replaceSummary(frame.name, summary, true), 'Updated “Phone · ART · seed 22”: 1 layer new, 3 kept (tiny test model: noise)');
  assert.equal(replaceSummary('F', { replaced: 2, added: 1, kept: 0 }, false), 'Updated “F”: 3 layers new, 0 kept');
});

test('one undo step: Cmd+Z after the replace gives back the frame exactly as it was', () => {
  const { doc, frame, byName } = inserted();
  const button = byName('Button');
  button.x += 40; // a move: regenerated at its new box
  doc.endUserAction();
  const before = JSON.stringify(nodeState(frame));
  const commits = doc.undoCommits;
  replaceLayers(doc, frame, input(doc, plan(frame, [byName('Title').id])));
  assert.notEqual(JSON.stringify(nodeState(frame)), before);
  assert.equal(doc.undoCommits, commits + 2, 'committed before (the designer’s move stays its own step) and after');
  doc.triggerUndo();
  assert.equal(JSON.stringify(nodeState(frame)), before);
  assert.equal(button.x, byName('Button').x, 'the move is still there: it was its own step');
});

test('a moved layer lands at its snapped new box; a layer the designer drew gets a new node above its placeholder', () => {
  const { doc, frame, byName } = inserted();
  const title = byName('Title');
  title.x += 60;
  title.y -= 30.5;
  const drawn = new FakeNode(doc, { type: 'ELLIPSE', name: 'Sticker', x: 250, y: 120, width: 80, height: 80 });
  frame.insertChild(frame.children.indexOf(title) + 1, drawn);
  doc.endUserAction();

  const p = plan(frame, []);
  assert.equal(p.regenerated, 2, 'the moved title and the new sticker');
  const summary = replaceLayers(doc, frame, input(doc, p));
  assert.deepEqual(summary, { replaced: 1, added: 1, kept: 3 });

  const ti = p.layers.findIndex((l) => l.nodeId === title.id);
  const [x1, y1, x2, y2] = frameBox(p.layout, ti);
  assert.deepEqual([title.x, title.y, title.width, title.height], [x1, y1, x2 - x1, y2 - y1]);
  const names = frame.children.map((c) => c.name);
  assert.deepEqual(names, ['Background', 'Photo', 'Title', 'Sticker', 'Sticker', 'Button', 'Merged preview']);
  const [placeholder, made] = frame.children.filter((c) => c.name === 'Sticker');
  assert.equal(placeholder, drawn);
  assert.equal(placeholder.visible, false, 'the placeholder is hidden, not deleted');
  assert.equal(made.type, 'RECTANGLE');
  assert.equal(parseLayerNodeData(made.getPluginData(LAYER_NODE_KEY))?.sourceNodeId, drawn.id);

  // Read back for the next edit: the new node is a layer of the new job like any other.
  const again = plan(frame, []);
  assert.equal(again.regenerated, 0, 'nothing changed since: every layer can be kept');
  assert.equal(again.layout.regions.length, p.layout.regions.length);
});

test('a deleted merged preview and background are made again: the preview hidden on top, the background locked at the bottom', () => {
  const { doc, frame, byName } = inserted();
  byName('Merged preview').remove();
  byName('Background').remove();
  doc.endUserAction();
  const p = plan(frame, [byName('Photo').id]);
  assert.deepEqual([p.layers[MERGED_LAYER].nodeId, p.layers[BACKGROUND_LAYER].nodeId, p.layers[BACKGROUND_LAYER].kept], [null, null, false]);
  const summary = replaceLayers(doc, frame, input(doc, p));
  assert.deepEqual(summary, { replaced: 1, added: 1, kept: 2 }, 'the background counts as added, the preview does not');
  const top = frame.children.at(-1)!;
  assert.deepEqual([top.name, top.visible, top.locked], ['Merged preview', false, false]);
  const bottom = frame.children[0];
  assert.deepEqual([bottom.name, bottom.visible, bottom.locked], ['Background', true, true]);
  assert.equal(parseLayerNodeData(bottom.getPluginData(LAYER_NODE_KEY))?.index, BACKGROUND_LAYER);
  assert.deepEqual(doc.currentPage.children.map((c) => c.id), ['7:1', frame.id], 'nothing left on the page');
});

test('a new layer whose shape was deleted meanwhile lands just above the layer below it', () => {
  const { doc, frame, byName } = inserted();
  const drawn = new FakeNode(doc, { type: 'ELLIPSE', name: 'Sticker', x: 250, y: 120, width: 80, height: 80 });
  frame.insertChild(frame.children.indexOf(byName('Photo')) + 1, drawn);
  doc.endUserAction();
  const p = plan(frame, []);
  drawn.remove();
  replaceLayers(doc, frame, input(doc, p));
  assert.deepEqual(frame.children.map((c) => c.name), ['Background', 'Photo', 'Sticker', 'Title', 'Button', 'Merged preview']);
});

test('the lineage keeps the last MAX_LINEAGE versions', () => {
  const { doc, frame, byName } = inserted();
  const data = parseResultFrameData(frame.getPluginData(RESULT_FRAME_KEY))!;
  const long = Array.from({ length: MAX_LINEAGE }, (_, i) => `old-${i}`);
  frame.setPluginData(RESULT_FRAME_KEY, JSON.stringify({ ...data, lineage: long }));
  replaceLayers(doc, frame, input(doc, plan(frame, [byName('Photo').id])));
  const lineage = parseResultFrameData(frame.getPluginData(RESULT_FRAME_KEY))!.lineage;
  assert.deepEqual(lineage, [...long.slice(1), BASE.jobId]);
});

test('refusals change nothing: another version shown, a node gone since the plan, an image Figma lost, a failing insert', () => {
  const cases: Array<[string, (doc: FakeDocument, frame: FakeNode, byName: (n: string) => FakeNode) => ReplaceInput, RegExp]> = [
    [
      'the frame shows another job',
      (doc, frame, byName) => ({ ...input(doc, plan(frame, [byName('Photo').id])), baseJobId: NEXT.jobId }),
      /no longer shows the version this job was made from/,
    ],
    [
      'the selected node was deleted after Regenerate',
      (doc, frame, byName) => {
        const job = input(doc, plan(frame, [byName('Photo').id]));
        byName('Photo').remove();
        return job;
      },
      /“Photo” was deleted or changed since Regenerate was clicked/,
    ],
    [
      'an image hash Figma does not have',
      (doc, frame, byName) => {
        const job = input(doc, plan(frame, [byName('Photo').id]));
        return { ...job, images: job.images.map((i) => ({ ...i, hash: 'gone' })) };
      },
      /Figma no longer has the image of layer/,
    ],
    [
      'a regenerated layer without its image',
      (doc, frame, byName) => {
        const job = input(doc, plan(frame, [byName('Photo').id]));
        return { ...job, images: job.images.slice(1) };
      },
      /no image for layer/,
    ],
    [
      'inserting the new node fails half way, after a moved layer was placed',
      (doc, frame, byName) => {
        byName('Photo').x += 45;
        frame.insertChild(frame.children.length - 1, new FakeNode(doc, { type: 'ELLIPSE', name: 'New', x: 10, y: 10, width: 50, height: 50 }));
        const job = input(doc, plan(frame, [byName('Button').id]));
        frame.failOnAppend = 1;
        return job;
      },
      /appendChild failed \(test\)/,
    ],
    [
      'a plan that does not match its layout',
      (doc, frame, byName) => {
        const job = input(doc, plan(frame, [byName('Photo').id]));
        return { ...job, layers: job.layers.slice(1) };
      },
      /does not match its layout/,
    ],
    [
      'a kept layer without a node',
      (doc, frame, byName) => {
        const job = input(doc, plan(frame, [byName('Photo').id]));
        return { ...job, layers: job.layers.map((l, i) => (i === BACKGROUND_LAYER ? { ...l, nodeId: null } : l)) };
      },
      /“Background” is kept but has no node/,
    ],
    [
      'a target that is not an image rectangle',
      (doc, frame, byName) => {
        const shape = new FakeNode(doc, { type: 'ELLIPSE', name: 'Odd', x: 0, y: 0, width: 20, height: 20 });
        frame.insertChild(0, shape);
        const job = input(doc, plan(frame, [byName('Photo').id]));
        const photo = job.layers.findIndex((l) => l.nodeId === byName('Photo').id);
        return { ...job, layers: job.layers.map((l, i) => (i === photo ? { ...l, nodeId: shape.id } : l)) };
      },
      /“Photo” was deleted or changed since Regenerate was clicked/,
    ],
  ];
  for (const [name, make, message] of cases) {
    const { doc, frame, byName } = inserted();
    const job = make(doc, frame, byName);
    doc.endUserAction();
    const before = JSON.stringify(nodeState(doc.currentPage));
    const steps = doc.undoSteps.length;
    assert.throws(() => replaceLayers(doc, frame, job), message, name);
    assert.equal(JSON.stringify(nodeState(doc.currentPage)), before, `${name}: the page and the frame are as they were`);
    assert.ok(doc.undoSteps.length <= steps + 1, name);
  }
});

test('Variations through replace: the background node keeps its image, every other layer gets a new one', () => {
  const { doc, frame, byName } = inserted();
  const background = hashOf(byName('Background'));
  const before = new Map(frame.children.map((c) => [c.id, hashOf(c)]));
  const summary = replaceLayers(doc, frame, input(doc, plan(frame, [], 'variations')));
  assert.deepEqual(summary, { replaced: 3, added: 0, kept: 1 });
  assert.equal(hashOf(byName('Background')), background);
  for (const c of frame.children) if (c.name !== 'Background') assert.notEqual(hashOf(c), before.get(c.id), c.name);
});

test('withImage: image paints swapped keeping their look, other paints kept, one added when there is none', () => {
  const solid: SolidPaint = { type: 'SOLID', color: { r: 0, g: 0, b: 1 } };
  assert.deepEqual(withImage([solid], 'h'), [solid, exactImageFill('h')]);
  assert.deepEqual(withImage([], 'h'), [exactImageFill('h')]);
  assert.deepEqual(withImage(Symbol('mixed') as unknown as RectangleNode['fills'], 'h'), [exactImageFill('h')], 'figma.mixed');
  const plain: ImagePaint = { type: 'IMAGE', imageHash: 'old', scaleMode: 'FILL' };
  assert.deepEqual(withImage([plain], 'h'), [exactImageFill('h')], 'no look to keep: nothing added');
  const faded: ImagePaint = { type: 'IMAGE', imageHash: 'old', scaleMode: 'FILL', opacity: 0.3, visible: false, filters: { exposure: 0.5 } };
  assert.deepEqual(withImage([faded, solid], 'h'), [{ ...exactImageFill('h'), opacity: 0.3, visible: false, filters: { exposure: 0.5 } }, solid]);
});
