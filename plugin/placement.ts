/**
 * Where a result frame goes. Pure functions over plain rectangles and a parent chain, so tests
 * feed them hand-made scenes.
 *
 * The container is the source's nearest page or section, never its own parent: a parent may be an
 * instance or inside one (Figma refuses: "Cannot move node. New parent is an instance or is inside
 * of an instance"), a component set (only components may be its children), an auto-layout frame
 * (appendChild there "can cause this layer to be resized and children to be moved", ChildrenMixin
 * .appendChild in @figma/plugin-typings, and x/y of its children are ignored), or a clipping frame
 * that would hide a result placed beside the source. Pages and sections take any frame, keep x/y
 * as given and do not clip what lies beside the source.
 */
import type { Rect } from './scene.ts';

/** Space between the source (or anything in the way) and the new frame, in Figma units. */
export const FRAME_GAP = 40;

/** Node types a result frame may be appended to. */
export const CONTAINER_TYPES: readonly string[] = ['PAGE', 'SECTION'];

export function isContainerType(type: string): boolean {
  return CONTAINER_TYPES.includes(type);
}

function overlaps(a: Rect, b: Rect, margin: number): boolean {
  return (
    a.x - margin < b.x + b.width && b.x < a.x + a.width + margin && a.y - margin < b.y + b.height && b.y < a.y + a.height + margin
  );
}

/**
 * Slides a rectangle along one axis past every obstacle it meets. Returns how far it moved and
 * where it ended. Bounded by the obstacle count: each step passes at least one obstacle.
 */
function slide(start: Rect, obstacles: readonly Rect[], axis: 'x' | 'y', gap: number): { at: Rect; moved: number } {
  let at = start;
  for (let step = 0; step <= obstacles.length; step++) {
    const hits = obstacles.filter((o) => overlaps(at, o, gap / 2));
    if (hits.length === 0) break;
    const past = Math.max(...hits.map((o) => (axis === 'x' ? o.x + o.width : o.y + o.height))) + gap;
    at = axis === 'x' ? { ...at, x: past } : { ...at, y: past };
  }
  return { at, moved: axis === 'x' ? at.x - start.x : at.y - start.y };
}

/**
 * The nearest free spot for a `size` frame beside `source` (absolute coordinates): right of it,
 * else below it, whichever needs the shorter move past what is already there (right wins ties).
 */
export function freeSpot(
  source: Rect,
  size: { width: number; height: number },
  obstacles: readonly Rect[],
  gap = FRAME_GAP,
): { x: number; y: number } {
  const right = slide({ x: source.x + source.width + gap, y: source.y, ...size }, obstacles, 'x', gap);
  const below = slide({ x: source.x, y: source.y + source.height + gap, ...size }, obstacles, 'y', gap);
  const pick = right.moved <= below.moved ? right.at : below.at;
  return { x: pick.x, y: pick.y };
}

/** A frame of `size` centred on `center` (a result whose source was deleted lands in view). */
export function centredAt(center: { x: number; y: number }, size: { width: number; height: number }): { x: number; y: number } {
  return { x: center.x - size.width / 2, y: center.y - size.height / 2 };
}

/** Whether `inner` lies entirely inside `outer` (a result already in view needs no zoom). */
export function contains(outer: Rect, inner: Rect): boolean {
  return (
    inner.x >= outer.x &&
    inner.y >= outer.y &&
    inner.x + inner.width <= outer.x + outer.width &&
    inner.y + inner.height <= outer.y + outer.height
  );
}
