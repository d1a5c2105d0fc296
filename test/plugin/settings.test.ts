import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_SETTINGS,
  SETTINGS_KEY,
  loadSettings,
  normalizeSettings,
  saveSettings,
  type Settings,
  type SettingsStore,
} from '../../plugin/settings.ts';

class MemoryStore implements SettingsStore {
  data = new Map<string, unknown>();
  async getAsync(key: string) {
    return this.data.get(key);
  }
  async setAsync(key: string, value: unknown) {
    this.data.set(key, structuredClone(value));
  }
}

test('settings survive a save and load through clientStorage', async () => {
  const store = new MemoryStore();
  assert.deepEqual(await loadSettings(store), DEFAULT_SETTINGS);
  const mine: Settings = {
    bridgeUrl: 'ws://localhost:9001',
    token: 'abc-123',
    resolution: 1024,
    steps: 12,
    guidance: 3.5,
    trueCfg: 2,
    seedMode: 'random',
    seed: 99,
  };
  await saveSettings(store, mine);
  assert.ok(store.data.has(SETTINGS_KEY));
  assert.deepEqual(await loadSettings(store), mine);
});

test('damaged or old stored settings fall back field by field', () => {
  assert.deepEqual(normalizeSettings(null), DEFAULT_SETTINGS);
  assert.deepEqual(normalizeSettings('nonsense'), DEFAULT_SETTINGS);
  const partial = normalizeSettings({ token: 'kept', resolution: 777, steps: 0, guidance: Number.NaN, seed: -1, seedMode: 'x', bridgeUrl: '' });
  assert.deepEqual(partial, { ...DEFAULT_SETTINGS, token: 'kept' });
  // The house's limits (domain/params.ts): what the bridge would refuse is not kept.
  const outOfRange = normalizeSettings({ ...DEFAULT_SETTINGS, guidance: 20.5, trueCfg: 0.5, steps: 101, seed: 2 ** 32, token: 'x'.repeat(501) });
  assert.deepEqual(outOfRange, DEFAULT_SETTINGS);
  const atLimits = { ...DEFAULT_SETTINGS, guidance: 20, trueCfg: 1, steps: 100, seed: 2 ** 32 - 1, seedMode: 'random' as const, resolution: 1024 as const };
  assert.deepEqual(normalizeSettings(atLimits), atLimits);
});
