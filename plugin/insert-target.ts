/**
 * Finds where a finished job's frame goes in the live document: the source frame's nearest page
 * or section, at the nearest free spot beside the source (plugin/placement.ts), or, when the
 * source is gone or the designer asks for it, the top level of the current page, centred in view.
 *
 * Written against the few node fields it reads, so the real `figma` (BaseNode) and the tests'
 * fake document both fit.
 */
import { centredAt, freeSpot, isContainerType } from './placement.ts';
import type { Rect } from './scene.ts';

export interface TargetNode<N> {
  readonly id: string;
  readonly type: string;
  readonly name: string;
  readonly removed: boolean;
  readonly parent: N | null;
  readonly absoluteBoundingBox?: Rect | null;
  readonly children?: readonly N[];
  /** Pages: under `"documentAccess": "dynamic-page"` a page must be loaded before it is changed. */
  loadAsync?(): Promise<void>;
}

export interface TargetApi<N extends TargetNode<N>> {
  readonly currentPage: N;
  readonly viewport: { readonly center: { x: number; y: number } };
  getNodeByIdAsync(id: string): Promise<N | null>;
}

export interface InsertTarget<N> {
  /** A page or a section. */
  container: N;
  /** The page the container is on. */
  page: N;
  /** The new frame's top-left corner in the container's coordinates. */
  position: { x: number; y: number };
  /** Name the result after: the source's current name, or the one in the layout. */
  sourceName: string;
  /** False when the source was gone (or `place` was 'page'): the result landed in view instead. */
  besideSource: boolean;
}

/** Most top-level nodes read as obstacles (a page can hold thousands; the nearest are enough). */
export const MAX_OBSTACLES = 2000;

function pageOf<N extends TargetNode<N>>(node: N): N | null {
  for (let p: N | null = node; p; p = p.parent) if (p.type === 'PAGE') return p;
  return null;
}

function containerOf<N extends TargetNode<N>>(node: N): N | null {
  for (let p = node.parent; p; p = p.parent) if (isContainerType(p.type)) return p;
  return null;
}

export async function resolveTarget<N extends TargetNode<N>>(
  api: TargetApi<N>,
  frame: { frameId: string; frameName: string; frameWidth: number; frameHeight: number },
  place: 'beside' | 'page',
): Promise<InsertTarget<N>> {
  const size = { width: frame.frameWidth, height: frame.frameHeight };
  const found = place === 'beside' ? await api.getNodeByIdAsync(frame.frameId) : null;
  const source = found && !found.removed && found.absoluteBoundingBox ? found : null;
  const container = source && containerOf(source);
  const page = source && pageOf(source);
  if (!source || !container || !page || !source.absoluteBoundingBox) {
    const current = api.currentPage;
    await current.loadAsync?.();
    return {
      container: current,
      page: current,
      position: centredAt(api.viewport.center, size),
      sourceName: source?.name ?? frame.frameName,
      besideSource: false,
    };
  }
  // Figma, ChildrenMixin.appendChild: "If the manifest contains "documentAccess": "dynamic-page",
  // and the node is a PageNode, you must first call PageNode.loadAsync to access this function."
  if (page !== api.currentPage) await page.loadAsync?.();
  const obstacles: Rect[] = [];
  for (const child of (container.children ?? []).slice(0, MAX_OBSTACLES))
    if (child.absoluteBoundingBox) obstacles.push(child.absoluteBoundingBox);
  const spot = freeSpot(source.absoluteBoundingBox, size, obstacles);
  const origin = container.type === 'PAGE' ? { x: 0, y: 0 } : (container.absoluteBoundingBox ?? { x: 0, y: 0 });
  return {
    container,
    page,
    position: { x: spot.x - origin.x, y: spot.y - origin.y },
    sourceName: source.name,
    besideSource: true,
  };
}
