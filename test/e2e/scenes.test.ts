/**
 * End to end in real Chromium, the scenes real files have: a frame inside an auto-layout list,
 * inside a section, a component variant, a frame inside an instance, and a frame holding a mask
 * group, a rotated child and a shadowed text; generating one frame twice; the designer moving the
 * selection while a job runs; closing and reopening the plugin mid-job. The built plugin against
 * the fake Figma document (test/plugin/fake-figma.ts, which refuses what Figma refuses), a real
 * bridge with the tiny model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeInit } from '../plugin/fake-figma.ts';
import { FRAME_GAP } from '../../plugin/placement.ts';
import { REMEMBERED_JOBS_KEY, parseRememberedJobs } from '../../plugin/remembered-jobs.ts';
import { RESULT_FRAME_KEY, parseResultFrameData } from '../../plugin/result-data.ts';
import { SETTINGS_KEY } from '../../plugin/settings.ts';
import { TOKEN } from '../support/bridge.ts';
import { E2E_URL, e2eSetup } from './harness/e2e-setup.ts';
import type { Session } from './harness/browser.ts';
import type { DumpedNode } from './harness/fake-figma-env.ts';

const TIMEOUT = 90_000;

const e2e = e2eSetup();

const settings = (steps: number) => ({
  [SETTINGS_KEY]: { bridgeUrl: E2E_URL, token: TOKEN, steps, seedMode: 'fixed', seed: 11 },
});

function card(id: string, x: number, y: number): NodeInit {
  return {
    id,
    type: 'FRAME',
    name: `Card ${id}`,
    x,
    y,
    width: 256,
    height: 160,
    children: [
      { type: 'RECTANGLE', name: 'Photo', x: 0, y: 0, width: 256, height: 96 },
      { type: 'TEXT', name: 'Label', x: 16, y: 112, width: 200, height: 24, characters: `Card ${id}` },
    ],
  };
}

const LIST: NodeInit = {
  id: '10:1',
  type: 'FRAME',
  name: 'List',
  x: 0,
  y: 0,
  width: 256,
  height: 340,
  layoutMode: 'VERTICAL',
  itemSpacing: 20,
  children: [card('10:2', 0, 0), card('10:3', 0, 180)],
};
const SECTION: NodeInit = { id: '11:1', type: 'SECTION', name: 'Flows', x: 0, y: 700, width: 900, height: 400, children: [card('11:2', 40, 40)] };
const VARIANTS: NodeInit = {
  id: '12:1',
  type: 'COMPONENT_SET',
  name: 'Card variants',
  x: 1400,
  y: 0,
  width: 300,
  height: 200,
  children: [{ ...card('12:2', 20, 20), type: 'COMPONENT', name: 'State=Default' }],
};
const INSTANCE: NodeInit = { id: '13:1', type: 'INSTANCE', name: 'Screen', x: 1400, y: 700, width: 320, height: 240, children: [card('13:2', 32, 40)] };
/** 512 x 512 at 512 px: scale 1, so every box can be worked out by hand. */
const SHAPES: NodeInit = {
  id: '14:1',
  type: 'FRAME',
  name: 'Shapes',
  x: 0,
  y: 1400,
  width: 512,
  height: 512,
  children: [
    { id: '14:2', type: 'RECTANGLE', name: 'Backdrop', x: 0, y: 0, width: 512, height: 512 },
    {
      id: '14:3',
      type: 'GROUP',
      name: 'Avatar',
      children: [
        { id: '14:4', type: 'ELLIPSE', name: 'Mask', x: 32, y: 32, width: 64, height: 64, isMask: true },
        { id: '14:5', type: 'RECTANGLE', name: 'Photo', x: 0, y: 0, width: 256, height: 256 },
      ],
    },
    { id: '14:6', type: 'RECTANGLE', name: 'Tilted', x: 300, y: 100, width: 100, height: 50, rotation: 90 },
    { id: '14:7', type: 'TEXT', name: 'Shadowed', x: 100, y: 400, width: 100, height: 32, characters: 'Sale', renderMargin: { left: 4, top: 4, right: 36, bottom: 40 } },
    { id: '14:8', type: 'SLICE', name: 'Export area', x: 0, y: 0, width: 512, height: 512 },
  ],
};
const SCENE = [LIST, SECTION, VARIANTS, INSTANCE, SHAPES];

function all(nodes: DumpedNode[]): DumpedNode[] {
  return nodes.flatMap((n) => [n, ...all(n.children)]);
}

function results(nodes: DumpedNode[]): DumpedNode[] {
  return all(nodes).filter((n) => n.pluginData[RESULT_FRAME_KEY]);
}

function resultFor(nodes: DumpedNode[], sourceId: string): DumpedNode[] {
  return results(nodes).filter((n) => parseResultFrameData(n.pluginData[RESULT_FRAME_KEY])?.sourceNodeId === sourceId);
}

function overlap(a: DumpedNode, b: { x: number; y: number; width: number; height: number }): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

/** Waits until `count` jobs have finished, then checks that all of them were inserted (saying why not). */
async function waitInserted(s: Session, count: number) {
  await s.ui
    .locator('[data-testid=job-result]:not([data-status=inserting])')
    .nth(count - 1)
    .waitFor({ timeout: TIMEOUT });
  const results = s.ui.getByTestId('job-result');
  const states = await results.evaluateAll((els) => els.map((e) => `${e.getAttribute('data-status')}: ${e.textContent}`));
  assert.ok(states.every((t) => t.startsWith('inserted')), states.join('\n'));
}

test('four kinds of source frame: each result goes where Figma takes it, and nothing overlaps', { timeout: 300_000 }, async () => {
  const s = await e2e.browser.open(SCENE, settings(1));
  try {
    await s.ui.getByTestId('connection-status').filter({ hasText: /^paired$/ }).waitFor({ timeout: TIMEOUT });
    // Four: the bridge takes at most four jobs per connection (bridge/server.ts DEFAULT_LIMITS).
    await s.select(['10:3', '11:2', '12:2', '13:2']);
    await s.ui.getByRole('button', { name: 'Generate 4 frames' }).click();
    await waitInserted(s, 4);
    const dump = await s.dump();
    const page = dump.pages[0];
    assert.deepEqual(dump.notifications.filter((n) => n.error), [], 'no insert failed');

    // Auto layout: the result is on the page, the list untouched (two cards, not re-flowed).
    const list = page.find((n) => n.id === '10:1')!;
    assert.deepEqual(list.children.map((c) => [c.id, c.x, c.y]), [['10:2', 0, 0], ['10:3', 0, 180]]);
    assert.deepEqual([list.width, list.height], [256, 340]);
    const [fromList] = resultFor(page, '10:3');
    assert.ok(page.includes(fromList), 'a top-level frame of the page');
    assert.deepEqual([fromList.x, fromList.y], [256 + FRAME_GAP, 180]);
    // Section: inside the section, in its coordinates.
    const section = page.find((n) => n.id === '11:1')!;
    const [fromSection] = resultFor(page, '11:2');
    assert.ok(section.children.includes(fromSection), 'inside the section');
    assert.deepEqual([fromSection.x, fromSection.y], [40 + 256 + FRAME_GAP, 40]);
    // Component variant and a frame inside an instance: on the page (Figma refuses those parents).
    for (const id of ['12:2', '13:2']) {
      const [r] = resultFor(page, id);
      assert.ok(page.includes(r), `${id}: a top-level frame`);
    }
    assert.equal(page.find((n) => n.id === '12:1')!.children.length, 1);
    assert.equal(page.find((n) => n.id === '13:1')!.children.length, 1);

    // Nothing covers anything else at the top level of the page.
    for (let i = 0; i < page.length; i++)
      for (let j = i + 1; j < page.length; j++) assert.ok(!overlap(page[i], page[j]), `${page[i].name} / ${page[j].name}`);
    assert.deepEqual(s.errors, []);
  } finally {
    await s.page.close();
  }
});

test('a mask group, a rotated child, a shadowed text; generated twice without overlap; a moved selection is left alone', { timeout: 240_000 }, async () => {
  const s = await e2e.browser.open([SHAPES, LIST], settings(1));
  try {
    await s.ui.getByTestId('connection-status').filter({ hasText: /^paired$/ }).waitFor({ timeout: TIMEOUT });
    await s.select(['14:1']);
    await s.ui.getByRole('button', { name: /^Generate/ }).click();
    await waitInserted(s, 1);
    const first = await s.dump();
    assert.equal(first.selection.length, 1, 'the first result is selected');
    // Mask group clipped to its mask, rotated child by its rotated bounds, shadow included, no slice.
    const [fromShapes] = resultFor(first.pages[0], '14:1');
    const box = (name: string) => {
      const n = fromShapes.children.find((c) => c.name === name)!;
      return [n.x, n.y, n.x + n.width, n.y + n.height];
    };
    assert.deepEqual(fromShapes.children.map((c) => c.name), ['Background', 'Backdrop', 'Avatar', 'Tilted', 'Shadowed', 'Merged preview']);
    assert.deepEqual(box('Avatar'), [32, 32, 96, 96]);
    assert.deepEqual(box('Tilted'), [288, 0, 352, 112]);
    assert.deepEqual(box('Shadowed'), [96, 384, 240, 480]);
    assert.ok(fromShapes.children.every((c) => c.scaleModes.every((m) => m === 'CROP')), 'images placed exactly');

    const scrolls = first.scrolledTo.length;

    await s.select(['14:1']);
    await s.ui.getByTestId('layout-preview').waitFor({ timeout: TIMEOUT });
    await s.ui.getByRole('button', { name: /^Generate/ }).click();
    // The designer moves on while it runs: the result must not take the selection or the view.
    await s.select(['10:1']);
    await waitInserted(s, 2);
    const dump = await s.dump();
    const twins = resultFor(dump.pages[0], '14:1');
    assert.equal(twins.length, 2);
    assert.ok(!overlap(twins[0], twins[1]), `${JSON.stringify(twins.map((t) => [t.x, t.y]))} overlap`);
    assert.deepEqual(dump.selection, ['10:1']);
    assert.equal(dump.scrolledTo.length, scrolls, 'no zoom to the second result');
  } finally {
    await s.page.close();
  }
});

test('closing the plugin mid-job and opening it again: the result is inserted once', { timeout: 240_000 }, async () => {
  const s = await e2e.browser.open([card('15:1', 0, 0)], settings(12));
  try {
    await s.ui.getByTestId('connection-status').filter({ hasText: /^paired$/ }).waitFor({ timeout: TIMEOUT });
    await s.select(['15:1']);
    await s.ui.getByRole('button', { name: /^Generate/ }).click();
    await s.ui.getByTestId('job-stage').filter({ hasText: /step [1-9]\d*\/12/ }).waitFor({ timeout: TIMEOUT });
    await s.reopen();
    await s.ui.getByText(/From the last session|Generating|Decoding|Preparing/).first().waitFor({ timeout: TIMEOUT });
    await waitInserted(s, 1);
    const dump = await s.dump();
    assert.equal(resultFor(dump.pages[0], '15:1').length, 1);
    // Once more: the job is marked inserted, so nothing is offered or inserted again.
    await s.reopen();
    await s.ui.getByTestId('connection-status').filter({ hasText: /^paired$/ }).waitFor({ timeout: TIMEOUT });
    await new Promise((r) => setTimeout(r, 1500));
    const again = await s.dump();
    assert.equal(resultFor(again.pages[0], '15:1').length, 1);
    assert.equal(await s.ui.getByTestId('job-result').count(), 0);
    const stored = await s.page.evaluate(
      (key) => (window as unknown as { figma: { clientStorage: { getAsync(k: string): Promise<unknown> } } }).figma.clientStorage.getAsync(key),
      REMEMBERED_JOBS_KEY,
    );
    const jobs = parseRememberedJobs(stored);
    assert.equal(jobs.length, 1);
    assert.equal(jobs[0].insertedFrameId, resultFor(again.pages[0], '15:1')[0].id);
  } finally {
    await s.page.close();
  }
});
