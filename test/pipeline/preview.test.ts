import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Layout } from '../../domain/layout.ts';
import { LATENT_CHANNELS } from '../../gpu-server/constants.ts';
import { createPipeline } from '../../gpu-server/pipeline/art-pipeline.ts';
import { denoise } from '../../gpu-server/pipeline/denoise.ts';
import { transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
import { packLatent } from '../../gpu-server/pipeline/packing.ts';
import { CALIBRATION_TILE, CALIBRATION_TILES, calibrationColors, fitLatentRgb, mergedPreview } from '../../gpu-server/pipeline/preview.ts';
import { fluxSchedule } from '../../gpu-server/pipeline/scheduler.ts';
import type { RgbImage } from '../../gpu-server/pipeline/types.ts';

const VAE = { scalingFactor: 0.5, shiftFactor: 0.1 };

/** A stand-in VAE encoder that is exactly linear in the colour: latent = A · rgb + b. */
const A = Array.from({ length: LATENT_CHANNELS }, (_, c) => [Math.sin(c + 1), Math.cos(2 * c + 1), Math.sin(3 * c + 2)]);
const encodeCell = (rgb: number[]) => A.map((row, c) => row[0] * rgb[0] + row[1] * rgb[1] + row[2] * rgb[2] + 0.05 * c);

test('the latent -> RGB map fitted on the calibration tiles inverts a linear encoder', () => {
  const side = (CALIBRATION_TILE / 8) * CALIBRATION_TILES;
  const colors = calibrationColors();
  const mean = new Float32Array(LATENT_CHANNELS * side * side);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const cell = encodeCell(colors[Math.floor(y / 4) * CALIBRATION_TILES + Math.floor(x / 4)]);
      cell.forEach((v, c) => (mean[(c * side + y) * side + x] = v));
    }
  }
  const map = fitLatentRgb(mean);
  // A colour the fit never saw comes back from its latent.
  const probe = [0.3, 0.6, 0.8];
  const latent = encodeCell(probe);
  for (let c = 0; c < 3; c++) {
    let v = map.weights[LATENT_CHANNELS * 3 + c];
    latent.forEach((l, k) => (v += l * map.weights[k * 3 + c]));
    assert.ok(Math.abs(v - probe[c]) < 1e-3, `channel ${c}: ${v} vs ${probe[c]}`);
  }
});

test('the merged preview maps layer 0 (denoiser space) to a 1/8-size RGB image', () => {
  const layout: Layout = { width: 32, height: 16, boxes: [[0, 0, 32, 16], [0, 0, 32, 16], [16, 0, 32, 16]] };
  const grid = transformerTokens(layout);
  const h = 2, w = 4;
  const identity = new Float64Array(17 * 3);
  for (let c = 0; c < 3; c++) identity[c * 3 + c] = 1; // rgb = channels 0..2 in VAE space
  const latent = new Float32Array(LATENT_CHANNELS * h * w);
  for (let p = 0; p < h * w; p++) for (let c = 0; c < 3; c++) latent[c * h * w + p] = ((p / (h * w)) * (c + 1)) / 3;
  // Denoiser space: (vae - shift) * scale.
  const scaled = latent.map((v) => (v - VAE.shiftFactor) * VAE.scalingFactor);
  const tokens = new Float32Array(grid.count * 64);
  tokens.set(packLatent(scaled, h, w), 0);
  tokens.fill(9, grid.layers[1].offset * 64); // other layers must not leak in
  const img = mergedPreview(tokens, grid, { weights: identity }, VAE);
  assert.deepEqual([img.width, img.height], [4, 2]);
  for (let p = 0; p < h * w; p++) for (let c = 0; c < 3; c++) assert.ok(Math.abs(img.rgb[p * 3 + c] - Math.round(latent[c * h * w + p] * 255)) <= 1);
});

test('denoise hands out the clean-latent estimate x - sigma * v; it ends at the final latents', async () => {
  const schedule = fluxSchedule(4, 16);
  const initial = Float32Array.from({ length: 8 }, (_, i) => i / 4);
  const v = 0.5;
  const estimates: Float32Array[] = [];
  const final = await denoise(initial, { predict: async (l) => ({ cond: l.map(() => v) }) }, { schedule, trueCfg: 1, onStep: (_d, _t, _l, _p, est) => estimates.push(est()) });
  // A constant velocity moves every estimate to the same x0 = initial - v (sigma starts at 1).
  for (const e of estimates) e.forEach((x, i) => assert.ok(Math.abs(x - (initial[i] - v)) < 1e-6));
  assert.deepEqual(estimates.at(-1), final);
});

test('the pipeline sends one preview per step when asked, and none otherwise', async () => {
  const pipeline = await createPipeline({ provider: 'cpu' });
  try {
    const layout: Layout = { width: 64, height: 32, boxes: [[0, 0, 64, 32], [0, 0, 64, 32], [16, 0, 48, 32]] };
    const params = { prompt: 'preview', layout, steps: 3, guidance: 4, trueCfg: 3.5, seed: 1 };
    const previews: [RgbImage, number][] = [];
    const a = await pipeline.generate(params, { onPreview: (img, step) => previews.push([img, step]) });
    assert.deepEqual(previews.map(([, s]) => s), [1, 2, 3]);
    assert.deepEqual([previews[0][0].width, previews[0][0].height], [8, 4]);
    assert.equal(previews[0][0].rgb.length, 8 * 4 * 3);
    const b = await pipeline.generate(params);
    assert.deepEqual(b.layers[2].rgba, a.layers[2].rgba, 'previews do not change the result');
  } finally {
    await pipeline.dispose();
  }
});
