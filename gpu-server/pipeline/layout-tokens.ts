/**
 * Layout -> token structure. The transformer sees one token per 16x16-pixel cell inside each
 * layer's box (the 2x2 latent cells packed together); the transparent decoder sees one token per
 * 8x8-pixel latent cell. Within a layer tokens are row-major, layers follow in order, and every
 * token carries the RoPE ids `(layer, y, x)` in its own cell units, as the official `img_ids`.
 */
import { GRID, LayoutError, type Layout } from '../../domain/layout.ts';
import { VAE_FACTOR } from '../constants.ts';

/** One layer's tokens: a box in cell units, and where its tokens sit in the joint sequence. */
export interface LayerCells {
  layer: number;
  /** Box in cells, x2/y2 exclusive. */
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  /** Index of the layer's first token, and its token count. */
  offset: number;
  count: number;
}

export interface TokenGrid {
  /** Pixels per token side: GRID (transformer) or VAE_FACTOR (transparent decoder). */
  cell: number;
  /** Canvas in cells. */
  cols: number;
  rows: number;
  layers: LayerCells[];
  /** Tokens in all layers. */
  count: number;
  /** RoPE ids `(layer, y, x)` per token, [count * 3]. */
  ids: Int32Array;
  /** Each token's layer (for `layer_pe`), [count]. */
  layerOf: Int32Array;
}

/** Tokens of a (validated) layout on a grid of `cell`-pixel cells. */
export function tokenGrid(layout: Layout, cell: number): TokenGrid {
  const cols = layout.width / cell;
  const rows = layout.height / cell;
  let offset = 0;
  const layers = layout.boxes.map(([x1, y1, x2, y2], layer): LayerCells => {
    const c = { layer, x1: x1 / cell, y1: y1 / cell, x2: x2 / cell, y2: y2 / cell, offset, count: 0 };
    if (![c.x1, c.y1, c.x2, c.y2, cols, rows].every(Number.isInteger)) {
      throw new LayoutError(`box ${layer} [${x1}, ${y1}, ${x2}, ${y2}] is not on the ${cell}-pixel grid; validate the layout first`);
    }
    c.count = (c.x2 - c.x1) * (c.y2 - c.y1);
    offset += c.count;
    return c;
  });
  const ids = new Int32Array(offset * 3);
  const layerOf = new Int32Array(offset);
  let t = 0;
  for (const l of layers) {
    for (let y = l.y1; y < l.y2; y++) {
      for (let x = l.x1; x < l.x2; x++, t++) {
        ids[t * 3] = l.layer;
        ids[t * 3 + 1] = y;
        ids[t * 3 + 2] = x;
        layerOf[t] = l.layer;
      }
    }
  }
  return { cell, cols, rows, layers, count: offset, ids, layerOf };
}

/** The transformer's packed tokens: 16-pixel cells. */
export const transformerTokens = (layout: Layout): TokenGrid => tokenGrid(layout, GRID);
/** The transparent decoder's tokens: 8-pixel latent cells. */
export const latentTokens = (layout: Layout): TokenGrid => tokenGrid(layout, VAE_FACTOR);
