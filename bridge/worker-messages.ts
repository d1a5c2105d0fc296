/** Messages between the bridge's main thread and its pipeline worker (structured clone). */
import type { PipelineInfo, Progress } from '../gpu-server/pipeline/types.ts';
import type { Provider } from '../gpu-server/constants.ts';
import type { MemoryMode } from '../gpu-server/pipeline/memory-plan.ts';
import type { LayerPng } from './job-archive.ts';
import type { JobRequest, JobResult } from './executor.ts';

/** Options passed to the pipeline module's `createPipeline`; extra keys are for test doubles. */
export interface PipelineFactoryOptions {
  modelDir?: string;
  provider?: Provider;
  memory?: MemoryMode;
  [extra: string]: unknown;
}

export interface WorkerInit {
  /** URL or absolute path of a module exporting `createPipeline(options): Promise<ArtPipeline>`. */
  factory: string;
  options: PipelineFactoryOptions;
  /** Int32[0] holds the sequence number of a job to cancel; read between steps even when the
   *  worker's event loop is held by onnxruntime and cannot receive messages. */
  cancelFlag: SharedArrayBuffer;
}

/** Previews are encoded at most this often (each is a small PNG, but a step can be fast). */
export const PREVIEW_INTERVAL_MS = 500;

export type ToWorker =
  | { type: 'run'; seq: number; request: JobRequest }
  | { type: 'cancel'; seq: number }
  | { type: 'dispose' };

/** The worker's end of a job: the layers went ahead one by one (`layer` messages), this says how many. */
export type WorkerResult = Omit<JobResult, 'layers'> & { layerCount: number };

export type FromWorker =
  | { type: 'ready'; info: PipelineInfo }
  | { type: 'load_failed'; message: string }
  | { type: 'progress'; seq: number; progress: Progress }
  /** A small PNG of the merged image so far (throttled in the worker, see PREVIEW_INTERVAL_MS). */
  | { type: 'preview'; seq: number; step: number; png: Uint8Array }
  /** One layer's PNG, as soon as it is encoded; layers come in index order, all before `result`. */
  | { type: 'layer'; seq: number; layer: LayerPng }
  | { type: 'result'; seq: number; result: WorkerResult }
  | { type: 'failed'; seq: number; aborted: boolean; message: string }
  | { type: 'disposed' };
