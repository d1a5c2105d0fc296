/// <reference path="../node_modules/@figma/plugin-typings/plugin-api.d.ts" />
/**
 * Generated layers -> Figma nodes (DESIGN.md, data step 6): a new frame beside the source, the
 * background as a locked bottom layer, every child layer an image rectangle where its source
 * node was, the merged preview hidden on top. The source frame is never touched, and a failure
 * leaves nothing behind.
 *
 * The Figma API is passed in, typed as the subset used (picked from @figma/plugin-typings), so
 * the real `figma` and the tests' fake both satisfy the same declarations.
 */
import { BACKGROUND_LAYER, MERGED_LAYER } from '../gpu-server/constants.ts';
import type { FrameLayout } from './layout.ts';
import type { LayerPng } from './messages.ts';

export type SceneRect = Pick<RectangleNode, 'id' | 'name' | 'x' | 'y' | 'resize' | 'fills' | 'locked' | 'visible' | 'remove'>;

export interface SceneFrame<R extends SceneRect>
  extends Pick<FrameNode, 'id' | 'name' | 'x' | 'y' | 'width' | 'height' | 'resize' | 'fills' | 'clipsContent' | 'remove'> {
  appendChild(child: R): void;
}

/** Where the new frame goes: the source frame's parent. */
export interface SceneParent<F> {
  appendChild(child: F): void;
}

export interface SceneApi<F extends SceneFrame<R>, R extends SceneRect> {
  createFrame(): F;
  createRectangle(): R;
  createImage(data: Uint8Array): Pick<Image, 'hash'>;
  commitUndo(): void;
}

/** Where and how big the source frame is, in its parent's coordinates. */
export interface SourceFrame {
  name: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface InsertInput {
  source: SourceFrame;
  layout: FrameLayout;
  seed: number;
  layers: readonly LayerPng[];
}

/** Space between the source frame and the new one, in Figma units. */
export const FRAME_GAP = 40;

export function resultFrameName(sourceName: string, seed: number): string {
  return `${sourceName} · ART · seed ${seed}`;
}

function imageFill(hash: string): ImagePaint {
  return { type: 'IMAGE', imageHash: hash, scaleMode: 'FILL' };
}

/**
 * Inserts the layers and returns the new frame. Throws (with nothing left in the document) if a
 * layer is missing or an image cannot be decoded.
 */
export function insertLayers<F extends SceneFrame<R>, R extends SceneRect>(
  scene: SceneApi<F, R>,
  parent: SceneParent<F>,
  input: InsertInput,
): F {
  const { layout, source, seed } = input;
  const byIndex = new Map(input.layers.map((l) => [l.index, l.png]));
  const missing = layout.regions.map((_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length)
    throw new Error(`The bridge sent ${input.layers.length} of ${layout.regions.length} layers (missing ${missing.join(', ')}). Generate again.`);

  // Decode every image before creating any node: a bad PNG must not leave half a frame behind.
  const hashes = layout.regions.map((region, i) => {
    try {
      return scene.createImage(byIndex.get(i)!).hash;
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new Error(`Figma could not read the image of layer “${region.name}” (${why}). Generate again.`);
    }
  });

  const created: Array<F | R> = [];
  try {
    scene.commitUndo(); // everything below becomes one undo step
    const frame = scene.createFrame();
    created.push(frame);
    frame.name = resultFrameName(source.name, seed);
    frame.resize(layout.frameWidth, layout.frameHeight);
    frame.x = source.x + source.width + FRAME_GAP;
    frame.y = source.y;
    frame.fills = [];
    frame.clipsContent = true;

    const place = (index: number, name: string): R => {
      const rect = scene.createRectangle();
      created.push(rect);
      const [x1, y1, x2, y2] = layout.regions[index].box;
      rect.name = name;
      rect.x = x1 / layout.scaleX;
      rect.y = y1 / layout.scaleY;
      rect.resize((x2 - x1) / layout.scaleX, (y2 - y1) / layout.scaleY);
      rect.fills = [imageFill(hashes[index])];
      frame.appendChild(rect);
      return rect;
    };

    place(BACKGROUND_LAYER, layout.regions[BACKGROUND_LAYER].name).locked = true;
    for (let i = 2; i < layout.regions.length; i++) place(i, layout.regions[i].name);
    place(MERGED_LAYER, layout.regions[MERGED_LAYER].name).visible = false;

    parent.appendChild(frame);
    scene.commitUndo();
    return frame;
  } catch (error) {
    for (const node of created.reverse()) {
      try {
        node.remove();
      } catch {
        // already gone with its parent
      }
    }
    throw error;
  }
}

/** The figma.notify line (Figma cuts it at 100 characters, so the name is shortened first). */
export function insertSummary(frameName: string, layerCount: number, tiny: boolean): string {
  const tail = `: ${layerCount} layers${tiny ? ' (tiny test model: noise)' : ''}`;
  const room = 99 - 'Inserted “”'.length - tail.length;
  const name = frameName.length > room ? `${frameName.slice(0, Math.max(1, room - 1))}…` : frameName;
  return `Inserted “${name}”${tail}`;
}
