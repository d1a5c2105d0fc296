/** Hand-made plain node trees for the layout and caption tests. */
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
