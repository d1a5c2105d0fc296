/**
 * `npm run bench -- plugin`: what a finished job costs the plugin's main thread (Figma's
 * sandbox, a WebAssembly VM with little memory), the old way against the streamed one, on a
 * 52-layer 1024 px job with noise layers like the tiny model's (noise does not compress, so these
 * are the largest PNGs a job of that layout sends).
 *
 *   all at once: one UI -> main message with every PNG, then every createImage in one handler
 *   streamed:    one `layer-image` message per layer, createImage each, then an insert of hashes
 *
 * Traffic is the structured-clone size of each message (what postMessage copies). The main
 * thread's peak is the ArrayBuffer memory held while it handles the messages, measured with
 * process.memoryUsage() and a GC between messages (a browser collects between tasks too); the
 * fake document's createImage keeps its own copy of the bytes, as Figma's image store does.
 * Measured, not asserted: a model of the sandbox, not the sandbox.
 */
import { serialize, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { encodePng } from '../gpu-server/pipeline/png.ts';
import { FakeDocument } from '../test/plugin/fake-figma.ts';
import { fixed, mib, table } from './stats.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** 50 child boxes tiling a 1024 canvas (5 x 10 of 204 x 102 rounded to the grid), plus merged and background. */
function boxes(): Array<[number, number]> {
  const sizes: Array<[number, number]> = [
    [1024, 1024],
    [1024, 1024],
  ];
  for (let i = 0; i < 50; i++) sizes.push([208 + (i % 3) * 64, 112 + (i % 4) * 48]);
  return sizes;
}

function noisePng(width: number, height: number, seed: number): Uint8Array {
  const rgba = new Uint8Array(width * height * 4);
  let x = seed * 2654435761;
  for (let i = 0; i < rgba.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    rgba[i] = x & 0xff;
  }
  return encodePng(width, height, rgba);
}

/** ArrayBuffer memory once garbage is collected (backing stores are freed off-thread, so wait for it). */
async function held(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 100));
  }
  return process.memoryUsage().arrayBuffers;
}

/** Runs `steps` (each one message's handling), returning the peak ArrayBuffer memory above `base`. */
function peakOf(base: number, steps: Array<() => unknown>): number {
  let peak = 0;
  const keep: unknown[] = [];
  for (const step of steps) {
    keep.push(step());
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
    gc();
  }
  return peak;
}

/** All at once: the message arrives (one clone of every PNG), then every image is made from it. */
async function allAtOnce(pngs: readonly Uint8Array[]): Promise<number> {
  const doc = new FakeDocument();
  const base = await held();
  return peakOf(base, [
    () => {
      const arrived = structuredClone({ layers: pngs.map((png, index) => ({ index, png })) });
      const made = arrived.layers.map((l) => doc.createImage(l.png).hash);
      return { arrived, made };
    },
  ]);
}

/** Streamed: one message per layer; each is dropped once Figma holds its image. */
async function streamed(pngs: readonly Uint8Array[]): Promise<{ peak: number; insert: number }> {
  const doc = new FakeDocument();
  const base = await held();
  const hashes: string[] = [];
  const peak = peakOf(
    base,
    pngs.map((png) => () => {
      const arrived = structuredClone({ png });
      hashes.push(doc.createImage(arrived.png).hash);
      return null;
    }),
  );
  return { peak, insert: serialize({ type: 'insert', layers: hashes.map((hash, index) => ({ index, hash })) }).byteLength };
}

export async function main(): Promise<void> {
  const pngs = boxes().map(([w, h], i) => noisePng(w, h, i + 1));
  const total = pngs.reduce((n, p) => n + p.byteLength, 0);
  console.log(`\nplugin traffic: a 52-layer 1024 px job, ${mib(total)} of PNGs (noise, as from the tiny model)`);

  const oneMessage = serialize({ type: 'insert', layers: pngs.map((png, index) => ({ index, png })) }).byteLength;
  const sizes = pngs.map((png, index) => serialize({ type: 'layer-image', requestId: 'r1', index, png }).byteLength);
  const largest = Math.max(...sizes);
  const peakAll = await allAtOnce(pngs);
  const { peak: peakStreamed, insert } = await streamed(pngs);
  const streamedTraffic = sizes.reduce((a, b) => a + b, 0) + insert;
  // What Figma's image store holds either way: one copy of every image.
  const store = total;

  console.log(
    table(
      ['', 'largest message', 'traffic', 'main-thread peak', 'peak above the image store', 'peak vs all at once'],
      [
        ['all at once', mib(oneMessage), mib(oneMessage), mib(peakAll), mib(Math.max(0, peakAll - store)), '1.00'],
        ['streamed', mib(largest), mib(streamedTraffic), mib(peakStreamed), mib(Math.max(0, peakStreamed - store)), fixed(peakStreamed / peakAll, 2)],
      ],
    ),
  );
  console.log(
    `The insert message itself is ${fixed(insert / 1024, 1)} KiB (hashes and indices). Streaming moves the same bytes in\n` +
      `${pngs.length} messages, none larger than one PNG; the peak is the image store plus one layer in flight.`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
