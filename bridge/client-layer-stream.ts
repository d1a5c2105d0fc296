/**
 * A running job's layers on their way to its subscribers: each layer is framed once, as soon as
 * the executor hands it over, and every subscriber reads the frames at its own pace (waiting until
 * it has read what was sent before the next, see Subscriber.drained), from the first layer on,
 * whenever it started following. `done` goes after the last layer once the job is stored.
 */
import type { BridgeMessage } from './protocol/messages.ts';
import { encodeImageFrame, imageFrameHeaderBytes } from './protocol/image-frame.ts';
import type { JobManifest, LayerPng, ArchivedLayer } from './job-archive.ts';

/** What a stream needs of a connection (a `Subscriber` of job-lifecycle.ts). */
export interface StreamClient {
  readonly open: boolean;
  send(message: BridgeMessage): void;
  sendFrame(frame: Uint8Array): void;
  drained(): Promise<boolean>;
}

export function layerMessage(jobId: string, layer: Omit<ArchivedLayer, 'file'>, frame: Uint8Array): BridgeMessage {
  const { index, box, width, height } = layer;
  return { type: 'layer', jobId, index, box, width, height, bytes: frame.length - imageFrameHeaderBytes(jobId) };
}

export function doneMessage(manifest: JobManifest, fetched: boolean): BridgeMessage {
  return {
    type: 'done',
    jobId: manifest.jobId,
    ...(manifest.requestId === undefined ? {} : { requestId: manifest.requestId }),
    layerCount: manifest.layers.length,
    seed: manifest.seed,
    model: manifest.model,
    provider: manifest.provider,
    tiny: manifest.tiny,
    promptTruncated: manifest.promptTruncated,
    timings: manifest.timings,
    fetched,
    ...(manifest.base ? { base: manifest.base } : {}),
    ...(manifest.job === 'decompose' ? { job: manifest.job } : {}),
  };
}

export class ClientLayerStream {
  private readonly frames: { layer: Omit<ArchivedLayer, 'file'>; frame: Uint8Array }[] = [];
  private readonly indices = new Set<number>();
  private manifest: JobManifest | undefined;
  private ended = false;
  private waiting: (() => void)[] = [];

  constructor(readonly jobId: string) {}

  /** Indices of the layers handed over so far. */
  has(index: number): boolean {
    return this.indices.has(index);
  }

  push(layer: LayerPng): void {
    if (this.ended || this.manifest || this.indices.has(layer.index)) return;
    this.indices.add(layer.index);
    const { index, box, width, height } = layer;
    const frame = encodeImageFrame({ kind: 'layer', jobId: this.jobId, layerIndex: index, png: layer.png });
    this.frames.push({ layer: { index, box, width, height }, frame });
    this.wake();
  }

  /** The job is stored: followers send `done` after the last layer. */
  finish(manifest: JobManifest): void {
    this.manifest = manifest;
    this.wake();
  }

  /** The job failed or was cancelled (its error is broadcast): followers stop sending layers. */
  abort(): void {
    this.ended = true;
    this.wake();
  }

  /** Sends every layer, from the first, then `done`; resolves when done is sent or sending stopped. */
  async follow(client: StreamClient): Promise<void> {
    for (let i = 0; ; i++) {
      while (i >= this.frames.length && !this.manifest && !this.ended) await new Promise<void>((resolve) => this.waiting.push(resolve));
      if (this.ended) return;
      if (i >= this.frames.length) {
        if (client.open && this.manifest) client.send(doneMessage(this.manifest, false));
        return;
      }
      if (!(await client.drained()) || this.ended || !client.open) return;
      const { layer, frame } = this.frames[i];
      client.send(layerMessage(this.jobId, layer, frame));
      client.sendFrame(frame);
    }
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = [];
    waiting.forEach((w) => w());
  }
}
