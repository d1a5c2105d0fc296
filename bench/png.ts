/**
 * `npm run bench -- png`: the project's PNG encoder (gpu-server/pipeline/png.ts) against pngjs with
 * the Paeth filter, the encoder before it, in the same run, on the bridge benchmark's 52 layers
 * (the benchmarks' stand-in pipeline: the official sample output resampled to 1024x1024). Time is the process's
 * CPU time, which moves far less than wall time when other work shares the cores; each encoder
 * writes the layers one after the other, so CPU time / layers is what one core pays per layer.
 * The shoot-out that chose the encoder (other filters, zlib settings, sharp, @napi-rs/image) is
 * recorded in docs/performance.md.
 */
import { MAX_LAYERS } from '../domain/layout.ts';
import { PNG } from 'pngjs';
import { encodePng } from '../gpu-server/pipeline/png.ts';
import { createPipeline } from '../test/support/fake-pipeline.ts';
import { sampleOptions } from '../test/support/bridge.ts';
import { fixed, machineLine, mib, table } from './stats.ts';

const SIDE = 1024;

type Encode = (rgba: Uint8Array, width: number, height: number) => Uint8Array;

const ENCODERS: { name: string; encode: Encode }[] = [
  {
    name: 'pngjs, Paeth filter (baseline)',
    encode: (rgba, width, height) => {
      const png = new PNG({ width, height });
      png.data = Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength);
      return PNG.sync.write(png, { colorType: 6, filterType: 4 });
    },
  },
  { name: 'gpu-server/pipeline/png.ts: Paeth in WebAssembly SIMD, RGB if opaque, zlib Z_RLE', encode: (rgba, width, height) => encodePng(width, height, rgba) },
];

/** The 52 layers the bridge benchmark sends, made by the same stand-in pipeline. */
async function benchLayers(count: number): Promise<Uint8Array[]> {
  const pipeline = await createPipeline(sampleOptions(0));
  const whole: [number, number, number, number] = [0, 0, SIDE, SIDE];
  const result = await pipeline.generate({ prompt: '', layout: { width: SIDE, height: SIDE, boxes: Array.from({ length: count }, () => whole) }, steps: 1, guidance: 4, trueCfg: 3.5, seed: 1 });
  return result.layers.map((l) => l.rgba);
}

export async function main(layerCount = MAX_LAYERS): Promise<void> {
  console.log(`\n== PNG encoding: ${layerCount} layers of ${SIDE}x${SIDE} ==\n${machineLine()}`);
  const layers = await benchLayers(layerCount);
  const rows = ENCODERS.map(({ name, encode }) => {
    encode(layers[0], SIDE, SIDE); // warm-up (JIT, the WebAssembly module, zlib)
    let bytes = 0;
    const cpu0 = process.cpuUsage();
    for (const rgba of layers) bytes += encode(rgba, SIDE, SIDE).length;
    const cpu = process.cpuUsage(cpu0);
    return { name, bytes, cpuMs: (cpu.user + cpu.system) / 1000 };
  });
  const [base] = rows;
  console.log(
    table(
      ['encoder', 'bytes', 'size vs baseline', 'CPU ms / layer', 'CPU time vs baseline'],
      rows.map((r) => [r.name, mib(r.bytes), `${fixed((r.bytes / base.bytes) * 100)}%`, fixed(r.cpuMs / layers.length), `${fixed((r.cpuMs / base.cpuMs) * 100)}%`]),
    ),
  );
  console.log('How to read: ratios are against pngjs in this run; for RGBA layers the files are byte for byte the same, opaque ones are RGB (smaller).');
}

if (import.meta.url === `file://${process.argv[1]}`) await main(Number(process.argv[2]) || undefined);
