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

export interface PlainNode {
  id: string;
  name: string;
  /** Figma's node type: 'FRAME', 'GROUP', 'TEXT', 'RECTANGLE', ... */
  type: string;
  visible: boolean;
  /**
   * Bounds in page coordinates. For rotated nodes and groups this is the axis-aligned box around
   * what is drawn; null where Figma has none (e.g. an empty group).
   */
  bounds: Rect | null;
  /** Text nodes' content. */
  characters?: string;
  children?: PlainNode[];
}

/** Node types a designer thinks of as frames; anything else selected gets a message. */
export const FRAME_TYPES: readonly string[] = ['FRAME', 'COMPONENT', 'INSTANCE'];
