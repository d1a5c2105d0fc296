/**
 * Drives the harness page in Debian's Chromium: builds the plugin, loads the fake Figma scene,
 * runs the built dist/plugin.js with the built dist/ui.html as its `__html__`.
 */
import * as esbuild from 'esbuild';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type FrameLocator, type Page } from 'playwright-core';
import { build } from '../../../scripts/build.ts';
import type { NodeInit } from '../../plugin/fake-figma.ts';
import type { Dump, Harness, HarnessOptions, ManifestNetwork } from './fake-figma-env.ts';

type Remote<T> = { [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never };
export type HarnessRemote = Remote<Pick<Harness, 'edit' | 'add' | 'undo'>>;

export const CHROMIUM = '/usr/bin/chromium';
const root = fileURLToPath(new URL('../../../', import.meta.url));

export interface Session {
  page: Page;
  ui: FrameLocator;
  /** Uncaught errors of the page and the UI iframe so far. */
  errors: string[];
  select(ids: string[]): Promise<void>;
  dump(): Promise<Dump>;
  /** Designer actions on the scene (test/e2e/harness/fake-figma-env.ts). */
  harness: HarnessRemote;
  /** Closes the plugin window and runs the plugin again in the same document. */
  reopen(): Promise<void>;
}

export class HarnessBrowser {
  private constructor(
    private readonly browser: BrowserContext,
    private readonly profile: string,
    private readonly harnessJs: string,
    private readonly pluginJs: string,
    private readonly uiHtml: string,
    private readonly network: ManifestNetwork,
  ) {}

  static async launch(): Promise<HarnessBrowser> {
    if (!existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run the browser tests`);
    await build();
    const harness = await esbuild.build({
      entryPoints: [fileURLToPath(new URL('./fake-figma-env.ts', import.meta.url))],
      bundle: true,
      write: false,
      format: 'iife',
      target: 'es2020',
      logLevel: 'warning',
    });
    const [pluginJs, uiHtml, manifest] = await Promise.all([
      readFile(join(root, 'dist/plugin.js'), 'utf8'),
      readFile(join(root, 'dist/ui.html'), 'utf8'),
      readFile(join(root, 'manifest.json'), 'utf8'),
    ]);
    const network = (JSON.parse(manifest) as { networkAccess: ManifestNetwork }).networkAccess;
    const profile = await mkdtemp(join(tmpdir(), 'art-e2e-chromium-'));
    // A fresh profile per run; Playwright takes it as the persistent context's directory.
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      viewport: { width: 1000, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    return new HarnessBrowser(browser, profile, harness.outputFiles[0].text, pluginJs, uiHtml, network);
  }

  /** A fresh page with the scene (one list of nodes per page), the plugin running and its UI shown. */
  async open(scene: NodeInit[] | NodeInit[][], stored: Record<string, unknown> = {}, options: HarnessOptions = {}): Promise<Session> {
    const pages = (scene.length > 0 && Array.isArray(scene[0]) ? scene : [scene]) as NodeInit[][];
    const page = await this.browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.setContent('<!doctype html><html><body style="margin:0"><div id="host"></div></body></html>');
    await page.addScriptTag({ content: this.harnessJs });
    await page.evaluate(
      ([s, st, n, o]) => {
        const w = window as unknown as { harness: unknown; installFakeFigma: (a: unknown, b: unknown, c: unknown, d: unknown) => unknown };
        w.harness = w.installFakeFigma(s, st, n, o);
      },
      [pages, stored, this.network, options] as const,
    );
    await page.addScriptTag({ content: `var __html__ = ${JSON.stringify(this.uiHtml).replace(/<\//g, '<\\/')};` });
    await page.addScriptTag({ content: this.pluginJs });
    if (errors.length) throw new Error(`the plugin failed to start: ${errors.join('; ')}`);
    type W = { harness: { select(ids: string[]): void; dump(): Dump; close(): void } };
    const pluginJs = this.pluginJs;
    return {
      page,
      errors,
      ui: page.frameLocator('#plugin-ui'),
      select: (ids) => page.evaluate((i) => (window as unknown as W).harness.select(i), ids),
      dump: () => page.evaluate(() => (window as unknown as W).harness.dump()),
      harness: {
        edit: (id, change) => page.evaluate(([i, c]) => (window as unknown as { harness: Harness }).harness.edit(i, c), [id, change] as const),
        add: (parentId, init) => page.evaluate(([p, n]) => (window as unknown as { harness: Harness }).harness.add(p, n), [parentId, init] as const),
        undo: () => page.evaluate(() => (window as unknown as { harness: Harness }).harness.undo()),
      },
      async reopen() {
        await page.evaluate(() => (window as unknown as W).harness.close());
        await page.addScriptTag({ content: pluginJs });
      },
    };
  }

  async close(): Promise<void> {
    await this.browser.close();
    await rm(this.profile, { recursive: true, force: true });
  }
}
