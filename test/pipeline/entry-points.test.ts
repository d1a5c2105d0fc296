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
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { writeTinyModel } from '../../gpu-server/model-folder/tiny.ts';
import { createPipeline } from '../../gpu-server/pipeline/art-pipeline.ts';
import type { ArtPipeline, GenerateParams } from '../../gpu-server/pipeline/types.ts';
import { GOLDEN } from './golden-data.ts';
import { assertSameImages, assertWrittenImages, differingShare } from './reference-compare.ts';
import { ReferenceGenerator, type ReferenceResult } from './reference-generation.ts';

let root: string;
let model: string;
let pipeline: ArtPipeline;
let reference: ReferenceGenerator;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'art-entry-'));
  model = join(root, 'tiny');
  writeTinyModel(model);
  pipeline = await createPipeline({ modelDir: model, provider: 'cpu' });
  reference = await ReferenceGenerator.open(model);
});
after(async () => {
  await pipeline?.dispose();
  await reference?.release();
  rmSync(root, { recursive: true, force: true });
});

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
  assert.deepEqual(reference.manifest.vae, { scalingFactor: vae.scaling_factor, shiftFactor: vae.shift_factor });
  assert.notEqual(vae.scaling_factor, 1);
  assert.notEqual(vae.shift_factor, 0);
  assert.equal(reference.manifest.transformer.guidanceEmbeds, true);
});

test('createPipeline.generate equals the independently composed generation (guidance 2.5, true CFG 5.5, 3 steps, 96x64, seed 90210)', async () => {
  expected = await reference.generate(PARAMS);
  const r = await pipeline.generate(PARAMS);
  assertSameImages('createPipeline', { layers: r.layers, merged: r.merged.rgb, background: r.background.rgb }, expected);
});

test('each knob moves the output far beyond the tolerance: guidance, true CFG, steps, seed, the VAE factors, the negative prompt, the prompt', async () => {
  expected ??= await reference.generate(PARAMS);
  const variants: [string, Promise<ReferenceResult>][] = [
    ['guidance 4 (hard-coded default)', reference.generate({ ...PARAMS, guidance: 4 })],
    ['true CFG 3.5 (hard-coded default)', reference.generate({ ...PARAMS, trueCfg: 3.5 })],
    ['2 steps', reference.generate({ ...PARAMS, steps: 2 })],
    ['seed + 1', reference.generate({ ...PARAMS, seed: PARAMS.seed + 1 })],
    ['VAE scale 1 and shift 0', reference.generate(PARAMS, { vae: { scalingFactor: 1, shiftFactor: 0 } })],
    ['the prompt as negative prompt', reference.generate(PARAMS, { negativePrompt: PARAMS.prompt })],
    ['another prompt', reference.generate({ ...PARAMS, prompt: 'a blue boat on a calm lake' })],
  ];
  for (const [name, variant] of variants) {
    const share = differingShare(await variant, expected);
    assert.ok(share > 0.05, `${name}: only ${(share * 100).toFixed(2)}% of the values differ by more than one level; the comparison could not see this knob`);
  }
});

test('npm run generate writes what the reference computes, flags passed through (resolution scaling a 192x128 layout to 96)', async () => {
  expected ??= await reference.generate(PARAMS);
  const layoutFile = join(root, 'big.json');
  // Twice the size: --resolution 96 brings it back to PARAMS.layout.
  writeFileSync(layoutFile, JSON.stringify({ caption: 'not this caption', boxes: PARAMS.layout.boxes.map((b) => b.map((v) => v * 2)) }));
  const out = join(root, 'cli');
  const cli = join(import.meta.dirname, '..', '..', 'gpu-server', 'pipeline', 'generate-cli.ts');
  await promisify(execFile)(process.execPath, [
    '--import', 'tsx', cli, '--layout', layoutFile, '--model', model, '--provider', 'cpu', '--prompt', PARAMS.prompt, '--resolution', '96',
    '--steps', String(PARAMS.steps), '--guidance', String(PARAMS.guidance), '--true-cfg', String(PARAMS.trueCfg), '--seed', String(PARAMS.seed), '--out', out,
  ]);
  const desc = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')) as { boxes: number[][]; seed: number };
  assert.deepEqual(desc.boxes, PARAMS.layout.boxes);
  assert.equal(desc.seed, PARAMS.seed);
  assertWrittenImages(out, expected, PARAMS.layout.width, PARAMS.layout.height);
});
