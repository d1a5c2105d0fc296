/**
 * `npm run bench -- plugin`: what a finished job costs the plugin's main thread (Figma's
 * sandbox, a WebAssembly VM with little memory), the old way against the streamed one, on a
 * 52-layer 1024 px job with noise layers like the tiny model's (noise does not compress, so these
 * are the largest PNGs a job of that layout sends).
 *
 *   all at once: one UI -> main message with every PNG, then every createImage in one handler
 *   streamed:    one `layer-image` message per layer, createImage each, then the job's `insert`
 *
 * Traffic is the structured-clone size of each message (what postMessage copies). The main
 * thread's peak is the ArrayBuffer memory held while it handles the messages, measured with
 * process.memoryUsage() and a GC between messages (a browser collects between tasks too); the
 * fake document's createImage keeps its own copy of the bytes, as Figma's image store does.
 * Measured, not asserted: a model of the sandbox, not the sandbox.
 *
 * Insertion time: the plugin's real main thread (plugin/main.ts) runs here against a `figma`
 * global over the fake document, wired as the e2e harness wires it in the browser
 * (test/e2e/harness/fake-figma-env.ts), and inserts the job into a 50-child frame both ways,
 * alternately: streamed (52 `layer-image` messages through main.ts's handler, then its `insert`)
 * from the first layer-image to the `inserted` answer, and all at once (the old way: one message
 * with every PNG, every createImage, then the same insert) from the message to the answer.
 */
import { serialize, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { encodePng } from '../gpu-server/pipeline/png.ts';
import { frameLayout, type FrameLayout } from '../plugin/layout.ts';
import type { InsertMessage, PluginToUi, UiToPlugin } from '../plugin/messages.ts';
import { readFrame } from '../plugin/read-scene.ts';
import { FakeDocument, withWindowApi, type NodeInit } from '../test/plugin/fake-figma.ts';
import { fixed, median, mib, table } from './stats.ts';

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

// ---- insertion through the plugin's main thread ---------------------------------------------------

/** A 1024 frame of 50 rectangles (5 x 10), which frameLayout turns into 52 layers with merged and background. */
const SOURCE_ID = '9:1';
const SOURCE: NodeInit = {
  id: SOURCE_ID, type: 'FRAME', name: 'Poster', x: 0, y: 0, width: 1024, height: 1024,
  children: Array.from({ length: 50 }, (_, i) => ({
    id: `9:${i + 2}`, type: 'RECTANGLE' as const, name: `Box ${i}`, x: (i % 5) * 204, y: Math.floor(i / 5) * 102, width: 204, height: 102,
  })),
};

interface MainThread {
  /** Delivers one UI -> main message (a structured clone, as postMessage makes) and resolves with the answer of
   *  `type` (rejects on main.ts's insert-failed or layer-refused). */
  send<T extends PluginToUi['type']>(message: UiToPlugin, answer: T): Promise<Extract<PluginToUi, { type: T }>>;
  /** Delivers one UI -> main message that has no answer (a structured clone unless `clone` is false). */
  post(message: UiToPlugin, clone?: boolean): void;
  layout: FrameLayout;
}

/** plugin/main.ts, loaded once against a `figma` global over a fake document holding SOURCE. */
async function startMainThread(): Promise<MainThread> {
  const doc = new FakeDocument([[SOURCE]]);
  let onmessage: ((message: UiToPlugin) => void) | undefined;
  const waiting: Array<(message: PluginToUi) => boolean> = [];
  const figma = withWindowApi(doc, {
    showUI() {},
    ui: {
      postMessage(message: PluginToUi) {
        const i = waiting.findIndex((w) => w(message));
        if (i >= 0) waiting.splice(i, 1);
      },
      set onmessage(handler: ((message: UiToPlugin) => void) | undefined) {
        onmessage = handler;
      },
    },
    on(event: string, listener: () => void) {
      if (event === 'selectionchange') doc.onSelectionChange(listener);
    },
    notify: () => ({ cancel() {} }),
  });
  Object.assign(globalThis, { figma, __html__: '' });
  // Imported by URL: plugin/ is type-checked against Figma's typings by its own tsconfig, not this one.
  await import(new URL('../plugin/main.ts', import.meta.url).href);
  const layout = frameLayout(readFrame(doc.node(SOURCE_ID)), 1024);
  if (!layout.ok) throw new Error(`the bench's source frame has no layout: ${layout.message}`);
  return {
    layout: layout.value,
    post(message, clone = true) {
      onmessage?.(clone ? structuredClone(message) : message);
    },
    send(message, answer) {
      return new Promise((resolve, reject) => {
        waiting.push((m) => {
          if (m.type === 'insert-failed' || m.type === 'layer-refused') reject(new Error(`main.ts answered ${m.type}: ${m.message}`));
          else if (m.type === answer) resolve(m as Extract<PluginToUi, { type: typeof answer }>);
          else return false;
          return true;
        });
        onmessage?.(structuredClone(message));
      });
    },
  };
}

/** Inserts through main.ts and checks it made a new frame of every layer (else the time would mean nothing). */
async function insertJob(main: MainThread, jobId: string): Promise<void> {
  const answer = await main.send(insertMessage(main, jobId), 'inserted');
  const layers = main.layout.regions.length - 2;
  if (answer.already || answer.layerCount !== layers)
    throw new Error(`main.ts answered ${JSON.stringify(answer)} for job ${jobId}, expected a new frame of ${layers} layers`);
}

function insertMessage(main: MainThread, jobId: string): InsertMessage {
  return {
    type: 'insert', requestId: jobId, jobId, layout: main.layout, seed: 1, model: 'bench', prompt: 'a poster', tiny: true,
    edit: null, asNew: false, place: 'beside', selectionStamp: 0,
  };
}

interface InsertTimes {
  /** First message in -> `inserted` out. */
  totalMs: number;
  /** The last layer's image made -> `inserted` out: what is left once the bridge's last layer arrives. */
  tailMs: number;
}

async function insertStreamed(main: MainThread, pngs: readonly Uint8Array[], jobId: string): Promise<InsertTimes> {
  const t0 = performance.now();
  for (const [index, png] of pngs.entries()) main.post({ type: 'layer-image', requestId: jobId, index, png });
  const last = performance.now();
  await insertJob(main, jobId);
  const end = performance.now();
  return { totalMs: end - t0, tailMs: end - last };
}

async function insertAllAtOnce(main: MainThread, pngs: readonly Uint8Array[], jobId: string): Promise<InsertTimes> {
  const t0 = performance.now();
  const arrived = structuredClone({ layers: pngs.map((png, index) => ({ index, png })) });
  // The same handler per image, run from the one message (no second copy of each PNG).
  for (const { index, png } of arrived.layers) main.post({ type: 'layer-image', requestId: jobId, index, png }, false);
  await insertJob(main, jobId);
  const end = performance.now();
  return { totalMs: end - t0, tailMs: end - t0 };
}

export async function measureInsertion(rounds = 5): Promise<{ streamed: InsertTimes; allAtOnce: InsertTimes }> {
  const main = await startMainThread();
  const pngs = main.layout.layout.boxes.map(([x1, y1, x2, y2], i) => noisePng(x2 - x1, y2 - y1, i + 1));
  const streamed: InsertTimes[] = [], allAtOnce: InsertTimes[] = [];
  for (let r = 0; r < rounds; r++) {
    // Alternated, so a slower moment of the machine falls on both ways.
    allAtOnce.push(await insertAllAtOnce(main, pngs, `bench-all-${r}`));
    streamed.push(await insertStreamed(main, pngs, `bench-streamed-${r}`));
  }
  const med = (runs: InsertTimes[]): InsertTimes => ({ totalMs: median(runs.map((t) => t.totalMs)), tailMs: median(runs.map((t) => t.tailMs)) });
  return { streamed: med(streamed), allAtOnce: med(allAtOnce) };
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

  const rounds = 5;
  const { streamed: s, allAtOnce: a } = await measureInsertion(rounds);
  console.log(`\nInsertion on the plugin's main thread (plugin/main.ts on the fake Figma), 52 layers into a 50-child frame, median of ${rounds} alternated rounds:`);
  console.log(
    table(
      ['', 'first message -> inserted', 'vs all at once', 'last layer -> inserted', 'vs all at once'],
      [
        ['all at once', `${fixed(a.totalMs)} ms`, '1.00', `${fixed(a.tailMs)} ms`, '1.00'],
        ['streamed', `${fixed(s.totalMs)} ms`, fixed(s.totalMs / a.totalMs, 2), `${fixed(s.tailMs)} ms`, fixed(s.tailMs / a.tailMs, 2)],
      ],
    ),
  );
  console.log(
    'Streamed, each layer-image is handled as it arrives (during the bridge\'s delivery), so what the designer waits for\n' +
      'after the last layer is the "last layer -> inserted" column; all at once, everything waits for the one message.',
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
