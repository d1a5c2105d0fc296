import type { BoxTuple } from '../domain/layout.ts';
/**
 * What a generated result carries, said once for the plugin, the UI and the edit loop: the plugin
 * data written on result frames and their layer nodes, and the per-layer messages that stream a
 * job's images from the UI to the main thread (one message per layer, then an insert that names
 * hashes and indices only, so no message ever holds every PNG at once).
 *
 * Plugin data is private to the plugin id and kept in the document (Figma: "Lets you store custom
 * information on any node or style, private to your plugin. The total size of your entry
 * (pluginId, key, value) cannot exceed 100 kB." — PluginDataMixin.setPluginData in
 * @figma/plugin-typings). Values are JSON strings with a version field; readers check every field
 * and treat anything else as "not ours".
 */

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
   * regeneration in place appends the job it replaced. Absent in frames made before it existed.
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

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isString = (v: unknown): v is string => typeof v === 'string';

function parse(text: string): Record<string, unknown> | null {
  if (!text) return null;
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) && value.v === RESULT_DATA_VERSION ? value : null;
  } catch {
    return null;
  }
}

/** Reads a result frame's data, or null if the text is not (a current version of) ours. */
export function parseResultFrameData(text: string): ResultFrameData | null {
  const r = parse(text);
  if (!r) return null;
  const canvas = r.canvas;
  if (
    !isString(r.jobId) ||
    !isString(r.sourceNodeId) ||
    !isString(r.model) ||
    !isNumber(r.seed) ||
    !isString(r.prompt) ||
    !isObject(canvas) ||
    !isNumber(canvas.width) ||
    !isNumber(canvas.height) ||
    !isNumber(r.scaleX) ||
    !isNumber(r.scaleY) ||
    !isNumber(r.layerCount) ||
    !(r.lineage === undefined || (Array.isArray(r.lineage) && r.lineage.every(isString)))
  )
    return null;
  return {
    v: RESULT_DATA_VERSION,
    jobId: r.jobId,
    sourceNodeId: r.sourceNodeId,
    model: r.model,
    seed: r.seed,
    prompt: r.prompt,
    canvas: { width: canvas.width, height: canvas.height },
    scaleX: r.scaleX,
    scaleY: r.scaleY,
    layerCount: r.layerCount,
    lineage: ((r.lineage as string[] | undefined) ?? []).slice(-MAX_LINEAGE),
  };
}

/** Reads a layer node's data, or null if the text is not (a current version of) ours. */
export function parseLayerNodeData(text: string): LayerNodeData | null {
  const r = parse(text);
  if (!r) return null;
  const box = r.box;
  if (
    !isString(r.jobId) ||
    !Number.isInteger(r.index) ||
    !(r.sourceNodeId === null || isString(r.sourceNodeId)) ||
    !Array.isArray(box) ||
    box.length !== 4 ||
    !box.every(isNumber) ||
    !isString(r.model) ||
    !isNumber(r.seed)
  )
    return null;
  return {
    v: RESULT_DATA_VERSION,
    jobId: r.jobId,
    index: r.index as number,
    sourceNodeId: r.sourceNodeId,
    box: [box[0], box[1], box[2], box[3]],
    model: r.model,
    seed: r.seed,
  };
}

// ---- the per-layer stream, UI -> main -> UI ----------------------------------------------------

/** UI -> main: one layer's PNG, sent as soon as the bridge delivers it. */
export interface LayerImageMessage {
  type: 'layer-image';
  requestId: string;
  index: number;
  png: Uint8Array;
}

/** Main -> UI: the layer became a Figma image (`createImage`); the UI keeps the hash for the insert. */
export interface LayerStoredMessage {
  type: 'layer-stored';
  requestId: string;
  index: number;
  hash: string;
}

/** Main -> UI: Figma refused the layer's image (not a PNG, over 4096 px, ...). */
export interface LayerRefusedMessage {
  type: 'layer-refused';
  requestId: string;
  index: number;
  message: string;
}

/** One layer of the final insert: its index in the job and the hash `layer-stored` gave. */
export interface LayerHash {
  index: number;
  hash: string;
}
