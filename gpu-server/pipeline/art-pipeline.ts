/**
 * The ART pipeline on onnxruntime: loads a model folder (the tiny one when none is named, made on
 * first use), opens every graph once on the chosen execution provider, and generates: text
 * encoding (cached), seeded noise, denoising with batched true CFG, decoding, RGBA cropped to
 * each box. One job at a time; others wait their turn.
 */
import { join, resolve } from 'node:path';
import { checkKeep } from '../../domain/keep.ts';
import { firstIssue, validateLayout } from '../../domain/layout.ts';
import { promptSchema, samplingSchema } from '../../domain/params.ts';
import type { Stage } from '../../domain/stage.ts';
import { GRAPH_NAMES, loadManifest, type GraphName, type Manifest } from '../model-folder/manifest.ts';
import { DEFAULT_TINY_DIR, ensureTinyModel } from '../model-folder/tiny.ts';
import { openSession, type Provider, type ProviderChoice, type SessionFactory } from '../onnx/session.ts';
import { loadClipTokenizer } from '../text/clip-tokenizer.ts';
import { loadT5Tokenizer } from '../text/t5-tokenizer.ts';
import { Denoiser } from './denoiser.ts';
import { unitToRgb } from './decode.ts';
import { abortError, throwIfAborted } from './denoise.ts';
import { GraphSession, GraphSlot } from './graph-session.ts';
import { mergedPreview } from './preview.ts';
import { freeDeviceMemory, type MemoryMode, planMemory } from './memory-plan.ts';
import { transformerTokens } from './layout-tokens.ts';
import { tokenNoise } from './noise.ts';
import { checkLatents, holdKept, keptTokens } from './keep.ts';
import { TextEncoder } from './text-encoder.ts';
import type { ArtPipeline, GenerateOptions, GenerateParams, GenerateResult, LayerImage, PipelineInfo } from './types.ts';

export interface PipelineOptions {
  /** A model folder; default: the tiny model (random weights), created if missing. */
  modelDir?: string;
  /** An execution provider, or `auto` (CUDA, then WebGPU, then CPU). */
  provider?: ProviderChoice;
  /** Overrides the memory plan made from free device memory. */
  memory?: MemoryMode;
  /** Provider detection and session creation; tests inject them to check the choice. */
  sessions?: SessionFactory;
}

const TEXT_GRAPHS: GraphName[] = ['clip_text', 't5_encoder'];

/** Bytes of the files (graph and weights) of some graphs of a folder. */
function graphBytes(manifest: Manifest, names: GraphName[]): number {
  return names.flatMap((n) => [manifest.graphs[n].file, ...manifest.graphs[n].data]).reduce((sum, f) => sum + (manifest.files[f]?.bytes ?? 0), 0);
}

export class ParamsError extends Error {
  override name = 'ParamsError';
}


/**
 * Checks what a caller sends, once; throws a ParamsError (or LayoutError, or KeepError for a
 * base that does not fit `model`) naming the problem.
 */
export function validateParams(params: GenerateParams, maxLayers: number, model: string): void {
  const prompt = promptSchema.safeParse(params.prompt);
  if (!prompt.success) throw new ParamsError(firstIssue(prompt.error, 'prompt'));
  const { steps, guidance, trueCfg, seed } = params;
  const sampling = samplingSchema.safeParse({ steps, guidance, trueCfg, seed });
  if (!sampling.success) throw new ParamsError(firstIssue(sampling.error, 'params'));
  validateLayout(params.layout, maxLayers);
  if (params.base) {
    validateLayout(params.base.latents.layout, maxLayers);
    checkLatents(params.base.latents);
    checkKeep(params.layout, { model: params.base.model, layout: params.base.latents.layout }, params.base.keep, model);
  }
}

export async function createPipeline(options: PipelineOptions = {}): Promise<ArtPipeline> {
  const dir = resolve(options.modelDir ?? DEFAULT_TINY_DIR);
  const manifest: Manifest = options.modelDir ? loadManifest(dir) : ensureTinyModel(dir);
  const choice = options.provider ?? 'auto';

  // The first graph decides the provider (auto: the best one that opens); the rest follow it.
  const sessions = {} as Record<Exclude<GraphName, 'clip_text' | 't5_encoder'>, GraphSession>;
  const open = async (name: GraphName, on: ProviderChoice) => {
    const opened = await openSession(join(dir, manifest.graphs[name].file), on, {}, options.sessions);
    return { graph: new GraphSession(name, opened.session), provider: opened.provider };
  };
  const first = await open('transformer', choice);
  const provider: Provider = first.provider;
  sessions.transformer = first.graph;
  const plan = planMemory(graphBytes(manifest, TEXT_GRAPHS), graphBytes(manifest, GRAPH_NAMES.filter((n) => !TEXT_GRAPHS.includes(n))), freeDeviceMemory(provider), provider, options.memory);
  const resident = plan.mode === 'resident';
  const slots = Object.fromEntries(TEXT_GRAPHS.map((n) => [n, new GraphSlot(n, async () => (await open(n, provider)).graph, resident)])) as Record<'clip_text' | 't5_encoder', GraphSlot>;
  try {
    for (const name of GRAPH_NAMES) {
      if (name === 'clip_text' || name === 't5_encoder') {
        if (resident) await slots[name].ensureOpen();
      } else if (name !== 'transformer') {
        sessions[name] = (await open(name, provider)).graph;
      }
    }
  } catch (e) {
    for (const s of [...Object.values(sessions), ...Object.values(slots)]) await s.release();
    throw e;
  }
  const text = new TextEncoder(
    { graph: slots.clip_text, tokenizer: loadClipTokenizer(join(dir, manifest.tokenizers.clip), manifest.text.clipTokens) },
    { graph: slots.t5_encoder, tokenizer: loadT5Tokenizer(join(dir, manifest.tokenizers.t5), manifest.text.t5Tokens) },
  );
  const denoiser = new Denoiser(
    { transformer: sessions.transformer, vaeEncoder: sessions.vae_encoder, vaeDecoder: sessions.vae_decoder, transparentDecoder: sessions.transparent_decoder },
    { vae: manifest.vae, scheduler: manifest.scheduler, transformer: manifest.transformer, transparentDecoder: manifest.transparentDecoder },
  );
  const info: PipelineInfo = {
    model: manifest.name,
    provider,
    memoryPlan: plan.summary,
    tiny: manifest.tiny,
    maxLayers: manifest.maxLayers,
    resolutions: manifest.resolutions,
    jobs: ['generate'],
  };

  let queue: Promise<unknown> = Promise.resolve();
  let disposed = false;

  async function run(params: GenerateParams, opts: GenerateOptions): Promise<GenerateResult> {
    const { signal, onProgress } = opts;
    const start = performance.now();
    const timings: Partial<Record<Stage, number>> = {};
    const progress = (stage: Stage, step: number, total: number) => onProgress?.({ stage, step, total, elapsedMs: performance.now() - start });
    const timed = async <T>(stage: Stage, fn: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      try {
        return await fn();
      } finally {
        timings[stage] = (timings[stage] ?? 0) + performance.now() - t0;
      }
    };
    throwIfAborted(signal);
    const { layout } = params;
    const grid = transformerTokens(layout);

    progress('text', 0, 1);
    const [positive, negative] = await timed('text', () => Promise.all([text.encode(params.prompt), text.encode('')]));
    progress('text', 1, 1);
    throwIfAborted(signal);

    const previewMap = opts.onPreview ? await denoiser.previewMap() : undefined;
    // The new job's noise starts every layer and is the eps of the kept layers' forward process.
    const eps = tokenNoise(params.seed, grid);
    const kept = params.base && params.base.keep.length > 0 ? keptTokens(grid, params.base.latents, params.base.keep) : undefined;
    progress('denoise', 0, params.steps);
    const tokens = await timed('denoise', () =>
      denoiser.denoise({
        grid,
        initial: eps,
        hold: kept && ((latents, sigma) => holdKept(latents, kept, eps, sigma)),
        positive,
        negative,
        steps: params.steps,
        guidance: params.guidance,
        trueCfg: params.trueCfg,
        signal,
        onStep: (done, total, _latents, _prediction, denoised) => {
          progress('denoise', done, total);
          if (previewMap) opts.onPreview?.(mergedPreview(denoised(), grid, previewMap, manifest.vae), done);
        },
      }),
    );
    throwIfAborted(signal);

    progress('decode', 0, 2);
    const decoded = await timed('decode', () => denoiser.decode(layout, grid, tokens, (done, total) => progress('decode', done, total), opts.onLayers));
    const { layers } = decoded;
    const { width, height } = layout;
    return {
      layers,
      merged: { width, height, rgb: unitToRgb(decoded.merged, width, height) },
      background: { width, height, rgb: unitToRgb(decoded.background, width, height) },
      seed: params.seed,
      timings,
      tiny: manifest.tiny,
      model: manifest.name,
      provider: info.provider,
      promptTruncated: positive.truncated,
      latents: { layout, tokens },
    };
  }

  return {
    info,
    generate(params: GenerateParams, opts: GenerateOptions = {}): Promise<GenerateResult> {
      if (disposed) return Promise.reject(new Error('this pipeline was disposed; create a new one'));
      try {
        validateParams(params, manifest.maxLayers, manifest.name);
      } catch (e) {
        return Promise.reject(e);
      }
      if (opts.signal?.aborted) return Promise.reject(abortError());
      const job = queue.then(() => run(params, opts));
      queue = job.catch(() => undefined);
      return job;
    },
    decompose(): Promise<GenerateResult> {
      return Promise.reject(new ParamsError(`${manifest.name} has no adapter: it cannot decompose images`));
    },
    async dispose(): Promise<void> {
      disposed = true;
      await queue;
      for (const s of [...Object.values(sessions), ...Object.values(slots)]) await s.release();
    },
  };
}
