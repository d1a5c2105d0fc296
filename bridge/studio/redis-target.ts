/**
 * The `--queue` address: `redis://[user:password@]host:port[/db]` or `rediss://` (TLS), parsed
 * into ioredis options (pure). A password in the URL is visible in `ps`; the environment variable
 * ART_REDIS_PASSWORD is the better place, and wins when both are given.
 */
import type { RedisOptions } from 'bullmq';

export const REDIS_PASSWORD_ENV = 'ART_REDIS_PASSWORD';
const DEFAULT_REDIS_PORT = 6379;

export interface RedisTarget {
  host: string;
  port: number;
  db: number;
  tls: boolean;
  username?: string;
  password?: string;
}

export type ParsedTarget = { ok: true; target: RedisTarget } | { ok: false; error: string };

export function parseRedisUrl(url: string, env: Record<string, string | undefined> = {}): ParsedTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { ok: false, error: `--queue takes a Redis URL like redis://host:6379/0 or rediss://host:6380, got "${url}"` };
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    return { ok: false, error: `--queue must start with redis:// or rediss:// (TLS), got "${u.protocol}//"` };
  if (!u.hostname) return { ok: false, error: `--queue "${url}" has no host` };
  const port = u.port === '' ? DEFAULT_REDIS_PORT : Number(u.port);
  const path = u.pathname.replace(/^\//, '');
  const db = path === '' ? 0 : Number(path);
  if (!Number.isInteger(db) || db < 0 || db > 15 || !/^\d*$/.test(path))
    return { ok: false, error: `--queue: the database after the host must be a number 0..15, got "/${path}"` };
  if ((u.search && u.search !== '?') || u.hash) return { ok: false, error: '--queue takes no query or fragment; put the password in ART_REDIS_PASSWORD' };
  const password = env[REDIS_PASSWORD_ENV] || (u.password ? decodeURIComponent(u.password) : undefined);
  const username = u.username ? decodeURIComponent(u.username) : undefined;
  return {
    ok: true,
    target: {
      host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
      port,
      db,
      tls: u.protocol === 'rediss:',
      ...(username ? { username } : {}),
      ...(password ? { password } : {}),
    },
  };
}

/** The address for logs and /health: never the password. */
export function describeTarget(t: RedisTarget): string {
  const host = t.host.includes(':') ? `[${t.host}]` : t.host;
  return `${t.tls ? 'rediss' : 'redis'}://${t.username ? `${t.username}@` : ''}${host}:${t.port}/${t.db}${t.password ? ' (with password)' : ''}`;
}

/**
 * ioredis options. `maxRetriesPerRequest: null`: commands wait for a reconnect instead of failing
 * after a few retries, which BullMQ requires of workers' connections (its docs, "Connections");
 * the front door wants the same, so a Redis restart delays jobs instead of failing them.
 */
export function redisOptions(t: RedisTarget): RedisOptions {
  return {
    host: t.host,
    port: t.port,
    db: t.db,
    ...(t.username ? { username: t.username } : {}),
    ...(t.password ? { password: t.password } : {}),
    ...(t.tls ? { tls: { servername: t.host } } : {}),
    maxRetriesPerRequest: null,
    // Reconnect quickly at first, then at most every 2 s.
    retryStrategy: (times: number) => Math.min(100 * times, 2000),
  };
}
