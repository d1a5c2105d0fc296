/** The image decoder's thread: checks and decodes each PNG it is sent (flat-image.ts), answers with the pixels and the PNG (moved back). */
import { parentPort } from 'node:worker_threads';
import { decodeFlatImage } from '../gpu-server/pipeline/flat-image.ts';
import type { DecodeReply, DecodeRequest } from './image-decoder.ts';

const port = parentPort;
if (!port) throw new Error('image-decoder-worker.ts must run in a worker thread');
port.on('message', ({ id, png, canvas }: DecodeRequest) => {
  const result = decodeFlatImage(png, canvas);
  const reply: DecodeReply = { id, png, result };
  const moved = [png.buffer as ArrayBuffer, ...(result.ok ? [result.image.pixels.buffer as ArrayBuffer] : [])];
  port.postMessage(reply, moved);
});
