/**
 * PNG encoding is most of the bridge's own time on a big job (it runs in the pipeline worker).
 * This measures pngjs options on one 1024x1024 layer of real content: bytes and ms, so a change
 * to the project's encoder (gpu-server/pipeline/png.ts) can be judged by numbers from the same run.
 */
import { readFileSync } from 'node:fs';
import { PNG, type PackerOptions } from 'pngjs';
import { resample } from './sample-pipeline.ts';
import { fixed, median, table } from './stats.ts';

const OPTIONS: { name: string; options: PackerOptions }[] = [
  { name: 'pngjs defaults (all 5 filters per row)', options: {} },
  { name: 'filterType 4 (Paeth only; what gpu-server/pipeline/png.ts does)', options: { filterType: 4 } },
  { name: 'filterType 1 (Sub only), deflateLevel 4', options: { filterType: 1, deflateLevel: 4 } },
];

export interface PngOptionRow {
  sample: string;
  name: string;
  bytes: number;
  ms: number;
}

export function measurePngOptions(side = 1024, runs = 3): PngOptionRow[] {
  const rows: PngOptionRow[] = [];
  for (const sample of ['whole.png', 'layer_1.png']) {
    const src = PNG.sync.read(readFileSync(new URL(`../test/fixtures/art-sample-output/${sample}`, import.meta.url)));
    const png = new PNG({ width: side, height: side });
    png.data = Buffer.from(resample({ width: src.width, height: src.height, data: new Uint8Array(src.data) }, side, side));
    for (const { name, options } of OPTIONS) {
      let bytes = 0;
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        bytes = PNG.sync.write(png, { colorType: 6, ...options }).length;
        times.push(performance.now() - t0);
      }
      rows.push({ sample: `${sample} at ${side}x${side}`, name, bytes, ms: median(times) });
    }
  }
  return rows;
}

export function pngOptionsTable(rows: PngOptionRow[]): string {
  const base = new Map(rows.filter((_, i) => i % OPTIONS.length === 0).map((r) => [r.sample, r]));
  return table(['layer', 'encoder options', 'KiB', 'ms', 'size vs default', 'time vs default'], rows.map((r) => {
    const b = base.get(r.sample)!;
    return [r.sample, r.name, fixed(r.bytes / 1024, 0), fixed(r.ms), `${fixed((r.bytes / b.bytes) * 100)}%`, `${fixed((r.ms / b.ms) * 100)}%`];
  }));
}
