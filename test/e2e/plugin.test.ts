/**
 * End to end in real Chromium: the built plugin against a fake Figma scene, its built UI in a
 * sandboxed iframe, a real bridge on a port manifest.json allows. Pairing, generating, streamed
 * inserting with plugin data, wrong token, bridge down, an address the manifest blocks, cancel mid-job.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { DEFAULT_SEED } from '../../domain/params.ts';
import { frameLayout, type FrameLayout } from '../../plugin/layout.ts';
import { resultFrameName } from '../../plugin/insert.ts';
import { FRAME_GAP } from '../../plugin/placement.ts';
import { LAYER_NODE_KEY, RESULT_FRAME_KEY, parseLayerNodeData, parseResultFrameData } from '../../plugin/result-data.ts';
import { SETTINGS_KEY } from '../../plugin/settings.ts';
import { TOKEN } from '../support/bridge.ts';
import { E2E_PORT, E2E_URL, e2eSetup } from './harness/e2e-setup.ts';
import type { Session } from './harness/browser.ts';
import type { DumpedNode } from './harness/fake-figma-env.ts';
import { CARD, LONE_TEXT, POSTER, toPlain } from './harness/scene-spec.ts';

const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));
/** Waits, not timings: generous, the CI machine and this one are shared. */
const TIMEOUT = 60_000;

/** The layer PNGs the bridge stored for each job, by job id and layer index. */
async function storedJobs(outputs: string): Promise<Map<string, Map<number, Buffer>>> {
  const jobs = new Map<string, Map<number, Buffer>>();
  for (const entry of await readdir(outputs, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const layers = new Map<number, Buffer>();
    for (const file of await readdir(join(outputs, entry.name))) {
      const m = /^layer-(\d+)\.png$/.exec(file);
      if (m) layers.set(Number(m[1]), await readFile(join(outputs, entry.name, file)));
    }
    jobs.set(entry.name, layers);
  }
  return jobs;
}

const e2e = e2eSetup();

/** Allowed by the manifest, with nothing listening there. */
const ALLOWED_IDLE_URL = 'ws://localhost:8766';

/** Types the bridge address and token into the UI and connects. */
async function pair(s: Session, url: string, token: string) {
  await s.ui.getByLabel('Bridge address').fill(url);
  await s.ui.getByLabel('Pairing token').fill(token);
  await s.ui.getByRole('button', { name: /^Connect/ }).click();
}

async function waitForStatus(s: Session, status: string) {
  const line = s.ui.getByTestId('connection-status');
  try {
    await line.filter({ hasText: new RegExp(`^${status}$`) }).waitFor({ state: 'attached', timeout: TIMEOUT });
  } catch (error) {
    throw new Error(`connection status stayed "${await line.textContent()}", expected "${status}": ${error}`);
  }
}

function layoutOf(spec: typeof POSTER): FrameLayout {
  const result = frameLayout(toPlain(spec), 512);
  if (!result.ok) throw new Error(result.message);
  return result.value;
}

/** Checks one inserted rectangle against its layout box and the PNG the bridge stored for that layer. */
function checkLayer(node: DumpedNode, layout: FrameLayout, index: number, stored: Map<number, Buffer>, images: Record<string, string>) {
  const [x1, y1, x2, y2] = layout.regions[index].box;
  assert.equal(node.name, layout.regions[index].name);
  assert.ok(Math.abs(node.x - x1 / layout.scaleX) < 1e-6, `${node.name} x ${node.x}`);
  assert.ok(Math.abs(node.y - y1 / layout.scaleY) < 1e-6, `${node.name} y ${node.y}`);
  assert.ok(Math.abs(node.width - (x2 - x1) / layout.scaleX) < 1e-6, `${node.name} width`);
  assert.ok(Math.abs(node.height - (y2 - y1) / layout.scaleY) < 1e-6, `${node.name} height`);
  assert.equal(node.imageHashes.length, 1, `${node.name} has one image fill`);
  const bytes = Buffer.from(images[node.imageHashes[0]], 'base64');
  const png = PNG.sync.read(bytes);
  assert.deepEqual([png.width, png.height], [x2 - x1, y2 - y1], `${node.name} image size`);
  // The right layer landed on the right node: the very bytes the bridge stored for that index.
  assert.ok(stored.get(index)?.equals(bytes), `${node.name} shows layer ${index} of the job`);
}

/** The one stored job whose layer count matches, for a bridge that ran only that many-layer job. */
async function jobWithLayers(count: number): Promise<{ jobId: string; layers: Map<number, Buffer> }> {
  const jobs = [...(await storedJobs(e2e.bridge.outputs)).entries()].filter(([, j]) => j.size === count);
  assert.equal(jobs.length, 1, `one stored job with ${count} layers`);
  return { jobId: jobs[0][0], layers: jobs[0][1] };
}

test('pair, select a frame, generate, and get every layer back as a positioned image node', { timeout: 180_000 }, async () => {
  const s = await e2e.browser.open([POSTER, CARD, LONE_TEXT]);
  try {
    await pair(s, E2E_URL, TOKEN);
    await waitForStatus(s, 'paired');
    await s.ui.getByText(/Tiny test model/).waitFor();

    await s.select([POSTER.id]);
    const expected = layoutOf(POSTER);
    await s.ui.getByTestId('layer-count').filter({ hasText: `${expected.regions.length - 2} layers` }).waitFor({ timeout: TIMEOUT });
    const prompt = s.ui.getByLabel('Prompt', { exact: true });
    assert.match(await prompt.inputValue(), /"Summer Sale"/, 'prompt pre-filled with the draft');
    await prompt.fill('A summer sale poster with a sun, a badge and the text "Summer Sale"');
    await s.ui.getByLabel('Steps').fill('2');
    await s.ui.getByLabel('Steps').press('Tab');

    await s.ui.getByRole('button', { name: /^Generate/ }).click();
    await s.ui.locator('[data-testid=job-result][data-status=inserted]').waitFor({ timeout: TIMEOUT });
    await s.ui.locator('img.thumb').waitFor();

    const dump = await s.dump();
    const page = dump.pages[0];
    const name = resultFrameName('Poster', DEFAULT_SEED);
    const inserted = page.find((n) => n.name === name);
    assert.ok(inserted, `a frame named ${name}; page has ${page.map((n) => n.name).join(', ')}`);
    // Right of the poster, past the loose text that sits where the gap would be (900..1000).
    assert.deepEqual([inserted.x, inserted.y, inserted.width, inserted.height], [LONE_TEXT.x + LONE_TEXT.width + FRAME_GAP, POSTER.y, 800, 600]);
    assert.deepEqual(
      inserted.children.map((c) => c.name),
      ['Background', 'Sky', 'Sun', 'Badge', 'Title', 'Merged preview'],
      'background, the visible children bottom to top, merged on top',
    );
    const order = [1, 2, 3, 4, 5, 0];
    const stored = await jobWithLayers(expected.regions.length);
    inserted.children.forEach((child, k) => checkLayer(child, expected, order[k], stored.layers, dump.images));
    assert.equal(inserted.children[0].locked, true);
    assert.equal(inserted.children.at(-1)!.visible, false);
    // Plugin data: the frame and every layer know the job, the layer and the source node.
    const frameData = parseResultFrameData(inserted.pluginData[RESULT_FRAME_KEY] ?? '');
    assert.equal(frameData?.jobId, stored.jobId);
    assert.equal(frameData?.sourceNodeId, POSTER.id);
    assert.match(frameData?.model ?? '', /^tiny/);
    inserted.children.forEach((child, k) => {
      const data = parseLayerNodeData(child.pluginData[LAYER_NODE_KEY] ?? '');
      assert.equal(data?.jobId, stored.jobId);
      assert.equal(data?.index, order[k]);
      assert.equal(data?.sourceNodeId, expected.regions[order[k]].nodeId);
    });
    // Streamed: one UI -> main message per layer; the insert itself carries hashes, not PNGs.
    const layerMessages = dump.uiMessages.filter((m) => m.type === 'layer-image');
    assert.equal(layerMessages.length, expected.regions.length);
    const insertMessage = dump.uiMessages.find((m) => m.type === 'insert');
    assert.ok(insertMessage && insertMessage.bytes < 8000, `insert message ${insertMessage?.bytes} bytes`);
    const biggestPng = Math.max(...[...stored.layers.values()].map((b) => b.length));
    assert.ok(Math.max(...dump.uiMessages.map((m) => m.bytes)) < biggestPng + 1000, 'no message holds more than one PNG');
    // The source is untouched; the new frame is selected and in view; one undo step; a notice.
    const source = page.find((n) => n.id === POSTER.id)!;
    assert.equal(source.children.length, POSTER.children!.length);
    assert.deepEqual(dump.selection, [inserted.id]);
    assert.deepEqual(dump.scrolledTo.at(-1), [inserted.id], 'scrolled: the frame was off-screen');
    assert.equal(dump.undoCommits, 2);
    assert.deepEqual(dump.notifications.at(-1), { message: `Inserted “${name}”: 4 layers (tiny test model: noise)`, error: false });

    // The new frame is selected: the UI knows it for a result, not a new source to generate from.
    await s.ui.getByTestId('selected-result').filter({ hasText: name }).waitFor({ timeout: TIMEOUT });
    assert.equal(await s.ui.getByTestId('layout-preview').count(), 0);
    assert.deepEqual(s.errors, []);
    await s.select([POSTER.id]); // the source again, for a screenshot with its layout and the result
    await s.ui.getByTestId('layout-preview').filter({ hasText: 'Poster · 4 layers' }).waitFor({ timeout: TIMEOUT });
    await mkdir(OUTPUT, { recursive: true });
    // Tall enough for the whole panel, as a designer would scroll through it.
    await s.page.evaluate(() => (document.getElementById('plugin-ui')!.style.height = '1020px'));
    await s.page.locator('#plugin-ui').screenshot({ path: join(OUTPUT, 'ui-after-generate.png') });
  } finally {
    await s.page.close();
  }
});

test('several selected frames become several jobs; a non-frame gets a message', { timeout: 180_000 }, async () => {
  const s = await e2e.browser.open([POSTER, CARD, LONE_TEXT], {
    [SETTINGS_KEY]: { bridgeUrl: E2E_URL, token: TOKEN, steps: 2, seedMode: 'fixed', seed: 7 },
  });
  try {
    await waitForStatus(s, 'paired'); // stored token: pairs on open
    await s.select([POSTER.id, CARD.id, LONE_TEXT.id]);
    await s.ui.getByText('“Loose text” is a text, not a frame').waitFor({ timeout: TIMEOUT });
    await s.ui.getByRole('button', { name: 'Generate 2 frames' }).waitFor();
    await s.ui.getByLabel('Prompt', { exact: true }).press('Control+Enter');
    await s.ui.locator('[data-testid=job-result][data-status=inserted]').nth(1).waitFor({ timeout: TIMEOUT });
    const dump = await s.dump();
    const page = dump.pages[0];
    const poster = page.find((n) => n.name === resultFrameName('Poster', 7));
    const card = page.find((n) => n.name === resultFrameName('Card', 7));
    assert.ok(poster && card, page.map((n) => n.name).join(', '));
    assert.deepEqual([card.x, card.y], [CARD.x + CARD.width + FRAME_GAP, CARD.y], 'each result lands beside its own source');
    const cardLayout = layoutOf(CARD);
    assert.deepEqual(card.children.map((c) => c.name), ['Background', 'Photo', 'Caption', 'Merged preview']);
    const stored = await jobWithLayers(cardLayout.regions.length);
    card.children.forEach((child, k) => checkLayer(child, cardLayout, [1, 2, 3, 0][k], stored.layers, dump.images));
    // Both results were selected together (nobody touched the selection since Generate).
    assert.deepEqual(new Set(dump.selection), new Set([poster.id, card.id]));
    assert.deepEqual(s.errors, []);
  } finally {
    await s.page.close();
  }
});

test('more frames than the bridge takes from one window: the rest are held and sent as jobs finish, none refused', { timeout: 240_000 }, async () => {
  // Six cards side by side; the bridge takes 4 jobs per connection (DEFAULT_LIMITS.jobsPerClient).
  const cards = Array.from({ length: 6 }, (_, i) => ({
    ...CARD,
    id: `${40 + i}:1`,
    name: `Card ${i + 1}`,
    x: i * 700,
    y: 2000,
    children: CARD.children!.map((c, k) => ({ ...c, id: `${40 + i}:${k + 2}` })),
  }));
  const s = await e2e.browser.open(cards, {
    [SETTINGS_KEY]: { bridgeUrl: E2E_URL, token: TOKEN, steps: 1, seedMode: 'fixed', seed: 3 },
  });
  try {
    await waitForStatus(s, 'paired');
    await s.select(cards.map((c) => c.id));
    await s.ui.getByRole('button', { name: 'Generate 6 frames' }).click();
    await s.ui.locator('[data-testid=job-result][data-status=inserted]').nth(5).waitFor({ timeout: TIMEOUT * 2 });
    assert.equal(await s.ui.locator('[data-testid=job-result][data-status=failed]').count(), 0, 'no job refused as queue_full');
    const names = (await s.dump()).pages[0].map((n) => n.name);
    for (let i = 1; i <= 6; i++) assert.ok(names.includes(resultFrameName(`Card ${i}`, 3)), `Card ${i} inserted: ${names.join(', ')}`);
    assert.deepEqual(s.errors, []);
  } finally {
    await s.page.close();
  }
});

test('a wrong token is reported as such and nothing can be generated', { timeout: 90_000 }, async () => {
  const s = await e2e.browser.open([POSTER]);
  try {
    await pair(s, E2E_URL, 'not-the-token');
    await waitForStatus(s, 'wrong-token');
    assert.match((await s.ui.getByRole('alert').first().textContent()) ?? '', /Wrong token\. The token does not match/);
    await s.select([POSTER.id]);
    await s.ui.getByTestId('layout-preview').waitFor();
    assert.equal(await s.ui.getByRole('button', { name: /^Generate/ }).isDisabled(), true);
  } finally {
    await s.page.close();
  }
});

test('a bridge that is not running is reported with the command to start it', { timeout: 90_000 }, async () => {
  // An address the manifest allows, with nothing listening there.
  const s = await e2e.browser.open([POSTER]);
  try {
    await pair(s, ALLOWED_IDLE_URL, TOKEN);
    await waitForStatus(s, 'unreachable');
    assert.match((await s.ui.getByRole('alert').first().textContent()) ?? '', /No bridge is running at .*npm start/);
  } finally {
    await s.page.close();
  }
});

test('an address the manifest does not allow is blocked, and the panel says so, not "no bridge"', { timeout: 90_000 }, async () => {
  const s = await e2e.browser.open([POSTER]);
  try {
    // The bridge really listens on 127.0.0.1:8767, but the manifest names only localhost; and no wss://.
    for (const url of [`ws://127.0.0.1:${E2E_PORT}`, `wss://localhost:${E2E_PORT}`]) {
      await pair(s, url, TOKEN);
      await waitForStatus(s, 'blocked');
      const alert = (await s.ui.getByRole('alert').first().textContent()) ?? '';
      assert.match(alert, /Figma blocked .*manifest\.json/, url);
      assert.doesNotMatch(alert, /No bridge is running/);
    }
    const dump = await s.dump();
    assert.ok(dump.cspViolations.length >= 2, `the browser refused both: ${dump.cspViolations.join(', ')}`);
  } finally {
    await s.page.close();
  }
});

test('cancel mid-job stops the job and inserts nothing', { timeout: 180_000 }, async () => {
  const s = await e2e.browser.open([POSTER]);
  try {
    await pair(s, E2E_URL, TOKEN);
    await waitForStatus(s, 'paired');
    await s.select([POSTER.id]);
    await s.ui.getByTestId('layout-preview').waitFor();
    await s.ui.getByLabel('Steps').fill('100');
    await s.ui.getByLabel('Steps').press('Tab');
    await s.ui.getByRole('button', { name: /^Generate/ }).click();
    await s.ui.getByTestId('job-stage').filter({ hasText: /step [1-9]\d*\/100/ }).waitFor({ timeout: TIMEOUT });
    // While it denoises, a live preview of the merged image shows, labelled as the tiny model's noise.
    const preview = s.ui.getByTestId('job-preview');
    await preview.waitFor({ timeout: TIMEOUT });
    assert.match((await s.ui.locator('.preview-figure figcaption').textContent()) ?? '', /tiny test model: noise/);
    assert.ok(await preview.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth === 64), 'the preview is 1/8 of the 512-pixel-wide canvas');
    await s.ui.getByRole('button', { name: 'Cancel' }).click();
    await s.ui.locator('[data-testid=job-result][data-status=cancelled]').waitFor({ timeout: TIMEOUT });
    const dump = await s.dump();
    assert.deepEqual(dump.pages[0].map((n) => n.name), ['Poster']);
    assert.equal(dump.undoCommits, 0);
    assert.match((await s.ui.getByTestId('job-result').first().textContent()) ?? '', /Cancelled/);
  } finally {
    await s.page.close();
  }
});
