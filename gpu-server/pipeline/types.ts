/**
 * The pipeline's domain types: what goes in (a layout, a caption, parameters) and what comes
 * out (RGBA layers cropped to their boxes). Plain data; the bridge and the CLI speak these. The
 * layout, keep list and parameter rules every side shares are in domain/.
 */
import { JOB_KINDS, type JobKind } from '../../domain/job-kind.ts';
import type { KeepEntry } from '../../domain/keep.ts';
import type { BoxTuple, Layout } from '../../domain/layout.ts';
import type { Sampling } from '../../domain/params.ts';
import type { Stage } from '../../domain/stage.ts';

/**
 * A job's final clean latents: the packed in-box tokens `[N, 64]` (the denoiser's scaled space,
 * before the grey fill) of `layout`'s 16-pixel token grid, in the grid's order (layers in order,
 * row-major inside each box). What a later job needs to keep some of this job's layers.
 */
export interface CleanLatents {
  layout: Layout;
  tokens: Float32Array;
}

/** The job a generation builds on, and which of its layers it keeps. */
export interface BaseJob {
  /** The model that made the base; must be the model that runs the new job. */
  model: string;
  latents: CleanLatents;
  /** Empty: a plain generation (the base is only recorded). */
  keep: KeepEntry[];
}

/** One generation: the caption, the layout and the sampling settings (limits: domain/params.ts). */
export interface GenerateParams extends Sampling {
  prompt: string;
  /** The new job's full layout (kept layers at their base boxes, new and moved ones anywhere). */
  layout: Layout;
  /** Keep some layers of an earlier job: their tokens are held to its clean latents. */
  base?: BaseJob;
}

/**
 * The flat image a decomposition reads: 8-bit pixels of the whole canvas, row-major, RGB or RGBA
 * (`channels`). Transparent pixels are composited over white (a Figma frame's default fill)
 * before encoding, since CLD reads an RGB image.
 */
export interface SourceImage {
  width: number;
  height: number;
  channels: 3 | 4;
  pixels: Uint8Array;
}

/**
 * A decomposition (CLD): a flat image, the boxes of the layers wanted (`layout`, whose canvas is
 * the image's size; boxes 0 and 1 are the whole image and the background, as in a generation),
 * and a caption of the whole image; the knobs are generation's, plus the adapter's weight.
 */
export interface DecomposeParams extends Sampling {
  image: SourceImage;
  /** A caption of the whole image (CLD is trained with one). */
  prompt: string;
  layout: Layout;
  /** The adapter's residuals are multiplied by this (CLD's inference uses 0.9). */
  conditioningScale: number;
}

export { JOB_KINDS, type JobKind };

export interface Progress {
  stage: Stage;
  /** Steps done in this stage (denoising steps, or layers decoded). */
  step: number;
  total: number;
  /** Milliseconds since the job started. */
  elapsedMs: number;
}

/** One generated layer: 8-bit RGBA, row-major, cropped to its box. */
export interface LayerImage {
  index: number;
  box: BoxTuple;
  width: number;
  height: number;
  rgba: Uint8Array;
}

/** An 8-bit RGB image of the whole canvas (VAE decode of the merged preview or the background). */
export interface RgbImage {
  width: number;
  height: number;
  rgb: Uint8Array;
}

/**
 * What a generation or a decomposition returns. `merged` is the VAE decode of layer 0 for a
 * generation; for a decomposition it is CLD's composite: the VAE-decoded background with the RGBA
 * layers 2.. alpha-composited over it in order.
 */
export interface GenerateResult {
  /** RGBA of every layer, index 0..L-1, each cropped to its box (layers 0 and 1: whole canvas). */
  layers: LayerImage[];
  merged: RgbImage;
  background: RgbImage;
  seed: number;
  /** Milliseconds per stage. */
  timings: Partial<Record<Stage, number>>;
  /** Whether the weights are the random tiny model (images are noise). */
  tiny: boolean;
  model: string;
  provider: string;
  /** The prompt was cut to the text encoders' token limit. */
  promptTruncated: boolean;
  /** The final clean latents, kept with the job so a later job can keep some of its layers. */
  latents: CleanLatents;
}

export interface GenerateOptions {
  onProgress?: (progress: Progress) => void;
  /** Checked between steps; an aborted job rejects with an AbortError. */
  signal?: AbortSignal;
  /**
   * A small live preview of the merged image after each denoising step (1/8 of the canvas a side,
   * from the current clean-latent estimate; no VAE run). Asking for it costs one small VAE encode
   * per pipeline, once.
   */
  onPreview?: (image: RgbImage, step: number) => void;
  /**
   * Every layer's RGBA as soon as it is decoded (before the VAE images of the merged and background
   * layers are made), so a caller can encode and send it meanwhile. The callee may take the pixel
   * buffers (transfer them to another thread); `GenerateResult.layers` holds the same objects.
   */
  onLayers?: (layers: LayerImage[]) => void;
}

export interface PipelineInfo {
  model: string;
  provider: string;
  tiny: boolean;
  maxLayers: number;
  /** Canvas sides the model folder accepts. */
  resolutions: number[];
  /** How the graphs share device memory, in one line (printed at start). */
  memoryPlan?: string;
  /** The jobs this model can run (`decompose` needs an adapter in the folder). */
  jobs: JobKind[];
}

/** What the bridge and the CLI call; one implementation runs the ONNX graphs. */
export interface ArtPipeline {
  readonly info: PipelineInfo;
  generate(params: GenerateParams, options?: GenerateOptions): Promise<GenerateResult>;
  /** Rejects with a ParamsError when `info.jobs` lacks `decompose` (the folder has no adapter). */
  decompose(params: DecomposeParams, options?: GenerateOptions): Promise<GenerateResult>;
  dispose(): Promise<void>;
}
