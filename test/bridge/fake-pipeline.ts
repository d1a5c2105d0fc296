/**
 * A test double of the ART pipeline, loaded by the bridge's worker in place of the real one.
 * Deterministic RGBA of each box's size, a wait per step that holds its thread as
 * onnxruntime does, AbortSignal checked between steps, progress per step.
 * Options (beside modelDir/provider): model (the name it reports; default "fake"), stepMs, loadMs, decodeMs (with it the fake hands its layers
 * over through `onLayers` first, then waits that long without holding its thread, as onnxruntime's
 * VAE run does, then reports decode progress and returns). A prompt containing "FAIL" throws; one
 * containing "CRASH" kills the worker thread (as a native crash in onnxruntime would); one
 * containing "NOISE" makes incompressible pixels (PNGs as large as real photos, for memory tests).
 * `decompose` (when `jobs`, default both, lists it) makes the same layers, with each pixel's RGB the
 * flat image's at that place of the canvas (`decomposedPixel`), so tests see the image arrived;
 * without it, it refuses as the real pipeline does for a folder with no adapter.
 */
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

/** Holds this thread like InferenceSession.run() does, without burning a core (tests share 2). */
function holdThread(ms: number): void {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export async function createPipeline(options: FakeOptions = {}): Promise<ArtPipeline> {
  holdThread(options.loadMs ?? 0);
  const stepMs = options.stepMs ?? 5;
  const model = options.model ?? 'fake';
  const provider = options.provider ?? 'cpu';
  const jobs = options.jobs ?? ['generate', 'decompose'];
  /** A generation, or with `image` a decomposition of it. */
  const run = async (params: GenerateParams, opts: GenerateOptions, image?: SourceImage): Promise<GenerateResult> => {
    const start = performance.now();
    const abortIfAsked = () => {
      if (opts.signal?.aborted) throw new DOMException('the job was cancelled', 'AbortError');
    };
    if (params.prompt.includes('FAIL')) throw new Error('fake pipeline failure (prompt asked for it)');
    if (params.prompt.includes('CRASH')) process.exit(3);
    // Refuses a base that does not fit, as the real pipeline's validateParams does.
    if (params.base) checkKeep(params.layout, { model: params.base.model, layout: params.base.latents.layout }, params.base.keep, model);
    for (let step = 1; step <= params.steps; step++) {
      abortIfAsked();
      holdThread(stepMs);
      // Only a microtask between steps: the worker's message queue does not run here.
      await Promise.resolve();
      opts.onProgress?.({ stage: 'denoise', step, total: params.steps, elapsedMs: performance.now() - start });
    }
    abortIfAsked();
    const layers: LayerImage[] = params.layout.boxes.map((box, index) => {
      const width = box[2] - box[0];
      const height = box[3] - box[1];
      const rgba = new Uint8Array(width * height * 4);
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++)
          rgba.set(image ? decomposedPixel(image, params.seed, index, box[0], box[1], x, y) : fakePixel(params.seed, index, x, y), (y * width + x) * 4);
      if (params.prompt.includes('NOISE')) {
        let state = (params.seed * 2654435761 + index * 40503 + 1) >>> 0;
        for (let i = 0; i < rgba.length; i++) {
          state = (state ^ (state << 13)) >>> 0;
          state = (state ^ (state >>> 17)) >>> 0;
          state = (state ^ (state << 5)) >>> 0;
          rgba[i] = state & 255;
        }
      }
      if (options.variant) rgba[0] = (rgba[0] + options.variant) & 255;
      return { index, box, width, height, rgba };
    });
    if (options.decodeMs !== undefined) {
      opts.onLayers?.(layers);
      await new Promise((resolve) => setTimeout(resolve, options.decodeMs));
      opts.onProgress?.({ stage: 'decode', step: 1, total: 1, elapsedMs: performance.now() - start });
    }
    const { width, height } = params.layout;
    // Latents: a function of the seed and token index, with kept layers' tokens exactly the base's (as the real loop ends).
    const grid = transformerTokens(params.layout);
    const tokens = new Float32Array(grid.count * PACKED_CHANNELS).map((_, i) => ((params.seed * 31 + i) % 997) / 997 - 0.5);
    if (params.base && params.base.keep.length > 0) holdKept(tokens, keptTokens(grid, params.base.latents, params.base.keep), tokens, 0);
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
