/**
 * PNG encoding on several threads. On one thread 52 layers of 1024x1024 take over a second; the
 * pool spreads them over the machine's cores (the pipeline's own thread only waits meanwhile).
 * Each thread is given the next image when it has finished its last, not in turn: layers differ
 * tenfold in cost (an opaque one against a mostly transparent one) and a thread may share its core
 * with the bridge's, so a fixed rotation left one thread idle while the other still had a queue.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startTsWorker } from './ts-worker.ts';

export interface EncodeRequest {
  id: number;
  width: number;
  height: number;
  rgba: Uint8Array;
}

export type EncodeReply = { id: number; png: Uint8Array } | { id: number; error: string };
/** What an encoder thread posts once, when it has loaded. */
export const ENCODER_READY = 'ready';

interface Waiting {
  resolve: (png: Uint8Array) => void;
  reject: (error: Error) => void;
}

interface Queued {
  request: EncodeRequest;
  transfer: ArrayBuffer[];
}

/** Threads by default: the cores, at most 4 (beyond that the job archive's disk writes dominate). */
export const defaultPoolSize = (): number => Math.max(1, Math.min(4, availableParallelism()));

export class PngPool {
  private workers: Worker[] = [];
  /** Threads with nothing to encode. */
  private idle: Worker[] = [];
  private queue: Queued[] = [];
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 0;
  private loaded: Promise<void> = Promise.resolve();

  constructor(readonly size = defaultPoolSize()) {}

  /**
   * Encodes every image; the PNGs come back in the order given. Pixel buffers that an image owns
   * whole are moved to the encoder threads, not copied (a 52-layer job is 200 MB of RGBA), others
   * are copied when a thread takes them: either way the caller must not change them afterwards.
   */
  encodeAll(images: readonly { width: number; height: number; rgba: Uint8Array }[]): Promise<Uint8Array[]> {
    return Promise.all(images.map((img) => this.encode(img.width, img.height, img.rgba)));
  }

  encode(width: number, height: number, rgba: Uint8Array): Promise<Uint8Array> {
    void this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      const ownsBuffer = rgba.byteOffset === 0 && rgba.byteLength === rgba.buffer.byteLength && rgba.buffer instanceof ArrayBuffer;
      this.queue.push({ request: { id, width, height, rgba }, transfer: ownsBuffer ? [rgba.buffer as ArrayBuffer] : [] });
      this.dispatch();
    });
  }

  /** Encodes still queued or under way are rejected. */
  async close(): Promise<void> {
    const workers = this.workers;
    this.workers = [];
    this.idle = [];
    this.rejectAll(new Error('the PNG encoder pool was closed before this image was encoded'));
    await Promise.all(workers.map((w) => w.terminate()));
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.shift() as Worker;
      const { request, transfer } = this.queue.shift() as Queued;
      worker.postMessage(request, transfer);
    }
  }

  /**
   * Starts the threads (encode does it on first use) and resolves when all have loaded: loading one
   * takes a while, so the pipeline worker does this before its first job.
   */
  start(): Promise<void> {
    if (this.workers.length > 0) return this.loaded;
    const loaded: Promise<void>[] = [];
    for (let i = 0; i < this.size; i++) {
      const worker = startTsWorker(new URL('./png-encoder-worker.ts', import.meta.url));
      loaded.push(
        new Promise((resolve, reject) => {
          worker.once('error', reject);
          worker.on('message', (reply: EncodeReply | typeof ENCODER_READY) => {
            if (reply === ENCODER_READY) resolve();
            else this.settle(reply);
            if (!this.workers.includes(worker)) return; // closed meanwhile
            this.idle.push(worker);
            this.dispatch();
          });
        }),
      );
      worker.on('error', (error) => this.failAll(new Error(`PNG encoder thread failed: ${error.message}`)));
      this.workers.push(worker);
    }
    this.loaded = Promise.all(loaded).then(() => undefined);
    this.loaded.catch(() => undefined);
    return this.loaded;
  }

  private settle(reply: EncodeReply): void {
    const w = this.waiting.get(reply.id);
    if (!w) return;
    this.waiting.delete(reply.id);
    if ('png' in reply) w.resolve(reply.png);
    else w.reject(new Error(reply.error));
  }

  private failAll(error: Error): void {
    this.rejectAll(error);
    void this.close();
  }

  private rejectAll(error: Error): void {
    this.queue = [];
    for (const w of this.waiting.values()) w.reject(error);
    this.waiting.clear();
  }
}
