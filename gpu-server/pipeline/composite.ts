/**
 * The background with each child layer (index 2 and up) drawn over it in order ("over"
 * operator, in float, rounded once at the end). What `npm run generate` writes as
 * `merged_rgba.png`, and a decomposition's merged image (CLD's infer.py: the VAE-decoded
 * background with the RGBA layers 2.. alpha-composited over it in order).
 */
import { BACKGROUND_LAYER, MERGED_LAYER } from '../../domain/layout.ts';
import type { LayerImage, RgbImage } from './types.ts';

export function composite(background: RgbImage, layers: readonly LayerImage[]): RgbImage {
  const { width, height } = background;
  const out = Float64Array.from(background.rgb);
  for (const layer of layers) {
    if (layer.index === MERGED_LAYER || layer.index === BACKGROUND_LAYER) continue;
    const [x1, y1] = layer.box;
    for (let y = 0; y < layer.height; y++) {
      for (let x = 0; x < layer.width; x++) {
        const s = (y * layer.width + x) * 4;
        const a = layer.rgba[s + 3] / 255;
        const d = ((y1 + y) * width + x1 + x) * 3;
        for (let c = 0; c < 3; c++) out[d + c] = layer.rgba[s + c] * a + out[d + c] * (1 - a);
      }
    }
  }
  return { width, height, rgb: Uint8Array.from(out, Math.round) };
}
