/**
 * What `npm run generate` and `npm run decompose` write: every layer as a whole-canvas RGBA PNG,
 * the merged image (the VAE's, or a decomposition's composite) and the VAE's background, the
 * background with the layers composited over it in order, and `result.json` describing the run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Layout } from '../../domain/layout.ts';
import { composite } from './composite.ts';
import { encodePng, rgbToRgba } from './png.ts';
import type { GenerateResult, LayerImage } from './types.ts';

/** A layer cropped to its box, placed on a transparent canvas. */
export function layerOnCanvas(layer: LayerImage, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 4);
  const [x1, y1] = layer.box;
  for (let y = 0; y < layer.height; y++) {
    out.set(layer.rgba.subarray(y * layer.width * 4, (y + 1) * layer.width * 4), ((y1 + y) * width + x1) * 4);
  }
  return out;
}

export interface RunDescription {
  prompt: string;
  layout: Layout;
  steps: number;
  guidance: number;
  trueCfg: number;
  layoutFile?: string;
  /** A decomposition's flat image and adapter weight. */
  imageFile?: string;
  conditioningScale?: number;
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
  put('merged_rgba.png', encodePng(width, height, rgbToRgba(composite(result.background, result.layers).rgb)));
  const description = {
    ...(result.tiny ? { warning: 'TINY MODEL: random weights, these images are noise. Convert real ART weights with `npm run convert`.' } : {}),
    model: result.model,
    tiny: result.tiny,
    provider: result.provider,
    prompt: run.prompt,
    promptTruncated: result.promptTruncated,
    layoutFile: run.layoutFile,
    ...(run.imageFile !== undefined ? { imageFile: run.imageFile, conditioningScale: run.conditioningScale } : {}),
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
