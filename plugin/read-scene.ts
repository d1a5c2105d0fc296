/**
 * Figma nodes -> the plain trees that layout and caption read. The only place that walks the
 * live document; bounded so a huge frame cannot stall Figma's main thread.
 */
import type { PlainNode } from './scene.ts';

/** Caption drafting looks this deep for text; layout needs only direct children. */
const MAX_DEPTH = 8;
const MAX_NODES = 3000;

export function readNode(node: SceneNode): PlainNode {
  let budget = MAX_NODES;
  const walk = (n: SceneNode, depth: number): PlainNode => {
    budget--;
    const box = n.absoluteBoundingBox;
    const plain: PlainNode = {
      id: n.id,
      name: n.name,
      type: n.type,
      visible: n.visible,
      bounds: box ? { x: box.x, y: box.y, width: box.width, height: box.height } : null,
    };
    if (n.type === 'TEXT') plain.characters = n.characters;
    if ('children' in n) {
      // Direct children always (they are the layers); deeper ones only while the budget lasts.
      const kids = depth === 0 ? n.children : depth < MAX_DEPTH && budget > 0 ? n.children.slice(0, budget) : [];
      plain.children = kids.map((c) => walk(c, depth + 1));
    }
    return plain;
  };
  return walk(node, 0);
}
