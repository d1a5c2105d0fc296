/**
 * CLD's merged image of a decomposition (infer.py): the VAE-decoded background with the RGBA
 * layers 2.. alpha-composited over it in order, in 8 bits as an image library's "over" does
 * (`(src * a + dst * (255 - a)) / 255`, rounded).
 */
import { BACKGROUND_LAYER } from '../constants.ts';
import type { LayerImage, RgbImage } from './types.ts';

export function compositeLayers(background: RgbImage, layers: readonly LayerImage[]): RgbImage {
  const { width, height } = background;
  const rgb = Uint8Array.from(background.rgb);
  for (const layer of layers) {
    if (layer.index <= BACKGROUND_LAYER) continue;
    const [x1, y1] = layer.box;
    for (let y = 0; y < layer.height; y++) {
      for (let x = 0; x < layer.width; x++) {
        const s = (y * layer.width + x) * 4;
        const a = layer.rgba[s + 3];
        if (a === 0) continue;
        const d = ((y1 + y) * width + x1 + x) * 3;
        for (let c = 0; c < 3; c++) rgb[d + c] = Math.round((layer.rgba[s + c] * a + rgb[d + c] * (255 - a)) / 255);
      }
    }
  }
  return { width, height, rgb };
}
