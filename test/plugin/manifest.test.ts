import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { DEFAULT_PORT } from '../../bridge/cli-args.ts';
import { DEFAULT_BRIDGE_URL } from '../../plugin/settings.ts';

const manifest = JSON.parse(await readFile(new URL('../../manifest.json', import.meta.url), 'utf8')) as Record<string, unknown>;

test('manifest has what Figma’s “Import plugin from manifest” needs, pointing at the build', () => {
  for (const key of ['name', 'id', 'api', 'main', 'ui']) assert.equal(typeof manifest[key], 'string', key);
  assert.deepEqual(manifest.editorType, ['figma']);
  assert.equal(manifest.main, 'dist/plugin.js');
  assert.equal(manifest.ui, 'dist/ui.html');
  assert.equal(manifest.documentAccess, 'dynamic-page');
});

test('network access: only the local bridge on localhost, with a reason', () => {
  const access = manifest.networkAccess as { allowedDomains: string[]; devAllowedDomains: string[]; reasoning: string };
  assert.deepEqual(access.allowedDomains, ['none']);
  assert.ok(access.reasoning.length > 20);
  assert.ok(access.devAllowedDomains.every((d) => /^(ws|http):\/\/localhost:\d+$/.test(d)), access.devAllowedDomains.join());
  assert.ok(access.devAllowedDomains.includes(DEFAULT_BRIDGE_URL), 'the default address is allowed');
});

test('the plugin’s default address is the bridge’s default port', () => {
  assert.equal(DEFAULT_BRIDGE_URL, `ws://localhost:${DEFAULT_PORT}`);
});
