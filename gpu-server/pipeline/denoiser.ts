/**
 * The numeric core of a generation, shared by the ArtPipeline and the golden pipeline case:
 * denoise packed tokens from given noise and text embeddings, then decode (grey latent outside
 * the boxes, the transparent decoder for every layer's RGBA, the VAE for merged and background).
 * No text encoders, no PRNG, no I/O: those live around it.
 */
import { BACKGROUND_LAYER, type Layout, MERGED_LAYER } from '../../domain/layout.ts';
import { LATENT_CHANNELS } from '../constants.ts';
import { patchesToLayerImages } from '../models/transparent-decoder.ts';
import { decoderLatents, greyFromMean, latentSize, vaeToUnit, type VaeScaling } from './decode.ts';
import { denoise, type DenoiseOptions } from './denoise.ts';
import type { GraphSession } from './graph-session.ts';
import { latentTokens, type TokenGrid } from './layout-tokens.ts';
import { gatherCells } from './packing.ts';
import { calibrationImage, fitLatentRgb, type LatentRgbMap } from './preview.ts';
import { ropeTables } from './rope.ts';
import { fluxSchedule, type Schedule, type SchedulerConfig } from './scheduler.ts';
import { transformerPredictor, type TextEmbeddings } from './noise-predictor.ts';
import type { LayerImage } from './types.ts';

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
}

export interface Decoded {
  /** `[L, 16, h, w]`: what both decoders received. */
  latents: Float32Array;
  /** The transparent decoder's output `[M, 256]` (4 channels x 8 x 8 pixels per latent cell). */
  patches: Float32Array;
  /** Per layer, RGBA cropped to its box. */
  layers: LayerImage[];
  /** VAE images of the merged and background layers, `[3, H, W]` in [0, 1]. */
  merged: Float32Array;
  background: Float32Array;
}

export class Denoiser {
  private readonly greyCache = new Map<string, Promise<Float32Array>>();
  private previewFit: Promise<LatentRgbMap> | undefined;

  constructor(readonly graphs: DecoderGraphs, readonly settings: ModelSettings) {}

  schedule(steps: number, grid: TokenGrid): Schedule {
    // mu uses the total number of cropped tokens, as the official pipeline does.
    return fluxSchedule(steps, grid.count, this.settings.scheduler);
  }

  async denoise(job: DenoiseJob): Promise<Float32Array> {
    const predictor = transformerPredictor(this.graphs.transformer, {
      grid: job.grid,
      positive: job.positive,
      negative: job.negative,
      guidance: job.guidance,
      axesDimsRope: this.settings.transformer.axesDimsRope,
      ropeTheta: this.settings.transformer.ropeTheta,
    });
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

  /** Decodes denoised tokens: transparent RGBA for every layer, VAE images for merged and background. */
  async decode(layout: Layout, grid: TokenGrid, tokens: Float32Array, onPart?: (done: number, total: number) => void, onLayers?: (layers: LayerImage[]) => void): Promise<Decoded> {
    const latents = await this.decoderLatents(layout, grid, tokens);
    const patches = await this.transparentPatches(layout, latents);
    const layers = patchesToLayerImages(patches, layout);
    onPart?.(1, 2);
    onLayers?.(layers);
    const [merged, background] = await this.vaeImages(layout, latents, [MERGED_LAYER, BACKGROUND_LAYER]);
    onPart?.(2, 2);
    return { latents, patches, layers, merged, background };
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
