/**
 * The pipeline's thread: loads the pipeline module, runs one job at a time, encodes each layer
 * to PNG as soon as it is decoded, and posts progress, layers and results. onnxruntime holds this thread while it runs; the
 * bridge's event loop is never blocked by it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ArtPipeline, GenerateOptions, LayerImage } from '../gpu-server/pipeline/types.ts';
import { encodePng, rgbToRgba } from '../gpu-server/pipeline/png.ts';
import { keptIndices } from './kept-layers.ts';
import { ThreadLayerStream } from './thread-layer-stream.ts';
import { PngPool } from './png-pool.ts';
import { type FromWorker, PREVIEW_INTERVAL_MS, type ToWorker, type WorkerInit, type WorkerResult } from './worker-messages.ts';
import type { JobRequest } from './executor.ts';

const port = parentPort;
if (!port) throw new Error('pipeline-worker.ts must run in a worker thread');
const init = workerData as WorkerInit;
const cancelFlag = new Int32Array(init.cancelFlag);
const post = (message: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);
const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

type Factory = (options: WorkerInit['options']) => Promise<ArtPipeline>;

async function load(): Promise<ArtPipeline> {
  const url = isAbsolute(init.factory) ? pathToFileURL(init.factory).href : init.factory;
  const mod = (await import(url)) as { createPipeline?: Factory };
  if (typeof mod.createPipeline !== 'function')
    throw new Error(`${init.factory} does not export createPipeline(options)`);
  return mod.createPipeline(init.options);
}

const pngPool = new PngPool();

const controllers = new Map<number, AbortController>();

async function run(pipeline: ArtPipeline, seq: number, request: JobRequest): Promise<void> {
  const controller = new AbortController();
  controllers.set(seq, controller);
  const checkCancel = () => {
    if (Atomics.load(cancelFlag, 0) === seq) controller.abort();
  };
  let lastPreview = -Infinity;
  const startedAt = performance.now();
  // Each layer is encoded and posted as soon as it is decoded, in index order (the main thread sends it on).
  const stream = new ThreadLayerStream(pngPool, (layer) => post({ type: 'layer', seq, layer }, [layer.png.buffer as ArrayBuffer]));
  // Kept layers carry the base's PNG bytes (kept-layers.ts adds them): only the others are encoded and sent.
  const kept = keptIndices(request.kind === 'generate' ? request.params.base : undefined);
  const addFresh = (layers: readonly LayerImage[]) => stream.add(layers.filter((l) => !kept.has(l.index)));
  try {
    const options: GenerateOptions = {
      onLayers: addFresh,
      signal: controller.signal,
      onProgress: (progress) => {
        checkCancel();
        post({ type: 'progress', seq, progress });
      },
      onPreview: (image, step) => {
        const now = performance.now();
        if (now - lastPreview < PREVIEW_INTERVAL_MS) return;
        lastPreview = now;
        const png = encodePng(image.width, image.height, rgbToRgba(image.rgb));
        post({ type: 'preview', seq, step, png }, [png.buffer as ArrayBuffer]);
      },
    };
    const result = request.kind === 'generate' ? await pipeline.generate(request.params, options) : await pipeline.decompose(request.params, options);
    checkCancel();
    if (controller.signal.aborted) throw new DOMException('cancelled', 'AbortError');
    // A pipeline that does not stream its layers hands them all over here.
    addFresh(result.layers);
    const encoding = (step: number) =>
      post({ type: 'progress', seq, progress: { stage: 'encode', step, total: result.layers.length, elapsedMs: performance.now() - startedAt } });
    encoding(stream.sentCount);
    const encodeMs = await stream.finish();
    encoding(result.layers.length);
    const done: WorkerResult = {
      layerCount: result.layers.length - kept.size,
      seed: result.seed,
      model: result.model,
      provider: result.provider,
      tiny: result.tiny,
      promptTruncated: result.promptTruncated,
      timings: { ...result.timings, encode: (result.timings.encode ?? 0) + encodeMs },
      latents: result.latents,
    };
    const { tokens } = result.latents;
    // The latents' buffer is moved, not copied, when it is theirs alone (up to 54 MB at 52 full layers).
    post({ type: 'result', seq, result: done }, tokens.byteLength === tokens.buffer.byteLength ? [tokens.buffer as ArrayBuffer] : []);
  } catch (error) {
    const aborted = controller.signal.aborted || (error instanceof Error && error.name === 'AbortError');
    post({ type: 'failed', seq, aborted, message: errorText(error) });
  } finally {
    controllers.delete(seq);
  }
}

try {
  const pipeline = await load();
  await pngPool.start();
  post({ type: 'ready', info: pipeline.info });
  // Jobs run one at a time; the bridge sends the next only after this one's answer.
  port.on('message', (message: ToWorker) => {
    switch (message.type) {
      case 'run':
        void run(pipeline, message.seq, message.request);
        break;
      case 'cancel':
        controllers.get(message.seq)?.abort();
        break;
      case 'dispose':
        void Promise.all([pipeline.dispose(), pngPool.close()]).finally(() => post({ type: 'disposed' }));
        break;
    }
  });
} catch (error) {
  post({ type: 'load_failed', message: errorText(error) });
}
