import assert from 'node:assert/strict';
import { test } from 'node:test';
import { unpatchPlanes, unpatchRgba } from '../../gpu-server/pipeline/art-runner.ts';
import { cropImage, decoderLatents, greyFromMean, levelTruncated, unitToRgb, vaeToUnit } from '../../gpu-server/pipeline/decode.ts';
import { latentTokens, transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
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

test('unpatchPlanes/unpatchRgba rebuild the official decoder outputs from its per-token output', () => {
  const layout = goldenLayout('transp_vae');
  const cells = latentTokens(layout);
  const extra = goldenTensors('transp_vae', 'extra_outputs.safetensors');
  const out = goldenTensors('transp_vae', 'outputs.safetensors');
  const planes = unpatchPlanes(extra.f32('tokens_out'), cells, 128, 128);
  const fg = out.f32('decoded_fg'), alpha = out.f32('decoded_alpha'), rgba = out.u8('rgba');
  const P = 128 * 128;
  planes.forEach((p, l) => {
    assert.deepEqual(p.fg, fg.subarray(l * 3 * P, (l + 1) * 3 * P));
    assert.deepEqual(p.alpha, alpha.subarray(l * P, (l + 1) * P));
  });
  unpatchRgba(extra.f32('tokens_out'), cells, 128, 128).forEach((r, l) => assert.deepEqual(r, rgba.subarray(l * P * 4, (l + 1) * P * 4)));
});

test('levels: truncation after (x+1)/2 clamped', () => {
  assert.equal(levelTruncated(-1), 0);
  assert.equal(levelTruncated(-2), 0);
  assert.equal(levelTruncated(1), 255);
  assert.equal(levelTruncated(5), 255);
  assert.equal(levelTruncated(0), 127); // 127.5 truncated
});

test('VAE images: clamp(x/2 + 1/2) then rounded 8-bit RGB', () => {
  const unit = vaeToUnit(Float32Array.from([-3, 0, 3, -1, 0.002, 1]));
  assert.deepEqual(Array.from(unit.subarray(0, 3)), [0, 0.5, 1]);
  // Planar [3, 1, 2] in, interleaved RGB out.
  const rgb = unitToRgb(vaeToUnit(Float32Array.from([-1, 0, 1, 1, 0, -1])), 2, 1);
  assert.deepEqual(Array.from(rgb), [0, 255, 128, 128, 255, 0]);
});

test('cropImage cuts a box out of a canvas', () => {
  const img = Uint8Array.from({ length: 4 * 3 * 2 }, (_, i) => i); // 4x3 canvas, 2 channels
  assert.deepEqual(Array.from(cropImage(img, 4, 2, [1, 1, 3, 3])), [10, 11, 12, 13, 18, 19, 20, 21]);
});
