/**
 * CLD's condition from the flat image (`prepare_image`), the pure parts: the VAE encoder's input,
 * the packed condition (the scaled VAE mean plus a mask channel of ones, packed 2x2 to 68
 * channels) and each transformer token's row of it (the same condition for every layer).
 */
import { LATENT_CHANNELS } from '../constants.ts';
import { greyFromMean, type VaeScaling } from './decode.ts';
import type { TokenGrid } from './layout-tokens.ts';
import { overWhite } from './flat-image.ts';
import { packLatent } from './packing.ts';
import type { SourceImage } from './types.ts';

/** Latent channels plus the mask channel. */
const CONDITION_CHANNELS = LATENT_CHANNELS + 1;
/** Packed condition width: 17 channels x 2 x 2. */
export const PACKED_CONDITION = CONDITION_CHANNELS * 4;

/**
 * The image as the VAE encoder takes it, `[3, H, W]` in [-1, 1] (`2 * v/255 - 1` in float32, as
 * diffusers' image processor computes it). RGBA is composited over white first: CLD reads RGB.
 */
export function imageToVaeInput(image: SourceImage): Float32Array {
  const { width, height, channels, pixels } = image;
  const px = width * height;
  if (pixels.length !== px * channels) throw new RangeError(`image has ${pixels.length} bytes, expected ${width}x${height}x${channels}`);
  const out = new Float32Array(3 * px);
  for (let i = 0; i < px; i++) {
    const a = channels === 4 ? pixels[i * 4 + 3] : 255;
    for (let c = 0; c < 3; c++) {
      const v = pixels[i * channels + c];
      const level = overWhite(v, a);
      out[c * px + i] = Math.fround(Math.fround(level / 255) * 2 - 1);
    }
  }
  return out;
}

/**
 * The VAE mean `[16, h, w]` -> the packed condition `[(h/2)(w/2), 68]`: `(mean - shift) * scale`,
 * then a channel of ones (`1 - mask` of CLD's blank mask), packed with the latents' rule.
 */
export function packCondition(mean: Float32Array, h: number, w: number, vae: VaeScaling): Float32Array {
  const plane = h * w;
  if (mean.length !== LATENT_CHANNELS * plane) throw new RangeError(`VAE mean has ${mean.length} values, expected ${LATENT_CHANNELS}x${h}x${w}`);
  const channels = new Float32Array(CONDITION_CHANNELS * plane);
  channels.set(greyFromMean(mean, vae));
  channels.fill(1, LATENT_CHANNELS * plane);
  return packLatent(channels, h, w, CONDITION_CHANNELS);
}

/** Each token's condition row `[N, 68]`: the cell `(y, x)` of its id, whatever its layer. */
export function tokenCondition(condition: Float32Array, grid: TokenGrid): Float32Array {
  if (condition.length !== grid.rows * grid.cols * PACKED_CONDITION) {
    throw new RangeError(`condition has ${condition.length} values, expected ${grid.rows}x${grid.cols} cells x ${PACKED_CONDITION}`);
  }
  const out = new Float32Array(grid.count * PACKED_CONDITION);
  for (let t = 0; t < grid.count; t++) {
    const y = grid.ids[t * 3 + 1], x = grid.ids[t * 3 + 2];
    const from = (y * grid.cols + x) * PACKED_CONDITION;
    out.set(condition.subarray(from, from + PACKED_CONDITION), t * PACKED_CONDITION);
  }
  return out;
}
