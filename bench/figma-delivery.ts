/**
 * `npm run bench -- figma`: the last denoising step to every layer in Figma, measured where the
 * designer would see it: the built plugin in Chromium (the e2e harness: the fake Figma's main
 * thread, the plugin UI in its sandboxed iframe) paired with a real bridge whose pipeline is the
 * benchmarks' stand-in (test/support/bridge.ts samplePipeline: 28 steps of 20 ms, then 52 layers of 1024x1024 real
 * ART content). Times are epoch milliseconds (`performance.timeOrigin + now()` in each document):
 * each WebSocket message as the UI's JavaScript receives it (the harness's socket observer: the
 * last `progress` of the denoising stage, each layer), each UI -> main message as the main thread
 * gets it, and the plugin's `inserted` answer. (Playwright's own WebSocket events are not used:
 * they carry every frame's payload over the DevTools protocol and slowed delivery 5x.)
 *
 *   window          last step -> "inserted" posted by the main thread
 *   bridge's part   last step -> last layer at the UI
 *   plugin's part   last layer at the UI -> "inserted" (the UI's last layer-image, createImage,
 *                   the insert of 52 nodes in a new frame)
 *
 * The fake Figma's createImage copies the bytes; the real one decodes them off the main thread,
 * so this is the harness's figure, not Figma's. Playwright's DevTools connection reports every
 * WebSocket frame with its payload, which slows the browser's receiving: the bridge's part here is
 * 3-4x what the same page gets with no DevTools client attached (docs/performance.md); the
 * plugin's part is the figure this bench is for. Measured, never asserted. Options: --runs (3).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_CHILD_LAYERS } from '../domain/layout.ts';
import { startBridge } from '../bridge/server.ts';
import type { NodeInit } from '../test/plugin/fake-figma.ts';
import { SETTINGS_KEY } from '../plugin/settings.ts';
import { HarnessBrowser, type Session } from '../test/e2e/harness/browser.ts';
import { E2E_PORT, E2E_URL } from '../test/e2e/harness/e2e-setup.ts';
import { bridgeOptions, samplePipeline } from '../test/support/bridge.ts';
import { fixed, median, table } from './stats.ts';

const SIDE = 1024;
const STEPS = 28;

/** One 1024x1024 frame whose 50 children each cover it: the largest job the protocol allows. */
const FRAME_ID = '60:1';
const FRAME: NodeInit = {
  id: FRAME_ID,
  type: 'FRAME',
  name: 'Everything',
  width: SIDE,
  height: SIDE,
  children: Array.from({ length: MAX_CHILD_LAYERS }, (_, i) => ({ id: `60:${i + 2}`, type: 'RECTANGLE', name: `Layer ${i + 1}`, width: SIDE, height: SIDE })),
};

interface Run {
  lastStep: number;
  firstLayer: number;
  lastLayer: number;
  lastLayerImage: number;
  inserted: number;
  handlerMs: number;
  layers: number;
}

async function run(s: Session, token: string): Promise<Run> {
  await s.ui.getByLabel('Bridge address').fill(E2E_URL);
  await s.ui.getByLabel('Pairing token').fill(token);
  await s.ui.getByRole('button', { name: /^Connect/ }).click();
  await s.ui.getByTestId('connection-status').filter({ hasText: /^paired$/ }).waitFor({ timeout: 60_000 });
  await s.select([FRAME_ID]);
  await s.ui.getByRole('button', { name: /^Generate/ }).click();
  await s.ui.locator('[data-testid=job-result][data-status=inserted]').waitFor({ timeout: 300_000 });
  const dump = await s.dump();
  const lastStep = dump.socketMessages.filter((m) => m.type === 'progress:denoise').at(-1)?.at;
  const layers = dump.socketMessages.filter((m) => m.binary);
  const images = dump.uiMessages.filter((m) => m.type === 'layer-image');
  const inserted = dump.pluginMessages.find((m) => m.type === 'inserted')?.at;
  if (lastStep === undefined || inserted === undefined || layers.length === 0) throw new Error('the job did not report its steps, layers and insert');
  return {
    lastStep,
    firstLayer: layers[0].at,
    lastLayer: layers.at(-1)!.at,
    lastLayerImage: images.at(-1)!.at,
    inserted,
    handlerMs: dump.uiMessages.reduce((n, m) => n + m.handlerMs, 0),
    layers: layers.length,
  };
}

export async function main(argv = process.argv.slice(2)): Promise<void> {
  const runsAt = argv.indexOf('--runs');
  const runs = runsAt >= 0 ? Number(argv[runsAt + 1]) : 3;
  const outputs = mkdtempSync(join(tmpdir(), 'art-bench-figma-'));
  const token = 'bench-figma-token-0123456789';
  const bridge = await startBridge(
    bridgeOptions(outputs, { port: E2E_PORT, token, keepJobs: 2, executor: { kind: 'local', pipeline: samplePipeline(20) }, cancelOnShutdown: true }),
  ).catch((error: unknown) => {
    throw new Error(`the figma bench needs port ${E2E_PORT} (allowed by manifest.json) free: ${error}`);
  });
  const browser = await HarnessBrowser.launch();
  const results: Run[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const s = await browser.open([FRAME], { [SETTINGS_KEY]: { resolution: SIDE, steps: STEPS, seedMode: 'fixed', seed: 1 } }, { observeSockets: true });
      try {
        results.push(await run(s, token));
      } finally {
        await s.page.close();
      }
    }
  } finally {
    await browser.close();
    await bridge.close();
    rmSync(outputs, { recursive: true, force: true });
  }

  const col = (f: (r: Run) => number) => `${fixed(median(results.map(f)))} ms  (${results.map((r) => fixed(f(r))).join(', ')})`;
  console.log(`\n## Last step to every layer in Figma (Chromium, e2e harness; ${results[0].layers} layers of ${SIDE}x${SIDE}; median of ${runs}, then each run)\n`);
  console.log(
    table(
      ['measure', 'value'],
      [
        ['window: last denoising step -> main thread posts "inserted" (goal: under 1 s)', col((r) => r.inserted - r.lastStep)],
        ['  bridge\'s part: last step -> last layer at the UI', col((r) => r.lastLayer - r.lastStep)],
        ['  plugin\'s part: last layer at the UI -> "inserted"', col((r) => r.inserted - r.lastLayer)],
        ['    of it, last layer-image at the main thread -> "inserted"', col((r) => r.inserted - r.lastLayerImage)],
        ['last step -> first layer at the UI', col((r) => r.firstLayer - r.lastStep)],
        ['main-thread handler time, all messages of the job (sync part)', col((r) => r.handlerMs)],
        ['plugin\'s part / window', `${fixed(median(results.map((r) => (r.inserted - r.lastLayer) / (r.inserted - r.lastStep))))}x`],
      ],
    ),
  );
  console.log(
    '\nHow to read: the window is what the designer waits after the progress bar reaches the last step.' +
      ' The bridge\'s part is PNG encoding and delivery (`npm run bench -- bridge` breaks it down); the plugin\'s' +
      ' part is what streaming leaves after the last layer arrives. The harness\'s createImage copies bytes on' +
      ' the main thread; Figma\'s own image store is not modelled. The bridge, Chromium and this process share the cores,' +
      ' and Playwright\'s DevTools connection (which carries every frame\'s payload) inflates the bridge\'s part.',
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
