/**
 * What the plugin's main thread and its UI iframe say to each other over postMessage. One file,
 * imported by both sides, so a message cannot change on one side only. Plain data (structured
 * clone): PNG bytes travel as Uint8Array, one layer per message (plugin/result-data.ts).
 */
import type { FrameLayout } from './layout.ts';
import type { EditTarget, RegenerateResult } from './regenerate.ts';
import type { LayerHash, LayerImageMessage, LayerRefusedMessage, LayerStoredMessage, ResultFrameData } from './result-data.ts';
import type { Settings } from './settings.ts';
import type { RememberedJob } from './remembered-jobs.ts';

/**
 * One selected node: a frame with its layout and caption draft, a result frame this plugin made
 * (recognised by its plugin data, not offered as a new source), or why it cannot be used.
 */
export type SelectionItem =
  | { kind: 'frame'; layout: FrameLayout; draft: string; note: string | null }
  | ResultSelection
  | { kind: 'unusable'; nodeId: string; name: string; message: string };

/**
 * A result frame this plugin made, selected itself or through some of its layer nodes: what
 * "Regenerate N layers" and "Variations" would send (plugin/regenerate.ts), or why they cannot.
 */
export interface ResultSelection {
  kind: 'result';
  nodeId: string;
  name: string;
  result: ResultFrameData;
  /** Layer nodes selected inside the frame (0 when only the frame is selected). */
  selectedLayers: number;
  regenerate: RegenerateResult;
  variations: RegenerateResult;
}

export type PluginToUi =
  | { type: 'init'; settings: Settings; jobs: RememberedJob[] }
  /** `stamp` counts the designer's selection changes (not the plugin's own), see InsertRequestMessage. */
  | { type: 'selection'; items: SelectionItem[]; resolution: number; stamp: number }
  | LayerStoredMessage
  | LayerRefusedMessage
  | {
      type: 'inserted';
      requestId: string;
      jobId: string;
      sourceFrameId: string;
      frameId: string;
      frameName: string;
      layerCount: number;
      /** True when the job had been inserted before (another window, an earlier session): nothing new was made. */
      already: boolean;
    }
  | {
      type: 'replaced';
      requestId: string;
      jobId: string;
      frameId: string;
      frameName: string;
      replaced: number;
      added: number;
      kept: number;
    }
  /** An insert or an in-place replace failed; nothing was changed. */
  | { type: 'insert-failed'; requestId: string; message: string };

/** `beside`: next to the source frame (its page or section); `page`: at the top level of the current page, in view. */
export type InsertPlace = 'beside' | 'page';

/** What an insert and a replace both carry: the finished job, and layer images Figma already holds. */
interface JobImages {
  requestId: string;
  jobId: string;
  /** The layout the job was generated from (the frame may have changed since). */
  layout: FrameLayout;
  seed: number;
  model: string;
  prompt: string;
  tiny: boolean;
  /** The images made earlier by `layer-image` messages: every layer for an insert, the regenerated ones for a replace. */
  layers: LayerHash[];
}

export interface InsertRequestMessage extends JobImages {
  type: 'insert';
  place: InsertPlace;
  /** The selection stamp when Generate was clicked: the result is selected only if it is still current. */
  selectionStamp: number;
  /** Insert even if this job was inserted before (an earlier version, inserted again as a new frame). */
  asNew: boolean;
}

/** A regeneration's images onto the result frame it was made from (plugin/replace.ts). */
export interface ReplaceRequestMessage extends JobImages {
  type: 'replace';
  target: EditTarget;
}

export type UiToPlugin =
  | { type: 'ready' }
  | { type: 'save-settings'; settings: Settings }
  | LayerImageMessage
  | InsertRequestMessage
  | ReplaceRequestMessage
  /** Sent at `queued`: what inserting needs, kept in clientStorage so a closed window loses nothing. */
  | { type: 'remember-job'; job: RememberedJob }
  /** The bridge no longer has the job, or the designer dismissed it. */
  | { type: 'forget-job'; jobId: string }
  | { type: 'notify'; message: string; error: boolean };

/** Figma wraps UI -> plugin messages as `{ pluginMessage }` on the way out of the iframe. */
export interface PluginMessageEnvelope {
  pluginMessage: UiToPlugin;
  pluginId?: string;
}
