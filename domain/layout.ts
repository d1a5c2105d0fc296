/**
 * Layouts: the canvas, its layers and their boxes, as every side of the house speaks them (plugin,
 * UI, bridge, pipeline, CLIs). The one schema and the one set of rules for them live here; the
 * limits are the model's (docs/design.md, "Limits"). zod and plain TypeScript only: this module is
 * bundled into the Figma plugin and the browser UI.
 */
import { z } from 'zod';

/** The model's `max_layer_num`: merged + background + up to 50 child layers. */
export const MAX_LAYERS = 52;
/** Layer 0 is the merged image, layer 1 the background; both always cover the whole canvas. */
export const MERGED_LAYER = 0;
export const BACKGROUND_LAYER = 1;
/** Child layers a frame can contribute (MAX_LAYERS minus merged and background). */
export const MAX_CHILD_LAYERS = MAX_LAYERS - 2;
/** Boxes snap to this grid: one transformer token is a 16x16-pixel cell (2x2 latent cells). */
export const GRID = 16;
/** Generation sizes the product offers (longest side of the canvas, in pixels). */
export const RESOLUTIONS = [512, 1024] as const;
export type Resolution = (typeof RESOLUTIONS)[number];
/** Largest canvas side accepted anywhere. */
export const MAX_CANVAS_SIDE = 1024;
/**
 * Largest flat image (PNG file) a decomposition reads, at the largest canvas: a 1024 x 1024 RGBA
 * image of incompressible pixels is 4 MiB + 1 KiB of filtered rows (stored deflate blocks add 5
 * bytes per 64 KiB); the rest is room for the ancillary chunks an exporter adds (an ICC profile, text).
 */
export const MAX_FLAT_IMAGE_BYTES = 4 * 1024 * 1024 + 256 * 1024;

/** A box in canvas pixels, `[x1, y1, x2, y2]`, x2/y2 exclusive, as the official layouts write them. */
export type BoxTuple = [number, number, number, number];

/**
 * An anonymous region layout. `boxes[0]` is the merged image and `boxes[1]` the background, both
 * the whole canvas; `boxes[2..]` are the child layers, bottom to top. Same shape as the official
 * validation layouts.
 */
export interface Layout {
  width: number;
  height: number;
  boxes: BoxTuple[];
}

export class LayoutError extends Error {
  override name = 'LayoutError';
}

const isBoxTuple = (b: unknown): b is BoxTuple => Array.isArray(b) && b.length === 4 && b.every((v) => Number.isInteger(v));

/** What is wrong with a canvas size, or null: positive, on the grid, at most MAX_CANVAS_SIDE. */
export function canvasProblem(width: number, height: number): string | null {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0)
    return `canvas ${width}x${height} is not a positive integer size`;
  if (width % GRID !== 0 || height % GRID !== 0)
    return `canvas ${width}x${height}: both sides must be multiples of ${GRID} pixels; scale the frame to the grid`;
  if (width > MAX_CANVAS_SIDE || height > MAX_CANVAS_SIDE) return `canvas ${width}x${height} is larger than ${MAX_CANVAS_SIDE} pixels a side`;
  return null;
}

/** What is wrong with box `index` of a `width` x `height` canvas, or null. Boxes 0 and 1 are the whole canvas. */
export function boxProblem(box: BoxTuple, index: number, width: number, height: number): string | null {
  const [x1, y1, x2, y2] = box;
  if (index === MERGED_LAYER || index === BACKGROUND_LAYER) {
    const whole = x1 === 0 && y1 === 0 && x2 === width && y2 === height;
    const name = index === MERGED_LAYER ? 'merged' : 'background';
    return whole ? null : `box ${index} (${name}) must be the whole canvas [0, 0, ${width}, ${height}], got [${box}]`;
  }
  const placement = placementProblem(box, index, width, height);
  if (placement) return placement;
  if (box.some((v) => v % GRID !== 0)) return `box ${index} [${box}] is off the ${GRID}-pixel grid; snap boxes outwards to it`;
  return null;
}

/** What is wrong with where a box sits, grid aside (a layout file's boxes before snapping), or null. */
export function placementProblem(box: BoxTuple, index: number, width: number, height: number): string | null {
  const [x1, y1, x2, y2] = box;
  if (x2 < x1 || y2 < y1) return `box ${index} [${box}] is inverted (x2 < x1 or y2 < y1)`;
  if (x1 === x2 || y1 === y2) return `box ${index} [${box}] is empty; drop that layer`;
  if (x1 < 0 || y1 < 0 || x2 > width || y2 > height) return `box ${index} [${box}] is outside the ${width}x${height} canvas`;
  return null;
}

/**
 * The layout schema for a model that takes at most `maxLayers` layers (a model folder may take
 * fewer than MAX_LAYERS). Validates once at a boundary; its first issue names the problem.
 */
export function layoutSchemaFor(maxLayers: number): z.ZodType<Layout> {
  return z
    .object({
      width: z.number().int(),
      height: z.number().int(),
      boxes: z
        .array(z.custom<BoxTuple>(isBoxTuple, 'must be 4 integers [x1, y1, x2, y2]'))
        .min(2, 'a layout needs at least 2 boxes (merged image and background, the whole canvas)')
        .max(maxLayers, `at most ${maxLayers} layers (merged + background + ${maxLayers - 2}); remove some layers`),
    })
    .strict()
    .superRefine((layout, ctx) => {
      // zod reports a malformed box and goes on; the rules below read well-formed boxes only.
      if (!layout.boxes.every(isBoxTuple)) return;
      const canvas = canvasProblem(layout.width, layout.height);
      if (canvas) return void ctx.addIssue({ code: z.ZodIssueCode.custom, message: canvas });
      for (let i = 0; i < layout.boxes.length; i++) {
        const problem = boxProblem(layout.boxes[i], i, layout.width, layout.height);
        if (problem) return void ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['boxes', i], message: problem });
      }
    });
}

/** A layout in canvas pixels, for a model that takes MAX_LAYERS layers. */
export const layoutSchema = layoutSchemaFor(MAX_LAYERS);

/** The first problem of a parse, as one line: `boxes.3: must be 4 integers...`. */
export function firstIssue(error: z.ZodError, what: string): string {
  const issue = error.issues[0];
  return `${issue.path.length ? issue.path.join('.') : what}: ${issue.message}`;
}

/** Checks a layout; throws a LayoutError naming the first problem. */
export function validateLayout(layout: Layout, maxLayers = MAX_LAYERS): void {
  const parsed = (maxLayers === MAX_LAYERS ? layoutSchema : layoutSchemaFor(maxLayers)).safeParse(layout);
  if (!parsed.success) throw new LayoutError(firstIssue(parsed.error, 'layout'));
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
