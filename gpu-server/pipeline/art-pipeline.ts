/**
 * The ART pipeline on onnxruntime: loads a model folder (the tiny one when none is named, made on
 * first use), opens every graph once on the chosen execution provider, and generates: text
 * encoding (cached), seeded noise, denoising with batched true CFG, decoding, RGBA cropped to
 * each box. One job at a time; others wait their turn.
 */
import { join, resolve } from 'node:path';
import { checkKeep } from '../../domain/keep.ts';
import { firstIssue, validateLayout } from '../../domain/layout.ts';
import { conditioningScaleSchema, promptSchema, samplingSchema } from '../../domain/params.ts';
import type { Stage } from '../../domain/stage.ts';
import { folderGraphs, graphOf, JOB_GRAPHS, loadManifest, type AnyGraphName, type Manifest } from '../model-folder/manifest.ts';
import { DEFAULT_TINY_DIR, ensureTinyModel } from '../model-folder/tiny.ts';
import { openSession, type Provider, type ProviderChoice, type SessionFactory } from '../onnx/session.ts';
import { loadClipTokenizer } from '../text/clip-tokenizer.ts';
import { loadT5Tokenizer } from '../text/t5-tokenizer.ts';
import { Denoiser } from './denoiser.ts';
import { unitToRgb } from './decode.ts';
import { abortError, throwIfAborted } from './denoise.ts';
import { GraphSession, GraphSlot } from './graph-session.ts';
import { mergedPreview } from './preview.ts';
import { freeDeviceMemory, type MemoryMode, planMemory, sharingLine } from './memory-plan.ts';
import { transformerTokens } from './layout-tokens.ts';
import { tokenNoise } from './noise.ts';
import { checkLatents, holdKept, keptTokens } from './keep.ts';
import { TextEncoder } from './text-encoder.ts';
import { composite } from './composite.ts';
import type { AdapterJob } from './noise-predictor.ts';
import type { ArtPipeline, DecomposeParams, GenerateOptions, GenerateParams, GenerateResult, LayerImage, PipelineInfo } from './types.ts';

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

const TEXT_GRAPHS = ['clip_text', 't5_encoder'] as const;
const isTextGraph = (n: AnyGraphName): n is (typeof TEXT_GRAPHS)[number] => (TEXT_GRAPHS as readonly string[]).includes(n);

/** Bytes of the files (graph and weights) of some graphs of a folder. */
function graphBytes(manifest: Manifest, names: AnyGraphName[]): number {
  return names.flatMap((n) => [graphOf(manifest, n).file, ...graphOf(manifest, n).data]).reduce((sum, f) => sum + (manifest.files[f]?.bytes ?? 0), 0);
}

export class ParamsError extends Error {
  override name = 'ParamsError';
}

/** The knobs a generation and a decomposition share; throws a ParamsError or LayoutError naming the problem. */
function validateKnobs(params: GenerateParams | DecomposeParams, maxLayers: number): void {
  const prompt = promptSchema.safeParse(params.prompt);
  if (!prompt.success) throw new ParamsError(firstIssue(prompt.error, 'prompt'));
  const { steps, guidance, trueCfg, seed } = params;
  const sampling = samplingSchema.safeParse({ steps, guidance, trueCfg, seed });
  if (!sampling.success) throw new ParamsError(firstIssue(sampling.error, 'params'));
  validateLayout(params.layout, maxLayers);
}

/**
 * Checks what a caller sends, once; throws a ParamsError (or LayoutError, or KeepError for a
 * base that does not fit `model`) naming the problem.
 */
export function validateParams(params: GenerateParams, maxLayers: number, model: string): void {
  validateKnobs(params, maxLayers);
  if (params.base) {
    validateLayout(params.base.latents.layout, maxLayers);
    checkLatents(params.base.latents);
    checkKeep(params.layout, { model: params.base.model, layout: params.base.latents.layout }, params.base.keep, model);
  }
}

/** Checks a decomposition once: the knobs, then the image against the layout's canvas. */
export function validateDecomposeParams(params: DecomposeParams, maxLayers: number): void {
  validateKnobs(params, maxLayers);
  const scale = conditioningScaleSchema.safeParse(params.conditioningScale);
  if (!scale.success) throw new ParamsError(firstIssue(scale.error, 'conditioningScale'));
  const { image, layout } = params;
  if (!image || !(image.pixels instanceof Uint8Array)) throw new ParamsError('image must hold 8-bit pixels (a Uint8Array)');
  if (image.width !== layout.width || image.height !== layout.height) {
    throw new ParamsError(`the image is ${image.width}x${image.height} but the layout's canvas is ${layout.width}x${layout.height}; resize the image to the canvas first`);
  }
  if (image.channels !== 3 && image.channels !== 4) throw new ParamsError(`image channels must be 3 (RGB) or 4 (RGBA), got ${image.channels}`);
  if (image.pixels.length !== image.width * image.height * image.channels) {
    throw new ParamsError(`image has ${image.pixels.length} bytes, expected ${image.width}x${image.height}x${image.channels}`);
  }
}

/** A job the pipeline runs: both kinds go through the same stages. */
type Job = { kind: 'generate'; params: GenerateParams } | { kind: 'decompose'; params: DecomposeParams };

export async function createPipeline(options: PipelineOptions = {}): Promise<ArtPipeline> {
  const dir = resolve(options.modelDir ?? DEFAULT_TINY_DIR);
  const manifest: Manifest = options.modelDir ? loadManifest(dir) : ensureTinyModel(dir);
  const choice = options.provider ?? 'auto';

  // The first graph decides the provider (auto: the best one that opens); the rest follow it.
  const sessions = {} as Record<Exclude<AnyGraphName, 'clip_text' | 't5_encoder'>, GraphSession>;
  const open = async (name: AnyGraphName, on: ProviderChoice) => {
    const opened = await openSession(join(dir, graphOf(manifest, name).file), on, {}, options.sessions);
    return { graph: new GraphSession(name, opened.session), provider: opened.provider };
  };
  const first = await open('transformer', choice);
  const provider: Provider = first.provider;
  sessions.transformer = first.graph;
  // Every graph of the folder once: a folder for both jobs shares one transformer graph.
  const graphs = folderGraphs(manifest);
  const deviceGraphs = graphs.filter((n) => !isTextGraph(n));
  const plan = planMemory(graphBytes(manifest, [...TEXT_GRAPHS]), graphBytes(manifest, deviceGraphs), freeDeviceMemory(provider), provider, options.memory);
  const sharing = sharingLine(graphs.map((n) => ({ name: n, bytes: graphBytes(manifest, [n]), jobs: manifest.jobs.filter((k) => JOB_GRAPHS[k].includes(n)) })));
  const resident = plan.mode === 'resident';
  const slots = Object.fromEntries(TEXT_GRAPHS.map((n) => [n, new GraphSlot(n, async () => (await open(n, provider)).graph, resident)])) as Record<'clip_text' | 't5_encoder', GraphSlot>;
  try {
    for (const name of TEXT_GRAPHS) if (resident) await slots[name].ensureOpen();
    for (const name of deviceGraphs) if (name !== 'transformer' && !isTextGraph(name)) sessions[name] = (await open(name, provider)).graph;
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
    // Decomposition runs the folder's one transformer (its `job` input and residuals switch it) with the adapter.
    sessions.adapter ? { adapter: sessions.adapter, transformer: sessions.transformer } : undefined,
  );
  const info: PipelineInfo = {
    model: manifest.name,
    provider,
    memoryPlan: sharing ? `${plan.summary}; ${sharing}` : plan.summary,
    tiny: manifest.tiny,
    maxLayers: manifest.maxLayers,
    resolutions: manifest.resolutions,
    jobs: manifest.jobs,
  };

  let queue: Promise<unknown> = Promise.resolve();
  let disposed = false;

  async function run(job: Job, opts: GenerateOptions): Promise<GenerateResult> {
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
    const { params } = job;
    const { layout } = params;
    const grid = transformerTokens(layout);

    // 1. Conditioning: the prompts, and for a decomposition the flat image (VAE encoder).
    const parts = job.kind === 'decompose' ? 2 : 1;
    progress('text', 0, parts);
    const [positive, negative] = await timed('text', () => Promise.all([text.encode(params.prompt), text.encode('')]));
    progress('text', 1, parts);
    throwIfAborted(signal);
    let adapter: AdapterJob | undefined;
    if (job.kind === 'decompose') {
      adapter = { condition: await timed('text', () => denoiser.conditionTokens(job.params.image, grid)), conditioningScale: job.params.conditioningScale };
      progress('text', 2, parts);
      throwIfAborted(signal);
    }

    // 2. Latents: the job's seeded noise starts every layer and is the eps of kept layers' forward process.
    const previewMap = opts.onPreview ? await denoiser.previewMap() : undefined;
    const eps = tokenNoise(params.seed, grid);
    const base = job.kind === 'generate' ? job.params.base : undefined;
    const kept = base && base.keep.length > 0 ? keptTokens(grid, base.latents, base.keep) : undefined;

    // 3. Denoising (true CFG; a decomposition adds the adapter's residuals).
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
        adapter,
        signal,
        onStep: (done, total, _latents, _prediction, denoised) => {
          progress('denoise', done, total);
          if (previewMap) opts.onPreview?.(mergedPreview(denoised(), grid, previewMap, manifest.vae), done);
        },
      }),
    );
    throwIfAborted(signal);

    // 4. Decoding only what is shown: every layer's RGBA; the VAE for the background, and for a
    // generation's merged image (a decomposition composites its layers over the background).
    progress('decode', 0, 2);
    const decoded = await timed('decode', () => denoiser.decode(layout, grid, tokens, (done, total) => progress('decode', done, total), opts.onLayers, job.kind === 'generate'));
    const { layers } = decoded;
    const { width, height } = layout;
    const background = { width, height, rgb: unitToRgb(decoded.background, width, height) };
    return {
      layers,
      merged: decoded.merged ? { width, height, rgb: unitToRgb(decoded.merged, width, height) } : composite(background, layers),
      background,
      seed: params.seed,
      timings,
      tiny: manifest.tiny,
      model: manifest.name,
      provider: info.provider,
      promptTruncated: positive.truncated,
      latents: { layout, tokens },
    };
  }

  /** Queues a checked job behind the ones before it. */
  function enqueue(job: Job, check: () => void, opts: GenerateOptions): Promise<GenerateResult> {
    if (disposed) return Promise.reject(new Error('this pipeline was disposed; create a new one'));
    try {
      check();
    } catch (e) {
      return Promise.reject(e);
    }
    if (opts.signal?.aborted) return Promise.reject(abortError());
    const result = queue.then(() => run(job, opts));
    queue = result.catch(() => undefined);
    return result;
  }

  return {
    info,
    generate(params: GenerateParams, opts: GenerateOptions = {}): Promise<GenerateResult> {
      return enqueue({ kind: 'generate', params }, () => validateParams(params, manifest.maxLayers, manifest.name), opts);
    },
    decompose(params: DecomposeParams, opts: GenerateOptions = {}): Promise<GenerateResult> {
      return enqueue(
        { kind: 'decompose', params },
        () => {
          if (!denoiser.decomposeGraphs) throw new ParamsError(`${manifest.name} has no adapter: it cannot decompose images (convert a model with CLD's adapter, or use the tiny model)`);
          validateDecomposeParams(params, manifest.maxLayers);
        },
        opts,
      );
    },
    async dispose(): Promise<void> {
      disposed = true;
      await queue;
      for (const s of [...Object.values(sessions), ...Object.values(slots)]) await s.release();
    },
  };
}
