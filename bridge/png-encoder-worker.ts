/** One thread of the PNG pool: encodes what it is sent, answers with the PNG (transferred). */
import { parentPort } from 'node:worker_threads';
import { encodePng } from '../gpu-server/pipeline/png.ts';
import { ENCODER_READY, type EncodeReply, type EncodeRequest } from './png-pool.ts';

const port = parentPort;
if (!port) throw new Error('png-encoder-worker.ts must run in a worker thread');
port.on('message', ({ id, width, height, rgba }: EncodeRequest) => {
  let reply: EncodeReply;
  try {
    const png = encodePng(width, height, rgba);
    reply = { id, png };
    port.postMessage(reply, [png.buffer as ArrayBuffer]);
  } catch (error) {
    reply = { id, error: error instanceof Error ? error.message : String(error) };
    port.postMessage(reply);
  }
});
port.postMessage(ENCODER_READY);
