/**
 * A regeneration's layers -> the result frame they were made for, in place (issue 12): the nodes
 * the designer kept keep everything, the regenerated ones get their new image on the same node
 * (name, effects, strokes, opacity, locks, z-order untouched; only the image paint and the box
 * change), a layer the designer added gets a new image node just above their placeholder (which is
 * hidden, so the next regeneration does not see it again), and every node's plugin data moves to
 * the new job, so the frame can be edited again. One undo step; nothing changes unless everything
 * can be changed.
 *
 * The Figma API is passed in, typed as the subset used (as in plugin/insert.ts).
 */
import { BACKGROUND_LAYER, MERGED_LAYER } from '../domain/layout.ts';
import { exactImageFill, frameBox, notifyLine, resultFrameName, type JobInfo, type SceneApi, type SceneFrame, type SceneRect } from './insert.ts';
import type { FrameLayout } from './layout.ts';
import type { PlannedLayer } from './regenerate.ts';
import {
  LAYER_NODE_KEY,
  MAX_LINEAGE,
  RESULT_DATA_VERSION,
  RESULT_FRAME_KEY,
  parseLayerNodeData,
  parseResultFrameData,
  type LayerHash,
  type LayerNodeData,
  type ResultFrameData,
} from './result-data.ts';

/** A layer node: what insert makes (a rectangle with one image paint), read back and changed. */
export type ImageLayerNode = SceneRect & Pick<RectangleNode, 'width' | 'height' | 'getPluginData'> & { readonly type: string };

/** Any direct child of the result frame: a placeholder the designer drew is only hidden. */
export type FrameChild = Pick<SceneNode, 'id' | 'type' | 'visible'>;

export interface ReplaceFrame<R extends ImageLayerNode> extends Pick<FrameNode, 'id' | 'name' | 'getPluginData' | 'setPluginData'> {
  readonly children: readonly (R | FrameChild)[];
  insertChild(index: number, child: R): void;
}

export type ReplaceApi<R extends ImageLayerNode> = Pick<SceneApi<SceneFrame<R>, R>, 'createRectangle' | 'getImageByHash' | 'commitUndo'>;

export interface ReplaceInput {
  /** The job the frame showed when Regenerate was clicked. */
  baseJobId: string;
  /** The new job's layout, read from the result frame (plugin/regenerate.ts). */
  layout: FrameLayout;
  /** Aligned with `layout.regions`: which node each layer lands on, and which were kept. */
  layers: readonly PlannedLayer[];
  /** The image of every regenerated layer (kept layers' images are already on their nodes). */
  images: readonly LayerHash[];
  job: JobInfo;
}

/** Counts of layers, the merged preview (always new) left out: what the designer asked for. */
export interface ReplaceSummary {
  /** Layers whose image changed on an existing node. */
  replaced: number;
  /** Layers that got a new node (each one the designer added). */
  added: number;
  kept: number;
}

/** Figma's rule: a node of type RECTANGLE is a RectangleNode. */
function isImageLayer<R extends ImageLayerNode>(node: R | FrameChild): node is R {
  return node.type === 'RECTANGLE';
}

/**
 * The node's paints with the image swapped: each image paint shows the new image exactly (its
 * opacity, visibility, blend mode and filters kept); other paints stay; no image paint, one on top.
 */
export function withImage(fills: RectangleNode['fills'], hash: string): Paint[] {
  const exact = exactImageFill(hash);
  if (!Array.isArray(fills)) return [exact];
  const paints = fills as readonly Paint[];
  if (!paints.some((p) => p.type === 'IMAGE')) return [...paints, exact];
  return paints.map((p) => {
    if (p.type !== 'IMAGE') return p;
    return {
      ...exact,
      ...(p.opacity !== undefined && { opacity: p.opacity }),
      ...(p.visible !== undefined && { visible: p.visible }),
      ...(p.blendMode !== undefined && { blendMode: p.blendMode }),
      ...(p.filters !== undefined && { filters: p.filters }),
    };
  });
}

/** The frame's name with the new seed, if it still carries the name insert gave it. */
function renamed(name: string, before: number, after: number): string {
  return name.endsWith(resultFrameName('', before)) ? resultFrameName(name, after) : name;
}

/** Places the new layers' images on the result frame. Throws, with the document unchanged, if it cannot. */
export function replaceLayers<R extends ImageLayerNode>(scene: ReplaceApi<R>, frame: ReplaceFrame<R>, input: ReplaceInput): ReplaceSummary {
  const { layout, layers, job } = input;
  const data = parseResultFrameData(frame.getPluginData(RESULT_FRAME_KEY));
  if (!data || data.jobId !== input.baseJobId)
    throw new Error(`“${frame.name}” no longer shows the version this job was made from. Insert the result as a new frame instead.`);
  if (layers.length !== layout.regions.length) throw new Error('The regeneration plan does not match its layout. Regenerate again.');

  const images = new Map(input.images.map((l) => [l.index, l.hash]));
  const regenerated = layers.flatMap((l, i) => (l.kept ? [] : [i]));
  const missing = regenerated.filter((i) => !images.has(i));
  if (missing.length) throw new Error(`The bridge sent no image for layer ${missing.join(', ')}. Regenerate again.`);
  const lost = regenerated.filter((i) => !scene.getImageByHash(images.get(i)!));
  if (lost.length) throw new Error(`Figma no longer has the image of layer “${layout.regions[lost[0]].name}”. Regenerate again.`);

  const children = [...frame.children];
  const byId = new Map(children.map((c) => [c.id, c]));
  const nodes: Array<R | null> = layers.map((l, i) => {
    if (l.nodeId === null) return null;
    const node = byId.get(l.nodeId);
    if (!node || !isImageLayer(node))
      throw new Error(
        `The layer “${layout.regions[i].name}” was deleted or changed since Regenerate was clicked. Insert the result as a new frame instead.`,
      );
    return node;
  });
  // Kept layers need no image: a layer that would need a new node cannot be kept.
  const orphan = layers.findIndex((l, i) => l.kept && nodes[i] === null);
  if (orphan >= 0) throw new Error(`Layer “${layout.regions[orphan].name}” is kept but has no node. Regenerate again.`);

  // Everything below is one undo step, and is reverted if any part of it fails.
  const revert: Array<() => void> = [];
  const setData = (node: Pick<PluginDataMixin, 'getPluginData' | 'setPluginData'>, key: string, value: string) => {
    const old = node.getPluginData(key);
    node.setPluginData(key, value);
    revert.push(() => node.setPluginData(key, old));
  };
  const place = (node: R, index: number) => {
    const [x1, y1, x2, y2] = frameBox(layout, index);
    const [x, y, width, height] = [node.x, node.y, node.width, node.height];
    node.x = x1;
    node.y = y1;
    node.resize(x2 - x1, y2 - y1);
    revert.push(() => {
      node.resize(width, height);
      node.x = x;
      node.y = y;
    });
    const fills = node.fills;
    node.fills = withImage(fills, images.get(index)!);
    revert.push(() => (node.fills = fills));
  };

  scene.commitUndo();
  const summary: ReplaceSummary = { replaced: 0, added: 0, kept: 0 };
  try {
    layers.forEach((layer, index) => {
      let node: R;
      const existing = nodes[index];
      if (existing && layer.kept) {
        node = existing;
        summary.kept++;
      } else if (existing) {
        node = existing;
        place(node, index);
        if (index !== MERGED_LAYER) summary.replaced++;
      } else {
        node = scene.createRectangle();
        const made = node;
        revert.push(() => made.remove());
        node.name = layout.regions[index].name;
        place(node, index);
        frame.insertChild(insertAt(frame, index, layout, nodes), node);
        if (index === BACKGROUND_LAYER) node.locked = true;
        if (index === MERGED_LAYER) node.visible = false;
        // The designer's placeholder stays in the document, hidden: the next read skips it.
        const placeholder = layout.regions[index].nodeId && byId.get(layout.regions[index].nodeId!);
        if (placeholder && index > BACKGROUND_LAYER) {
          const shown = placeholder.visible;
          placeholder.visible = false;
          revert.push(() => (placeholder.visible = shown));
        }
        nodes[index] = node;
        if (index !== MERGED_LAYER) summary.added++;
      }
      // A node of the base job keeps naming its source node; a new node names the shape it was drawn for.
      const before = parseLayerNodeData(node.getPluginData(LAYER_NODE_KEY));
      const next: LayerNodeData = {
        v: RESULT_DATA_VERSION,
        jobId: job.jobId,
        index,
        sourceNodeId: before ? before.sourceNodeId : layout.regions[index].nodeId,
        box: frameBox(layout, index),
        model: job.model,
        seed: job.seed,
      };
      setData(node, LAYER_NODE_KEY, JSON.stringify(next));
    });
    const frameData: ResultFrameData = {
      ...data,
      jobId: job.jobId,
      model: job.model,
      seed: job.seed,
      prompt: job.prompt,
      layerCount: layout.regions.length,
      lineage: [...data.lineage, data.jobId].slice(-MAX_LINEAGE),
    };
    setData(frame, RESULT_FRAME_KEY, JSON.stringify(frameData));
    const name = frame.name;
    frame.name = renamed(name, data.seed, job.seed);
    revert.push(() => (frame.name = name));
    scene.commitUndo();
    return summary;
  } catch (error) {
    for (const undo of revert.reverse()) {
      try {
        undo();
      } catch {
        // a node already gone with its parent
      }
    }
    throw error;
  }
}

/**
 * Where a new node goes in the frame's children (bottom to top): the background at the bottom,
 * the merged preview on top, a child layer just above the node below it in the new layout.
 */
function insertAt<R extends ImageLayerNode>(frame: ReplaceFrame<R>, index: number, layout: FrameLayout, nodes: ReadonlyArray<R | null>): number {
  const children = frame.children;
  if (index === BACKGROUND_LAYER) return 0;
  if (index === MERGED_LAYER) return children.length;
  const placeholder = layout.regions[index].nodeId;
  const anchor = placeholder ? children.findIndex((c) => c.id === placeholder) : -1;
  if (anchor >= 0) return anchor + 1;
  for (let below = index - 1; below >= BACKGROUND_LAYER; below--) {
    const node = nodes[below];
    const at = node ? children.findIndex((c) => c.id === node.id) : -1;
    if (at >= 0) return at + 1;
  }
  return 0;
}

/** The figma.notify line after a replace. */
export function replaceSummary(frameName: string, summary: ReplaceSummary, tiny: boolean): string {
  const changed = summary.replaced + summary.added;
  const tail = `: ${changed} layer${changed === 1 ? '' : 's'} new, ${summary.kept} kept${tiny ? ' (tiny test model: noise)' : ''}`;
  return notifyLine('Updated', frameName, tail);
}
