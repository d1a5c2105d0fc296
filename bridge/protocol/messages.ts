/**
 * The bridge's wire protocol: what the UI (browser) and the bridge (Node) say to each other, as
 * `type`-tagged JSON messages: the client's, each with its zod schema (validated once, at the
 * boundary: parse.ts), and the bridge's. PNG images travel as binary frames (image-frame.ts).
 * zod and plain TypeScript only, no Node APIs: the browser UI imports this.
 */
import { z } from 'zod';
import { keepListSchema } from '../../domain/keep.ts';
import { type BoxTuple, GRID, layoutSchema, MAX_CANVAS_SIDE, MAX_FLAT_IMAGE_BYTES } from '../../domain/layout.ts';
import { conditioningScaleSchema, promptSchema, samplingSchema } from '../../domain/params.ts';
import type { Stage } from '../../domain/stage.ts';
import type { JobKind } from '../../domain/job-kind.ts';
import { JOB_ID_PATTERN, MAX_CLIENT_NAME_CHARS, MAX_MODEL_NAME_CHARS, MAX_TOKEN_CHARS, REQUEST_ID_PATTERN } from './limits.ts';

/**
 * Bumped on any change to an existing message. The plugin and the bridge ship together from one
 * checkout, so the bridge speaks this version only and answers any other `hello` with
 * `protocol_version` (update the plugin, or the bridge). A job kind a model can run (`decompose`)
 * is not a version: the welcome's `models[].jobs` says which jobs each model runs.
 */
export const PROTOCOL_VERSION = 2;

// ---- client -> bridge ---------------------------------------------------------------------------

const requestId = z.string().regex(REQUEST_ID_PATTERN, 'must be 1..64 characters of A-Z a-z 0-9 _ -');
const jobId = z.string().regex(JOB_ID_PATTERN, 'must be a job id the bridge gave (a UUID)');
const canvasSide = z
  .number()
  .int()
  .min(GRID)
  .max(MAX_CANVAS_SIDE)
  .refine((v) => v % GRID === 0, { message: `must be a multiple of ${GRID}` });

export const generateParamsSchema = z
  .object({
    /** Longest canvas side the layout was scaled to; must match the layout. */
    resolution: canvasSide,
  })
  .merge(samplingSchema)
  .strict();
export type WireGenerateParams = z.infer<typeof generateParamsSchema>;

export const helloSchema = z
  .object({
    type: z.literal('hello'),
    protocol: z.number().int(),
    token: z.string().min(1).max(MAX_TOKEN_CHARS),
    client: z.string().max(MAX_CLIENT_NAME_CHARS).optional(),
  })
  .strict();

/**
 * The job this one builds on, and which of its layers it keeps (`from` of the base as
 * `to` of this layout). Indices are checked against both layouts by the bridge (`checkKeep`).
 */
export const baseSchema = z
  .object({
    jobId,
    keep: keepListSchema,
  })
  .strict();
export type WireBase = z.infer<typeof baseSchema>;

const generateSchema = z
  .object({
    type: z.literal('generate'),
    requestId,
    prompt: promptSchema,
    layout: layoutSchema,
    params: generateParamsSchema,
    /** The model to run (one the welcome lists); absent: the bridge's default, the welcome's `model`. */
    model: z.string().min(1).max(MAX_MODEL_NAME_CHARS).optional(),
    base: baseSchema.optional(),
  })
  .strict();

/** A decomposition's parameters: generation's, plus the adapter's weight. */
export const decomposeParamsSchema = generateParamsSchema.extend({ conditioningScale: conditioningScaleSchema }).strict();
export type WireDecomposeParams = z.infer<typeof decomposeParamsSchema>;

/**
 * Decompose a flat image into the layers `layout` marks; `prompt` is a caption of the whole image
 * (CLD is trained with one). The image is not in the message: it is the next frame the client
 * sends, binary, of exactly `image.bytes` bytes (a PNG of the canvas' size; see `decodeFlatImage`
 * in gpu-server/pipeline/flat-image.ts for what is accepted).
 */
const decomposeSchema = generateSchema
  .omit({ type: true, params: true, base: true })
  .extend({
    type: z.literal('decompose'),
    params: decomposeParamsSchema,
    image: z
      .object({ bytes: z.number().int().min(1).max(MAX_FLAT_IMAGE_BYTES, `the image may be at most ${MAX_FLAT_IMAGE_BYTES} bytes`) })
      .strict(),
  })
  .strict();

const cancelSchema = z.object({ type: z.literal('cancel'), jobId }).strict();
const fetchSchema = z.object({ type: z.literal('fetch'), jobId }).strict();
const pingSchema = z
  .object({ type: z.literal('ping'), id: z.union([z.number().int(), requestId]).optional() })
  .strict();

export const clientMessageSchema = z
  .discriminatedUnion('type', [helloSchema, generateSchema, decomposeSchema, cancelSchema, fetchSchema, pingSchema])
  .superRefine((msg, ctx) => {
    if (msg.type !== 'generate' && msg.type !== 'decompose') return;
    const longest = Math.max(msg.layout.width, msg.layout.height);
    if (longest !== msg.params.resolution)
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['params', 'resolution'],
        message: `resolution ${msg.params.resolution} differs from the layout's longest side ${longest}`,
      });
  });

export type HelloMessage = z.infer<typeof helloSchema>;
export type GenerateMessage = z.infer<typeof generateSchema>;
export type DecomposeMessage = z.infer<typeof decomposeSchema>;
/** A message that makes a job. */
export type JobMessage = GenerateMessage | DecomposeMessage;
export type CancelMessage = z.infer<typeof cancelSchema>;
export type FetchMessage = z.infer<typeof fetchSchema>;
export type PingMessage = z.infer<typeof pingSchema>;
export type ClientMessage = z.infer<typeof clientMessageSchema>;
export const CLIENT_MESSAGE_TYPES = ['hello', 'generate', 'decompose', 'cancel', 'fetch', 'ping'] as const;

// ---- bridge -> client ---------------------------------------------------------------------------

/** Every error the bridge sends carries one of these codes. */
export const ERROR_CODES = [
  /** `hello` missing its version, or another version than the bridge's (update the plugin or the bridge). */
  'protocol_version',
  /** No `hello` yet, or a missing or wrong pairing token. */
  'unauthorized',
  /** Too many wrong tokens or too many messages; wait and retry. */
  'rate_limited',
  'malformed_json',
  /** The client sent a binary frame that no `decompose` announced (a client's only binary frame is a decompose's image). */
  'binary_not_allowed',
  'message_too_large',
  'unknown_type',
  /** A field is missing, has the wrong type, or is not allowed. */
  'invalid_message',
  'invalid_prompt',
  'invalid_layout',
  'invalid_params',
  /** The queue (this client's share or the whole) is full. */
  'queue_full',
  /** cancel/fetch of a job id this bridge does not know (or has pruned). */
  'unknown_job',
  /** The job was cancelled (by the client, or at shutdown). */
  'cancelled',
  /** The pipeline failed while running the job. */
  'generation_failed',
  /** `generate.base` names a job this bridge does not have (never existed, or pruned). */
  'base_not_found',
  /** `generate.base` names a job still waiting or running; wait for its `done`. */
  'base_running',
  /** The base was made with another model or canvas size. */
  'base_mismatch',
  /** A keep entry names layer 0 (merged), an index outside either layout, or a layer twice. */
  'invalid_keep',
  /** A kept layer's box differs from its box in the base (moved or resized layers are regenerated, not kept). */
  'keep_box_mismatch',
  /** `decompose` for a model that cannot decompose (its `welcome.models[].jobs` lacks it). */
  'job_unsupported',
  /** The image a `decompose` announced did not come as the next frame (a text frame came first, or none within the deadline). */
  'image_missing',
  /** The image is over MAX_FLAT_IMAGE_BYTES, longer than announced, or its data inflates beyond what its header says (a bomb). */
  'image_too_large',
  /** The image is not a PNG file. */
  'image_not_png',
  /** The image ends early: shorter than announced, or inside a chunk, or before IEND (an upload cut off). */
  'image_truncated',
  /** A CRC, the compressed data or a row filter of the image is wrong. */
  'image_corrupt',
  /** The image's width and height (its PNG header) differ from the layout's canvas. */
  'image_size_mismatch',
  /** A PNG this bridge does not read: palette, greyscale, 16-bit or interlaced (8-bit RGB or RGBA only). */
  'image_unsupported',
  'shutting_down',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export type Timings = Partial<Record<Stage | 'queue' | 'total', number>>;

export interface WelcomeMessage {
  type: 'welcome';
  protocol: number;
  model: string;
  provider: string;
  /** The model's random tiny weights: images are noise. */
  tiny: boolean;
  maxLayers: number;
  /** Canvas sides (longest side) the model accepts. */
  resolutions: number[];
  maxCanvasSide: number;
  grid: number;
  maxPromptChars: number;
  /** Most jobs one connection may have waiting or running; a client holds back the rest (more are `queue_full`). */
  jobsPerClient: number;
  /** Every model this bridge offers, the default (`model` above) first; a studio front door may offer several. */
  models: ModelOffer[];
  /** Largest PNG a `decompose` may upload. */
  maxImageBytes: number;
  /** Only when `models` is empty (a studio front door before any GPU worker announced a model):
   *  why, for a person. `model` and `provider` are then empty, `tiny` false, `maxLayers` and
   *  `resolutions` the bridge's own bounds; a job sent without `model` waits for the first model. */
  note?: string;
}

export interface ModelOffer {
  model: string;
  tiny: boolean;
  maxLayers: number;
  resolutions: number[];
  /** The jobs this model runs: every model `generate`s; one with an adapter also `decompose`s. */
  jobs: JobKind[];
}

export interface QueuedMessage {
  type: 'queued';
  /** Echoed from `generate`; absent when answering `fetch` of a job still waiting or running. */
  requestId?: string;
  jobId: string;
  /** Jobs ahead of this one; 0 means it runs now. Sent again whenever it changes. */
  position: number;
  /** Why the job waits although its turn came (e.g. no GPU worker has its model), or that it started
   *  again from the beginning on another worker; for a person. Sent again whenever it changes. */
  note?: string;
}

export interface ProgressMessage {
  type: 'progress';
  jobId: string;
  stage: Stage;
  step: number;
  total: number;
  elapsedMs: number;
}

/** Announces the next binary frame: the PNG of one layer, cropped to its box. */
export interface LayerMessage {
  type: 'layer';
  jobId: string;
  index: number;
  box: BoxTuple;
  width: number;
  height: number;
  /** Byte length of the PNG in the binary frame that follows. */
  bytes: number;
}

/** What a finished job reports: in `done`, and in the job archive's manifest. */
export interface JobOutcome {
  seed: number;
  model: string;
  provider: string;
  tiny: boolean;
  promptTruncated: boolean;
  /** Milliseconds per pipeline stage, plus `queue` (waiting) and `total` (queued to done). */
  timings: Timings;
}

export interface DoneMessage extends JobOutcome {
  type: 'done';
  jobId: string;
  requestId?: string;
  layerCount: number;
  /** True when this is a replay from the job archive (answer to `fetch`). */
  fetched: boolean;
  /** Lineage: the job this one was made from and the layers it kept (absent for a plain job). */
  base?: WireBase;
  /** What made the layers: `decompose` for a decomposition of an uploaded image; absent for a generation. */
  job?: JobKind;
}

export interface ErrorMessage {
  type: 'error';
  code: ErrorCode;
  /** What went wrong and what to do next, for a person. */
  message: string;
  requestId?: string;
  jobId?: string;
}

export interface PongMessage {
  type: 'pong';
  id?: number | string;
  /** Bridge clock, ms since the epoch. */
  time: number;
}

export type BridgeMessage =
  | WelcomeMessage
  | QueuedMessage
  | ProgressMessage
  | LayerMessage
  | DoneMessage
  | ErrorMessage
  | PongMessage;
