/**
 * Live previews while denoising, without running the VAE: the merged layer's current estimate of
 * the clean latent (`x0 = x - sigma * v`), each latent cell's 16 channels mapped to RGB by a
 * linear map. The map is fitted once per pipeline from the model's own VAE encoder on an image of
 * known colour tiles, so it holds for whichever weights are loaded (with the random tiny model the
 * preview is noise, like its images).
 */
import { MERGED_LAYER } from '../../domain/layout.ts';
import { LATENT_CHANNELS, VAE_FACTOR } from '../constants.ts';
import type { VaeScaling } from './decode.ts';
import type { TokenGrid } from './layout-tokens.ts';
import { unpackLatent } from './packing.ts';
import type { RgbImage } from './types.ts';

const FEATURES = LATENT_CHANNELS + 1; // 16 channels and a bias

/** RGB in [0, 1] of a latent cell in VAE space: `[r, g, b] = [cell, 1] · weights`, weights `[17, 3]`. */
export interface LatentRgbMap {
  weights: Float64Array;
}

/** Pixels of one calibration tile, and the latent cells of its inside (away from the tile's edges). */
export const CALIBRATION_TILE = 32;
export const CALIBRATION_TILES = 4; // per side: a 128x128 image of 16 tiles

/** Tile colours: the corners of the RGB cube and greys and mid tones, so the fit sees every direction. */
export function calibrationColors(): [number, number, number][] {
  const colors: [number, number, number][] = [];
  for (let i = 0; i < CALIBRATION_TILES * CALIBRATION_TILES; i++) {
    colors.push([(i & 1) ? 1 : 0.1, (i & 2) ? 0.95 : 0.15, (i & 4) ? 0.9 : 0.05].map((v) => (i & 8 ? v * 0.5 + 0.25 : v)) as [number, number, number]);
  }
  return colors;
}

/** The calibration image `[3, H, W]` in the VAE's [-1, 1] range. */
export function calibrationImage(): { image: Float32Array; size: number } {
  const size = CALIBRATION_TILE * CALIBRATION_TILES;
  const image = new Float32Array(3 * size * size);
  const colors = calibrationColors();
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const rgb = colors[Math.floor(y / CALIBRATION_TILE) * CALIBRATION_TILES + Math.floor(x / CALIBRATION_TILE)];
      for (let c = 0; c < 3; c++) image[(c * size + y) * size + x] = rgb[c] * 2 - 1;
    }
  }
  return { image, size };
}

/** Least squares with a small ridge, by the normal equations (17 unknowns per colour). */
function solve(rows: number[][], targets: number[][], ridge: number): Float64Array {
  const n = FEATURES;
  const a = Array.from({ length: n }, (_, i) => Array.from({ length: n + 3 }, (_, j) => (i === j && i < n - 1 ? ridge : 0)));
  rows.forEach((r, k) => {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) a[i][j] += r[i] * r[j];
      for (let c = 0; c < 3; c++) a[i][n + c] += r[i] * targets[k][c];
    }
  });
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r][col]) > Math.abs(a[pivot][col])) pivot = r;
    [a[col], a[pivot]] = [a[pivot], a[col]];
    const p = a[col][col] || 1e-12;
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = a[r][col] / p;
      for (let j = col; j < n + 3; j++) a[r][j] -= f * a[col][j];
    }
  }
  const w = new Float64Array(n * 3);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) w[i * 3 + c] = a[i][n + c] / (a[i][i] || 1e-12);
  return w;
}

/** Fits the map from the VAE encoder's mean `[16, h, w]` of `calibrationImage()`. */
export function fitLatentRgb(mean: Float32Array): LatentRgbMap {
  const cellsPerTile = CALIBRATION_TILE / VAE_FACTOR;
  const side = CALIBRATION_TILES * cellsPerTile;
  if (mean.length !== LATENT_CHANNELS * side * side) throw new RangeError(`calibration latent has ${mean.length} values, expected ${LATENT_CHANNELS}x${side}x${side}`);
  const colors = calibrationColors();
  const rows: number[][] = [];
  const targets: number[][] = [];
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const iy = y % cellsPerTile, ix = x % cellsPerTile;
      if (iy === 0 || ix === 0 || iy === cellsPerTile - 1 || ix === cellsPerTile - 1) continue; // edges mix tiles
      const row = Array.from({ length: LATENT_CHANNELS }, (_, c) => mean[(c * side + y) * side + x]);
      row.push(1);
      rows.push(row);
      targets.push(colors[Math.floor(y / cellsPerTile) * CALIBRATION_TILES + Math.floor(x / cellsPerTile)]);
    }
  }
  return { weights: solve(rows, targets, 1e-3) };
}

/**
 * The merged layer's preview `(W/8) x (H/8)` from packed in-box tokens (denoiser space):
 * unscaled to VAE space, then mapped to RGB.
 */
export function mergedPreview(tokens: Float32Array, grid: TokenGrid, map: LatentRgbMap, vae: VaeScaling): RgbImage {
  const merged = grid.layers[MERGED_LAYER];
  const h = grid.rows * 2, w = grid.cols * 2;
  const per = merged.count * 64;
  const latent = unpackLatent(tokens.subarray(merged.offset * 64, merged.offset * 64 + per), h, w);
  const rgb = new Uint8Array(h * w * 3);
  const wts = map.weights;
  for (let p = 0; p < h * w; p++) {
    for (let c = 0; c < 3; c++) {
      let v = wts[LATENT_CHANNELS * 3 + c];
      for (let k = 0; k < LATENT_CHANNELS; k++) v += (latent[k * h * w + p] / vae.scalingFactor + vae.shiftFactor) * wts[k * 3 + c];
      rgb[p * 3 + c] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
  }
  return { width: w, height: h, rgb };
}
