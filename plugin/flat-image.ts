/**
 * A flat picture to decompose: a frame whose bottom layer is an image-filled node and whose other
 * layers are shapes drawn over it, one per layer wanted. The marks become the layout's boxes by
 * generation's own rules (plugin/layout.ts: canvas snapping, limits, clipping), the image is
 * exported alone at the canvas size for the bridge's `decompose` upload (bridge/PROTOCOL.md,
 * "Decomposing an image"), and the caption draft reads the frame's and the marks' names.
 */
import { captionDraft } from './caption.ts';
import { frameLayout, type FrameLayout } from './layout.ts';
import type { PlainNode } from './scene.ts';

/** Frame units the image may miss the frame's edges by (Figma's sub-pixel drift). */
const EDGE_TOLERANCE = 0.5;

export interface FlatRead {
  /** The marks' layout: merged and background on the whole canvas, then one box per mark. */
  layout: FrameLayout;
  /** The image-filled node whose picture is exported. */
  imageNodeId: string;
  imageName: string;
  draft: string;
}

export type FlatResult = { ok: true; value: FlatRead } | { ok: false; message: string };

/**
 * The flat-image reading of a frame, or null when it is not one (no image at the bottom, or
 * nothing drawn over it): such a frame is a generation source as before.
 */
export function flatLayout(frame: PlainNode, resolution: number): FlatResult | null {
  const [image, ...marks] = frame.children ?? [];
  if (!image?.imageHash || !image.visible || image.isMask || marks.length === 0) return null;
  const bounds = frame.bounds;
  const box = image.bounds;
  if (bounds && box) {
    const off = Math.max(
      Math.abs(box.x - bounds.x),
      Math.abs(box.y - bounds.y),
      Math.abs(box.x + box.width - bounds.x - bounds.width),
      Math.abs(box.y + box.height - bounds.y - bounds.height),
    );
    if (off > EDGE_TOLERANCE)
      return {
        ok: false,
        message: `To decompose “${frame.name}”, its image “${image.name}” must fill the frame exactly (the marks are read against it). Resize the image or the frame to match, then select the frame again.`,
      };
  }
  const marked: PlainNode = { ...frame, children: marks };
  const result = frameLayout(marked, resolution);
  if (!result.ok) return result;
  return { ok: true, value: { layout: result.value, imageNodeId: image.id, imageName: image.name, draft: captionDraft(marked) } };
}

/** The node types an export may be taken from, and what the export asks of them. */
export type ExportableImage = Pick<RectangleNode, 'fills' | 'absoluteBoundingBox'>;
export interface ExportRect extends Pick<RectangleNode, 'x' | 'y' | 'resize' | 'fills' | 'remove'> {
  exportAsync(settings: ExportSettingsImage): Promise<Uint8Array>;
}

export interface ExportApi<R extends ExportRect> {
  createRectangle(): R;
}

/**
 * The image alone, `width` x `height` pixels, as a PNG. `exportAsync` takes one constraint
 * ("type: SCALE | WIDTH | HEIGHT", ExportSettingsImage) and keeps the node's aspect, while the
 * canvas's sides are snapped to the grid separately; so the image's paints go on a stand-in
 * rectangle of exactly the canvas size, exported at scale 1 and removed at once (the marks are
 * never drawn, the source is not touched).
 */
export async function exportFlatImage<R extends ExportRect>(api: ExportApi<R>, image: ExportableImage, width: number, height: number): Promise<Uint8Array> {
  const rect = api.createRectangle();
  try {
    const at = image.absoluteBoundingBox;
    if (at) {
      rect.x = at.x;
      rect.y = at.y;
    }
    rect.resize(width, height);
    rect.fills = image.fills;
    return await rect.exportAsync({ format: 'PNG', constraint: { type: 'SCALE', value: 1 } });
  } finally {
    rect.remove();
  }
}
