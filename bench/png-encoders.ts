/**
 * PNG encoders on the bridge benchmark's 52 layers (bench/sample-pipeline.ts: the official sample
 * output resampled to 1024x1024): bytes and time of each candidate against pngjs with the Paeth
 * filter, all in the same run. The candidates: the project's encoder (gpu-server/pipeline/png.ts),
 * variations of it (other row filters, other zlib settings, RGBA kept for opaque layers, the colour
 * of transparent pixels zeroed), sharp/libvips and @napi-rs/image. Time is the
 * process's CPU time (every thread: sharp and @napi-rs/image encode on libuv's pool), which moves
 * far less than wall time when other work shares the cores; wall time is printed beside it.
 * Each candidate encodes the layers one after the other, so CPU time / layers is the cost a core pays.
 * Run: `npm run bench -- png`.
 */
import { constants, deflateSync, type ZlibOptions } from 'node:zlib';
import { Transformer, CompressionType, FilterType } from '@napi-rs/image';
import sharp from 'sharp';
import { PNG } from 'pngjs';
import { MAX_LAYERS } from '../domain/layout.ts';
import { encodePng, filteredSize, isOpaque, paethRows, pngFile } from '../gpu-server/pipeline/png.ts';
import { createPipeline } from './sample-pipeline.ts';
import { fixed, machineLine, mib, table } from './stats.ts';

const SIDE = 1024;

type Encode = (rgba: Uint8Array, width: number, height: number) => Uint8Array | Promise<Uint8Array>;

const pngjsPaeth: Encode = (rgba, width, height) => {
  const png = new PNG({ width, height });
  png.data = Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength);
  return PNG.sync.write(png, { colorType: 6, filterType: 4 });
};
const viaSharp = (compressionLevel: number): Encode => (rgba, width, height) =>
  sharp(rgba, { raw: { width, height, channels: 4 } }).png({ compressionLevel, adaptiveFiltering: true }).toBuffer();
const viaNapi = (compressionType: CompressionType): Encode => (rgba, width, height) =>
  Transformer.fromRgbaPixels(rgba, width, height).png({ compressionType, filterType: FilterType.Paeth });

/** PNG filter types 0-2 (None, Sub, Up), one for every row: the cheap alternatives to Paeth. */
function simpleRows(kind: 0 | 1 | 2, width: number, height: number, rgba: Uint8Array, channels: 3 | 4): Uint8Array {
  const out = new Uint8Array(filteredSize(width, height, channels));
  for (let y = 0, o = 0; y < height; y++) {
    out[o++] = kind;
    for (let x = 0; x < width; x++)
      for (let c = 0; c < channels; c++) {
        const i = (y * width + x) * 4 + c;
        const a = x > 0 ? rgba[i - 4] : 0, b = y > 0 ? rgba[i - width * 4] : 0;
        out[o++] = rgba[i] - (kind === 0 ? 0 : kind === 1 ? a : b);
      }
  }
  return out;
}

/** A variation of png.ts: the same file around other filtered rows or other zlib settings. */
const variant = (rows: (rgba: Uint8Array, w: number, h: number, channels: 3 | 4) => Uint8Array, zlib: ZlibOptions = { strategy: constants.Z_RLE }, rgbWhenOpaque = true): Encode => (rgba, w, h) => {
  const channels = rgbWhenOpaque && isOpaque(rgba) ? 3 : 4;
  return pngFile(w, h, channels === 3 ? 2 : 6, deflateSync(rows(rgba, w, h, channels), zlib));
};
const paeth = (rgba: Uint8Array, w: number, h: number, channels: 3 | 4) => paethRows(w, h, rgba, channels);

/** Transparent pixels' colour set to 0 before encoding: invisible, but it changes the bytes. */
function zeroTransparent(rgba: Uint8Array): Uint8Array {
  const out = rgba.slice();
  for (let i = 0; i < out.length; i += 4) if (out[i + 3] === 0) out[i] = out[i + 1] = out[i + 2] = 0;
  return out;
}

/** The encoder the project uses; the bridge bench's figure is made with it. */
export const CHOSEN = 'gpu-server/pipeline/png.ts: Paeth in WebAssembly SIMD, RGB if opaque, zlib Z_RLE (chosen)';

export const CANDIDATES: { name: string; encode: Encode }[] = [
  { name: 'pngjs, Paeth filter (baseline)', encode: pngjsPaeth },
  { name: CHOSEN, encode: (rgba, w, h) => encodePng(w, h, rgba) },
  { name: 'png.ts, but RGBA for opaque layers too', encode: variant(paeth, undefined, false) },
  { name: 'png.ts, transparent pixels\' RGB zeroed first', encode: (rgba, w, h) => encodePng(w, h, zeroTransparent(rgba)) },
  { name: 'png.ts with Sub on every row', encode: variant((rgba, w, h, ch) => simpleRows(1, w, h, rgba, ch)) },
  { name: 'png.ts with Up on every row', encode: variant((rgba, w, h, ch) => simpleRows(2, w, h, rgba, ch)) },
  { name: 'png.ts with no filter', encode: variant((rgba, w, h, ch) => simpleRows(0, w, h, rgba, ch)) },
  { name: 'png.ts with zlib level 1 (default strategy)', encode: variant(paeth, { level: 1 }) },
  { name: 'png.ts with zlib level 4, Z_FILTERED', encode: variant(paeth, { level: 4, strategy: constants.Z_FILTERED }) },
  { name: 'sharp/libvips, level 2, adaptive filters', encode: viaSharp(2) },
  { name: 'sharp/libvips, level 4, adaptive filters', encode: viaSharp(4) },
  { name: 'sharp/libvips, level 6, adaptive filters', encode: viaSharp(6) },
  { name: '@napi-rs/image, Fast, Paeth', encode: viaNapi(CompressionType.Fast) },
  { name: '@napi-rs/image, Default, Paeth', encode: viaNapi(CompressionType.Default) },
];

export interface EncoderRow {
  name: string;
  bytes: number;
  cpuMs: number;
  wallMs: number;
}

/** The 52 layers the bridge benchmark sends, made by the same stand-in pipeline. */
export async function benchLayers(count = MAX_LAYERS): Promise<Uint8Array[]> {
  const pipeline = await createPipeline({ stepMs: 0 });
  const whole: [number, number, number, number] = [0, 0, SIDE, SIDE];
  const result = await pipeline.generate({ prompt: '', layout: { width: SIDE, height: SIDE, boxes: Array.from({ length: count }, () => whole) }, steps: 1, guidance: 4, trueCfg: 3.5, seed: 1 });
  return result.layers.map((l) => l.rgba);
}

export async function measureEncoders(layers: readonly Uint8Array[], candidates = CANDIDATES): Promise<EncoderRow[]> {
  const rows: EncoderRow[] = [];
  for (const { name, encode } of candidates) {
    await encode(layers[0], SIDE, SIDE); // warm-up (loads libraries, JIT)
    let bytes = 0;
    const cpu0 = process.cpuUsage(), t0 = performance.now();
    for (const rgba of layers) bytes += (await encode(rgba, SIDE, SIDE)).length;
    const cpu = process.cpuUsage(cpu0);
    rows.push({ name, bytes, cpuMs: (cpu.user + cpu.system) / 1000, wallMs: performance.now() - t0 });
  }
  return rows;
}

export function encodersTable(rows: EncoderRow[], layers: number): string {
  const base = rows[0];
  return table(['encoder', 'bytes', 'size vs baseline', 'CPU ms / layer', 'CPU time vs baseline', 'wall ms (all)'], rows.map((r) => [
    r.name, mib(r.bytes), `${fixed((r.bytes / base.bytes) * 100)}%`, fixed(r.cpuMs / layers), `${fixed((r.cpuMs / base.cpuMs) * 100)}%`, fixed(r.wallMs, 0),
  ]));
}

export const HOW_TO_READ = `How to read: each encoder writes the same ${MAX_LAYERS} RGBA layers of ${SIDE}x${SIDE} (generated content)
one after the other; "CPU ms / layer" is the process's CPU time (all threads) divided by the layers,
what one core pays per layer; ratios are against pngjs with the Paeth filter in this run. The
"png.ts, ..." rows are the project's encoder with one thing changed. The Sub, Up and no-filter rows
are computed plainly in JavaScript (not in SIMD) and the zeroed row pays for a copy, so their
times are upper bounds: what rules them out is their size.
The project adopts the fastest whose size stays within a few percent of the baseline (marked
"chosen"); the bridge spreads the layers over its encoder threads.`;

export async function main(): Promise<EncoderRow[]> {
  console.log(`\n== PNG encoders: ${MAX_LAYERS} layers of ${SIDE}x${SIDE} ==\n${machineLine()}`);
  const layers = await benchLayers();
  const rows = await measureEncoders(layers);
  console.log(`\n${encodersTable(rows, layers.length)}\n\n${HOW_TO_READ}`);
  return rows;
}
