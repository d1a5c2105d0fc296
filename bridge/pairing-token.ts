/**
 * The pairing token: the real lock on the bridge (any sandboxed iframe sends `Origin: null`).
 * Generated on first start, kept in the user's config dir with mode 0600, never logged.
 */
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Points the config dir elsewhere (tests, several bridges on one machine). */
export const CONFIG_DIR_ENV = 'ART_FOR_FIGMA_CONFIG_DIR';
const APP_DIR = 'art-for-figma';
const TOKEN_FILE = 'token';

/** `$ART_FOR_FIGMA_CONFIG_DIR`, else `($XDG_CONFIG_HOME or ~/.config)/art-for-figma`. */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env[CONFIG_DIR_ENV];
  if (explicit) return explicit;
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, APP_DIR);
}

export interface PairingToken {
  token: string;
  path: string;
  /** True when this start generated the token (the user must paste it into the plugin). */
  created: boolean;
}

/** Reads the token, or creates it (32 random bytes, base64url) if the file is missing or empty. */
export async function loadOrCreateToken(dir: string): Promise<PairingToken> {
  const path = join(dir, TOKEN_FILE);
  try {
    const token = (await readFile(path, 'utf8')).trim();
    if (token.length >= 16) {
      await chmod(path, 0o600); // tighten a file someone loosened
      return { token, path, created: false };
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('base64url');
  await writeFile(path, token + '\n', { mode: 0o600 });
  await chmod(path, 0o600); // writeFile's mode does not apply to an existing file
  return { token, path, created: true };
}

/** Constant-time comparison (hashing first makes the lengths equal). */
export function tokenMatches(expected: string, presented: string): boolean {
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(presented).digest();
  return timingSafeEqual(a, b);
}
