import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { exportFlatImage, flatLayout } from '../../plugin/flat-image.ts';
import { readFrame } from '../../plugin/read-scene.ts';
import { FakeDocument, nodeState, type NodeInit } from './fake-figma.ts';

/** A 40 x 20 picture: left half red, right half blue, the bottom row green. */
function picture(): Uint8Array {
  const image = new PNG({ width: 40, height: 20 });
  for (let y = 0; y < 20; y++)
    for (let x = 0; x < 40; x++) {
      const i = (y * 40 + x) * 4;
      const rgb = y === 19 ? [0, 255, 0] : x < 20 ? [255, 0, 0] : [0, 0, 255];
      image.data.set([...rgb, 255], i);
    }
  return new Uint8Array(PNG.sync.write(image));
}

function poster(overrides: Partial<NodeInit> = {}): NodeInit {
  return {
    id: '7:1',
    type: 'FRAME',
    name: 'Summer sale',
    x: 100,
    y: 200,
    width: 500,
    height: 300,
    children: [
      { id: '7:2', type: 'RECTANGLE', name: 'Photo', x: 0, y: 0, width: 500, height: 300, image: picture() },
      { id: '7:3', type: 'RECTANGLE', name: 'Logo', x: 50, y: 40, width: 100, height: 100 },
      { id: '7:4', type: 'ELLIPSE', name: 'Sun', x: 300, y: 10, width: 60, height: 60 },
      { id: '7:5', type: 'RECTANGLE', name: 'Headline', x: 200, y: 220, width: 280, height: 50 },
    ],
    ...overrides,
  };
}

test('a frame with an image at the bottom and marks over it reads as a flat picture: canvas snapped like generation, one box per mark', () => {
  const doc = new FakeDocument([[poster()]]);
  const read = flatLayout(readFrame(doc.node('7:1')), 512);
  assert.ok(read?.ok, JSON.stringify(read));
  const { layout, imageNodeId, draft } = read.value;
  assert.equal(imageNodeId, '7:2');
  // 500 x 300 at 512: 512 x 304 (307.2 snapped to the 16-pixel grid), 1.024 and 1.0133 px per unit.
  assert.deepEqual([layout.layout.width, layout.layout.height], [512, 304]);
  assert.deepEqual(layout.layout.boxes, [
    [0, 0, 512, 304],
    [0, 0, 512, 304],
    [48, 32, 160, 144], // Logo 51.2..153.6 x 40.5..141.9, snapped outwards
    [304, 0, 384, 80], // Sun 307.2..368.6 x 10.1..70.9
    [192, 208, 496, 288], // Headline 204.8..491.5 x 222.9..273.6
  ]);
  assert.deepEqual(layout.regions.slice(2).map((r) => [r.nodeId, r.name]), [['7:3', 'Logo'], ['7:4', 'Sun'], ['7:5', 'Headline']]);
  assert.equal(draft, 'A Summer sale design with logo, sun and headline.');
});

test('frames that are not flat pictures stay generation sources; an image that misses the frame is refused with what to do', () => {
  const noMarks = poster({ children: [poster().children![0]] });
  assert.equal(flatLayout(readFrame(new FakeDocument([[noMarks]]).node('7:1')), 512), null);
  const noImage = poster({ children: poster().children!.slice(1) });
  assert.equal(flatLayout(readFrame(new FakeDocument([[noImage]]).node('7:1')), 512), null);
  const hiddenImage = poster({ children: [{ ...poster().children![0], visible: false }, ...poster().children!.slice(1)] });
  assert.equal(flatLayout(readFrame(new FakeDocument([[hiddenImage]]).node('7:1')), 512), null);
  const small = poster({ children: [{ ...poster().children![0], width: 400 }, ...poster().children!.slice(1)] });
  const refused = flatLayout(readFrame(new FakeDocument([[small]]).node('7:1')), 512);
  assert.ok(refused && !refused.ok);
  assert.match(refused.message, /“Photo” must fill the frame exactly.*Resize/);
});

test('the image alone is exported at the canvas size, the marks not drawn, the document as it was', async () => {
  const doc = new FakeDocument([[poster()]]);
  const before = nodeState(doc.currentPage);
  const png = await exportFlatImage(doc, doc.node('7:2'), 512, 304);
  const out = PNG.sync.read(Buffer.from(png));
  assert.deepEqual([out.width, out.height], [512, 304]);
  const at = (x: number, y: number) => [...out.data.subarray((y * 512 + x) * 4, (y * 512 + x) * 4 + 4)];
  // FILL covers 512 x 304 with the 40 x 20 picture scaled 15.2 (608 x 304) and centred: the
  // colour edge (source x 20) lands at 304 - 48 = 256, the green row at the bottom 15 px.
  assert.deepEqual(at(250, 100), [255, 0, 0, 255]);
  assert.deepEqual(at(262, 100), [0, 0, 255, 255]);
  assert.deepEqual(at(100, 300), [0, 255, 0, 255]);
  assert.deepEqual(at(100, 280), [255, 0, 0, 255]); // the Logo mark would be blank here if drawn
  assert.deepEqual(nodeState(doc.currentPage), before);
});

test('the fake exportAsync follows Figma: constraints scale proportionally, a removed node or an unloaded page refuses', async () => {
  const doc = new FakeDocument([[poster()], []]);
  const photo = doc.node('7:2');
  const size = async (p: Promise<Uint8Array>) => {
    const out = PNG.sync.read(Buffer.from(await p));
    return [out.width, out.height];
  };
  assert.deepEqual(await size(photo.exportAsync({ format: 'PNG', constraint: { type: 'WIDTH', value: 250 } })), [250, 150]);
  assert.deepEqual(await size(photo.exportAsync({ format: 'PNG', constraint: { type: 'HEIGHT', value: 60 } })), [100, 60]);
  assert.deepEqual(await size(photo.exportAsync()), [500, 300]);
  await assert.rejects(doc.node('7:1').exportAsync(), /children is not modelled/);
  await assert.rejects(photo.exportAsync({ format: 'PNG', constraint: { type: 'SCALE', value: 0 } }), /positive/);
  const page = doc.pages[1];
  await assert.rejects(page.exportAsync(), /loadAsync/);
  photo.remove();
  await assert.rejects(photo.exportAsync(), /removed/);
});
