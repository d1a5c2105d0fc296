/**
 * `npm start` builds the plugin and UI when dist/ is missing or older than their sources, using
 * the project's own `npm run build` (only if that script exists).
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const OUTPUTS = ['dist/plugin.js', 'dist/ui.html'];
/** What the built files are made of (the UI imports the bridge protocol; both import domain/). */
const SOURCES = ['plugin', 'ui', 'bridge/protocol', 'domain', 'scripts/build.ts'];

async function newestMtime(path: string): Promise<number> {
  let info;
  try {
    info = await stat(path);
  } catch {
    return 0;
  }
  if (!info.isDirectory()) return info.mtimeMs;
  let newest = 0;
  for (const entry of await readdir(path)) newest = Math.max(newest, await newestMtime(join(path, entry)));
  return newest;
}

export type BuildDecision = { build: false; why: string } | { build: true; why: string };

export async function needsBuild(root: string): Promise<BuildDecision> {
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  if (!pkg.scripts?.build) return { build: false, why: 'no "build" script in package.json' };
  let oldestOutput = Infinity;
  for (const out of OUTPUTS) {
    try {
      oldestOutput = Math.min(oldestOutput, (await stat(join(root, out))).mtimeMs);
    } catch {
      return { build: true, why: `${out} is missing` };
    }
  }
  let newestSource = 0;
  for (const src of SOURCES) newestSource = Math.max(newestSource, await newestMtime(join(root, src)));
  return newestSource > oldestOutput
    ? { build: true, why: 'sources changed since the last build' }
    : { build: false, why: 'dist/ is up to date' };
}

/** Runs `npm run build` in `root`, its output on this console; throws if it fails. */
export function runBuild(root: string): void {
  const result = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0)
    throw new Error(`npm run build failed (exit ${result.status ?? result.signal}); fix the build or start with --no-build`);
}
