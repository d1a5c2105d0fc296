/**
 * Moving between the latent layout `[L, 16, h, w]` and packed tokens. A packed token is one
 * 2x2 block of latent cells with its 64 values channel-major (`c*4 + dy*2 + dx`), as FLUX packs
 * them; the pipeline keeps only the tokens inside each layer's box.
 */
import { LATENT_CHANNELS, PACKED_CHANNELS } from '../constants.ts';
import type { TokenGrid } from './layout-tokens.ts';

const C = LATENT_CHANNELS;

function checkLength(what: string, actual: number, expected: number): void {
  if (actual !== expected) throw new RangeError(`${what} has ${actual} values, expected ${expected}`);
}

/**
 * Latent `[channels, h, w]` -> packed tokens `[(h/2)*(w/2), 4 * channels]`, row-major over 2x2
 * cells (16 channels for latents; CLD's condition packs 17 the same way).
 */
export function packLatent(latent: Float32Array, h: number, w: number, channels = C): Float32Array {
  checkLength('latent', latent.length, channels * h * w);
  const hh = h / 2, ww = w / 2;
  const packed = 4 * channels;
  const out = new Float32Array(hh * ww * packed);
  for (let cy = 0; cy < hh; cy++) {
    for (let cx = 0; cx < ww; cx++) {
      const t = (cy * ww + cx) * packed;
      for (let c = 0; c < channels; c++) {
        for (let dy = 0; dy < 2; dy++) {
          for (let dx = 0; dx < 2; dx++) out[t + c * 4 + dy * 2 + dx] = latent[(c * h + 2 * cy + dy) * w + 2 * cx + dx];
        }
      }
    }
  }
  return out;
}

/** Inverse of packLatent. */
export function unpackLatent(tokens: Float32Array, h: number, w: number): Float32Array {
  checkLength('packed tokens', tokens.length, C * h * w);
  const hh = h / 2, ww = w / 2;
  const out = new Float32Array(C * h * w);
  for (let cy = 0; cy < hh; cy++) {
    for (let cx = 0; cx < ww; cx++) {
      const t = (cy * ww + cx) * PACKED_CHANNELS;
      for (let c = 0; c < C; c++) {
        for (let dy = 0; dy < 2; dy++) {
          for (let dx = 0; dx < 2; dx++) out[(c * h + 2 * cy + dy) * w + 2 * cx + dx] = tokens[t + c * 4 + dy * 2 + dx];
        }
      }
    }
  }
  return out;
}

/** Latent size of a transformer token grid (2 latent cells per 16-pixel cell). */
const latentSize = (grid: TokenGrid) => ({ h: grid.rows * 2, w: grid.cols * 2 });

/** Full per-layer latents `[L, 16, h, w]` -> the packed in-box tokens `[N, 64]` of a 16-pixel grid. */
export function gatherTokens(latents: Float32Array, grid: TokenGrid): Float32Array {
  const { h, w } = latentSize(grid);
  checkLength('latents', latents.length, grid.layers.length * C * h * w);
  const out = new Float32Array(grid.count * PACKED_CHANNELS);
  for (const l of grid.layers) {
    const base = l.layer * C * h * w;
    let t = l.offset * PACKED_CHANNELS;
    for (let cy = l.y1; cy < l.y2; cy++) {
      for (let cx = l.x1; cx < l.x2; cx++, t += PACKED_CHANNELS) {
        for (let c = 0; c < C; c++) {
          for (let dy = 0; dy < 2; dy++) {
            for (let dx = 0; dx < 2; dx++) out[t + c * 4 + dy * 2 + dx] = latents[base + (c * h + 2 * cy + dy) * w + 2 * cx + dx];
          }
        }
      }
    }
  }
  return out;
}

/** Writes packed in-box tokens `[N, 64]` into full latents `[L, 16, h, w]`; values outside the boxes are left as they are. */
export function scatterTokens(tokens: Float32Array, grid: TokenGrid, latents: Float32Array): Float32Array {
  const { h, w } = latentSize(grid);
  checkLength('packed tokens', tokens.length, grid.count * PACKED_CHANNELS);
  checkLength('latents', latents.length, grid.layers.length * C * h * w);
  for (const l of grid.layers) {
    const base = l.layer * C * h * w;
    let t = l.offset * PACKED_CHANNELS;
    for (let cy = l.y1; cy < l.y2; cy++) {
      for (let cx = l.x1; cx < l.x2; cx++, t += PACKED_CHANNELS) {
        for (let c = 0; c < C; c++) {
          for (let dy = 0; dy < 2; dy++) {
            for (let dx = 0; dx < 2; dx++) latents[base + (c * h + 2 * cy + dy) * w + 2 * cx + dx] = tokens[t + c * 4 + dy * 2 + dx];
          }
        }
      }
    }
  }
  return latents;
}

/**
 * Full latents `[L, 16, h, w]` -> the transparent decoder's tokens `[M, 16]`: the latent cells
 * inside each box of an 8-pixel grid, 16 channels each.
 */
export function gatherCells(latents: Float32Array, grid: TokenGrid): Float32Array {
  const h = grid.rows, w = grid.cols;
  checkLength('latents', latents.length, grid.layers.length * C * h * w);
  const out = new Float32Array(grid.count * C);
  for (const l of grid.layers) {
    const base = l.layer * C * h * w;
    let t = l.offset * C;
    for (let y = l.y1; y < l.y2; y++) {
      for (let x = l.x1; x < l.x2; x++, t += C) {
        for (let c = 0; c < C; c++) out[t + c] = latents[base + (c * h + y) * w + x];
      }
    }
  }
  return out;
}
