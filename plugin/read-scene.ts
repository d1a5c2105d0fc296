/**
 * Figma nodes -> the plain trees that layout and caption read. The only place that reads the live
 * document for a selection, and it reads little: a frame and its direct children (the layers), plus
 * the frame's visible text through one `findAllWithCriteria` call for the caption draft. Selection
 * changes run this on Figma's main thread, so nothing here walks a tree node by node.
 */
import type { EditedResultFrame } from './regenerate.ts';
import { LAYER_NODE_KEY, parseLayerNodeData, type ResultFrameData } from './result-data.ts';
import { intersection, union, type PlainNode, type Rect } from './scene.ts';

/** Most text nodes the caption draft reads (it keeps ~600 characters anyway). */
export const MAX_CAPTION_TEXTS = 60;

/** What is read of a node's ancestors: whether they are shown. */
export interface ParentLike {
  readonly visible?: boolean;
  readonly parent: ParentLike | null;
}

/** The subset of a scene node read here (the real SceneNode and the tests' fakes both fit). */
export interface ReadableNode {
  readonly id: string;
  readonly name: string;
  readonly type: string;
  readonly visible: boolean;
  readonly parent: ParentLike | null;
  readonly absoluteBoundingBox: Rect | null;
  readonly absoluteRenderBounds?: Rect | null;
  readonly rotation?: number;
  readonly isMask?: boolean;
  readonly characters?: string;
  readonly children?: readonly ReadableNode[];
  findAllWithCriteria?(criteria: { types: ['TEXT'] }): readonly ReadableNode[];
  getPluginData?(key: string): string;
}

function plainRect(r: Rect): Rect {
  return { x: r.x, y: r.y, width: r.width, height: r.height };
}

/**
 * What a node draws, in page coordinates: `absoluteBoundingBox` "does not include rendered
 * properties like drop shadows or strokes"; `absoluteRenderBounds` accounts for them and "will be
 * null if the node is invisible" (LayoutMixin in @figma/plugin-typings). Their union, then.
 */
export function drawnBounds(node: ReadableNode): Rect | null {
  const box = node.absoluteBoundingBox;
  const render = node.absoluteRenderBounds ?? null;
  if (box && render) return union(box, render);
  const one = box ?? render;
  return one ? plainRect(one) : null;
}

/**
 * A child's bounds for the layout. A group whose bottom layer is a mask (what Figma's "Use as
 * mask" makes) shows only what lies inside that mask, so it is clipped to the mask.
 */
function childBounds(node: ReadableNode): Rect | null {
  const bounds = drawnBounds(node);
  const bottom = node.children?.[0];
  if (!bounds || !bottom?.isMask || !bottom.visible) return bounds;
  const mask = drawnBounds(bottom);
  return mask ? intersection(bounds, mask) : bounds;
}

function isShown(node: ReadableNode, within: ReadableNode): boolean {
  for (let n: ParentLike | null = node; n && n !== within; n = n.parent) if (n.visible === false) return false;
  return true;
}

/** Visible text inside `frame`, in document order, at most MAX_CAPTION_TEXTS. */
function frameTexts(frame: ReadableNode): string[] {
  const found = frame.findAllWithCriteria?.({ types: ['TEXT'] }) ?? [];
  const texts: string[] = [];
  for (const t of found) {
    if (texts.length >= MAX_CAPTION_TEXTS) break;
    if (t.characters && isShown(t, frame)) texts.push(t.characters);
  }
  return texts;
}

/** A selected frame: its own bounds and rotation, its direct children, its text. */
export function readFrame(frame: ReadableNode): PlainNode {
  return {
    id: frame.id,
    name: frame.name,
    type: frame.type,
    visible: frame.visible,
    bounds: frame.absoluteBoundingBox ? plainRect(frame.absoluteBoundingBox) : null,
    rotation: frame.rotation ?? 0,
    texts: frameTexts(frame),
    children: (frame.children ?? []).map(
      (c): PlainNode => ({
        id: c.id,
        name: c.name,
        type: c.type,
        visible: c.visible,
        isMask: c.isMask === true,
        bounds: c.visible ? childBounds(c) : null,
        ...(c.type === 'TEXT' && c.characters !== undefined ? { characters: c.characters } : {}),
      }),
    ),
  };
}

/**
 * A result frame this plugin made (its `art.result` already parsed), as the edit loop reads it:
 * the frame and its direct children like any source frame, each child with its `art.layer` data
 * and whether the designer selected it. No caption texts: the prompt is the job's own.
 */
export function readResultFrame(frame: ReadableNode, data: ResultFrameData, selected: ReadonlySet<string>): EditedResultFrame {
  const nodes = frame.children ?? [];
  // A spread of a Figma node copies nothing (its fields are getters): the fields readFrame needs.
  const plain = readFrame({
    id: frame.id,
    name: frame.name,
    type: frame.type,
    visible: frame.visible,
    parent: frame.parent,
    absoluteBoundingBox: frame.absoluteBoundingBox,
    rotation: frame.rotation,
    children: nodes,
  });
  return {
    id: plain.id,
    name: plain.name,
    bounds: plain.bounds,
    rotation: plain.rotation,
    data,
    children: (plain.children ?? []).map((child, i) => ({
      ...child,
      layer: parseLayerNodeData(nodes[i].getPluginData?.(LAYER_NODE_KEY) ?? ''),
      selected: selected.has(child.id),
    })),
  };
}
