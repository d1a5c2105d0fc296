/**
 * The stand-in for the ART pipeline that tests and benchmarks load into the bridge's worker (its
 * `--pipeline` / `pipeline.factory` hook) in place of the real one, with the real one's contract
 * (gpu-server/pipeline/types.ts: ArtPipeline): RGBA of each box's size, a wait per step that holds
 * its thread as onnxruntime's session run does, AbortSignal checked between steps, progress per
 * step, a base's kept tokens held exactly. Everything a job returns is made before its first step,
 * so a job's time after the last step is the bridge's, not this stand-in's bookkeeping.
 * Options (beside modelDir/provider): model (the name it reports; default "fake"), stepMs, loadMs,
 * decodeMs (with it the fake hands its layers over through `onLayers` first, then waits that long
 * without holding its thread, as onnxruntime's VAE run does, then reports decode progress and
 * returns), content and spin (below). A prompt containing "FAIL" throws; one containing "CRASH"
 * kills the worker thread (as a native crash in onnxruntime would); one containing "NOISE" makes
 * incompressible pixels (PNGs as large as real photos, for memory tests).
 * `decompose` (when `jobs`, default both, lists it) makes the same layers, with each pixel's RGB the
 * flat image's at that place of the canvas (`decomposedPixel`), so tests see the image arrived;
 * without it, it refuses as the real pipeline does for a folder with no adapter.
 */
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import { checkKeep } from '../../domain/keep.ts';
import { MAX_LAYERS } from '../../domain/layout.ts';
import type { ArtPipeline, GenerateParams, GenerateOptions, GenerateResult, JobKind, LayerImage, SourceImage } from '../../gpu-server/pipeline/types.ts';
import { PACKED_CHANNELS } from '../../gpu-server/constants.ts';
import { transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
import { holdKept, keptTokens } from '../../gpu-server/pipeline/keep.ts';

export interface FakeOptions {
  modelDir?: string;
  model?: string;
  provider?: 'cuda' | 'webgpu' | 'cpu';
  stepMs?: number;
  loadMs?: number;
  decodeMs?: number;
  /** Added to every layer's first byte: a worker whose output differs (another GPU or provider). */
  variant?: number;
  /**
   * 'pattern' (default): fakePixel, which tests recompute to check results. 'sample': the official
   * sample output's layers resampled to each box, so PNG sizes and encoding times are those of
   * generated images (a synthetic pattern compresses to almost nothing): the benchmarks' content.
   */
  content?: 'pattern' | 'sample';
  /** Keep a core busy through each step, as onnxruntime's CPU kernels do (the benchmarks), instead of sleeping (tests share 2 cores). */
  spin?: boolean;
  /** The jobs the fake model runs (default both). */
  jobs?: JobKind[];
}

/** The pixel the fake writes at (x, y) of layer `index`; tests recompute it to check results. */
export function fakePixel(seed: number, index: number, x: number, y: number): [number, number, number, number] {
  return [(seed + x) & 255, (index * 7 + y) & 255, (x ^ y) & 255, (index * 31 + seed) & 255];
}

/** The pixel a decomposition writes at (x, y) of layer `index` (box origin `x1, y1`): the image's RGB there, the fake's alpha. */
export function decomposedPixel(image: SourceImage, seed: number, index: number, x1: number, y1: number, x: number, y: number): [number, number, number, number] {
  const at = ((y1 + y) * image.width + x1 + x) * image.channels;
  return [image.pixels[at], image.pixels[at + 1], image.pixels[at + 2], fakePixel(seed, index, x, y)[3]];
}

/** Holds this thread like InferenceSession.run() does: asleep, or with `spin` busy as on a CPU provider. */
function holdThread(ms: number, spin = false): void {
  if (ms <= 0) return;
  if (!spin) return void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Deliberately blocking, as InferenceSession.run() is.
  }
}

export interface Rgba {
  width: number;
  height: number;
  data: Uint8Array;
}

const SAMPLES = ['whole.png', 'bg.png', 'layer_0.png', 'layer_1.png', 'layer_2.png', 'layer_3.png', 'composite.png'];

/** One file of the official sample output (test/fixtures/art-sample-output/), decoded to RGBA. */
export function readSample(name: string): Rgba {
  const png = PNG.sync.read(readFileSync(new URL(`../fixtures/art-sample-output/${name}`, import.meta.url)));
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

/** Sample `index` at a box's size, resampled once per size and copied per layer (the encoder threads take each layer's buffer). */
function sampleContent(): (index: number, width: number, height: number) => Uint8Array {
  const samples = SAMPLES.map(readSample);
  const resized = new Map<string, Uint8Array>();
  const content = (index: number, width: number, height: number): Uint8Array => {
    const key = `${index % samples.length}:${width}x${height}`;
    let data = resized.get(key);
    if (!data) resized.set(key, (data = resample(samples[index % samples.length], width, height)));
    return data.slice();
  };
  // The whole 1024x1024 canvas (the benchmarks' big job) is made at load, so no job pays for this resampling.
  samples.forEach((_, i) => content(i, 1024, 1024));
  return content;
}

/** The pattern tests recompute (fakePixel, or decomposedPixel of `image`), or noise for a prompt with "NOISE". */
function patternContent(seed: number, index: number, box: readonly number[], noise: boolean, image?: SourceImage): Uint8Array {
  const width = box[2] - box[0];
  const height = box[3] - box[1];
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      rgba.set(image ? decomposedPixel(image, seed, index, box[0], box[1], x, y) : fakePixel(seed, index, x, y), (y * width + x) * 4);
  if (noise) {
    let state = (seed * 2654435761 + index * 40503 + 1) >>> 0;
    for (let i = 0; i < rgba.length; i++) {
      state = (state ^ (state << 13)) >>> 0;
      state = (state ^ (state >>> 17)) >>> 0;
      state = (state ^ (state << 5)) >>> 0;
      rgba[i] = state & 255;
    }
  }
  return rgba;
}

export async function createPipeline(options: FakeOptions = {}): Promise<ArtPipeline> {
  holdThread(options.loadMs ?? 0);
  const stepMs = options.stepMs ?? 5;
  const model = options.model ?? 'fake';
  const provider = options.provider ?? 'cpu';
  const jobs = options.jobs ?? ['generate', 'decompose'];
  const sample = options.content === 'sample' ? sampleContent() : undefined;
  /** A generation, or with `image` a decomposition of it. */
  const run = async (params: GenerateParams, opts: GenerateOptions, image?: SourceImage): Promise<GenerateResult> => {
    const abortIfAsked = () => {
      if (opts.signal?.aborted) throw new DOMException('the job was cancelled', 'AbortError');
    };
    if (params.prompt.includes('FAIL')) throw new Error('fake pipeline failure (prompt asked for it)');
    if (params.prompt.includes('CRASH')) process.exit(3);
    // Refuses a base that does not fit, as the real pipeline's validateParams does.
    if (params.base) checkKeep(params.layout, { model: params.base.model, layout: params.base.latents.layout }, params.base.keep, model);
    const layers: LayerImage[] = params.layout.boxes.map((box, index) => {
      const width = box[2] - box[0];
      const height = box[3] - box[1];
      const rgba = sample ? sample(index, width, height) : patternContent(params.seed, index, box, params.prompt.includes('NOISE'), image);
      if (options.variant) rgba[0] = (rgba[0] + options.variant) & 255;
      return { index, box, width, height, rgba };
    });
    // Latents: a function of the seed and token index, with kept layers' tokens exactly the base's (as the real loop ends).
    const grid = transformerTokens(params.layout);
    const tokens = new Float32Array(grid.count * PACKED_CHANNELS);
    for (let i = 0; i < tokens.length; i++) tokens[i] = ((params.seed * 31 + i) % 997) / 997 - 0.5;
    if (params.base && params.base.keep.length > 0) holdKept(tokens, keptTokens(grid, params.base.latents, params.base.keep), tokens, 0);
    const start = performance.now();
    for (let step = 1; step <= params.steps; step++) {
      abortIfAsked();
      holdThread(stepMs, options.spin);
      // Only a microtask between steps: the worker's message queue does not run here.
      await Promise.resolve();
      opts.onProgress?.({ stage: 'denoise', step, total: params.steps, elapsedMs: performance.now() - start });
    }
    abortIfAsked();
    if (options.decodeMs !== undefined) {
      opts.onLayers?.(layers);
      await new Promise((resolve) => setTimeout(resolve, options.decodeMs));
      opts.onProgress?.({ stage: 'decode', step: 1, total: 1, elapsedMs: performance.now() - start });
    }
    const { width, height } = params.layout;
    const blank = { width, height, rgb: new Uint8Array(width * height * 3) };
    return {
      layers,
      merged: blank,
      background: blank,
      seed: params.seed,
      timings: { denoise: performance.now() - start },
      tiny: true,
      model,
      provider,
      promptTruncated: false,
      latents: { layout: params.layout, tokens },
    };
  };
  return {
    info: { model, provider, tiny: true, maxLayers: MAX_LAYERS, resolutions: [64, 128, 256, 512, 1024], jobs },
    generate: (params, opts = {}) => run(params, opts),
    decompose: ({ image, conditioningScale: _, ...params }, opts = {}) =>
      // As the real pipeline does for a model folder without an adapter (types.ts: ArtPipeline.decompose).
      jobs.includes('decompose') ? run(params, opts, image) : Promise.reject(new Error('this model has no adapter: it cannot decompose images')),
    async dispose() {},
  };
}
