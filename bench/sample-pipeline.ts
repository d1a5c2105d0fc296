/**
 * A stand-in ART pipeline for the bridge benchmark: it holds its thread for `stepMs` per
 * denoising step (as onnxruntime does) and returns real generated content, the official sample
 * output's layers resampled to each box, so PNG sizes and encoding times are realistic (a
 * synthetic gradient would compress to almost nothing). Loaded by the bridge's worker through
 * its `--pipeline` / `pipeline.factory` hook; nothing else uses it.
 * Options: stepMs (default 20).
 */
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import { MAX_LAYERS } from '../domain/layout.ts';
import { PACKED_CHANNELS } from '../gpu-server/constants.ts';
import { transformerTokens } from '../gpu-server/pipeline/layout-tokens.ts';
import type { ArtPipeline, GenerateOptions, GenerateParams, GenerateResult, LayerImage } from '../gpu-server/pipeline/types.ts';

interface Rgba {
  width: number;
  height: number;
  data: Uint8Array;
}

const SAMPLES = ['whole.png', 'bg.png', 'layer_0.png', 'layer_1.png', 'layer_2.png', 'layer_3.png', 'composite.png'];

function readSample(name: string): Rgba {
  const png = PNG.sync.read(readFileSync(new URL(`../test/fixtures/art-sample-output/${name}`, import.meta.url)));
  // pngjs always decodes to RGBA (opaque alpha for RGB files).
  return { width: png.width, height: png.height, data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length) };
}

/** Bilinear resampling to `width` x `height`: what an upscaled generation looks like (no repeated pixels). */
export function resample(src: Rgba, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 4);
  const sx = src.width / width, sy = src.height / height;
  for (let y = 0; y < height; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5);
    const y0 = Math.min(src.height - 1, Math.floor(fy)), y1 = Math.min(src.height - 1, y0 + 1), wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.max(0, (x + 0.5) * sx - 0.5);
      const x0 = Math.min(src.width - 1, Math.floor(fx)), x1 = Math.min(src.width - 1, x0 + 1), wx = fx - x0;
      const a = (y0 * src.width + x0) * 4, b = (y0 * src.width + x1) * 4, c = (y1 * src.width + x0) * 4, d = (y1 * src.width + x1) * 4;
      const o = (y * width + x) * 4;
      for (let k = 0; k < 4; k++) {
        const top = src.data[a + k] * (1 - wx) + src.data[b + k] * wx;
        const bottom = src.data[c + k] * (1 - wx) + src.data[d + k] * wx;
        out[o + k] = Math.round(top * (1 - wy) + bottom * wy);
      }
    }
  }
  return out;
}

function holdThread(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Deliberately blocking, as InferenceSession.run() is.
  }
}

export async function createPipeline(options: { stepMs?: number } = {}): Promise<ArtPipeline> {
  const stepMs = options.stepMs ?? 20;
  const samples = SAMPLES.map(readSample);
  const resized = new Map<string, Uint8Array>();
  /** Sample `i` at a size, resampled once and reused (the bench measures the bridge, not this). */
  const content = (i: number, width: number, height: number): Uint8Array => {
    const key = `${i % samples.length}:${width}x${height}`;
    let data = resized.get(key);
    if (!data) resized.set(key, (data = resample(samples[i % samples.length], width, height)));
    return data;
  };
  // The whole 1024x1024 canvas (the bench's job) is made now, so the job's time is the bridge's, not this resampling.
  samples.forEach((_, i) => content(i, 1024, 1024));
  return {
    info: { model: 'bench sample (official sample output, resampled)', provider: 'cpu', tiny: true, maxLayers: MAX_LAYERS, resolutions: [512, 1024], jobs: ['generate'] },
    async generate(params: GenerateParams, opts: GenerateOptions = {}): Promise<GenerateResult> {
      // A copy per layer (the encoder threads take each layer's buffer), made before the steps: a
      // fresh 4 MiB buffer costs 10-15 ms of page faults on a 2-core VM, 0.6 s for 52, which is the
      // stand-in's bookkeeping, not the bridge's (a real transparent decoder writes its layers as
      // part of its decode, which the bench leaves out).
      const layers: LayerImage[] = params.layout.boxes.map((box, index) => {
        const width = box[2] - box[0], height = box[3] - box[1];
        return { index, box, width, height, rgba: content(index, width, height).slice() };
      });
      const start = performance.now();
      for (let step = 1; step <= params.steps; step++) {
        if (opts.signal?.aborted) throw new DOMException('the job was cancelled', 'AbortError');
        holdThread(stepMs);
        await Promise.resolve();
        opts.onProgress?.({ stage: 'denoise', step, total: params.steps, elapsedMs: performance.now() - start });
      }
      const denoise = performance.now() - start;
      // As the real pipeline does, before its VAE decode (which this stand-in does not have).
      opts.onLayers?.(layers);
      const { width, height } = params.layout;
      const blank = { width, height, rgb: new Uint8Array(width * height * 3) };
      return {
        layers, merged: blank, background: blank, seed: params.seed,
        timings: { denoise, decode: performance.now() - start - denoise },
        tiny: true, model: 'bench sample', provider: 'cpu', promptTruncated: false,
        // Zero latents of the right size: the bench measures the bridge, and the store writes them.
        latents: { layout: params.layout, tokens: new Float32Array(transformerTokens(params.layout).count * PACKED_CHANNELS) },
      };
    },
    decompose: () => Promise.reject(new Error('the bench sample pipeline only generates')),
    async dispose() {},
  };
}
