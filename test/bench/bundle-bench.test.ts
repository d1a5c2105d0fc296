/**
 * The GPU bench bundle runs from an empty directory with no npm or node on PATH: built with fast
 * compression, copied away from the repository, run on the CPU provider with a tiny config. The
 * FLOPs it prints must be the analytic count for that config and layout.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { configOf } from '../../bench/gpu-bench.ts';
import { transformerFlops } from '../../bench/flops.ts';
import { generatedLayout } from '../../bench/layouts.ts';
import { transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
import { bundleBench, LIMIT_BYTES } from '../../scripts/bundle-bench.ts';

test('the bench bundle runs from an empty directory without npm and prints per-step times and FLOPs', { timeout: 120_000 }, async () => {
  const built = mkdtempSync(join(tmpdir(), 'art-bundle-'));
  const empty = mkdtempSync(join(tmpdir(), 'art-bundle-run-'));
  try {
    const bytes = await bundleBench(join(built, 'b'), 'gzip-fast');
    assert.ok(bytes < LIMIT_BYTES, `bundle is ${bytes} bytes`);
    cpSync(join(built, 'b'), empty, { recursive: true });
    rmSync(join(built, 'b'), { recursive: true, force: true });
    // A PATH with only the tools run.sh uses: no node, npm or npx anywhere on it.
    const bin = join(built, 'bin');
    mkdirSync(bin);
    for (const tool of ['sh', 'dirname', 'basename', 'mktemp', 'rm', 'mkdir', 'cp', 'chmod', 'gzip']) symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
    const env = { PATH: bin, HOME: empty, TMPDIR: empty };
    assert.throws(() => execFileSync('sh', ['-c', 'command -v node || command -v npm || command -v npx'], { env }));
    const out = execFileSync(join(bin, 'sh'), [join(empty, 'run.sh'), '--width', '128', '--double', '1', '--single', '1', '--providers', 'cpu', '--layouts', '64x4', '--steps', '1', '--text', '16', '--precisions', 'fp16'], {
      cwd: empty, encoding: 'utf8', env,
    });
    const m = /per-step fp16 cpu 64x64 4 layers: ([\d.]+) ms; ([\d.]+) GFLOP\/step/.exec(out);
    assert.ok(m, `no per-step line in:\n${out}`);
    assert.ok(Number(m[1]) > 0);
    const c = configOf({ width: 128, double: 1, single: 1 });
    const tokens = transformerTokens(generatedLayout(64, 2, 4).layout).count;
    assert.equal(Number(m[2]), Number((transformerFlops(c, tokens, 16).total / 1e9).toFixed(4)));
    assert.match(out, /full model ms\/step \(extrapolated\)/);
  } finally {
    rmSync(built, { recursive: true, force: true });
    rmSync(empty, { recursive: true, force: true });
  }
});
