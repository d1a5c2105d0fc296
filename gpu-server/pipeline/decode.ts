/**
 * From denoised tokens to pixels, the pure parts: the latents both decoders receive (grey
 * latent outside each box, unscaled) and the VAE's output to 8-bit RGB. (The transparent
 * decoder's output becomes RGBA in `models/transparent-decoder.ts`.)
 */
import { LATENT_CHANNELS, VAE_FACTOR } from '../constants.ts';
import type { TokenGrid } from './layout-tokens.ts';
import { scatterTokens } from './packing.ts';

export interface VaeScaling {
  scalingFactor: number;
  shiftFactor: number;
}

/** `(mean - shift) * scale` in float32: the grey latent in the denoiser's (scaled) space. */
export function greyFromMean(mean: Float32Array, vae: VaeScaling): Float32Array {
  const shift = Math.fround(vae.shiftFactor), scale = Math.fround(vae.scalingFactor);
  return mean.map((m) => Math.fround(m - shift) * scale);
}

/**
 * Full latents `[L, 16, h, w]` for the decoders: every layer filled with the grey latent
 * `[16, h, w]`, the denoised in-box tokens written over it, then unscaled
 * (`x / scale + shift`, float32) as the official pipeline hands them over.
 */
export function decoderLatents(tokens: Float32Array, grid: TokenGrid, grey: Float32Array, vae: VaeScaling): Float32Array {
  const per = grey.length;
  const h = grid.rows * 2, w = grid.cols * 2;
  if (per !== LATENT_CHANNELS * h * w) throw new RangeError(`grey latent has ${per} values, expected ${LATENT_CHANNELS}x${h}x${w}`);
  const full = new Float32Array(grid.layers.length * per);
  for (let l = 0; l < grid.layers.length; l++) full.set(grey, l * per);
  scatterTokens(tokens, grid, full);
  const shift = Math.fround(vae.shiftFactor), scale = Math.fround(vae.scalingFactor);
  for (let i = 0; i < full.length; i++) full[i] = Math.fround(full[i] / scale) + shift;
  return full;
}

/** VAE output `[3, H, W]` -> the pipeline's `clamp(x * 0.5 + 0.5, 0, 1)` in [0, 1] (float32). */
export function vaeToUnit(decoded: Float32Array): Float32Array {
  return decoded.map((x) => Math.min(1, Math.max(0, Math.fround(Math.fround(x * 0.5) + 0.5))));
}

/** Unit-range planes `[3, H, W]` -> interleaved 8-bit RGB, rounded as PIL output is. */
export function unitToRgb(unit: Float32Array, width: number, height: number): Uint8Array {
  const n = width * height;
  if (unit.length !== 3 * n) throw new RangeError(`image of ${unit.length} values does not fit 3x${width}x${height}`);
  const out = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = Math.round(unit[c * n + p] * 255);
  return out;
}

/** Latent size for a canvas. */
export const latentSize = (width: number, height: number) => ({ h: height / VAE_FACTOR, w: width / VAE_FACTOR });
