/**
 * The designer's settings, kept in figma.clientStorage (per user, per machine). Stored data may
 * come from an older version or be damaged: `normalizeSettings` checks every field once against
 * the house's limits (domain/params.ts) and falls back to the default for anything unusable.
 */
import { z } from 'zod';
import { RESOLUTIONS, type Resolution } from '../domain/layout.ts';
import {
  DEFAULT_GUIDANCE,
  DEFAULT_SEED,
  DEFAULT_STEPS,
  DEFAULT_TRUE_CFG,
  guidanceSchema,
  seedSchema,
  stepsSchema,
  trueCfgSchema,
} from '../domain/params.ts';

export type SeedMode = 'fixed' | 'random';

export interface Settings {
  /** `ws://host:port` of the bridge. */
  bridgeUrl: string;
  /** The pairing token the bridge printed at start. */
  token: string;
  resolution: Resolution;
  steps: number;
  guidance: number;
  trueCfg: number;
  seedMode: SeedMode;
  seed: number;
}

/** The bridge's default address (its DEFAULT_PORT, bridge/cli-args.ts; a test keeps them equal). Figma's
 * manifest only lets the plugin reach `localhost` names. */
export const DEFAULT_BRIDGE_URL = 'ws://localhost:8765';
export const SETTINGS_KEY = 'art-for-figma/settings/v1';

export const DEFAULT_SETTINGS: Settings = {
  bridgeUrl: DEFAULT_BRIDGE_URL,
  token: '',
  resolution: 512,
  steps: DEFAULT_STEPS,
  guidance: DEFAULT_GUIDANCE,
  trueCfg: DEFAULT_TRUE_CFG,
  seedMode: 'fixed',
  seed: DEFAULT_SEED,
};

/** Longest address or token kept. */
const MAX_SETTING_CHARS = 500;
const d = DEFAULT_SETTINGS;

/** Each field on its own: one unusable field falls back to its default, the others are kept. */
const settingsSchema: z.ZodType<Settings, z.ZodTypeDef, unknown> = z
  .object({
    bridgeUrl: z.string().min(1).max(MAX_SETTING_CHARS).catch(d.bridgeUrl),
    token: z.string().max(MAX_SETTING_CHARS).catch(d.token),
    resolution: z.custom<Resolution>((v) => (RESOLUTIONS as readonly unknown[]).includes(v)).catch(d.resolution),
    steps: stepsSchema.catch(d.steps),
    guidance: guidanceSchema.catch(d.guidance),
    trueCfg: trueCfgSchema.catch(d.trueCfg),
    seedMode: z.enum(['fixed', 'random']).catch(d.seedMode),
    seed: seedSchema.catch(d.seed),
  })
  .catch(d);

export function normalizeSettings(raw: unknown): Settings {
  return settingsSchema.parse(raw);
}

/** The subset of figma.clientStorage used here. */
export interface SettingsStore {
  getAsync(key: string): Promise<unknown>;
  setAsync(key: string, value: unknown): Promise<void>;
}

export async function loadSettings(store: SettingsStore): Promise<Settings> {
  return normalizeSettings(await store.getAsync(SETTINGS_KEY));
}

export async function saveSettings(store: SettingsStore, settings: Settings): Promise<Settings> {
  const clean = normalizeSettings(settings);
  await store.setAsync(SETTINGS_KEY, clean);
  return clean;
}
