/**
 * Layout -> token structure. The transformer sees one token per 16x16-pixel cell inside each
 * layer's box (the 2x2 latent cells packed together); the transparent decoder sees one token per
 * 8x8-pixel latent cell. Within a layer tokens are row-major, layers follow in order, and every
 * token carries the RoPE ids `(layer, y, x)` in its own cell units, as the official `img_ids`.
 */
import { BACKGROUND_LAYER, GRID, MAX_CANVAS_SIDE, MAX_LAYERS, MERGED_LAYER, VAE_FACTOR } from '../constants.ts';
import type { BoxTuple, Layout } from './types.ts';

export class LayoutError extends Error {
  override name = 'LayoutError';
}

const isInt = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n);

/**
 * Checks a layout once at the boundary; throws a LayoutError naming the first problem. A valid
 * layout has a canvas whose sides are multiples of GRID, 2..maxLayers boxes on the grid, inside
 * the canvas and non-empty, and boxes 0 and 1 (merged, background) covering the whole canvas.
 */
export function validateLayout(layout: Layout, maxLayers = MAX_LAYERS, maxSide = MAX_CANVAS_SIDE): void {
  const { width, height, boxes } = layout;
  if (!isInt(width) || !isInt(height) || width <= 0 || height <= 0) {
    throw new LayoutError(`canvas ${width}x${height} is not a positive integer size`);
  }
  if (width % GRID !== 0 || height % GRID !== 0) {
    throw new LayoutError(`canvas ${width}x${height}: both sides must be multiples of ${GRID} pixels (scale the frame, e.g. with snapLayout)`);
  }
  if (width > maxSide || height > maxSide) {
    throw new LayoutError(`canvas ${width}x${height} is larger than ${maxSide} pixels a side`);
  }
  if (!Array.isArray(boxes) || boxes.length < 2) {
    throw new LayoutError(`a layout needs at least 2 boxes (merged image and background), got ${Array.isArray(boxes) ? boxes.length : 'none'}`);
  }
  if (boxes.length > maxLayers) {
    throw new LayoutError(`${boxes.length} layers, but the model takes at most ${maxLayers} (merged + background + ${maxLayers - 2}); remove some layers`);
  }
  boxes.forEach((box, i) => {
    if (!Array.isArray(box) || box.length !== 4 || !box.every(isInt)) {
      throw new LayoutError(`box ${i} must be 4 integers [x1, y1, x2, y2], got ${JSON.stringify(box)}`);
    }
    const [x1, y1, x2, y2] = box;
    if (x2 < x1 || y2 < y1) throw new LayoutError(`box ${i} [${box}] is inverted (x2 < x1 or y2 < y1)`);
    if (x1 === x2 || y1 === y2) throw new LayoutError(`box ${i} [${box}] is empty; drop that layer`);
    if (x1 < 0 || y1 < 0 || x2 > width || y2 > height) {
      throw new LayoutError(`box ${i} [${box}] is outside the ${width}x${height} canvas`);
    }
    if (box.some((v) => v % GRID !== 0)) {
      throw new LayoutError(`box ${i} [${box}] is off the ${GRID}-pixel grid (use snapLayout to snap boxes outwards)`);
    }
  });
  for (const i of [MERGED_LAYER, BACKGROUND_LAYER]) {
    const [x1, y1, x2, y2] = boxes[i];
    if (x1 !== 0 || y1 !== 0 || x2 !== width || y2 !== height) {
      throw new LayoutError(`box ${i} (${i === MERGED_LAYER ? 'merged' : 'background'}) must be the whole canvas [0, 0, ${width}, ${height}], got [${boxes[i]}]`);
    }
  }
}

/**
 * Snaps every box outwards to the grid (x1, y1 down; x2, y2 up) and clamps it to the canvas, as
 * the seed's example does. The canvas itself must already be on the grid.
 */
export function snapLayout(layout: Layout): Layout {
  const clamp = (v: number, max: number) => Math.min(max, Math.max(0, v));
  const boxes = layout.boxes.map(([x1, y1, x2, y2]): BoxTuple => [
    clamp(Math.floor(x1 / GRID) * GRID, layout.width),
    clamp(Math.floor(y1 / GRID) * GRID, layout.height),
    clamp(Math.ceil(x2 / GRID) * GRID, layout.width),
    clamp(Math.ceil(y2 / GRID) * GRID, layout.height),
  ]);
  return { width: layout.width, height: layout.height, boxes };
}

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
