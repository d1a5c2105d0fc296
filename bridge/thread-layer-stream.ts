/**
 * A job's layers from RGBA to PNGs that leave as they are ready: each layer goes to the encoder
 * pool the moment the pipeline hands it over (the VAE may still be running), and each PNG is sent
 * as soon as it and every layer before it are encoded, so clients receive layers in index order
 * while the rest are still being encoded.
 */
import type { LayerImage } from '../gpu-server/pipeline/types.ts';
import type { LayerPng } from './job-archive.ts';

export interface Encoder {
  encode(width: number, height: number, rgba: Uint8Array): Promise<Uint8Array>;
}

export class ThreadLayerStream {
  private readonly seen = new Set<number>();
  private sent: Promise<void> = Promise.resolve();
  private firstAt: number | undefined;
  private count = 0;

  constructor(
    private readonly encoder: Encoder,
    private readonly send: (layer: LayerPng) => void,
  ) {}

  /** Layers already added are skipped, so a pipeline that streamed them and then returns them all is fine. */
  add(layers: readonly LayerImage[]): void {
    for (const layer of layers) {
      if (this.seen.has(layer.index)) continue;
      this.seen.add(layer.index);
      this.firstAt ??= performance.now();
      const { index, box, width, height } = layer;
      const png = this.encoder.encode(width, height, layer.rgba);
      // Marked handled here: a failure surfaces once, through `finish`, not as an unhandled rejection.
      png.catch(() => undefined);
      const next = this.sent.then(async () => {
        this.send({ index, box: [box[0], box[1], box[2], box[3]], width, height, png: await png });
        this.count++;
      });
      next.catch(() => undefined);
      this.sent = next;
    }
  }

  /** Layers sent so far. */
  get sentCount(): number {
    return this.count;
  }

  /** Waits until every added layer is sent (rejects with the first encoding error); ms since the first was added. */
  async finish(): Promise<number> {
    await this.sent;
    return this.firstAt === undefined ? 0 : performance.now() - this.firstAt;
  }
}
