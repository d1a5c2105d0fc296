/** Hand-made plain node trees for the layout and caption tests. */
import { frameLayout, type FrameLayout } from '../../plugin/layout.ts';
import type { PlainNode, Rect } from '../../plugin/scene.ts';

let counter = 0;

export function node(type: string, name: string, bounds: Rect | null, extra: Partial<PlainNode> = {}): PlainNode {
  counter++;
  return { id: `${counter}:1`, name, type, visible: true, bounds, ...extra };
}

export function rect(name: string, x: number, y: number, width: number, height: number, extra: Partial<PlainNode> = {}) {
  return node('RECTANGLE', name, { x, y, width, height }, extra);
}

export function text(name: string, characters: string, x: number, y: number, extra: Partial<PlainNode> = {}) {
  return node('TEXT', name, { x, y, width: 100, height: 20 }, { characters, ...extra });
}

export function frame(name: string, bounds: Rect, children: PlainNode[], extra: Partial<PlainNode> = {}) {
  return node('FRAME', name, bounds, { children, ...extra });
}

/** The layout of a 200x100 frame `name` with `children` 20x20 rectangles in a row, at 512. */
export function layoutOf(name: string, children: number): FrameLayout {
  const result = frameLayout(
    frame(name, { x: 0, y: 0, width: 200, height: 100 }, Array.from({ length: children }, (_, i) => rect(`${name} ${i}`, i * 20, 10, 20, 20))),
    512,
  );
  if (!result.ok) throw new Error(result.message);
  return result.value;
}
