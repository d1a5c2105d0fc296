/**
 * What `npm run generate` writes: every layer as a whole-canvas RGBA PNG, the VAE's merged and
 * background images, the background with the layers composited over it in order, and
 * `result.json` describing the run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BACKGROUND_LAYER, type Layout, MERGED_LAYER } from '../../domain/layout.ts';
import { encodePng, rgbToRgba } from './png.ts';
import type { GenerateResult, LayerImage, RgbImage } from './types.ts';

/** A layer cropped to its box, placed on a transparent canvas. */
export function layerOnCanvas(layer: LayerImage, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 4);
  const [x1, y1] = layer.box;
  for (let y = 0; y < layer.height; y++) {
    out.set(layer.rgba.subarray(y * layer.width * 4, (y + 1) * layer.width * 4), ((y1 + y) * width + x1) * 4);
  }
  return out;
}

/** The opaque background with each child layer (index 2 and up) drawn over it in order ("over" operator). */
export function composite(background: RgbImage, layers: LayerImage[]): Uint8Array {
  const { width, height } = background;
  const out = new Float64Array(width * height * 3);
  for (let i = 0; i < out.length; i++) out[i] = background.rgb[i];
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
  const rgba = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    for (let c = 0; c < 3; c++) rgba[p * 4 + c] = Math.round(out[p * 3 + c]);
    rgba[p * 4 + 3] = 255;
  }
  return rgba;
}

export interface RunDescription {
  prompt: string;
  layout: Layout;
  steps: number;
  guidance: number;
  trueCfg: number;
  layoutFile?: string;
}

/** Writes every output file into `dir`; returns their names. */
export function writeGenerateOutputs(dir: string, result: GenerateResult, run: RunDescription): string[] {
  mkdirSync(dir, { recursive: true });
  const { width, height } = run.layout;
  const files: string[] = [];
  const put = (name: string, data: Uint8Array | string) => {
    writeFileSync(join(dir, name), data);
    files.push(name);
  };
  for (const layer of result.layers) put(`layer_${layer.index}.png`, encodePng(width, height, layerOnCanvas(layer, width, height)));
  put('merged.png', encodePng(width, height, rgbToRgba(result.merged.rgb)));
  put('background.png', encodePng(width, height, rgbToRgba(result.background.rgb)));
  put('merged_rgba.png', encodePng(width, height, composite(result.background, result.layers)));
  const description = {
    ...(result.tiny ? { warning: 'TINY MODEL: random weights, these images are noise. Convert real ART weights with `npm run convert`.' } : {}),
    model: result.model,
    tiny: result.tiny,
    provider: result.provider,
    prompt: run.prompt,
    promptTruncated: result.promptTruncated,
    layoutFile: run.layoutFile,
    width,
    height,
    boxes: run.layout.boxes,
    seed: result.seed,
    steps: run.steps,
    guidance: run.guidance,
    trueCfg: run.trueCfg,
    timingsMs: Object.fromEntries(Object.entries(result.timings).map(([k, v]) => [k, Math.round(v ?? 0)])),
    files: [...files, 'result.json'],
  };
  put('result.json', JSON.stringify(description, null, 1));
  return files;
}
