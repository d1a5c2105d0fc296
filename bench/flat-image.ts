/**
 * What the bridge pays to check and decode an uploaded flat image (gpu-server/pipeline/flat-image.ts)
 * for a 1024 x 1024 canvas, against pngjs decoding the same file and the project's own encoder
 * writing it (the bridge's cost per generated layer), all in this run. The image: the official
 * sample output `whole.png` resampled to 1024 (test/support/fake-pipeline.ts), as an opaque RGB file
 * (what the project's encoder writes for it) and as RGBA with pngjs's adaptive filters (what most
 * tools write), plus a bomb with a 1024 x 1024 header, refused at the header's 4 MiB.
 * Times are the process's CPU time per call (median of the runs); wall time beside it.
 * Run: `npm run bench -- upload`.
 */
import { deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { checkPngHeader, decodeFlatImage } from '../gpu-server/pipeline/flat-image.ts';
import { encodePng, pngFile } from '../gpu-server/pipeline/png.ts';
import { readSample, resample } from '../test/support/fake-pipeline.ts';
import { fixed, machineLine, median, table } from './stats.ts';

const SIDE = 1024;
const RUNS = 15;

/** Median CPU and wall milliseconds of `fn` over RUNS calls after one warm-up. */
function measure(fn: () => unknown): { cpu: number; wall: number } {
  fn();
  const cpu: number[] = [], wall: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const c0 = process.cpuUsage(), t0 = performance.now();
    fn();
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { cpu: median(cpu), wall: median(wall) };
}

function mustDecode(png: Uint8Array): void {
  const result = decodeFlatImage(png, { width: SIDE, height: SIDE });
  if (!result.ok) throw new Error(`the bench's own image was refused: ${result.message}`);
}

export async function main(): Promise<void> {
  const rgba = resample(readSample('whole.png'), SIDE, SIDE);
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255; // a flat picture: opaque
  const rgbFile = encodePng(SIDE, SIDE, rgba);
  const pngjsImage = new PNG({ width: SIDE, height: SIDE });
  pngjsImage.data = Buffer.from(rgba);
  const rgbaFile = new Uint8Array(PNG.sync.write(pngjsImage, { colorType: 6 }));
  // A 1024 x 1024 header over data that would inflate to 256 MiB of zeros.
  const bombData = deflateSync(Buffer.alloc(256 << 20), { level: 9 });
  const bomb = pngFile(SIDE, SIDE, 6, bombData);
  if (decodeFlatImage(bomb, { width: SIDE, height: SIDE }).ok) throw new Error('the bomb was accepted');

  const rows: { name: string; file: Uint8Array; cpu: number; wall: number }[] = [];
  const add = (name: string, file: Uint8Array, fn: () => unknown) => rows.push({ name, file, ...measure(fn) });
  add('project encoder writes the RGB file (encodePng; baseline)', rgbFile, () => encodePng(SIDE, SIDE, rgba));
  add('pngjs decodes the RGB file', rgbFile, () => PNG.sync.read(Buffer.from(rgbFile.buffer, rgbFile.byteOffset, rgbFile.length)));
  add('flat-image.ts checks and decodes the RGB file', rgbFile, () => mustDecode(rgbFile));
  add('pngjs decodes the RGBA file (adaptive filters)', rgbaFile, () => PNG.sync.read(Buffer.from(rgbaFile)));
  add('flat-image.ts checks and decodes the RGBA file', rgbaFile, () => mustDecode(rgbaFile));
  add('flat-image.ts header check alone (checkPngHeader)', rgbaFile, () => checkPngHeader(rgbaFile, { width: SIDE, height: SIDE }));
  add(`flat-image.ts refuses a bomb (${(bombData.length / 1024).toFixed(0)} KiB -> 256 MiB, header 1024 x 1024)`, bomb, () => decodeFlatImage(bomb, { width: SIDE, height: SIDE }));

  const base = rows[0].cpu;
  console.log(`\n## Upload check and decode, ${SIDE} x ${SIDE} (bench/flat-image.ts)\n${machineLine()}\n`);
  console.log(
    table(
      ['', 'file KiB', 'CPU ms', 'vs encodePng', 'wall ms'],
      rows.map((r) => [r.name, fixed(r.file.length / 1024, 0), fixed(r.cpu, 2), `${fixed(r.cpu / base, 2)}x`, fixed(r.wall, 2)]),
    ),
  );
  console.log(`\nCPU time per call, median of ${RUNS} after a warm-up; ratios against the first row in this run.`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
