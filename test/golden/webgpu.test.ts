/**
 * The golden cases on onnxruntime's WebGPU provider, through SwiftShader (a CPU Vulkan that
 * Debian's chromium ships; docs/webgpu.md): the same WGSL kernels a GPU runs, held to the cases'
 * own bars. Skipped, saying why, where SwiftShader or a Vulkan loader is missing. SwiftShader has
 * no fp16, so the fp32 graphs only. Slow: about 4 minutes of CPU for all cases, most of it the VAE.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkCase, readCase } from '../../gpu-server/golden/case.ts';
import { formatReport, reportPasses } from '../../gpu-server/golden/compare.ts';
import { GraphBuilder, memoryWeights } from '../../gpu-server/onnx/graph.ts';
import { attention } from '../../gpu-server/onnx/nn.ts';
import { writeModel } from '../../gpu-server/onnx/onnx-writer.ts';
import { openSession, ort } from '../../gpu-server/onnx/session.ts';
import { useSwiftShader } from '../../gpu-server/onnx/swiftshader.ts';
import { probeWebGpu, referenceAttention } from '../../gpu-server/onnx/webgpu-probe.ts';

const root = new URL('../fixtures/golden/', import.meta.url).pathname;
const skip = useSwiftShader();
if (skip) console.log(`# WebGPU golden cases skipped: ${skip}`);
// The scheduler case has no graph: nothing runs on a provider.
const cases = readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory() && readCase(join(root, d.name)).kind !== 'scheduler').map((d) => d.name).sort();

test('WebGPU opens on SwiftShader and the probe judges its fused attention as running it does', { skip }, async () => {
  const probe = await probeWebGpu();
  assert.ok(probe.usable, JSON.stringify(probe));
  // The fused kernel, opened without the restatement, at 31 (split-reduce path) and 77 tokens (one-kernel path).
  const dir = mkdtempSync(join(tmpdir(), 'art-mha-'));
  try {
    const errors: number[] = [];
    for (const tokens of [31, 77]) {
      const g = new GraphBuilder('mha', 'float32', memoryWeights('none', new Map()));
      const dims = [1, tokens, 32];
      const [q, k, v] = ['q', 'k', 'v'].map((n) => g.input(n, 'float', dims));
      g.output(attention(g, q, k, v, 2, { headDim: 16 }), 'out', 'float', dims);
      writeModel(g, join(dir, 'mha.onnx'));
      const data = ['q', 'k', 'v'].map((_, j) => Float32Array.from({ length: tokens * 32 }, (_, i) => Math.cos(i * 0.61 + j)));
      const fused = await ort.InferenceSession.create(join(dir, 'mha.onnx'), { executionProviders: ['webgpu'] });
      const restated = (await openSession(join(dir, 'mha.onnx'), 'webgpu')).session;
      const feeds = { q: new ort.Tensor('float32', data[0], dims), k: new ort.Tensor('float32', data[1], dims), v: new ort.Tensor('float32', data[2], dims) };
      const ref = referenceAttention(data[0], data[1], data[2], tokens, 2, 16);
      const rel = (out: ort.Tensor) => {
        const o = out.data as Float32Array;
        return o.reduce((m, x, i) => Math.max(m, Math.abs(x - ref[i])), 0) / ref.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      };
      errors.push(rel((await fused.run(feeds)).out));
      assert.ok(rel((await restated.run(feeds)).out) < 1e-5, `the session openSession gives is exact at ${tokens} tokens`);
      await fused.release();
      await restated.release();
    }
    assert.ok(errors[0] < 1e-5, `below 32 tokens the fused kernel is exact (${errors[0]})`);
    assert.equal(probe.fusedAttentionExact, errors[1] < 1e-4, `probe: ${JSON.stringify(probe)}, fused at 77 tokens: ${errors[1]}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const name of cases) {
  test(`golden case ${name} on WebGPU (SwiftShader) meets its own bar`, { skip }, async () => {
    const report = await checkCase(join(root, name), 'webgpu');
    assert.ok(reportPasses(report), formatReport(report, 'webgpu'));
  });
}

test('npm run golden -- --provider webgpu runs the case there and says so', { skip }, () => {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'gpu-server/golden/cli.ts', '--provider', 'webgpu', join(root, 'clip_text')], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /^clip_text {2}\S+clip_text {2}\(on webgpu\)\n {2}ok {3}pooler_output/);
  assert.equal(run.stderr, '', 'nothing from Vulkan, Dawn or onnxruntime');
});
