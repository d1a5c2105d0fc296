/**
 * `npm ci` runs no dependency's install script with npm 10 or 11 (README, "Two commands"):
 * onnxruntime-node's would download its CUDA provider from NuGet. npm 11 reads `allowScripts` in
 * package.json; npm 10 does not, so `.npmrc` sets `ignore-scripts`, a config every npm knows
 * (no "Unknown project config" warning on every command).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { z } from 'zod';

const root = new URL('../..', import.meta.url).pathname;
const readJson = (file: string): unknown => JSON.parse(readFileSync(`${root}${file}`, 'utf8'));

test('.npmrc turns install scripts off with no warning from npm', () => {
  // The npm that runs the tests when started by `npm test`, else the one on PATH. Its own
  // npm_config_* variables are left out so that the child reads .npmrc itself.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_config_')));
  const npm = process.env.npm_execpath;
  const run = npm
    ? spawnSync(process.execPath, [npm, 'config', 'get', 'ignore-scripts'], { cwd: root, env, encoding: 'utf8' })
    : spawnSync('npm', ['config', 'get', 'ignore-scripts'], { cwd: root, env, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'true');
  assert.doesNotMatch(run.stderr, /warn/i);
});

test('every locked package with an install script is denied in allowScripts (npm 11)', () => {
  const lock = z.object({ packages: z.record(z.string(), z.object({ hasInstallScript: z.boolean().optional() }).passthrough()) }).parse(readJson('package-lock.json'));
  const pkg = z.object({ allowScripts: z.record(z.string(), z.boolean()) }).parse(readJson('package.json'));
  const withScripts = Object.entries(lock.packages)
    .filter(([, entry]) => entry.hasInstallScript === true)
    .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
  assert.ok(withScripts.includes('onnxruntime-node'), 'onnxruntime-node has an install script in the lockfile');
  for (const name of withScripts) assert.equal(pkg.allowScripts[name], false, `${name} has an install script: deny it in package.json's allowScripts`);
});
