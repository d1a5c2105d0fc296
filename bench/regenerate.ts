/**
 * Regenerating 2 of 10 layers (kept: background and 6 children; regenerated: 2 children and the
 * merged layer) against a full generation of the same layout, same steps, same seed, on the tiny
 * model and the CPU provider, measured in one run. Kept layers stay in the transformer's sequence
 * (they are the context the new layers attend to), so denoising costs the same; what a
 * regeneration saves is the PNG encoding of the kept layers (the bridge carries their stored
 * bytes). The tiny model's images are noise: this measures time, not quality.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeepEntry } from '../domain/keep.ts';
import type { BoxTuple, Layout } from '../domain/layout.ts';
import { writeTinyModel } from '../gpu-server/model-folder/tiny.ts';
import { createPipeline } from '../gpu-server/pipeline/art-pipeline.ts';
import { encodePng } from '../gpu-server/pipeline/png.ts';
import type { GenerateParams, GenerateResult } from '../gpu-server/pipeline/types.ts';
import { fixed, median, table } from './stats.ts';

const SIDE = 512;
const STEPS = 8;
const RUNS = 3;

function layout(): Layout {
  const whole: BoxTuple = [0, 0, SIDE, SIDE];
  const children: BoxTuple[] = Array.from({ length: 8 }, (_, i) => {
    const x = (i % 4) * 128, y = Math.floor(i / 4) * 256;
    return [x, y + 32, x + 112, y + 224];
  });
  return { width: SIDE, height: SIDE, boxes: [whole, whole, ...children] };
}

function encodeMs(result: GenerateResult, indices: readonly number[]): number {
  const t0 = performance.now();
  for (const i of indices) {
    const l = result.layers[i];
    encodePng(l.width, l.height, l.rgba);
  }
  return performance.now() - t0;
}

export async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'art-bench-regen-'));
  try {
    writeTinyModel(join(root, 'tiny'));
    const pipeline = await createPipeline({ modelDir: join(root, 'tiny'), provider: 'cpu' });
    const l = layout();
    const params: GenerateParams = { prompt: 'a poster with eight photos', layout: l, steps: STEPS, guidance: 4, trueCfg: 3.5, seed: 41 };
    const base = await pipeline.generate(params); // also warms the text cache and the sessions
    // Regenerate children 4 and 7 (layer indices); keep the background and the other 6 children.
    const regenerated = [4, 7];
    const keep: KeepEntry[] = l.boxes.map((_, i) => i).filter((i) => i > 0 && !regenerated.includes(i)).map((i) => ({ from: i, to: i }));
    const edit: GenerateParams = { ...params, seed: 42, base: { model: pipeline.info.model, latents: base.latents, keep } };

    const stats = { full: [] as GenerateResult[], regen: [] as GenerateResult[], fullMs: [] as number[], regenMs: [] as number[] };
    for (let r = 0; r < RUNS; r++) {
      // Interleaved, so load changes on the shared machine hit both alike.
      let t0 = performance.now();
      stats.full.push(await pipeline.generate({ ...params, seed: 42 }));
      stats.fullMs.push(performance.now() - t0);
      t0 = performance.now();
      stats.regen.push(await pipeline.generate(edit));
      stats.regenMs.push(performance.now() - t0);
    }
    await pipeline.dispose();
    const all = l.boxes.map((_, i) => i);
    const fresh = [0, ...regenerated];
    const stage = (rs: GenerateResult[], s: 'text' | 'denoise' | 'decode') => median(rs.map((r) => r.timings[s] ?? 0));
    const encFull = median(stats.full.map((r) => encodeMs(r, all)));
    const encRegen = median(stats.regen.map((r) => encodeMs(r, fresh)));
    const rows: (string | number)[][] = [];
    for (const s of ['text', 'denoise', 'decode'] as const) {
      const a = stage(stats.full, s), b = stage(stats.regen, s);
      rows.push([s, fixed(a), fixed(b), a > 0 ? fixed(b / a, 2) : '-']);
    }
    rows.push([`PNG encode (${all.length} vs ${fresh.length} layers, one thread)`, fixed(encFull), fixed(encRegen), fixed(encRegen / encFull, 2)]);
    const totalFull = median(stats.fullMs) + encFull, totalRegen = median(stats.regenMs) + encRegen;
    rows.push(['total', fixed(totalFull), fixed(totalRegen), fixed(totalRegen / totalFull, 2)]);
    console.log(`\n## Regenerate 2 of 10 layers vs a full generation (tiny model, CPU, ${SIDE}x${SIDE}, ${STEPS} steps, median of ${RUNS})`);
    console.log(table(['stage', 'full ms', 'regenerate ms', 'ratio'], rows));
    console.log(
      'Read: the kept layers stay in the sequence as context, so denoising and the joint transparent decoder cost the same;\n' +
        'a regeneration skips only the kept layers\' PNG encoding (their stored bytes are sent). The tiny model draws noise.',
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
