/**
 * The real bridge (tiny model) the browser tests talk to. The fake Figma enforces manifest.json's
 * networkAccess as Figma does (a CSP in the UI), so the bridge listens where the manifest allows a
 * development plugin to connect: ws://localhost:8767, the last of the three bridge ports it lists
 * (8765 stays free for a bridge the developer runs). The e2e files run one after another.
 */
import { after, before } from 'node:test';
import { startTestBridge, type TestBridge } from '../../support/bridge.ts';
import { HarnessBrowser } from './browser.ts';

export const E2E_PORT = 8767;
export const E2E_URL = `ws://localhost:${E2E_PORT}`;

export async function startE2eBridge(): Promise<TestBridge> {
  try {
    return await startTestBridge({ real: true, cancelOnShutdown: true, port: E2E_PORT });
  } catch (error) {
    throw new Error(`the browser tests need port ${E2E_PORT} (allowed by manifest.json) free: ${error}`);
  }
}

export interface E2e {
  readonly browser: HarnessBrowser;
  readonly bridge: TestBridge;
}

/** Starts the bridge and Chromium before the file's tests and stops both after them. */
export function e2eSetup(): E2e {
  const e2e = {} as { browser: HarnessBrowser; bridge: TestBridge };
  before(async () => {
    e2e.bridge = await startE2eBridge();
    e2e.browser = await HarnessBrowser.launch();
  });
  after(async () => {
    await Promise.all([e2e.browser?.close(), e2e.bridge?.close()]);
  });
  return e2e;
}
