import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GRID, MAX_CHILD_LAYERS, MAX_LAYERS, RESOLUTIONS } from '../../domain/layout.ts';
import { canvasSize, frameLayout, skippedSummary, type FrameLayout } from '../../plugin/layout.ts';
import type { PlainNode } from '../../plugin/scene.ts';
import { frame, node, rect, text } from './trees.ts';

function ok(result: ReturnType<typeof frameLayout>): FrameLayout {
  if (!result.ok) assert.fail(`expected a layout, got: ${result.message}`);
  return result.value;
}

function failure(result: ReturnType<typeof frameLayout>): string {
  if (result.ok) assert.fail('expected a message, got a layout');
  return result.message;
}

/** Every child box covers the child's scaled, frame-clipped rect and is at most one cell larger per side. */
function assertCovers(l: FrameLayout, child: PlainNode, frameNode: PlainNode) {
  const f = frameNode.bounds!;
  const c = child.bounds!;
  const region = l.regions.find((r) => r.nodeId === child.id);
  assert.ok(region, `no box for ${child.name}`);
  const [x1, y1, x2, y2] = region.box;
  const lo = [Math.max(c.x, f.x) - f.x, Math.max(c.y, f.y) - f.y];
  const hi = [Math.min(c.x + c.width, f.x + f.width) - f.x, Math.min(c.y + c.height, f.y + f.height) - f.y];
  const sx = l.layout.width / f.width;
  const sy = l.layout.height / f.height;
  for (const v of region.box) assert.equal(v % GRID, 0, `${child.name} box ${region.box} off grid`);
  assert.ok(x1 <= lo[0] * sx + 1e-9 && x1 > lo[0] * sx - GRID, `${child.name} x1`);
  assert.ok(y1 <= lo[1] * sy + 1e-9 && y1 > lo[1] * sy - GRID, `${child.name} y1`);
  assert.ok(x2 >= hi[0] * sx - 1e-9 && x2 < hi[0] * sx + GRID, `${child.name} x2`);
  assert.ok(y2 >= hi[1] * sy - 1e-9 && y2 < hi[1] * sy + GRID, `${child.name} y2`);
  assert.ok(x1 >= 0 && y1 >= 0 && x2 <= l.layout.width && y2 <= l.layout.height, `${child.name} inside canvas`);
}

test('canvas: longest side is the resolution, both sides on the grid, aspect kept within a cell', () => {
  for (const resolution of RESOLUTIONS) {
    for (const [w, h] of [[800, 600], [600, 800], [1000, 333], [375, 812], [1920, 1080], [100, 100], [4000, 10]]) {
      const c = canvasSize(w, h, resolution);
      assert.equal(Math.max(c.width, c.height), resolution, `${w}x${h}@${resolution}`);
      assert.equal(c.width % GRID, 0);
      assert.equal(c.height % GRID, 0);
      const exactShort = (Math.min(w, h) * resolution) / Math.max(w, h);
      assert.ok(Math.abs(Math.min(c.width, c.height) - Math.max(GRID, exactShort)) <= GRID / 2, `${w}x${h} aspect`);
    }
  }
  assert.deepEqual(canvasSize(800, 600, 512), { width: 512, height: 384 });
  assert.deepEqual(canvasSize(600, 800, 1024), { width: 768, height: 1024 });
});

test('non-square frames at both resolutions: boxes snapped outwards, merged and background whole', () => {
  for (const resolution of RESOLUTIONS) {
    const children = [
      rect('Backdrop', 100, 200, 800, 300),
      rect('Photo', 150, 230, 333.3, 177.7),
      text('Title', 'Summer sale', 517, 403),
    ];
    const f = frame('Poster', { x: 100, y: 200, width: 800, height: 300 }, children);
    const l = ok(frameLayout(f, resolution));
    assert.equal(Math.max(l.layout.width, l.layout.height), resolution);
    assert.equal(l.layout.boxes.length, 2 + children.length);
    assert.deepEqual(l.layout.boxes[0], [0, 0, l.layout.width, l.layout.height]);
    assert.deepEqual(l.layout.boxes[1], [0, 0, l.layout.width, l.layout.height]);
    assert.deepEqual(l.layout.boxes, l.regions.map((r) => r.box));
    for (const c of children) assertCovers(l, c, f);
    // The full-frame backdrop is exactly the canvas.
    assert.deepEqual(l.regions[2].box, [0, 0, l.layout.width, l.layout.height]);
  }
});

test('a hand-worked box at 512: 800x600 frame, child at (10,20) 100x50', () => {
  const child = rect('Logo', 1010, 2020, 100, 50);
  const l = ok(frameLayout(frame('Card', { x: 1000, y: 2000, width: 800, height: 600 }, [child]), 512));
  // scale 0.64: x 6.4..70.4 -> 0..80, y 12.8..44.8 -> 0..48
  assert.deepEqual(l.regions[2], { nodeId: child.id, name: 'Logo', box: [0, 0, 80, 48] });
  assert.equal(l.scaleX, 0.64);
  assert.equal(l.scaleY, 0.64);
});

test('children keep Figma order bottom to top, with ids and names; hidden ones are skipped', () => {
  const a = rect('Bottom', 0, 0, 50, 50);
  const hidden = rect('Hidden', 10, 10, 50, 50, { visible: false });
  const b = rect('Middle', 20, 20, 50, 50);
  const c = rect('Top', 40, 40, 50, 50);
  const l = ok(frameLayout(frame('F', { x: 0, y: 0, width: 100, height: 100 }, [a, hidden, b, c]), 512));
  assert.deepEqual(l.regions.slice(2).map((r) => [r.nodeId, r.name]), [[a.id, 'Bottom'], [b.id, 'Middle'], [c.id, 'Top']]);
  assert.deepEqual(l.regions.slice(0, 2).map((r) => r.nodeId), [null, null]);
  assert.deepEqual(l.skipped, [{ nodeId: hidden.id, name: 'Hidden', reason: 'hidden' }]);
  assert.equal(skippedSummary(l.skipped), null, 'hidden layers are a choice, not worth a warning');
});

test('nested groups are one layer at their own bounds; grandchildren are not separate layers', () => {
  const inner = rect('Inner', 60, 60, 10, 10);
  const group = node('GROUP', 'Badge', { x: 50, y: 50, width: 40, height: 30 }, {
    children: [inner, node('GROUP', 'Deep', { x: 70, y: 60, width: 20, height: 20 }, { children: [rect('D', 70, 60, 20, 20)] })],
  });
  const f = frame('F', { x: 0, y: 0, width: 200, height: 100 }, [group]);
  const l = ok(frameLayout(f, 1024));
  assert.equal(l.regions.length, 3);
  assertCovers(l, group, f);
});

test('rotated and overflowing nodes use their absolute bounds clipped to the frame', () => {
  // A rotated square's axis-aligned bounds stick out over the top-left corner of the frame.
  const rotated = node('RECTANGLE', 'Rotated', { x: -20.7, y: -20.7, width: 141.4, height: 141.4 });
  const overflowing = rect('Bleed', 150, 50, 300, 20);
  const f = frame('F', { x: 0, y: 0, width: 300, height: 200 }, [rotated, overflowing]);
  for (const resolution of RESOLUTIONS) {
    const l = ok(frameLayout(f, resolution));
    assertCovers(l, rotated, f);
    assertCovers(l, overflowing, f);
    assert.equal(l.regions[2].box[0], 0);
    assert.equal(l.regions[3].box[2], l.layout.width, 'clipped at the right edge of the canvas');
  }
});

test('a clipped child frame with overflowing content uses its own bounds', () => {
  const clipper = node('FRAME', 'Card', { x: 20, y: 20, width: 60, height: 60 }, {
    children: [rect('Overflow', 0, 0, 500, 500)],
  });
  const f = frame('F', { x: 0, y: 0, width: 100, height: 100 }, [clipper]);
  const l = ok(frameLayout(f, 512));
  assertCovers(l, clipper, f);
  assert.ok(l.regions[2].box[2] < l.layout.width);
});

test('tiny nodes grow to one cell, also at the far edges', () => {
  const dot = rect('Dot', 50, 50, 0.5, 0.5);
  const line = rect('Hairline', 0, 99.9, 100, 0);
  const edge = rect('Edge', 99.99, 0, 0.01, 0.01);
  const l = ok(frameLayout(frame('F', { x: 0, y: 0, width: 100, height: 100 }, [dot, line, edge]), 512));
  for (const r of l.regions.slice(2)) {
    const [x1, y1, x2, y2] = r.box;
    assert.ok(x2 - x1 >= GRID && y2 - y1 >= GRID, `${r.name} ${r.box} at least one cell`);
    assert.ok(x1 >= 0 && y1 >= 0 && x2 <= 512 && y2 <= 512, `${r.name} ${r.box} inside`);
  }
  assert.deepEqual(l.regions[2].box, [256, 256, 272, 272]);
  assert.deepEqual(l.regions[3].box, [0, 496, 512, 512]);
  assert.deepEqual(l.regions[4].box, [496, 0, 512, 16]);
});

test('60 children: the first 50 become layers, the other 10 are named', () => {
  const children = Array.from({ length: 60 }, (_, i) => rect(`Item ${i}`, (i % 10) * 10, Math.floor(i / 10) * 10, 10, 10));
  const l = ok(frameLayout(frame('Grid', { x: 0, y: 0, width: 100, height: 60 }, children), 1024));
  assert.equal(l.layout.boxes.length, MAX_LAYERS);
  assert.equal(l.regions.length - 2, MAX_CHILD_LAYERS);
  assert.deepEqual(l.regions.slice(2).map((r) => r.name), children.slice(0, MAX_CHILD_LAYERS).map((c) => c.name));
  const over = l.skipped.filter((s) => s.reason === 'over-limit').map((s) => s.name);
  assert.deepEqual(over, children.slice(MAX_CHILD_LAYERS).map((c) => c.name));
  const summary = skippedSummary(l.skipped);
  assert.ok(summary?.includes('Item 59') && summary.includes('Item 50') && !summary.includes('Item 49,'), summary ?? '');
});

test('layers entirely outside the frame are left out by name', () => {
  const inside = rect('Inside', 10, 10, 10, 10);
  const outside = rect('Far away', 500, 500, 10, 10);
  const touching = rect('Touching', 100, 0, 10, 10);
  const l = ok(frameLayout(frame('F', { x: 0, y: 0, width: 100, height: 100 }, [inside, outside, touching]), 512));
  assert.equal(l.regions.length, 3);
  assert.deepEqual(l.skipped.map((s) => [s.name, s.reason]), [['Far away', 'outside'], ['Touching', 'outside']]);
  assert.match(skippedSummary(l.skipped) ?? '', /Far away, Touching/);
});

test('clear messages: not a frame, empty frame, all hidden, nothing inside', () => {
  assert.match(failure(frameLayout(text('Headline', 'Hi', 0, 0), 512)), /“Headline” is a text, not a frame\. Select a frame/);
  assert.match(failure(frameLayout(node('GROUP', 'G', { x: 0, y: 0, width: 9, height: 9 }, { children: [] }), 512)), /is a group, not a frame/);
  assert.match(failure(frameLayout(frame('Empty', { x: 0, y: 0, width: 100, height: 100 }, []), 512)), /“Empty” is empty\. Add/);
  assert.match(
    failure(frameLayout(frame('Ghost', { x: 0, y: 0, width: 100, height: 100 }, [rect('a', 0, 0, 5, 5, { visible: false })]), 512)),
    /Every layer in “Ghost” is hidden/,
  );
  assert.match(
    failure(frameLayout(frame('Off', { x: 0, y: 0, width: 100, height: 100 }, [rect('a', 200, 0, 5, 5)]), 512)),
    /No visible layer of “Off” lies inside/,
  );
  assert.match(failure(frameLayout(frame('Flat', { x: 0, y: 0, width: 100, height: 0 }, [rect('a', 0, 0, 5, 5)]), 512)), /has no size/);
  assert.equal(frameLayout(node('COMPONENT', 'Button', { x: 0, y: 0, width: 10, height: 10 }, { children: [rect('a', 0, 0, 5, 5)] }), 512).ok, true);
});
