/**
 * Numbers of the ART model that every part of the system agrees on. Pure data, no imports:
 * the plugin, the UI, the bridge and the pipeline all read them from here.
 */

/** The model's `max_layer_num`: merged + background + up to 50 child layers. */
export const MAX_LAYERS = 52;
/** Layer 0 is the merged image, layer 1 the background; both always cover the whole canvas. */
export const MERGED_LAYER = 0;
export const BACKGROUND_LAYER = 1;
/** Child layers a frame can contribute (MAX_LAYERS minus merged and background). */
export const MAX_CHILD_LAYERS = MAX_LAYERS - 2;
/** Boxes snap to this grid: one transformer token is a 16x16-pixel cell (2x2 latent cells). */
export const GRID = 16;
/** The VAE's spatial factor: one latent cell (and one transparent-decoder token) is 8x8 pixels. */
export const VAE_FACTOR = 8;
/** Latent channels of the FLUX VAE. */
export const LATENT_CHANNELS = 16;
/** Channels of one packed transformer token: 16 latent channels x 2x2 cells. */
export const PACKED_CHANNELS = LATENT_CHANNELS * 4;
/** Generation sizes the product offers (longest side of the canvas, in pixels). */
export const RESOLUTIONS = [512, 1024] as const;
export type Resolution = (typeof RESOLUTIONS)[number];
/** Largest canvas side accepted anywhere. */
export const MAX_CANVAS_SIDE = 1024;
/** onnxruntime execution providers, in the order `auto` tries them. */
export const PROVIDERS = ['cuda', 'webgpu', 'cpu'] as const;
export type Provider = (typeof PROVIDERS)[number];
/** Text lengths of the two encoders as FLUX.1-dev calls them. */
export const CLIP_TOKENS = 77;
export const T5_TOKENS = 512;
/** Defaults of the official pipeline (the seed's example). */
export const DEFAULT_STEPS = 28;
/** Most denoising steps a job may ask for (FLUX is trained for 28-50). */
export const MAX_STEPS = 100;
export const DEFAULT_GUIDANCE = 4.0;
export const DEFAULT_TRUE_CFG = 3.5;
export const DEFAULT_SEED = 41;
/** CLD's inference weight of the adapter's residuals (infer.py). */
export const DEFAULT_CONDITIONING_SCALE = 0.9;
