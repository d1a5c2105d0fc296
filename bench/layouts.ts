/**
 * Layouts for the benchmarks: the official validation layouts scaled to the bench canvas, and
 * generated ones with many small boxes (the case the layer-wise crop is made for).
 */
import { readFileSync } from 'node:fs';
import { type BoxTuple, GRID, type Layout, snapLayout, validateLayout } from '../domain/layout.ts';

export interface NamedLayout {
  /** Where it came from, for the table. */
  source: string;
  layout: Layout;
}

interface FixtureFile {
  cases: Record<string, { boxes: BoxTuple[] }[]>;
}

const fixtureUrl = new URL('../gpu-server/examples/art-validation-layouts.json', import.meta.url);

const whole = (side: number): BoxTuple => [0, 0, side, side];

/** A square layout with merged + background + `children`. */
function withChildren(side: number, children: BoxTuple[]): Layout {
  return { width: side, height: side, boxes: [whole(side), whole(side), ...children] };
}

/**
 * The fixture case with the most child layers not above `children`, scaled to a `side` canvas and
 * snapped outwards to the grid; its first `children` children if it has more. Undefined when no
 * case has that many (the fixture holds 3..8 children).
 */
export function fixtureLayout(side: number, children: number): NamedLayout | undefined {
  const file = JSON.parse(readFileSync(fixtureUrl, 'utf8')) as FixtureFile;
  for (const [res, cases] of Object.entries(file.cases)) {
    const scale = side / Number(res);
    const fits = cases.map((c, i) => ({ c, i })).filter(({ c }) => c.boxes.length - 2 >= children);
    if (fits.length === 0) continue;
    const { c, i } = fits.reduce((a, b) => (b.c.boxes.length < a.c.boxes.length ? b : a));
    const boxes = c.boxes.slice(2, 2 + children).map((b) => b.map((v) => v * scale) as BoxTuple);
    const layout = snapLayout(withChildren(side, boxes));
    validateLayout(layout);
    return { source: `fixture ${res}px #${i}`, layout };
  }
  return undefined;
}

/** Seeded PRNG (LCG) so generated layouts are the same every run. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/**
 * `children` boxes placed at random on a `side` canvas, each 1..maxCells grid cells a side
 * (icons, labels, small decorations: what a busy design frame holds).
 */
export function generatedLayout(side: number, children: number, maxCells: number, seed = 7): NamedLayout {
  const rand = lcg(seed);
  const cells = side / GRID;
  const pick = (n: number) => Math.floor(rand() * n);
  const boxes: BoxTuple[] = [];
  for (let i = 0; i < children; i++) {
    const w = 1 + pick(maxCells), h = 1 + pick(maxCells);
    const x = pick(cells - w + 1), y = pick(cells - h + 1);
    boxes.push([x * GRID, y * GRID, (x + w) * GRID, (y + h) * GRID]);
  }
  const layout = withChildren(side, boxes);
  validateLayout(layout);
  return { source: `generated, boxes of 1-${maxCells} cells a side`, layout };
}

/** The baseline's view of a layout: every layer is the whole canvas. */
export function wholeCanvas(layout: Layout): Layout {
  return { width: layout.width, height: layout.height, boxes: layout.boxes.map(() => [0, 0, layout.width, layout.height]) };
}
