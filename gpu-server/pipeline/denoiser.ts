/**
 * The numeric core of a generation or a decomposition, shared by the ArtPipeline and the golden
 * pipeline cases: denoise packed tokens from given noise and text embeddings (for a
 * decomposition, with the adapter's residuals from the flat image's condition), then decode (grey
 * latent outside the boxes, the transparent decoder for every layer's RGBA, the VAE only for the
 * images shown: merged and background, or the background alone for a decomposition, whose merged
 * image is composited). No text encoders, no PRNG, no I/O: those live around it.
 */
import { BACKGROUND_LAYER, type Layout, MERGED_LAYER } from '../../domain/layout.ts';
import { LATENT_CHANNELS } from '../constants.ts';
import { patchesToLayerImages } from '../models/transparent-decoder.ts';
import { imageToVaeInput, packCondition, tokenCondition } from './condition.ts';
import { decoderLatents, greyFromMean, latentSize, vaeToUnit, type VaeScaling } from './decode.ts';
import { denoise, type DenoiseOptions } from './denoise.ts';
import type { GraphSession } from './graph-session.ts';
import { latentTokens, type TokenGrid } from './layout-tokens.ts';
import { gatherCells } from './packing.ts';
import { calibrationImage, fitLatentRgb, type LatentRgbMap } from './preview.ts';
import { ropeTables } from './rope.ts';
import { fluxSchedule, type Schedule, type SchedulerConfig } from './scheduler.ts';
import { adapterResiduals, transformerPredictor, type AdapterJob, type TextEmbeddings } from './noise-predictor.ts';
import type { LayerImage, SourceImage } from './types.ts';

export interface ModelSettings {
  vae: VaeScaling;
  scheduler: SchedulerConfig;
  transformer: { axesDimsRope: readonly number[]; ropeTheta: number };
  transparentDecoder: { axesDimsRope: readonly number[]; ropeTheta: number };
}

export interface DecoderGraphs {
  transformer: GraphSession;
  vaeEncoder: GraphSession;
  vaeDecoder: GraphSession;
  transparentDecoder: GraphSession;
}

/** A decomposition's graphs: the adapter and the transformer that takes its residuals. */
export interface DecomposeGraphs {
  adapter: GraphSession;
  transformer: GraphSession;
}

export interface DenoiseJob {
  grid: TokenGrid;
  /** Packed in-box noise `[N, 64]`. */
  initial: Float32Array;
  positive: TextEmbeddings;
  negative: TextEmbeddings;
  steps: number;
  guidance: number;
  trueCfg: number;
  signal?: AbortSignal;
  hold?: DenoiseOptions['hold'];
  onStep?: DenoiseOptions['onStep'];
  /** A decomposition: the flat image's condition for the adapter (`conditionTokens`). */
  adapter?: AdapterJob;
}

export interface Decoded {
  /** `[L, 16, h, w]`: what both decoders received. */
  latents: Float32Array;
  /** The transparent decoder's output `[M, 256]` (4 channels x 8 x 8 pixels per latent cell). */
  patches: Float32Array;
  /** Per layer, RGBA cropped to its box. */
  layers: LayerImage[];
  /** VAE image of the background layer, `[3, H, W]` in [0, 1]. */
  background: Float32Array;
  /** VAE image of the merged layer (a generation); a decomposition composites its merged image instead. */
  merged?: Float32Array;
}

export class Denoiser {
  private readonly greyCache = new Map<string, Promise<Float32Array>>();
  private previewFit: Promise<LatentRgbMap> | undefined;

  constructor(readonly graphs: DecoderGraphs, readonly settings: ModelSettings, readonly decomposeGraphs?: DecomposeGraphs) {}

  schedule(steps: number, grid: TokenGrid): Schedule {
    // mu uses the total number of cropped tokens, as the official pipeline does.
    return fluxSchedule(steps, grid.count, this.settings.scheduler);
  }

  async denoise(job: DenoiseJob): Promise<Float32Array> {
    const text = {
      grid: job.grid,
      positive: job.positive,
      negative: job.negative,
      guidance: job.guidance,
      axesDimsRope: this.settings.transformer.axesDimsRope,
      ropeTheta: this.settings.transformer.ropeTheta,
    };
    const cld = job.adapter && this.decomposeGraphs;
    if (job.adapter && !cld) throw new Error('this model folder has no adapter: it cannot decompose images');
    const predictor = cld && job.adapter
      ? transformerPredictor(cld.transformer, { ...text, residuals: adapterResiduals(cld.adapter, text, job.adapter) })
      : transformerPredictor(this.graphs.transformer, text);
    return denoise(job.initial, predictor, { schedule: this.schedule(job.steps, job.grid), trueCfg: job.trueCfg, signal: job.signal, hold: job.hold, onStep: job.onStep });
  }

  /** The linear latent -> RGB map for live previews, fitted once from this model's VAE encoder. */
  previewMap(): Promise<LatentRgbMap> {
    this.previewFit ??= (async () => {
      const { image, size } = calibrationImage();
      const out = await this.graphs.vaeEncoder.run({ image: { data: image, dims: [1, 3, size, size] } }, ['mean']);
      return fitLatentRgb(out.mean.data);
    })();
    this.previewFit.catch(() => (this.previewFit = undefined));
    return this.previewFit;
  }

  /** The grey latent `[16, h, w]` (scaled, as the denoiser sees latents): the VAE mean of a zero image, once per size. */
  greyLatent(width: number, height: number): Promise<Float32Array> {
    const key = `${width}x${height}`;
    let grey = this.greyCache.get(key);
    if (!grey) {
      grey = this.graphs.vaeEncoder
        .run({ image: { data: new Float32Array(3 * width * height), dims: [1, 3, height, width] } }, ['mean'])
        .then((out) => greyFromMean(out.mean.data, this.settings.vae));
      grey.catch(() => this.greyCache.delete(key));
      this.greyCache.set(key, grey);
    }
    return grey;
  }

  /**
   * The flat image's condition `[(H/16)(W/16), 68]`: the VAE encoder's mean of the image, scaled,
   * plus a mask channel of ones, packed 2x2.
   */
  async condition(image: SourceImage): Promise<Float32Array> {
    const { width, height } = image;
    const out = await this.graphs.vaeEncoder.run({ image: { data: imageToVaeInput(image), dims: [1, 3, height, width] } }, ['mean']);
    const { h, w } = latentSize(width, height);
    return packCondition(out.mean.data, h, w, this.settings.vae);
  }

  /** The condition row of every token of `grid` `[N, 68]` (the same condition for every layer). */
  async conditionTokens(image: SourceImage, grid: TokenGrid): Promise<Float32Array> {
    return tokenCondition(await this.condition(image), grid);
  }

  /**
   * Decodes denoised tokens: transparent RGBA for every layer, then the VAE images shown: merged
   * and background, or (`vaeMerged` false: a decomposition) the background only.
   */
  async decode(layout: Layout, grid: TokenGrid, tokens: Float32Array, onPart?: (done: number, total: number) => void, onLayers?: (layers: LayerImage[]) => void, vaeMerged = true): Promise<Decoded> {
    const latents = await this.decoderLatents(layout, grid, tokens);
    const patches = await this.transparentPatches(layout, latents);
    const layers = patchesToLayerImages(patches, layout);
    onPart?.(1, 2);
    onLayers?.(layers);
    const images = await this.vaeImages(layout, latents, vaeMerged ? [BACKGROUND_LAYER, MERGED_LAYER] : [BACKGROUND_LAYER]);
    onPart?.(2, 2);
    return { latents, patches, layers, background: images[0], ...(vaeMerged ? { merged: images[1] } : {}) };
  }

  /** `[L, 16, h, w]` for the decoders: grey latent outside each box, unscaled. */
  async decoderLatents(layout: Layout, grid: TokenGrid, tokens: Float32Array): Promise<Float32Array> {
    return decoderLatents(tokens, grid, await this.greyLatent(layout.width, layout.height), this.settings.vae);
  }

  /** VAE decode of the chosen layers (one batch): `[3, H, W]` each in [0, 1]. */
  async vaeImages(layout: Layout, latents: Float32Array, layers: readonly number[]): Promise<Float32Array[]> {
    const { width, height } = layout;
    const { h, w } = latentSize(width, height);
    const per = LATENT_CHANNELS * h * w;
    const pick = new Float32Array(layers.length * per);
    layers.forEach((l, i) => pick.set(latents.subarray(l * per, (l + 1) * per), i * per));
    const images = (await this.graphs.vaeDecoder.run({ latents: { data: pick, dims: [layers.length, LATENT_CHANNELS, h, w] } }, ['image'])).image.data;
    const unit = vaeToUnit(images);
    const px = 3 * width * height;
    return layers.map((_, i) => unit.subarray(i * px, (i + 1) * px));
  }

  /** The transparent decoder over the latent cells inside the boxes: `[M, 256]` patches. */
  async transparentPatches(layout: Layout, latents: Float32Array): Promise<Float32Array> {
    const cells = latentTokens(layout);
    const td = this.settings.transparentDecoder;
    const rope = ropeTables(cells.ids, td.axesDimsRope, 0, td.ropeTheta);
    const out = await this.graphs.transparentDecoder.run(
      {
        tokens: { data: gatherCells(latents, cells), dims: [1, cells.count, LATENT_CHANNELS] },
        rope_cos: { data: rope.cos, dims: [rope.rows, rope.dim] },
        rope_sin: { data: rope.sin, dims: [rope.rows, rope.dim] },
      },
      ['patches'],
    );
    return out.patches.data;
  }
}
