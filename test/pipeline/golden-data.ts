/** Reading the bundled golden cases in tests. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BoxTuple, Layout } from '../../domain/layout.ts';
import { loadAll, toFloat32 } from '../../gpu-server/onnx/safetensors.ts';

export const GOLDEN = join(import.meta.dirname, '..', 'fixtures', 'golden');

export function goldenTensors(kase: string, file: string) {
  const all = loadAll(join(GOLDEN, kase, file));
  return {
    f32(name: string): Float32Array {
      const e = all.get(name);
      if (!e) throw new Error(`${kase}/${file}: no tensor ${name}`);
      return toFloat32(e.info, e.bytes);
    },
    u8(name: string): Uint8Array {
      const e = all.get(name);
      if (!e) throw new Error(`${kase}/${file}: no tensor ${name}`);
      return new Uint8Array(e.bytes);
    },
    shape(name: string): number[] {
      const e = all.get(name);
      if (!e) throw new Error(`${kase}/${file}: no tensor ${name}`);
      return e.info.shape;
    },
  };
}

export function goldenLayout(kase: string): Layout {
  const c = JSON.parse(readFileSync(join(GOLDEN, kase, 'case.json'), 'utf8')) as { width: number; height: number; boxes: BoxTuple[] };
  return { width: c.width, height: c.height, boxes: c.boxes };
}

/** Largest |a - b|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths ${a.length} and ${b.length} differ`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
