/**
 * The edit loop end to end in real Chromium (issue 12): generate a result, move one of its layer
 * nodes and regenerate it (only that node's image changes, in place, one undo step), then
 * Variations (the background stays, every child layer is new), then insert the first version
 * again as a new frame. A real bridge running the tiny model: its images are noise, so the checks
 * are on bytes and plugin data, not on how well the new layers fit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BACKGROUND_LAYER, MERGED_LAYER } from '../../domain/layout.ts';
import { layerFile } from '../../bridge/job-archive.ts';
import { LAYER_NODE_KEY, RESULT_FRAME_KEY, parseLayerNodeData, parseResultFrameData } from '../../plugin/result-data.ts';
import { SETTINGS_KEY } from '../../plugin/settings.ts';
import { TOKEN } from '../support/bridge.ts';
import { E2E_URL, e2eSetup } from './harness/e2e-setup.ts';
import type { Session } from './harness/browser.ts';
import type { Dump, DumpedNode } from './harness/fake-figma-env.ts';
import { POSTER } from './harness/scene-spec.ts';

const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));
const TIMEOUT = 60_000;

const e2e = e2eSetup();

/** The PNG the bridge stored for one layer of one job. */
async function storedLayer(jobId: string, index: number): Promise<Buffer> {
  return readFile(join(e2e.bridge.outputs, jobId, layerFile(index)));
}

function resultFrame(dump: Dump): DumpedNode {
  const frames = dump.pages[0].filter((n) => n.pluginData[RESULT_FRAME_KEY]);
  assert.equal(frames.length, 1, 'one result frame on the page');
  return frames[0];
}

function frameJob(frame: DumpedNode): string {
  const data = parseResultFrameData(frame.pluginData[RESULT_FRAME_KEY] ?? '');
  assert.ok(data, 'the result frame carries its data');
  return data.jobId;
}

/** Each child's image bytes (base64, from the fake document's image store), by node id. */
function imagesById(frame: DumpedNode, dump: Dump): Map<string, string> {
  return new Map(frame.children.map((c) => [c.id, dump.images[c.imageHashes[0]]]));
}

async function waitForVersion(s: Session, version: number) {
  await s.ui.locator(`[data-testid=job-result][data-version="${version}"][data-status=inserted]`).waitFor({ timeout: TIMEOUT });
}

/** Opens the plugin (paired from stored settings) and generates v1 of the poster. */
async function generateV1(settings: { steps: number; seedMode: 'random' | 'fixed'; seed: number }) {
  const s = await e2e.browser.open([POSTER], { [SETTINGS_KEY]: { bridgeUrl: E2E_URL, token: TOKEN, ...settings } });
  await s.ui.getByTestId('connection-status').filter({ hasText: /^paired$/ }).waitFor({ timeout: TIMEOUT });
  await s.select([POSTER.id]);
  await s.ui.getByRole('button', { name: /^Generate/ }).click();
  await waitForVersion(s, 1);
  const v1 = await s.dump();
  return { s, v1, frame1: resultFrame(v1) };
}

test('move one layer and regenerate it: only that image changes, in place, one undo step; then Variations; then v1 as a new frame', { timeout: 300_000 }, async () => {
  const { s, v1, frame1 } = await generateV1({ steps: 2, seedMode: 'random', seed: 0 });
  try {
    // v1 is in; the designer drags "Sun" 50 units right (32 px at 512: two grid cells) and selects it.
    const job1 = frameJob(frame1);
    const before = imagesById(frame1, v1);
    const sun = frame1.children.find((c) => c.name === 'Sun')!;
    await s.harness.edit(sun.id, { x: sun.x + 50 });
    await s.select([sun.id]);
    const regenerate = s.ui.getByRole('button', { name: 'Regenerate 1 layer' });
    await regenerate.waitFor({ timeout: TIMEOUT });
    await s.ui.getByTestId('regenerated-names').filter({ hasText: 'Redraws: Sun.' }).waitFor();
    await mkdir(OUTPUT, { recursive: true });
    await s.page.evaluate(() => (document.getElementById('plugin-ui')!.style.height = '1020px'));
    await s.page.locator('#plugin-ui').screenshot({ path: join(OUTPUT, 'ui-regenerate.png') });
    const commitsBefore = v1.undoCommits;
    await regenerate.click();
    await waitForVersion(s, 2);

    const v2 = await s.dump();
    const frame2 = resultFrame(v2);
    const job2 = frameJob(frame2);
    assert.notEqual(job2, job1, 'the frame shows the new job');
    assert.equal(frame2.id, frame1.id, 'the same frame, updated in place');
    assert.deepEqual(frame2.children.map((c) => c.id), frame1.children.map((c) => c.id), 'the same nodes, in the same order');
    assert.deepEqual(frame2.children.map((c) => c.name), frame1.children.map((c) => c.name), 'names kept');
    const after2 = imagesById(frame2, v2);
    for (const child of frame2.children) {
      const data = parseLayerNodeData(child.pluginData[LAYER_NODE_KEY] ?? '');
      assert.equal(data?.jobId, job2, `${child.name} now belongs to the new job`);
      const stored = (await storedLayer(job2, data.index)).toString('base64');
      assert.equal(after2.get(child.id), stored, `${child.name} shows layer ${data.index} of the new job`);
      if (child.id === sun.id || data.index === MERGED_LAYER)
        assert.notEqual(after2.get(child.id), before.get(child.id), `${child.name} was redrawn`);
      else assert.equal(after2.get(child.id), before.get(child.id), `${child.name} kept byte for byte`);
    }
    const sun2 = frame2.children.find((c) => c.id === sun.id)!;
    assert.ok(Math.abs(sun2.x - (sun.x + 50)) <= 16 / 0.64, `Sun stays where the designer put it (snapped to the grid): ${sun2.x}`);
    const data2 = parseResultFrameData(frame2.pluginData[RESULT_FRAME_KEY] ?? '');
    assert.deepEqual(data2?.lineage, [job1], 'the frame remembers the version it replaced');
    assert.equal(v2.undoCommits, commitsBefore + 2, 'the replace is one undo step');
    // Only the redrawn layers (and the merged preview) went to the main thread as images.
    const layerMessages = v2.uiMessages.filter((m) => m.type === 'layer-image').length - v1.uiMessages.filter((m) => m.type === 'layer-image').length;
    assert.equal(layerMessages, 2);
    await s.ui.getByTestId('lineage').filter({ hasText: 'v1 → v2' }).waitFor();
    assert.match(v2.notifications.at(-1)?.message ?? '', /: 1 layer new, 4 kept \(tiny test model: noise\)$/);

    // Variations: the whole result frame selected; the background stays, every child layer is new.
    await s.select([frame2.id]);
    await s.ui.getByRole('button', { name: 'Variations' }).click();
    await waitForVersion(s, 3);
    const v3 = await s.dump();
    const frame3 = resultFrame(v3);
    const after3 = imagesById(frame3, v3);
    for (const child of frame3.children) {
      const index = parseLayerNodeData(child.pluginData[LAYER_NODE_KEY] ?? '')!.index;
      if (index === BACKGROUND_LAYER) assert.equal(after3.get(child.id), after2.get(child.id), 'the background is kept');
      else assert.notEqual(after3.get(child.id), after2.get(child.id), `${child.name} is a variation`);
    }
    assert.notEqual(parseResultFrameData(frame3.pluginData[RESULT_FRAME_KEY] ?? '')?.seed, data2?.seed, 'a new seed');
    await s.ui.getByTestId('lineage').filter({ hasText: 'v1 → v2 → v3' }).waitFor();

    // Cmd+Z undoes the whole Variations at once: v2's images and data are back.
    await s.harness.undo();
    const undone = await s.dump();
    assert.deepEqual(imagesById(resultFrame(undone), undone), after2);
    assert.equal(frameJob(resultFrame(undone)), job2);

    // The first version, inserted again as a frame of its own, from the bridge's stored job.
    await s.ui.getByRole('button', { name: 'Insert v1 as a new frame' }).click();
    await s.ui.locator('[data-testid=job-result][data-version="1"][data-status=inserted]').waitFor({ timeout: TIMEOUT });
    const last = await s.dump();
    const copies = last.pages[0].filter((n) => n.id !== frame1.id && n.pluginData[RESULT_FRAME_KEY] && frameJob(n) === job1);
    assert.equal(copies.length, 1, 'a new frame showing v1');
    for (const child of copies[0].children) {
      const index = parseLayerNodeData(child.pluginData[LAYER_NODE_KEY] ?? '')!.index;
      assert.equal(last.images[child.imageHashes[0]], (await storedLayer(job1, index)).toString('base64'), `${child.name} is v1's`);
    }
    assert.equal(copies[0].children.length, frame1.children.length);
    assert.deepEqual(s.errors, []);
  } finally {
    await s.page.close();
  }
});

test('closing the plugin while a regeneration runs: opened again, it still lands in place, once', { timeout: 240_000 }, async () => {
  const { s, v1, frame1 } = await generateV1({ steps: 1, seedMode: 'fixed', seed: 5 });
  try {
    const before = imagesById(frame1, v1);
    const title = frame1.children.find((c) => c.name === 'Title')!;
    await s.select([title.id]);
    await s.ui.getByLabel('Steps').fill('12');
    await s.ui.getByLabel('Steps').press('Tab');
    await s.ui.getByRole('button', { name: 'Regenerate 1 layer' }).click();
    await s.ui.getByTestId('job-stage').filter({ hasText: /step [1-9]\d*\/12/ }).waitFor({ timeout: TIMEOUT });
    await s.reopen();
    // The remembered regeneration knows its frame and nodes: it replaces in place, not beside.
    await s.page.waitForFunction(
      ([key, job]) => {
        const w = window as unknown as { harness: { dump(): Dump } };
        return w.harness.dump().pages[0].some((n) => n.pluginData[key] && (JSON.parse(n.pluginData[key]) as { jobId: string }).jobId !== job);
      },
      [RESULT_FRAME_KEY, frameJob(frame1)] as const,
      { timeout: TIMEOUT },
    ).catch(async (e) => {
      throw new Error(`${e}: the panel says ${await s.ui.locator('main').innerText()}`);
    });
    const v2 = await s.dump();
    const frame2 = resultFrame(v2);
    assert.equal(frame2.id, frame1.id);
    const after = imagesById(frame2, v2);
    for (const child of frame2.children) {
      const index = parseLayerNodeData(child.pluginData[LAYER_NODE_KEY] ?? '')!.index;
      const changed = child.id === title.id || index === MERGED_LAYER;
      assert.equal(after.get(child.id) !== before.get(child.id), changed, `${child.name} ${changed ? 'redrawn' : 'kept'}`);
    }
    assert.deepEqual(parseResultFrameData(frame2.pluginData[RESULT_FRAME_KEY] ?? '')?.lineage, [frameJob(frame1)]);
    // Opened once more: the regeneration is marked done, nothing is applied again.
    await s.reopen();
    await s.ui.getByTestId('connection-status').filter({ hasText: /^paired$/ }).waitFor({ timeout: TIMEOUT });
    await new Promise((r) => setTimeout(r, 1500));
    const again = await s.dump();
    assert.deepEqual(imagesById(resultFrame(again), again), after);
    assert.equal(again.undoCommits, v2.undoCommits);
    assert.deepEqual(s.errors, []);
  } finally {
    await s.page.close();
  }
});
