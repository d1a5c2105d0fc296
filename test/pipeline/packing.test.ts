import assert from 'node:assert/strict';
import { test } from 'node:test';
import { latentTokens, transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
import { gatherCells, gatherTokens, packLatent, scatterTokens, unpackLatent } from '../../gpu-server/pipeline/packing.ts';
import { goldenLayout, goldenTensors } from './golden-data.ts';

const ramp = (n: number) => Float32Array.from({ length: n }, (_, i) => i);

test('packLatent orders each token channel-major over its 2x2 cell', () => {
  const h = 4, w = 6;
  const latent = ramp(16 * h * w);
  const packed = packLatent(latent, h, w);
  // token (cy=1, cx=2), channel 3, dy=1, dx=0 -> latent[3, 3, 4]
  const t = (1 * 3 + 2) * 64;
  assert.equal(packed[t + 3 * 4 + 1 * 2 + 0], latent[(3 * h + 3) * w + 4]);
  assert.deepEqual(unpackLatent(packed, h, w), latent);
});

test('gatherTokens equals packing each layer and keeping its box', () => {
  const layout = goldenLayout('transformer');
  const grid = transformerTokens(layout);
  const h = 16, w = 16, L = layout.boxes.length;
  const latents = Float32Array.from({ length: L * 16 * h * w }, (_, i) => Math.sin(i));
  const tokens = gatherTokens(latents, grid);
  for (const l of grid.layers) {
    const packed = packLatent(latents.subarray(l.layer * 16 * h * w, (l.layer + 1) * 16 * h * w), h, w);
    let t = l.offset;
    for (let y = l.y1; y < l.y2; y++) {
      for (let x = l.x1; x < l.x2; x++, t++) {
        assert.deepEqual(tokens.subarray(t * 64, t * 64 + 64), packed.subarray((y * 8 + x) * 64, (y * 8 + x) * 64 + 64));
      }
    }
  }
});

test('scatterTokens writes exactly the official in-box positions and inverts gatherTokens there', () => {
  const layout = goldenLayout('transformer');
  const grid = transformerTokens(layout);
  const mask = goldenTensors('transformer', 'extra_outputs.safetensors').u8('inside_box_mask');
  const ones = new Float32Array(grid.count * 64).fill(1);
  const full = scatterTokens(ones, grid, new Float32Array(mask.length));
  assert.deepEqual(Array.from(full), Array.from(mask));
  const latents = Float32Array.from({ length: mask.length }, (_, i) => Math.cos(i));
  const back = scatterTokens(gatherTokens(latents, grid), grid, new Float32Array(mask.length));
  back.forEach((v, i) => assert.equal(v, mask[i] ? latents[i] : 0));
});

test('gatherCells gives the transparent decoder the official tokens_in', () => {
  const layout = goldenLayout('transp_vae');
  const latents = goldenTensors('transp_vae', 'inputs.safetensors').f32('latents');
  const expected = goldenTensors('transp_vae', 'extra_outputs.safetensors').f32('tokens_in');
  assert.deepEqual(gatherCells(latents, latentTokens(layout)), expected);
});

test('wrong sizes are refused', () => {
  assert.throws(() => packLatent(new Float32Array(10), 2, 2), /expected 64/);
  const grid = transformerTokens(goldenLayout('transformer'));
  assert.throws(() => gatherTokens(new Float32Array(16), grid), /latents has 16 values/);
});
