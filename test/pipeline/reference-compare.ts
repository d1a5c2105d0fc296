/**
 * Comparing a product run (createPipeline, or the files a CLI wrote) with the reference run of
 * reference-generation.ts, at the golden RGBA bar, and measuring how far two reference runs are
 * apart (to show a test can see a knob).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { compareLevels } from '../../gpu-server/golden/compare.ts';
import { layerOnCanvas } from '../../gpu-server/pipeline/generate-output.ts';
import type { LayerImage } from '../../gpu-server/pipeline/types.ts';
import type { ReferenceResult } from './reference-generation.ts';

/**
 * The golden RGBA bar: at most one level, on at most 0.1% of the values (float32 ops rounded in
 * another order may flip a level at a boundary). Measured: bit-identical on the CPU provider.
 */
export const LEVELS = 1;
export const SHARE = 0.999;

export function assertSameImages(name: string, actual: { layers: LayerImage[]; merged: Uint8Array; background: Uint8Array }, expected: ReferenceResult): void {
  assert.equal(actual.layers.length, expected.layers.length);
  actual.layers.forEach((l, i) => {
    assert.deepEqual(l.box, expected.layers[i].box);
    const c = compareLevels(`${name} layer ${i}`, l.rgba, expected.layers[i].rgba, LEVELS, SHARE);
    assert.ok(c.pass, JSON.stringify(c));
  });
  for (const k of ['merged', 'background'] as const) {
    const c = compareLevels(`${name} ${k}`, actual[k], expected[k], LEVELS, SHARE);
    assert.ok(c.pass, JSON.stringify(c));
  }
}

/** The images a CLI wrote into `out` (layer_<i>.png on the canvas, merged.png, background.png) against the reference. */
export function assertWrittenImages(out: string, expected: ReferenceResult, width: number, height: number): void {
  const png = (name: string) => {
    const p = PNG.sync.read(readFileSync(join(out, name)));
    assert.deepEqual([p.width, p.height], [width, height]);
    return p.data;
  };
  expected.layers.forEach((l, i) => {
    const c = compareLevels(`layer_${i}.png`, png(`layer_${i}.png`), layerOnCanvas(l, width, height), LEVELS, SHARE);
    assert.ok(c.pass, JSON.stringify(c));
  });
  const rgbOf = (rgba: Uint8Array) => rgba.filter((_, k) => k % 4 !== 3);
  for (const k of ['merged', 'background'] as const) {
    const c = compareLevels(`${k}.png`, rgbOf(png(`${k}.png`)), expected[k], LEVELS, SHARE);
    assert.ok(c.pass, JSON.stringify(c));
  }
}

/** How far apart two results are: the worst share of 8-bit values that differ by more than one level. */
export function differingShare(a: ReferenceResult, b: ReferenceResult): number {
  const share = (x: ArrayLike<number>, y: ArrayLike<number>) => {
    let d = 0;
    for (let i = 0; i < x.length; i++) if (Math.abs(x[i] - y[i]) > 1) d++;
    return d / x.length;
  };
  return Math.max(...a.layers.map((l, i) => share(l.rgba, b.layers[i].rgba)), share(a.merged, b.merged));
}
