/**
 * The code type-checks: the Node and browser parts with the root tsconfig (strict), the plugin
 * against @figma/plugin-typings with its own. tsx runs the tests without checking types, so
 * without this a type error would only show in an editor.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { test } from 'node:test';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const check = (project: string) => spawnSync(process.execPath, [tsc, '--noEmit', '-p', project], { encoding: 'utf8', cwd: new URL('../..', import.meta.url).pathname });

for (const [project, what] of [['.', 'gpu-server, bridge, ui, scripts, tests and benchmarks'], ['plugin', 'the plugin against @figma/plugin-typings']]) {
  test(`${what} type-check`, { timeout: 120_000 }, () => {
    const run = check(project);
    assert.equal(run.status, 0, run.stdout + run.stderr);
  });
}
