/**
 * The e2e scene, described once as plain data: the browser harness builds fake Figma nodes
 * from it, and the test builds the same plain tree to compute the layout it expects.
 */
import type { PlainNode } from '../../../plugin/scene.ts';
import { rotatedBox, unionBox, type NodeInit } from '../../plugin/fake-figma.ts';

/** A fake-Figma node (test/plugin/fake-figma.ts) with the fields the expectations need spelled out. */
export type NodeSpec = Omit<NodeInit, 'children'> & {
  id: string;
  name: string;
  /** Position relative to the parent, and unrotated size. */
  x: number;
  y: number;
  width: number;
  height: number;
  children?: NodeSpec[];
};

export function toPlain(spec: NodeSpec, originX = 0, originY = 0): PlainNode {
  const plain: PlainNode = {
    id: spec.id,
    name: spec.name,
    type: spec.type,
    visible: spec.visible ?? true,
    // Rotated around its top-left corner, in absolute coordinates: the fake Figma's own geometry.
    bounds: rotatedBox(originX + spec.x, originY + spec.y, spec.width, spec.height, spec.rotation ?? 0),
  };
  if (spec.characters !== undefined) plain.characters = spec.characters;
  if (spec.children) {
    const kids = spec.children.map((c) => toPlain(c, originX + spec.x, originY + spec.y));
    plain.children = kids;
    // A group is as big as what it holds, as in Figma.
    if (spec.type === 'GROUP' && kids.length) plain.bounds = unionBox(kids.map((k) => k.bounds!));
  }
  return plain;
}

/** A poster with a full-bleed sky, a rotated badge, a group, a text and a hidden layer. */
export const POSTER: NodeSpec = {
  id: '1:1',
  type: 'FRAME',
  name: 'Poster',
  x: 0,
  y: 0,
  width: 800,
  height: 600,
  children: [
    { id: '1:2', type: 'RECTANGLE', name: 'Sky', x: 0, y: 0, width: 800, height: 600 },
    { id: '1:3', type: 'ELLIPSE', name: 'Sun', x: 560, y: 60, width: 160, height: 160 },
    { id: '1:4', type: 'RECTANGLE', name: 'Secret', x: 10, y: 10, width: 100, height: 100, visible: false },
    {
      id: '1:5',
      type: 'GROUP',
      name: 'Badge',
      x: 40,
      y: 380,
      width: 180,
      height: 120,
      children: [
        { id: '1:6', type: 'RECTANGLE', name: 'Badge shape', x: 0, y: 0, width: 180, height: 120, rotation: 15 },
      ],
    },
    { id: '1:7', type: 'TEXT', name: 'Title', x: 200, y: 250, width: 400, height: 80, characters: 'Summer Sale' },
  ],
};

export const CARD: NodeSpec = {
  id: '2:1',
  type: 'FRAME',
  name: 'Card',
  x: 0,
  y: 800,
  width: 300,
  height: 400,
  children: [
    { id: '2:2', type: 'RECTANGLE', name: 'Photo', x: 0, y: 0, width: 300, height: 220 },
    { id: '2:3', type: 'TEXT', name: 'Caption', x: 20, y: 240, width: 260, height: 40, characters: 'Hello' },
  ],
};

export const LONE_TEXT: NodeSpec = { id: '3:1', type: 'TEXT', name: 'Loose text', x: 900, y: 0, width: 100, height: 20, characters: 'x' };
