/**
 * What a generated result carries, said once for the plugin, the UI and the edit loop: the plugin
 * data written on result frames and their layer nodes.
 *
 * Plugin data is private to the plugin id and kept in the document (Figma: "Lets you store custom
 * information on any node or style, private to your plugin. The total size of your entry
 * (pluginId, key, value) cannot exceed 100 kB." — PluginDataMixin.setPluginData in
 * @figma/plugin-typings). Values are JSON strings with a version field; readers check every field
 * (one zod schema each) and treat anything else as "not ours".
 */
import { z } from 'zod';
import type { BoxTuple } from '../domain/layout.ts';

/** On a result frame: `ResultFrameData` as JSON. */
export const RESULT_FRAME_KEY = 'art.result';
/** On each image node inside a result frame: `LayerNodeData` as JSON. */
export const LAYER_NODE_KEY = 'art.layer';
export const RESULT_DATA_VERSION = 1;
/** Most earlier versions a result frame remembers (the oldest are dropped first). */
export const MAX_LINEAGE = 50;

export interface ResultFrameData {
  v: typeof RESULT_DATA_VERSION;
  /** The bridge's job id (a UUID). */
  jobId: string;
  /** The source frame the layout was read from (it may since have been deleted). */
  sourceNodeId: string;
  model: string;
  seed: number;
  prompt: string;
  /** The generation canvas in pixels, and pixels per result-frame unit on each axis. */
  canvas: { width: number; height: number };
  scaleX: number;
  scaleY: number;
  /** Number of layers the job returned (merged and background included). */
  layerCount: number;
  /**
   * The jobs this frame showed before, oldest first ([] for a first generation): each
   * regeneration in place appends the job it replaced.
   */
  lineage: string[];
}

export interface LayerNodeData {
  v: typeof RESULT_DATA_VERSION;
  jobId: string;
  /** Layer index in the job: 0 merged, 1 background, 2.. the child layers bottom to top. */
  index: number;
  /** The node of the source frame this layer was generated for; null for merged and background. */
  sourceNodeId: string | null;
  /** Where the layer was placed, in result-frame units: [x1, y1, x2, y2]. */
  box: BoxTuple;
  model: string;
  seed: number;
}

const finite = () => z.number().finite();
const version = z.literal(RESULT_DATA_VERSION);

const resultFrameDataSchema: z.ZodType<ResultFrameData, z.ZodTypeDef, unknown> = z.object({
  v: version,
  jobId: z.string(),
  sourceNodeId: z.string(),
  model: z.string(),
  seed: finite(),
  prompt: z.string(),
  canvas: z.object({ width: finite(), height: finite() }),
  scaleX: finite(),
  scaleY: finite(),
  layerCount: finite(),
  lineage: z.array(z.string()).transform((l) => l.slice(-MAX_LINEAGE)),
});

const layerNodeDataSchema: z.ZodType<LayerNodeData, z.ZodTypeDef, unknown> = z.object({
  v: version,
  jobId: z.string(),
  index: z.number().int(),
  sourceNodeId: z.string().nullable(),
  box: z.tuple([finite(), finite(), finite(), finite()]),
  model: z.string(),
  seed: finite(),
});

/** The data in `text` if it is (a current version of) ours, else null. */
function parse<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, text: string): T | null {
  if (!text) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  const parsed = schema.safeParse(value);
  return parsed.success ? parsed.data : null;
}

/** Reads a result frame's data, or null if the text is not (a current version of) ours. */
export function parseResultFrameData(text: string): ResultFrameData | null {
  return parse(resultFrameDataSchema, text);
}

/** Reads a layer node's data, or null if the text is not (a current version of) ours. */
export function parseLayerNodeData(text: string): LayerNodeData | null {
  return parse(layerNodeDataSchema, text);
}

/** One layer's image as Figma holds it: its index in the job and the hash `createImage` gave. */
export interface LayerHash {
  index: number;
  hash: string;
}
