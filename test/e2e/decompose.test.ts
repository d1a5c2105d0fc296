/**
 * Decompose end to end in real Chromium (issue 21): a frame holding a flat image and three marks
 * -> Decompose -> a result frame of five layers at the marks' places; then one layer moved and
 * regenerated: only the redrawn images change. A real bridge running the tiny model (its layers
 * are noise: the checks are on sizes, places, bytes and plugin data).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { RESULT_FRAME_KEY, parseResultFrameData } from '../../plugin/result-data.ts';
import { SETTINGS_KEY } from '../../plugin/settings.ts';
import { TOKEN } from '../support/bridge.ts';
import { E2E_URL, e2eSetup } from './harness/e2e-setup.ts';
import type { Dump, DumpedNode } from './harness/fake-figma-env.ts';
import type { NodeInit } from '../plugin/fake-figma.ts';

const TIMEOUT = 90_000;
const e2e = e2eSetup();

function picture(): Uint8Array {
  const image = new PNG({ width: 60, height: 40 });
  for (let i = 0; i < image.data.length; i += 4) image.data.set([(i * 7) & 0xff, (i * 3) & 0xff, 128, 255], i);
  return new Uint8Array(PNG.sync.write(image));
}

const FLAT: NodeInit = {
  id: '3:1',
  type: 'FRAME',
  name: 'Sale poster',
  x: 0,
  y: 0,
  width: 600,
  height: 400,
  children: [
    { id: '3:2', type: 'RECTANGLE', name: 'Flat', x: 0, y: 0, width: 600, height: 400, image: picture() },
    { id: '3:3', type: 'RECTANGLE', name: 'Logo', x: 30, y: 30, width: 120, height: 90 },
    { id: '3:4', type: 'ELLIPSE', name: 'Badge', x: 420, y: 40, width: 140, height: 140 },
    { id: '3:5', type: 'RECTANGLE', name: 'Headline', x: 60, y: 280, width: 480, height: 80 },
  ],
};

function results(dump: Dump): DumpedNode[] {
  return dump.pages[0].filter((n) => n.pluginData[RESULT_FRAME_KEY]);
}

test('decompose a flat image with three marks, then move a layer and regenerate it', { timeout: 300_000 }, async () => {
  const s = await e2e.browser.open([FLAT], { [SETTINGS_KEY]: { bridgeUrl: E2E_URL, token: TOKEN, steps: 2, seedMode: 'fixed', seed: 3 } });
  try {
    await s.ui.getByTestId('connection-status').filter({ hasText: /^paired$/ }).waitFor({ timeout: TIMEOUT });
    await s.select([FLAT.id!]);
    const before = await s.dump();
    const source = before.pages[0].find((n) => n.id === FLAT.id)!;
    await s.ui.getByRole('button', { name: 'Decompose into 3 layers' }).click();
    await s.ui.locator('[data-testid=job-result][data-version="1"][data-status=inserted]').waitFor({ timeout: TIMEOUT });

    const v1 = await s.dump();
    const [frame] = results(v1);
    assert.ok(frame, 'a result frame');
    assert.deepEqual(frame.children.map((c) => c.name), ['Background', 'Logo', 'Badge', 'Headline', 'Merged preview']);
    assert.deepEqual(v1.pages[0].find((n) => n.id === FLAT.id), source, 'the flat image and its marks untouched');
    // At 512: a 512 x 336 canvas, 0.853 x 0.84 px per unit; each layer on its mark, snapped to 16 px.
    const cellX = 16 / (512 / 600);
    const cellY = 16 / (336 / 400);
    for (const mark of FLAT.children!.slice(1)) {
      const layer = frame.children.find((c) => c.name === mark.name)!;
      assert.ok(Math.abs(layer.x - mark.x!) <= cellX && Math.abs(layer.y - mark.y!) <= cellY, `${mark.name} at its mark: ${layer.x},${layer.y}`);
      assert.ok(layer.width >= mark.width! && layer.width <= mark.width! + 2 * cellX, `${mark.name}'s width ${layer.width}`);
    }
    const job1 = parseResultFrameData(frame.pluginData[RESULT_FRAME_KEY]!)!.jobId;
    // The bridge got the image alone, at the canvas size, and keeps it with the job.
    const uploaded = PNG.sync.read(await readFile(join(e2e.bridge.outputs, job1, 'image.png')));
    assert.deepEqual([uploaded.width, uploaded.height], [512, 336]);

    const imagesOf = (dump: Dump) => new Map(results(dump)[0].children.map((c) => [c.name, dump.images[c.imageHashes[0]]]));
    const v1Images = imagesOf(v1);
    const badge = frame.children.find((c) => c.name === 'Badge')!;
    await s.harness.edit(badge.id, { x: badge.x - 200 });
    await s.select([badge.id]);
    await s.ui.getByRole('button', { name: 'Regenerate 1 layer' }).click();
    await s.ui.locator('[data-testid=job-result][data-version="2"][data-status=inserted]').waitFor({ timeout: TIMEOUT });
    const v2Images = imagesOf(await s.dump());
    for (const [name, bytes] of v2Images) {
      if (name === 'Badge' || name === 'Merged preview') assert.notEqual(bytes, v1Images.get(name), `${name} redrawn`);
      else assert.equal(bytes, v1Images.get(name), `${name} kept byte for byte`);
    }
    assert.deepEqual(s.errors, []);
  } finally {
    await s.page.close();
  }
});
