/**
 * Uploaded flat images are checked and decoded on a thread of their own: a 1024 px image costs
 * about as much CPU as encoding a layer (docs/performance.md), which on the bridge's main thread
 * would hold every client's messages meanwhile. One thread, started on first use and not keeping
 * the process alive; requests are answered in order. The PNG travels to the thread and back
 * without a copy (the caller keeps it for the job store).
 */
import type { Worker } from 'node:worker_threads';
import type { FlatImageResult } from '../gpu-server/pipeline/flat-image.ts';
import { startTsWorker } from './ts-worker.ts';

export interface DecodeRequest {
  id: number;
  png: Uint8Array;
  canvas: { width: number; height: number };
}

export interface DecodeReply {
  id: number;
  png: Uint8Array;
  result: FlatImageResult;
}

/** A decode answered: the PNG (back from the thread) and what flat-image.ts made of it. */
export type Decoded = { png: Uint8Array; result: FlatImageResult };

export class ImageDecoder {
  private worker: Worker | undefined;
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (d: Decoded) => void; reject: (e: Error) => void }>();

  /** `png` must own its buffer whole: it is moved to the thread (and comes back in the answer). */
  decode(png: Uint8Array, canvas: { width: number; height: number }): Promise<Decoded> {
    const worker = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      const request: DecodeRequest = { id, png, canvas };
      worker.postMessage(request, [png.buffer as ArrayBuffer]);
    });
  }

  /** Decodes under way are rejected. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.failAll(new Error('the image decoder was closed'));
    await worker?.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = startTsWorker(new URL('./image-decoder-worker.ts', import.meta.url));
    worker.unref();
    worker.on('message', (reply: DecodeReply) => {
      const w = this.waiting.get(reply.id);
      this.waiting.delete(reply.id);
      w?.resolve({ png: reply.png, result: reply.result });
    });
    const die = (why: string) => {
      if (this.worker !== worker) return;
      this.worker = undefined; // the next decode starts a new thread
      this.failAll(new Error(why));
    };
    worker.on('error', (error) => die(`the image decoder thread failed: ${error.message}`));
    worker.on('exit', (code) => die(`the image decoder thread exited (code ${code})`));
    this.worker = worker;
    return worker;
  }

  private failAll(error: Error): void {
    for (const w of this.waiting.values()) w.reject(error);
    this.waiting.clear();
  }
}
