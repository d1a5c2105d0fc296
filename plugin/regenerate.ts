/**
 * Edited result frame -> the next job (issue 12, step 3): which layers a regeneration keeps from
 * the base job and where every layer of the new job goes. The result frame is read like any
 * source frame (`frameLayout`, so the boxes snap exactly as a first generation's do), in the
 * design's current z-order; the plugin data on each child (`art.layer`) says which base layer it
 * was. Pure: the main thread reads the nodes into plain data, this decides.
 */
import { z } from 'zod';
import type { KeepEntry } from '../domain/keep.ts';
import { BACKGROUND_LAYER, type BoxTuple, MERGED_LAYER } from '../domain/layout.ts';
import { canvasSize, frameLayout, type FrameLayout } from './layout.ts';
import type { LayerNodeData, ResultFrameData } from './result-data.ts';
import type { PlainNode, Rect } from './scene.ts';

/** One direct child of the result frame as the main thread read it. */
export interface EditedChild extends PlainNode {
  /** Its `art.layer` data, parsed; null for a node the designer added (or data we do not read). */
  layer: LayerNodeData | null;
  /** The designer selected this node. */
  selected: boolean;
}

export interface EditedResultFrame {
  id: string;
  name: string;
  /** Page coordinates, as `PlainNode.bounds`. */
  bounds: Rect | null;
  rotation?: number;
  /** The frame's `art.result` data, parsed. */
  data: ResultFrameData;
  /** Bottom to top, as Figma lists them. */
  children: EditedChild[];
}

/**
 * `selected`: regenerate the selected layer nodes, plus every layer that cannot be kept (moved,
 * resized, or added); keep the rest. `variations`: keep only the background, regenerate every
 * child layer (the caller sends a new seed).
 */
export type RegenerateMode = 'selected' | 'variations';

/** One layer of the new job, aligned with `layout.regions`. */
export interface PlannedLayer {
  /**
   * The layer node that receives this layer's image in place, or null: a new node is made (for
   * a node the designer added, whose own node is left as it is, or a deleted merged layer).
   */
  nodeId: string | null;
  /** The base job's layer this node showed, or null for a node the designer added. */
  baseIndex: number | null;
  /** True when the new job keeps the base layer (its image is already in place, byte for byte). */
  kept: boolean;
}

/** Where a regeneration's images go: the result frame it was made from, onto these nodes. */
export interface EditTarget {
  frameId: string;
  /** The job the frame showed when Regenerate was clicked (the bridge's `generate.base.jobId`). */
  baseJobId: string;
  /** Aligned with the new job's layout regions. */
  layers: PlannedLayer[];
}

/** An edit target read back from storage (plugin/remembered-jobs.ts); `layers` is checked against the layout there. */
export const editTargetSchema: z.ZodType<EditTarget, z.ZodTypeDef, unknown> = z.object({
  frameId: z.string(),
  baseJobId: z.string(),
  layers: z.array(z.object({ nodeId: z.string().nullable(), baseIndex: z.number().int().min(0).nullable(), kept: z.boolean() })),
});

export interface RegeneratePlan {
  layout: FrameLayout;
  layers: PlannedLayer[];
  keep: KeepEntry[];
  /** Child layers (index 2 and up) the new job regenerates: the N of "Regenerate N layers". */
  regenerated: number;
}

export type RegenerateResult = { ok: true; value: RegeneratePlan } | { ok: false; message: string };

/** The layers a plan draws anew that the designer sees as layers: every one not kept, the merged preview left out. */
export function redrawnLayers(layers: readonly PlannedLayer[]): number[] {
  return layers.flatMap((l, i) => (i === MERGED_LAYER || l.kept ? [] : [i]));
}

/** Frame-unit tolerance for "not moved": insert places nodes at box / scale, which is not exact. */
const UNMOVED = 1e-3;

/** The base layer's box in generation pixels (insert stored it as pixels / scale). */
function basePixels(box: BoxTuple, data: ResultFrameData): BoxTuple {
  return [
    Math.round(box[0] * data.scaleX),
    Math.round(box[1] * data.scaleY),
    Math.round(box[2] * data.scaleX),
    Math.round(box[3] * data.scaleY),
  ];
}

/** The node still covers exactly the box it was inserted at (frame-local units). */
function unmoved(child: EditedChild, frame: Rect, box: BoxTuple): boolean {
  const b = child.bounds;
  if (!b) return false;
  const local = [b.x - frame.x, b.y - frame.y, b.x - frame.x + b.width, b.y - frame.y + b.height];
  return local.every((v, i) => Math.abs(v - box[i]) <= UNMOVED);
}

export function regeneratePlan(frame: EditedResultFrame, mode: RegenerateMode): RegenerateResult {
  const { data } = frame;
  const ours = (c: EditedChild) => c.layer !== null && c.layer.jobId === data.jobId;
  // Merged and background are layers 0 and 1 of every layout, not regions read from children.
  const merged = frame.children.find((c) => ours(c) && c.layer!.index === MERGED_LAYER) ?? null;
  const background = frame.children.find((c) => ours(c) && c.layer!.index === BACKGROUND_LAYER) ?? null;
  const children = frame.children.filter((c) => c !== merged && c !== background);

  const resolution = Math.max(data.canvas.width, data.canvas.height);
  if (frame.bounds) {
    const canvas = canvasSize(frame.bounds.width, frame.bounds.height, resolution);
    if (canvas.width !== data.canvas.width || canvas.height !== data.canvas.height)
      return {
        ok: false,
        message: `“${frame.name}” was resized, so its layers no longer fit the job it came from. Set it back to its size, or select it as a frame and Generate anew.`,
      };
  }
  const read = frameLayout({ id: frame.id, name: frame.name, type: 'FRAME', visible: true, bounds: frame.bounds, rotation: frame.rotation, children }, resolution);
  if (!read.ok) return read;
  const layout = read.value;
  const byId = new Map(children.map((c) => [c.id, c]));

  const layers: PlannedLayer[] = layout.regions.map((region, index) => {
    if (index === MERGED_LAYER) return { nodeId: merged?.id ?? null, baseIndex: MERGED_LAYER, kept: false };
    if (index === BACKGROUND_LAYER)
      return {
        nodeId: background?.id ?? null,
        baseIndex: BACKGROUND_LAYER,
        // A deleted background node is drawn again (a new node), like a deleted merged preview.
        kept: background !== null && (mode === 'variations' || !background.selected),
      };
    const child = byId.get(region.nodeId!)!;
    if (!ours(child)) return { nodeId: null, baseIndex: null, kept: false };
    const base = child.layer!;
    const keepable = mode === 'selected' && !child.selected && unmoved(child, frame.bounds!, base.box);
    return { nodeId: child.id, baseIndex: base.index, kept: keepable };
  });
  // A kept layer takes its base box (the bridge refuses any other), not the one read back: float
  // noise in the node's position within UNMOVED could snap it to a neighbouring cell.
  layers.forEach((l, i) => {
    if (!l.kept || i === BACKGROUND_LAYER) return;
    const box = basePixels(byId.get(layout.regions[i].nodeId!)!.layer!.box, data);
    layout.regions[i] = { ...layout.regions[i], box };
    layout.layout.boxes[i] = box;
  });
  // A base layer shown by two nodes (a duplicated layer) is kept once at most: the bridge
  // refuses a base layer kept twice, and the copy is the designer's new layer.
  const keptFrom = new Set<number>();
  for (const l of layers) {
    if (!l.kept) continue;
    if (keptFrom.has(l.baseIndex!)) l.kept = false;
    else keptFrom.add(l.baseIndex!);
  }

  const keep = layers.flatMap((l, to) => (l.kept ? [{ from: l.baseIndex!, to }] : []));
  const regenerated = layers.filter((l, i) => i >= 2 && !l.kept).length;
  return { ok: true, value: { layout, layers, keep, regenerated } };
}
