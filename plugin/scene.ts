/**
 * The plain-data view of a Figma selection that layout and caption work on: no Figma API here,
 * so both are pure functions that tests feed with hand-made trees.
 */

/** An axis-aligned rectangle in page coordinates (Figma's `absoluteBoundingBox`). */
export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export function union(a: Rect, b: Rect): Rect {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, width: Math.max(a.x + a.width, b.x + b.width) - x, height: Math.max(a.y + a.height, b.y + b.height) - y };
}

export function intersection(a: Rect, b: Rect): Rect | null {
  const x = Math.max(a.x, b.x);
  const y = Math.max(a.y, b.y);
  const right = Math.min(a.x + a.width, b.x + b.width);
  const bottom = Math.min(a.y + a.height, b.y + b.height);
  return right < x || bottom < y ? null : { x, y, width: right - x, height: bottom - y };
}

export interface PlainNode {
  id: string;
  name: string;
  /** Figma's node type: 'FRAME', 'GROUP', 'TEXT', 'RECTANGLE', ... */
  type: string;
  visible: boolean;
  /**
   * Bounds in page coordinates: the axis-aligned box around what is drawn (Figma's
   * `absoluteBoundingBox` united with `absoluteRenderBounds`, so strokes, shadows and overflowing
   * text count); null where Figma has none (e.g. an empty group).
   */
  bounds: Rect | null;
  /** Degrees, as Figma's `rotation`; read for frames (a rotated frame is refused). */
  rotation?: number;
  /** The node is a mask: it draws nothing itself and clips the siblings above it. */
  isMask?: boolean;
  /** Text nodes' content. */
  characters?: string;
  /** Visible text anywhere inside a frame, in document order (read once, for the caption draft). */
  texts?: string[];
  children?: PlainNode[];
}

/** Node types a designer thinks of as frames; anything else selected gets a message. */
export const FRAME_TYPES: readonly string[] = ['FRAME', 'COMPONENT', 'INSTANCE'];
