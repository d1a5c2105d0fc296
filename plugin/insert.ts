/**
 * Generated layers -> Figma nodes (docs/design.md, "Data, end to end", step 6): a new frame at a
 * given spot of a given container, the background as a locked bottom layer, every child layer an image rectangle where
 * its source node was, the merged preview hidden on top, each node carrying its plugin data
 * (plugin/result-data.ts). The images already exist: the UI streamed them one message per layer
 * and the main thread made each with `createImage`; the insert names them by hash. The source
 * frame is never touched, and a failure leaves nothing behind.
 *
 * The Figma API is passed in, typed as the subset used (picked from @figma/plugin-typings), so
 * the real `figma` and the tests' fake both satisfy the same declarations.
 */
import { BACKGROUND_LAYER, type BoxTuple, MERGED_LAYER } from '../domain/layout.ts';
import type { FrameLayout } from './layout.ts';
import {
  LAYER_NODE_KEY,
  RESULT_DATA_VERSION,
  RESULT_FRAME_KEY,
  type LayerHash,
  type LayerNodeData,
  type ResultFrameData,
} from './result-data.ts';

export type SceneRect = Pick<
  RectangleNode,
  'id' | 'name' | 'x' | 'y' | 'resize' | 'fills' | 'locked' | 'visible' | 'remove' | 'setPluginData'
>;

export interface SceneFrame<R extends SceneRect>
  extends Pick<
    FrameNode,
    'id' | 'name' | 'x' | 'y' | 'width' | 'height' | 'resize' | 'fills' | 'clipsContent' | 'remove' | 'setPluginData'
  > {
  appendChild(child: R): void;
}

/** Where the new frame goes: a page or a section (plugin/placement.ts picks it). */
export interface SceneParent<F> {
  appendChild(child: F): void;
}

export interface SceneApi<F extends SceneFrame<R>, R extends SceneRect> {
  createFrame(): F;
  createRectangle(): R;
  getImageByHash(hash: string): Pick<Image, 'hash'> | null;
  commitUndo(): void;
}

/** The job the layers came from, as the result's plugin data records it. */
export interface JobInfo {
  jobId: string;
  model: string;
  seed: number;
  prompt: string;
}

export interface InsertInput {
  /** The source frame's name (the result is named after it). */
  sourceName: string;
  /** Top-left corner of the new frame in the container's coordinates. */
  position: { x: number; y: number };
  layout: FrameLayout;
  job: JobInfo;
  layers: readonly LayerHash[];
}

const NAME_SUFFIX = / · ART · seed \d+$/;

/** `<source> · ART · seed <n>`; a result of a result (a regeneration inserted as a new frame) is not suffixed twice. */
export function resultFrameName(sourceName: string, seed: number): string {
  return `${sourceName.replace(NAME_SUFFIX, '')} · ART · seed ${seed}`;
}

/**
 * Each PNG is exactly its box in pixels, and the rectangle is that box in frame units; the two
 * scales differ slightly (375x812 at 512 px: 0.6305 vs 0.64), so `FILL` would crop ~1.5%. `CROP`
 * with the identity transform maps the whole image onto the whole node (Figma: imageTransform
 * "Determines how the image is positioned (thus, cropped) within the layer", ImagePaint in
 * @figma/plugin-typings; the identity crops nothing).
 */
export function exactImageFill(hash: string): ImagePaint {
  return {
    type: 'IMAGE',
    imageHash: hash,
    scaleMode: 'CROP',
    imageTransform: [
      [1, 0, 0],
      [0, 1, 0],
    ],
  };
}

/** A layer's box in result-frame units. */
export function frameBox(layout: FrameLayout, index: number): BoxTuple {
  const [x1, y1, x2, y2] = layout.regions[index].box;
  return [x1 / layout.scaleX, y1 / layout.scaleY, x2 / layout.scaleX, y2 / layout.scaleY];
}

/**
 * Inserts the layers and returns the new frame. Throws (with nothing left in the document) if a
 * layer is missing or its image is gone.
 */
export function insertLayers<F extends SceneFrame<R>, R extends SceneRect>(
  scene: SceneApi<F, R>,
  parent: SceneParent<F>,
  input: InsertInput,
): F {
  const { layout, job } = input;
  const byIndex = new Map(input.layers.map((l) => [l.index, l.hash]));
  const missing = layout.regions.map((_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length)
    throw new Error(
      `The bridge sent ${input.layers.length} of ${layout.regions.length} layers (missing ${missing.join(', ')}). Generate again.`,
    );
  // Every image must still exist before any node is made: nothing half-inserted.
  const lost = layout.regions.filter((_, i) => !scene.getImageByHash(byIndex.get(i)!));
  if (lost.length)
    throw new Error(`Figma no longer has the image of layer “${lost[0].name}”. Generate again.`);

  const created: Array<F | R> = [];
  try {
    scene.commitUndo(); // everything below becomes one undo step
    const frame = scene.createFrame();
    created.push(frame);
    frame.name = resultFrameName(input.sourceName, job.seed);
    frame.resize(layout.frameWidth, layout.frameHeight);
    frame.x = input.position.x;
    frame.y = input.position.y;
    frame.fills = [];
    frame.clipsContent = true;
    const frameData: ResultFrameData = {
      v: RESULT_DATA_VERSION,
      jobId: job.jobId,
      sourceNodeId: layout.frameId,
      model: job.model,
      seed: job.seed,
      prompt: job.prompt,
      canvas: { width: layout.layout.width, height: layout.layout.height },
      scaleX: layout.scaleX,
      scaleY: layout.scaleY,
      layerCount: layout.regions.length,
      lineage: [],
    };
    frame.setPluginData(RESULT_FRAME_KEY, JSON.stringify(frameData));

    const place = (index: number): R => {
      const rect = scene.createRectangle();
      created.push(rect);
      const region = layout.regions[index];
      const box = frameBox(layout, index);
      rect.name = region.name;
      rect.x = box[0];
      rect.y = box[1];
      rect.resize(box[2] - box[0], box[3] - box[1]);
      rect.fills = [exactImageFill(byIndex.get(index)!)];
      const data: LayerNodeData = {
        v: RESULT_DATA_VERSION,
        jobId: job.jobId,
        index,
        sourceNodeId: region.nodeId,
        box,
        model: job.model,
        seed: job.seed,
      };
      rect.setPluginData(LAYER_NODE_KEY, JSON.stringify(data));
      frame.appendChild(rect);
      return rect;
    };

    place(BACKGROUND_LAYER).locked = true;
    for (let i = 2; i < layout.regions.length; i++) place(i);
    place(MERGED_LAYER).visible = false;

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

/** A figma.notify line `Verb “name”tail`: Figma cuts notifications at 100 characters, so the name is shortened first. */
export function notifyLine(verb: string, name: string, tail: string): string {
  const room = 99 - `${verb} “”`.length - tail.length;
  const short = name.length > room ? `${name.slice(0, Math.max(1, room - 1))}…` : name;
  return `${verb} “${short}”${tail}`;
}

export function insertSummary(frameName: string, layerCount: number, tiny: boolean): string {
  return notifyLine('Inserted', frameName, `: ${layerCount} layers${tiny ? ' (tiny test model: noise)' : ''}`);
}
