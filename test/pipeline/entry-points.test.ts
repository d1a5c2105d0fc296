/**
 * The product's own entry points, `createPipeline` and `npm run generate`, checked numerically
 * against a generation composed independently in the test (reference-generation.ts) with
 * non-default knobs: guidance, true CFG, steps, resolution, seed, a non-square canvas. Also
 * shows that each knob the reference honours moves the output far beyond the tolerance, so a
 * pipeline that ignored one (a hard-coded guidance or CFG scale, VAE factors not taken from the
 * manifest, the prompt as negative prompt) fails here.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import type { GenerateParams } from '../../gpu-server/pipeline/types.ts';
import { GOLDEN } from './golden-data.ts';
import { assertSameImages, assertWrittenImages, differingShare } from './reference-compare.ts';
import type { ReferenceResult } from './reference-generation.ts';
import { useTinySetup } from './tiny-setup.ts';

const tiny = useTinySetup('art-entry-');

// Non-default everything; a 96x64 canvas (3:2) with two overlapping child layers.
const PARAMS: GenerateParams = {
  prompt: 'a green kite over a red barn',
  layout: { width: 96, height: 64, boxes: [[0, 0, 96, 64], [0, 0, 96, 64], [16, 16, 64, 48], [48, 0, 96, 32]] },
  steps: 3,
  guidance: 2.5,
  trueCfg: 5.5,
  seed: 90210,
};

let expected: ReferenceResult;

test('the tiny model folder carries the golden VAE factors (not 1 and 0), so a pipeline ignoring them is visible', () => {
  const vae = JSON.parse(readFileSync(join(GOLDEN, 'vae', 'config.json'), 'utf8')) as { scaling_factor: number; shift_factor: number };
  assert.deepEqual(tiny.reference.manifest.vae, { scalingFactor: vae.scaling_factor, shiftFactor: vae.shift_factor });
  assert.notEqual(vae.scaling_factor, 1);
  assert.notEqual(vae.shift_factor, 0);
  assert.equal(tiny.reference.manifest.transformer.guidanceEmbeds, true);
});

test('createPipeline.generate equals the independently composed generation (guidance 2.5, true CFG 5.5, 3 steps, 96x64, seed 90210)', async () => {
  expected = await tiny.reference.generate(PARAMS);
  const r = await tiny.pipeline.generate(PARAMS);
  assertSameImages('createPipeline', { layers: r.layers, merged: r.merged.rgb, background: r.background.rgb }, expected);
});

test('each knob moves the output far beyond the tolerance: guidance, true CFG, steps, seed, the VAE factors, the negative prompt, the prompt', async () => {
  expected ??= await tiny.reference.generate(PARAMS);
  const variants: [string, Promise<ReferenceResult>][] = [
    ['guidance 4 (hard-coded default)', tiny.reference.generate({ ...PARAMS, guidance: 4 })],
    ['true CFG 3.5 (hard-coded default)', tiny.reference.generate({ ...PARAMS, trueCfg: 3.5 })],
    ['2 steps', tiny.reference.generate({ ...PARAMS, steps: 2 })],
    ['seed + 1', tiny.reference.generate({ ...PARAMS, seed: PARAMS.seed + 1 })],
    ['VAE scale 1 and shift 0', tiny.reference.generate(PARAMS, { vae: { scalingFactor: 1, shiftFactor: 0 } })],
    ['the prompt as negative prompt', tiny.reference.generate(PARAMS, { negativePrompt: PARAMS.prompt })],
    ['another prompt', tiny.reference.generate({ ...PARAMS, prompt: 'a blue boat on a calm lake' })],
  ];
  for (const [name, variant] of variants) {
    const share = differingShare(await variant, expected);
    assert.ok(share > 0.05, `${name}: only ${(share * 100).toFixed(2)}% of the values differ by more than one level; the comparison could not see this knob`);
  }
});

test('npm run generate writes what the reference computes, flags passed through (resolution scaling a 192x128 layout to 96)', async () => {
  expected ??= await tiny.reference.generate(PARAMS);
  const layoutFile = join(tiny.root, 'big.json');
  // Twice the size: --resolution 96 brings it back to PARAMS.layout.
  writeFileSync(layoutFile, JSON.stringify({ caption: 'not this caption', boxes: PARAMS.layout.boxes.map((b) => b.map((v) => v * 2)) }));
  const out = join(tiny.root, 'cli');
  const cli = join(import.meta.dirname, '..', '..', 'gpu-server', 'pipeline', 'generate-cli.ts');
  await promisify(execFile)(process.execPath, [
    '--import', 'tsx', cli, '--layout', layoutFile, '--model', tiny.model, '--provider', 'cpu', '--prompt', PARAMS.prompt, '--resolution', '96',
    '--steps', String(PARAMS.steps), '--guidance', String(PARAMS.guidance), '--true-cfg', String(PARAMS.trueCfg), '--seed', String(PARAMS.seed), '--out', out,
  ]);
  const desc = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')) as { boxes: number[][]; seed: number };
  assert.deepEqual(desc.boxes, PARAMS.layout.boxes);
  assert.equal(desc.seed, PARAMS.seed);
  assertWrittenImages(out, expected, PARAMS.layout.width, PARAMS.layout.height);
});
