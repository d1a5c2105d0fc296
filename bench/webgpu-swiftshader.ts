/**
 * One transformer step on onnxruntime's WebGPU provider through SwiftShader (a CPU Vulkan; see
 * docs/webgpu.md) against the CPU provider, same graph, same feeds, same run. NOT a GPU figure:
 * SwiftShader runs the WGSL kernels on this machine's CPU cores, so this says what the WebGPU
 * path costs on a CPU, so that nobody mistakes it for GPU speed. Also times the fused
 * MultiHeadAttention (wrong on SwiftShader, docs/webgpu.md) against the MatMul + Softmax + MatMul
 * restatement the project opens there, to show what the restatement costs.
 * Run: `npm run bench -- webgpu` (minutes on 2 cores: SwiftShader runs a step in 100 s here).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTransformer, parseTransformerConfig } from '../gpu-server/models/transformer.ts';
import { writeModel } from '../gpu-server/onnx/onnx-writer.ts';
import { openSession, ort } from '../gpu-server/onnx/session.ts';
import { useSwiftShader } from '../gpu-server/onnx/swiftshader.ts';
import { probeWebGpu } from '../gpu-server/onnx/webgpu-probe.ts';
import { feedsFor, MID_CONFIG } from './crop-vs-full.ts';
import { generatedLayout } from './layouts.ts';
import { randomTransformerWeights } from './random-transformer.ts';
import { fixed, machineLine, median, table, timeWithin } from './stats.ts';

/** A 128x128 canvas, 3 child layers, 64 text tokens: small enough for SwiftShader on 2 cores. */
const SIDE = 128;
const CHILDREN = 3;
const TEXT_TOKENS = 64;
const BUDGET_MS = 8000;

export async function main(): Promise<void> {
  console.log(`\n== One transformer step: WebGPU on SwiftShader (a CPU Vulkan) vs the CPU provider. NOT A GPU FIGURE ==\n${machineLine()}`);
  const why = useSwiftShader();
  if (why) {
    console.log(`skipped: ${why}`);
    return;
  }
  const probe = await probeWebGpu();
  if (!probe.usable) {
    console.log(`skipped: ${probe.reason}`);
    return;
  }
  const c = parseTransformerConfig(MID_CONFIG, 'bench mid config');
  const dir = mkdtempSync(join(tmpdir(), 'art-webgpu-bench-'));
  try {
    const path = join(dir, 'transformer.onnx');
    writeModel(buildTransformer(c, randomTransformerWeights(c), 'float32'), path);
    const { feeds, imageTokens } = feedsFor(c, generatedLayout(SIDE, CHILDREN, 4).layout, TEXT_TOKENS);
    const sessions: [string, () => Promise<ort.InferenceSession>][] = [
      ['cpu', async () => (await openSession(path, 'cpu')).session],
      [`webgpu (SwiftShader), ${probe.fusedAttentionExact ? 'fused attention' : 'attention restated as MatMul+Softmax+MatMul (what runs here)'}`, async () => (await openSession(path, 'webgpu')).session],
    ];
    if (!probe.fusedAttentionExact) {
      sessions.push(['webgpu (SwiftShader), fused attention (wrong here: cost only)', () => ort.InferenceSession.create(path, { executionProviders: ['webgpu'], graphOptimizationLevel: 'all', logSeverityLevel: 3 })]);
    }
    const rows: (string | number)[][] = [];
    let baseline = 0;
    for (const [name, open] of sessions) {
      const session = await open();
      try {
        const ms = median(await timeWithin(() => session.run(feeds), BUDGET_MS, 5));
        baseline ||= ms;
        rows.push([name, fixed(ms), `${fixed(ms / baseline, 1)}x`]);
      } finally {
        await session.release();
      }
    }
    console.log(table(['provider', 'ms/step (median)', 'vs cpu'], rows));
    console.log(`How to read: one step of a random mid-size transformer (${c.numLayers} double + ${c.numSingleLayers} single blocks, width ${c.heads * c.headDim}), ${imageTokens} image + ${TEXT_TOKENS} text tokens, fp32, median after one warm-up. SwiftShader computes the WebGPU kernels on the CPU, so the ratio is the WebGPU path's overhead on a CPU: NOT a GPU speed. A GPU needs its own run (bench/gpu-bench.ts).`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (/webgpu-swiftshader\.ts$/.test(process.argv[1] ?? '')) await main();
