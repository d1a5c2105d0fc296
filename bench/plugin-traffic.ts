/**
 * `npm run bench -- plugin`: what a finished job costs the plugin's main thread (Figma's
 * sandbox, a WebAssembly VM with little memory) on a 52-layer 1024 px job with noise layers like
 * the tiny model's (noise does not compress, so these are the largest PNGs a job of that layout
 * sends): one `layer-image` message per layer, createImage each, then the job's `insert`. (The
 * way before it, one message with every PNG, is gone; its figures are in docs/performance.md.)
 *
 * Traffic is the structured-clone size of each message (what postMessage copies). The main
 * thread's peak is the ArrayBuffer memory held while it handles the messages, measured with
 * process.memoryUsage() and a GC between messages (a browser collects between tasks too); the
 * fake document's createImage keeps its own copy of the bytes, as Figma's image store does, and
 * that store (one copy of every image, held either way) is the baseline the peak is read against.
 * Measured, not asserted: a model of the sandbox, not the sandbox.
 *
 * Insertion time: the plugin's real main thread (plugin/main.ts) runs here against a `figma`
 * global over the fake document, wired as the e2e harness wires it in the browser
 * (test/e2e/harness/fake-figma-env.ts), and inserts the job into a 50-child frame: 52
 * `layer-image` messages through main.ts's handler, then its `insert`, timed from the first
 * layer-image and from the last one to the `inserted` answer. The second is what the designer
 * waits for once the bridge's last layer arrives; the first, the main thread's whole work, is its baseline.
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

/** One message per layer; each is dropped once Figma holds its image. */
async function streamed(pngs: readonly Uint8Array[]): Promise<number> {
  const doc = new FakeDocument();
  const base = await held();
  return peakOf(
    base,
    pngs.map((png) => () => {
      const arrived = structuredClone({ png });
      doc.createImage(arrived.png);
      return null;
    }),
  );
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
  /** Delivers one UI -> main message that has no answer (a structured clone). */
  post(message: UiToPlugin): void;
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
    post(message) {
      onmessage?.(structuredClone(message));
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
  const answer = await main.send(insertMessage(main.layout, jobId), 'inserted');
  const layers = main.layout.regions.length - 2;
  if (answer.already || answer.layerCount !== layers)
    throw new Error(`main.ts answered ${JSON.stringify(answer)} for job ${jobId}, expected a new frame of ${layers} layers`);
}

function insertMessage(layout: FrameLayout, jobId: string): InsertMessage {
  return {
    type: 'insert', requestId: jobId, jobId, layout, seed: 1, model: 'bench', prompt: 'a poster', tiny: true,
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
  for (const [index, png] of pngs.entries()) {
    main.post({ type: 'layer-image', requestId: jobId, index, png });
    // Each message is its own task in Figma: the next one comes after this one's handler.
    await new Promise((resolve) => setImmediate(resolve));
  }
  const last = performance.now();
  await insertJob(main, jobId);
  const end = performance.now();
  return { totalMs: end - t0, tailMs: end - last };
}

/** Median times of `rounds` insertions of the same 52 layers, each a new job. */
export async function measureInsertion(rounds = 5): Promise<InsertTimes> {
  const main = await startMainThread();
  const pngs = main.layout.layout.boxes.map(([x1, y1, x2, y2], i) => noisePng(x2 - x1, y2 - y1, i + 1));
  const runs: InsertTimes[] = [];
  for (let r = 0; r < rounds; r++) runs.push(await insertStreamed(main, pngs, `bench-${r}`));
  return { totalMs: median(runs.map((t) => t.totalMs)), tailMs: median(runs.map((t) => t.tailMs)) };
}

export async function main(): Promise<void> {
  const pngs = boxes().map(([w, h], i) => noisePng(w, h, i + 1));
  const total = pngs.reduce((n, p) => n + p.byteLength, 0);
  console.log(`\nplugin traffic: a 52-layer 1024 px job, ${mib(total)} of PNGs (noise, as from the tiny model)`);

  const sizes = pngs.map((png, index) => serialize({ type: 'layer-image', requestId: 'r1', index, png }).byteLength);
  const peak = await streamed(pngs);
  const source = frameLayout(readFrame(new FakeDocument([[SOURCE]]).node(SOURCE_ID)), 1024);
  if (!source.ok) throw new Error(source.message);
  const insert = serialize(insertMessage(source.value, 'r1')).byteLength;
  // What Figma's image store holds in any case: one copy of every image.
  const store = total;
  console.log(
    table(
      ['largest message', 'traffic', 'image store', 'main-thread peak', 'peak vs the image store'],
      [[mib(Math.max(...sizes)), mib(sizes.reduce((a, b) => a + b, 0) + insert), mib(store), mib(peak), fixed(peak / store, 2)]],
    ),
  );
  console.log(
    `The insert message itself is ${fixed(insert / 1024, 1)} KiB (the layout and where the job goes, no image). The job's bytes travel in ${pngs.length}\n` +
      'messages, none larger than one PNG; the peak is the image store plus one layer in flight.',
  );

  const rounds = 5;
  const t = await measureInsertion(rounds);
  console.log(`\nInsertion on the plugin's main thread (plugin/main.ts on the fake Figma), 52 layers into a 50-child frame, median of ${rounds} rounds:`);
  console.log(
    table(
      ['first layer-image -> inserted', 'last layer-image -> inserted', 'last vs first'],
      [[`${fixed(t.totalMs)} ms`, `${fixed(t.tailMs)} ms`, fixed(t.tailMs / t.totalMs, 2)]],
    ),
  );
  console.log(
    'Each layer-image is handled as it arrives (during the bridge\'s delivery), so what the designer waits for after the\n' +
      'last layer is the "last layer-image -> inserted" column: the insert itself, a share of the main thread\'s whole work.',
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
