/**
 * What travels between the front door and the GPU workers through BullMQ: a job's data, its
 * progress events (`job.updateProgress`), and its return value (a small manifest; the layers and
 * latents themselves travel as separate Redis values, see `transport.ts`). Each side validates
 * what it reads once, here: Redis is shared, and a worker of another version may be on it.
 */
import { z } from 'zod';
import { layoutSchema } from '../../domain/layout.ts';
import { decomposeParamsSchema, generateParamsSchema } from '../protocol/messages.ts';
import { JOB_KINDS, type PipelineInfo, type Progress } from '../../gpu-server/pipeline/types.ts';

const STAGES = ['text', 'denoise', 'decode', 'encode'] as const;
const boxTuple = z.tuple([z.number().int(), z.number().int(), z.number().int(), z.number().int()]);
const name = z.string().min(1).max(200);

// ---- job data (front door -> worker) ------------------------------------------------------------

const baseRefSchema = z
  .object({
    model: name,
    layout: layoutSchema,
    keep: z.array(z.object({ from: z.number().int(), to: z.number().int() }).strict()).max(64),
    /** Length of the latents (float32 values) in the input key `latents`. */
    latentValues: z.number().int().min(0),
  })
  .strict();

/** A decomposition's image, 8-bit RGB of the canvas (checked and composited over white at the front door): `width * height * 3` bytes in the input key `image`. */
const imageRefSchema = z.object({ width: z.number().int().min(1), height: z.number().int().min(1) }).strict();

export const jobDataSchema = z
  .object({
    jobId: z.string().min(1).max(100),
    model: name,
    kind: z.enum(JOB_KINDS),
    /** A decomposition's: see imageRefSchema. */
    image: imageRefSchema.optional(),
    params: z
      .object({
        prompt: z.string().max(10_000),
        layout: layoutSchema,
        steps: generateParamsSchema.shape.steps,
        guidance: generateParamsSchema.shape.guidance,
        trueCfg: generateParamsSchema.shape.trueCfg,
        seed: generateParamsSchema.shape.seed,
        base: baseRefSchema.optional(),
        conditioningScale: decomposeParamsSchema.shape.conditioningScale.optional(),
      })
      .strict(),
  })
  .strict()
  .superRefine((data, ctx) => {
    const decompose = data.kind === 'decompose';
    // A decomposition has its image (of its canvas) and the adapter's weight, and no base; a generation neither.
    const fits = decompose
      ? data.image !== undefined && data.params.conditioningScale !== undefined && data.params.base === undefined &&
        data.image.width === data.params.layout.width && data.image.height === data.params.layout.height
      : data.image === undefined && data.params.conditioningScale === undefined;
    if (!fits) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `a ${data.kind} job's data has ${decompose ? 'no image of its canvas, no conditioningScale, or a base' : 'an image or a conditioningScale'}` });
  });
export type JobData = z.infer<typeof jobDataSchema>;

// ---- progress events (worker -> front door) -----------------------------------------------------

const progressSchema = z
  .object({ stage: z.enum(STAGES), step: z.number().int().min(0), total: z.number().int().min(0), elapsedMs: z.number().min(0) })
  .strict();

/** A layer's place and size; its PNG is the Redis value `keys.layer(jobId, run, index)` of `bytes` bytes. */
const layerRefShape = { index: z.number().int().min(0).max(255), box: boxTuple, width: z.number().int().min(0), height: z.number().int().min(0), bytes: z.number().int().min(0) };
export type LayerRef = { index: number; box: [number, number, number, number]; width: number; height: number; bytes: number };

export const runEventSchema = z.discriminatedUnion('type', [
  /** A worker took the job; `run` is unique per attempt (a second one means it started again). */
  z.object({ type: z.literal('started'), run: name, worker: name, attempt: z.number().int().min(0) }).strict(),
  z.object({ type: z.literal('progress'), run: name, progress: progressSchema }).strict(),
  /** A small PNG of the merged image so far, base64 (throttled in the pipeline thread). */
  z.object({ type: z.literal('preview'), run: name, step: z.number().int().min(0), png: z.string().max(4 * 2 ** 20) }).strict(),
  /** A layer is encoded and in Redis (in index order): only a reference travels in the event stream. */
  z.object({ type: z.literal('layer'), run: name, ...layerRefShape }).strict(),
]);
export type RunEvent = z.infer<typeof runEventSchema>;
export type ProgressEvent = { type: 'progress'; run: string; progress: Progress };

// ---- return value (worker -> front door): a manifest; no PNG travels in it --------------------------

const partSchema = z.object({ bytes: z.number().int().min(0) }).strict();

export const resultManifestSchema = z
  .object({
    run: name,
    worker: name,
    /** Every layer the run produced (each was streamed as a `layer` event; a missed event's PNG is still in Redis). */
    layers: z.array(z.object(layerRefShape).strict()).max(256),
    latents: partSchema.extend({ layout: layoutSchema }).strict(),
    seed: z.number().int(),
    model: name,
    provider: name,
    tiny: z.boolean(),
    promptTruncated: z.boolean(),
    timings: z.record(z.enum(STAGES), z.number()),
  })
  .strict();
export type ResultManifest = z.infer<typeof resultManifestSchema>;

/** Failure reason a worker gives for a job it stopped because it was cancelled. */
export const CANCELLED_REASON = 'cancelled';

// ---- worker records (heartbeat) -------------------------------------------------------------------

export const pipelineInfoSchema = z.object({
  model: name,
  provider: name,
  tiny: z.boolean(),
  maxLayers: z.number().int().min(2),
  resolutions: z.array(z.number().int().min(1)),
  memoryPlan: z.string().max(1000).optional(),
  jobs: z.array(z.enum(JOB_KINDS)).min(1).max(JOB_KINDS.length),
}) satisfies z.ZodType<PipelineInfo>;

export const workerRecordSchema = z.object({
  name,
  info: pipelineInfoSchema,
  /** The job it runs now, if any. */
  jobId: z.string().max(100).optional(),
  host: z.string().max(200),
  pid: z.number().int(),
  startedAt: z.string().max(40),
});
export type WorkerRecord = z.infer<typeof workerRecordSchema>;

/** Parses JSON against a schema; undefined for anything that does not fit. */
export function parseJson<T>(schema: z.ZodType<T>, text: string | null | undefined): T | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

