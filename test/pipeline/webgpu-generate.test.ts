/**
 * The product's entry points on WebGPU: `npm run generate -- --provider webgpu` (which opens the
 * folder through `createPipeline`) against `createPipeline` on the CPU provider, on the same short
 * job, through SwiftShader (docs/webgpu.md). Measured: at most 1 level apart, every value within
 * one level, mean 0.001-0.002 levels per layer. Skipped, saying why, without SwiftShader or a
 * Vulkan loader. About 40 s of CPU: one small job, two steps.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { PNG } from 'pngjs';
import { compareLevels } from '../../gpu-server/golden/compare.ts';
import { writeTinyModel } from '../../gpu-server/model-folder/tiny.ts';
import { useSwiftShader } from '../../gpu-server/onnx/swiftshader.ts';
import { createPipeline } from '../../gpu-server/pipeline/art-pipeline.ts';
import { layerOnCanvas } from '../../gpu-server/pipeline/generate-output.ts';
import type { GenerateParams } from '../../gpu-server/pipeline/types.ts';

const skip = useSwiftShader();
if (skip) console.log(`# WebGPU generation skipped: ${skip}`);
const root = mkdtempSync(join(tmpdir(), 'art-webgpu-gen-'));
after(() => rmSync(root, { recursive: true, force: true }));

const PARAMS: GenerateParams = {
  prompt: 'a kite over a barn',
  layout: { width: 48, height: 32, boxes: [[0, 0, 48, 32], [0, 0, 48, 32], [16, 0, 48, 32]] },
  steps: 2,
  guidance: 2.5,
  trueCfg: 5.5,
  seed: 7,
};
/** The entry points' own bar (test/pipeline/entry-points.test.ts): one level, on at most 0.1% of the values. */
const LEVELS = 1;
const SHARE = 0.999;

test('npm run generate --provider webgpu writes what createPipeline computes on the CPU, within one level', { skip }, async () => {
  const model = join(root, 'tiny');
  writeTinyModel(model);
  const pipeline = await createPipeline({ modelDir: model, provider: 'cpu' });
  const expected = await pipeline.generate(PARAMS);
  await pipeline.dispose();

  const layoutFile = join(root, 'layout.json');
  writeFileSync(layoutFile, JSON.stringify({ boxes: PARAMS.layout.boxes }));
  const out = join(root, 'webgpu');
  const cli = join(import.meta.dirname, '..', '..', 'gpu-server', 'pipeline', 'generate-cli.ts');
  const run = await promisify(execFile)(process.execPath, [
    '--import', 'tsx', cli, '--layout', layoutFile, '--model', model, '--provider', 'webgpu', '--prompt', PARAMS.prompt,
    '--steps', String(PARAMS.steps), '--guidance', String(PARAMS.guidance), '--true-cfg', String(PARAMS.trueCfg), '--seed', String(PARAMS.seed), '--out', out,
  ]);
  assert.match(run.stderr, /provider: webgpu/);
  assert.doesNotMatch(run.stderr, /Vulkan|XDG_RUNTIME_DIR|W:onnxruntime/, 'nothing from Vulkan, Dawn or onnxruntime in the terminal');

  const { width, height } = PARAMS.layout;
  const png = (name: string) => PNG.sync.read(readFileSync(join(out, name))).data;
  expected.layers.forEach((l, i) => {
    const c = compareLevels(`layer_${i}.png`, png(`layer_${i}.png`), layerOnCanvas(l, width, height), LEVELS, SHARE);
    assert.ok(c.pass, JSON.stringify(c));
  });
  const rgbOf = (rgba: Uint8Array) => rgba.filter((_, k) => k % 4 !== 3);
  for (const k of ['merged', 'background'] as const) {
    const c = compareLevels(`${k}.png`, rgbOf(png(`${k}.png`)), expected[k].rgb, LEVELS, SHARE);
    assert.ok(c.pass, JSON.stringify(c));
  }
});
