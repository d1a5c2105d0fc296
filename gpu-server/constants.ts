/**
 * Numbers of the ART model that only the GPU server needs: latent shapes, text lengths,
 * execution providers. The numbers every side shares (layers, grid, canvas sizes, parameter
 * limits) are in domain/. Pure data, no imports.
 */

/** The VAE's spatial factor: one latent cell (and one transparent-decoder token) is 8x8 pixels. */
export const VAE_FACTOR = 8;
/** Latent channels of the FLUX VAE. */
export const LATENT_CHANNELS = 16;
/** Channels of one packed transformer token: 16 latent channels x 2x2 cells. */
export const PACKED_CHANNELS = LATENT_CHANNELS * 4;
/** onnxruntime execution providers, in the order `auto` tries them. */
export const PROVIDERS = ['cuda', 'webgpu', 'cpu'] as const;
export type Provider = (typeof PROVIDERS)[number];
/** Text lengths of the two encoders as FLUX.1-dev calls them. */
export const CLIP_TOKENS = 77;
export const T5_TOKENS = 512;

