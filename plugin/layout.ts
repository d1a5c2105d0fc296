/**
 * Frame -> ART layout (docs/design.md, "Data, end to end", step 1). The frame is scaled so its
 * longest side is the resolution, each visible direct child becomes one box snapped outwards to
 * the token grid, and every box remembers the node it came from so the generated layer can land
 * back on it.
 */
import { z } from 'zod';
import { type BoxTuple, GRID, type Layout, layoutSchema, MAX_CHILD_LAYERS } from '../domain/layout.ts';
import { FRAME_TYPES, intersection, type PlainNode, type Rect } from './scene.ts';

/** One box of the layout and where it came from (null for the merged and background layers). */
export interface Region {
  nodeId: string | null;
  name: string;
  box: BoxTuple;
}

/**
 * `slice`: slices draw nothing (an export area); `mask`: a mask draws nothing itself, it clips
 * the siblings above it; `masked-out`: nothing of the node shows through the mask below it.
 */
export type SkipReason = 'hidden' | 'outside' | 'no-bounds' | 'over-limit' | 'slice' | 'mask' | 'masked-out';

export interface SkippedNode {
  nodeId: string;
  name: string;
  reason: SkipReason;
}

export interface FrameLayout {
  frameId: string;
  frameName: string;
  /** The frame's size in Figma units. */
  frameWidth: number;
  frameHeight: number;
  /** Generation pixels per frame unit, per axis (the sides are rounded to the grid separately). */
  scaleX: number;
  scaleY: number;
  layout: Layout;
  /** Aligned with `layout.boxes`: merged, background, then the child layers bottom to top. */
  regions: Region[];
  skipped: SkippedNode[];
}

const SKIP_REASONS = ['hidden', 'outside', 'no-bounds', 'over-limit', 'slice', 'mask', 'masked-out'] as const satisfies readonly SkipReason[];
const positive = () => z.number().finite().positive();

/** A frame layout read back from storage (plugin/remembered-jobs.ts): one region per box. */
export const frameLayoutSchema: z.ZodType<FrameLayout, z.ZodTypeDef, unknown> = z
  .object({
    frameId: z.string(),
    frameName: z.string(),
    frameWidth: positive(),
    frameHeight: positive(),
    scaleX: positive(),
    scaleY: positive(),
    layout: layoutSchema,
    regions: z.array(z.object({ nodeId: z.string().nullable(), name: z.string(), box: z.tuple([z.number(), z.number(), z.number(), z.number()]) })),
    skipped: z.array(z.object({ nodeId: z.string(), name: z.string(), reason: z.enum(SKIP_REASONS) })),
  })
  .refine((f) => f.regions.length === f.layout.boxes.length, 'one region per layout box');

export type LayoutResult = { ok: true; value: FrameLayout } | { ok: false; message: string };

export const MERGED_NAME = 'Merged preview';
export const BACKGROUND_NAME = 'Background';

/** Canvas size in generation pixels: longest side = resolution, both sides multiples of GRID. */
export function canvasSize(width: number, height: number, resolution: number): { width: number; height: number } {
  const scale = resolution / Math.max(width, height);
  const side = (v: number) => Math.min(resolution, Math.max(GRID, Math.round((v * scale) / GRID) * GRID));
  return { width: side(width), height: side(height) };
}

const EPSILON = 1e-6;

/** Snaps [lo, hi) outwards to the grid inside [0, limit], growing an empty span to one cell. */
function snapSpan(lo: number, hi: number, limit: number): [number, number] {
  // The epsilon keeps float noise (32.000000001) from adding a whole cell.
  let a = Math.max(0, Math.floor(lo / GRID + EPSILON) * GRID);
  let b = Math.min(limit, Math.ceil(hi / GRID - EPSILON) * GRID);
  if (b - a < GRID) {
    // A hairline or a sub-cell node still deserves one token cell, kept inside the canvas.
    a = Math.min(a, limit - GRID);
    b = a + GRID;
  }
  return [a, b];
}

/** The part of `r` inside the frame, in frame-local units, or null if nothing is inside. */
function clipToFrame(r: Rect, frame: Rect): [number, number, number, number] | null {
  const x1 = Math.max(r.x, frame.x) - frame.x;
  const y1 = Math.max(r.y, frame.y) - frame.y;
  const x2 = Math.min(r.x + r.width, frame.x + frame.width) - frame.x;
  const y2 = Math.min(r.y + r.height, frame.y + frame.height) - frame.y;
  // Touching edges only (x1 === x2 on the border) counts as outside; a hairline inside does not.
  if (x2 < x1 || y2 < y1) return null;
  if ((x1 === x2 && (x1 <= 0 || x1 >= frame.width)) || (y1 === y2 && (y1 <= 0 || y1 >= frame.height)))
    return null;
  return [x1, y1, x2, y2];
}

function describeType(type: string): string {
  return type.toLowerCase().replace(/_/g, ' ');
}

export function frameLayout(frame: PlainNode, resolution: number): LayoutResult {
  if (!FRAME_TYPES.includes(frame.type))
    return {
      ok: false,
      message: `“${frame.name}” is a ${describeType(frame.type)}, not a frame. Select a frame whose layers should become generated layers.`,
    };
  const rotation = frame.rotation ?? 0;
  if (Math.abs(rotation) > 1e-6)
    return {
      ok: false,
      message: `Frame “${frame.name}” is rotated (${Math.round(rotation * 10) / 10}°). Set its rotation to 0, or put it in an unrotated frame and select that, then try again.`,
    };
  const bounds = frame.bounds;
  if (!bounds || bounds.width <= 0 || bounds.height <= 0)
    return { ok: false, message: `Frame “${frame.name}” has no size. Give it a width and height, then try again.` };
  const children = frame.children ?? [];
  if (children.length === 0)
    return {
      ok: false,
      message: `Frame “${frame.name}” is empty. Add a shape, image or text for each layer you want generated.`,
    };

  const canvas = canvasSize(bounds.width, bounds.height, resolution);
  const scaleX = canvas.width / bounds.width;
  const scaleY = canvas.height / bounds.height;
  const whole: BoxTuple = [0, 0, canvas.width, canvas.height];
  const regions: Region[] = [
    { nodeId: null, name: MERGED_NAME, box: whole },
    { nodeId: null, name: BACKGROUND_NAME, box: [...whole] },
  ];
  const skipped: SkippedNode[] = [];
  let visibleCount = 0;
  // Figma: "A mask node masks its subsequent siblings" (BlendMixin.isMask). Each child is clipped
  // to the nearest visible mask below it: never smaller than what that mask lets through.
  let mask: Rect | null = null;

  // Figma lists children bottom to top, the order ART's layers take.
  for (const child of children) {
    const skip = (reason: SkipReason) => skipped.push({ nodeId: child.id, name: child.name, reason });
    if (!child.visible) {
      skip('hidden');
      continue;
    }
    if (child.type === 'SLICE') {
      skip('slice');
      continue;
    }
    if (child.isMask) {
      if (child.bounds) mask = child.bounds;
      skip('mask');
      continue;
    }
    visibleCount++;
    if (!child.bounds) {
      skip('no-bounds');
      continue;
    }
    const shown = mask ? intersection(child.bounds, mask) : child.bounds;
    if (!shown) {
      skip('masked-out');
      continue;
    }
    const local = clipToFrame(shown, bounds);
    if (!local) {
      skip('outside');
      continue;
    }
    if (regions.length - 2 >= MAX_CHILD_LAYERS) {
      skip('over-limit');
      continue;
    }
    const [x1, x2] = snapSpan(local[0] * scaleX, local[2] * scaleX, canvas.width);
    const [y1, y2] = snapSpan(local[1] * scaleY, local[3] * scaleY, canvas.height);
    regions.push({ nodeId: child.id, name: child.name, box: [x1, y1, x2, y2] });
  }

  if (visibleCount === 0 && skipped.some((s) => s.reason === 'slice' || s.reason === 'mask'))
    return {
      ok: false,
      message: `Frame “${frame.name}” holds only slices and masks, which draw nothing. Add a shape, image or text for each layer you want generated.`,
    };
  if (visibleCount === 0)
    return {
      ok: false,
      message: `Every layer in “${frame.name}” is hidden. Show the layers you want generated, then try again.`,
    };
  if (regions.length === 2)
    return {
      ok: false,
      message: `No visible layer of “${frame.name}” lies inside the frame. Move layers into it, then try again.`,
    };

  return {
    ok: true,
    value: {
      frameId: frame.id,
      frameName: frame.name,
      frameWidth: bounds.width,
      frameHeight: bounds.height,
      scaleX,
      scaleY,
      layout: { width: canvas.width, height: canvas.height, boxes: regions.map((r) => r.box) },
      regions,
      skipped,
    },
  };
}

/** A one-line note about the layers that did not become boxes, or null when all did. */
export function skippedSummary(skipped: readonly SkippedNode[]): string | null {
  const overLimit = skipped.filter((s) => s.reason === 'over-limit');
  const outside = skipped.filter((s) => s.reason === 'outside' || s.reason === 'no-bounds' || s.reason === 'masked-out');
  const parts: string[] = [];
  if (overLimit.length)
    parts.push(
      `Only ${MAX_CHILD_LAYERS} layers fit; left out: ${overLimit.map((s) => s.name).join(', ')}. Group layers to make room.`,
    );
  if (outside.length) parts.push(`Outside the frame, left out: ${outside.map((s) => s.name).join(', ')}.`);
  return parts.length ? parts.join(' ') : null;
}
