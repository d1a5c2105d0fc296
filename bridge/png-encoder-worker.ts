/** One thread of the PNG pool: encodes what it is sent, answers with the PNG (transferred). */
import { parentPort } from 'node:worker_threads';
import { encodePng } from '../gpu-server/pipeline/png.ts';
import { ENCODER_READY, type EncodeReply, type EncodeRequest } from './png-pool.ts';
import { MAX_IMAGE_FRAME_HEADER_BYTES } from './protocol/image-frame.ts';

const WARM_UP_SIDE = 128;
const port = parentPort;
if (!port) throw new Error('png-encoder-worker.ts must run in a worker thread');
port.on('message', ({ id, width, height, rgba }: EncodeRequest) => {
  let reply: EncodeReply;
  try {
    // Room for the frame header in front: the main thread frames the PNG without copying it.
    const png = encodePng(width, height, rgba, MAX_IMAGE_FRAME_HEADER_BYTES);
    reply = { id, png };
    port.postMessage(reply, [png.buffer as ArrayBuffer]);
  } catch (error) {
    reply = { id, error: error instanceof Error ? error.message : String(error) };
    port.postMessage(reply);
  }
});
// Two small encodes before saying ready, so the first layers of the first job do not pay for
// compiling the encoder (with the JavaScript filter, the first two 1024x1024 layers took 2-4x their
// usual time).
encodePng(WARM_UP_SIDE, WARM_UP_SIDE, warmUpImage(false));
encodePng(WARM_UP_SIDE, WARM_UP_SIDE, warmUpImage(true));
port.postMessage(ENCODER_READY);

/** Noise with transparent runs (the RGBA path) or opaque noise (the RGB path). */
function warmUpImage(opaque: boolean): Uint8Array {
  let seed = 1;
  const noise = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  return Uint8Array.from({ length: WARM_UP_SIDE * WARM_UP_SIDE * 4 }, (_, i) => (opaque ? (i % 4 === 3 ? 255 : noise()) : i % 1024 < 512 ? 0 : noise()));
}
