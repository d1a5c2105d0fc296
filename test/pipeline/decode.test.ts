import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decoderLatents, greyFromMean, unitToRgb, vaeToUnit } from '../../gpu-server/pipeline/decode.ts';
import { transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
import { gatherTokens, scatterTokens } from '../../gpu-server/pipeline/packing.ts';
import { goldenLayout, goldenTensors, maxAbsDiff } from './golden-data.ts';

const VAE = { scalingFactor: 0.3611, shiftFactor: 0.1159 };

test('greyFromMean reproduces the official grey latent bit for bit', () => {
  const vae = goldenTensors('vae', 'outputs.safetensors');
  assert.equal(maxAbsDiff(greyFromMean(vae.f32('encoded_mean'), VAE), vae.f32('grey_latent')), 0);
});

test('decoderLatents: denoised tokens unscaled exactly inside the boxes, grey outside', () => {
  const grid = transformerTokens(goldenLayout('pipeline'));
  const extra = goldenTensors('pipeline', 'extra_outputs.safetensors');
  const expected = goldenTensors('pipeline', 'outputs.safetensors').f32('latents_for_decoders');
  const grey = greyFromMean(goldenTensors('vae', 'outputs.safetensors').f32('encoded_mean'), VAE);
  const got = decoderLatents(gatherTokens(extra.f32('latents_denoised'), grid), grid, grey, VAE);
  const mask = scatterTokens(new Float32Array(grid.count * 64).fill(1), grid, new Float32Array(got.length));
  const inside = (a: Float32Array) => a.filter((_, i) => mask[i]);
  assert.equal(maxAbsDiff(inside(got), inside(expected)), 0);
  // Outside, the pipeline's own VAE encode of the zero image differs from the vae case's by a few ulp.
  let maxRef = 0;
  for (const v of expected) maxRef = Math.max(maxRef, Math.abs(v));
  assert.ok(maxAbsDiff(got, expected) / maxRef < 1e-5);
  // Outside the boxes every layer holds the same (grey) values.
  const per = got.length / 5;
  for (let i = 0; i < per; i++) if (!mask[per * 2 + i] && !mask[per * 4 + i]) assert.equal(got[per * 2 + i], got[per * 4 + i]);
});

test('VAE images: clamp(x/2 + 1/2) then rounded 8-bit RGB', () => {
  const unit = vaeToUnit(Float32Array.from([-3, 0, 3, -1, 0.002, 1]));
  assert.deepEqual(Array.from(unit.subarray(0, 3)), [0, 0.5, 1]);
  // Planar [3, 1, 2] in, interleaved RGB out.
  const rgb = unitToRgb(vaeToUnit(Float32Array.from([-1, 0, 1, 1, 0, -1])), 2, 1);
  assert.deepEqual(Array.from(rgb), [0, 255, 128, 128, 255, 0]);
});

