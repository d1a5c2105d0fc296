import { RESOLUTIONS, type Resolution } from '../domain/layout.ts';
import { DEFAULT_GUIDANCE, DEFAULT_SEED, DEFAULT_STEPS, DEFAULT_TRUE_CFG } from '../domain/params.ts';
/**
 * The designer's settings, kept in figma.clientStorage (per user, per machine). Stored data may
 * come from an older version or be damaged: `normalizeSettings` checks every field once and
 * falls back to the default for anything unusable.
 */

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

function pick<T>(value: unknown, valid: (v: unknown) => v is T, fallback: T): T {
  return valid(value) ? value : fallback;
}

const isString = (v: unknown): v is string => typeof v === 'string' && v.length <= 500;
const isFinite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isResolution = (v: unknown): v is Resolution => (RESOLUTIONS as readonly unknown[]).includes(v);
const isSeedMode = (v: unknown): v is SeedMode => v === 'fixed' || v === 'random';
const isSeed = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;
const isSteps = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 100;

export function normalizeSettings(raw: unknown): Settings {
  const r: Record<string, unknown> = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : {};
  const d = DEFAULT_SETTINGS;
  return {
    bridgeUrl: pick(r.bridgeUrl, isString, d.bridgeUrl) || d.bridgeUrl,
    token: pick(r.token, isString, d.token),
    resolution: pick(r.resolution, isResolution, d.resolution),
    steps: pick(r.steps, isSteps, d.steps),
    guidance: pick(r.guidance, isFinite, d.guidance),
    trueCfg: pick(r.trueCfg, isFinite, d.trueCfg),
    seedMode: pick(r.seedMode, isSeedMode, d.seedMode),
    seed: pick(r.seed, isSeed, d.seed),
  };
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
