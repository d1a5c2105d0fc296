/**
 * What the plugin's main thread and its UI iframe say to each other over postMessage. One file,
 * imported by both sides, so a message cannot change on one side only. Plain data (structured
 * clone): PNG bytes travel as Uint8Array, one layer per message (LayerImageMessage).
 */
import type { FrameLayout } from './layout.ts';
import type { EditTarget, RegenerateResult } from './regenerate.ts';
import type { ResultFrameData } from './result-data.ts';
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
  /** `stamp` counts the designer's selection changes (not the plugin's own), see InsertMessage. */
  | { type: 'selection'; items: SelectionItem[]; resolution: number; stamp: number }
  /** Figma refused the layer's image (not a PNG, over 4096 px, ...): the job cannot be inserted. */
  | { type: 'layer-refused'; requestId: string; index: number; message: string }
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

/**
 * UI -> main: a finished job, to put on the canvas once every layer image it needs has come as
 * a `layer-image` message (before or after this one). The main thread decides how: a regeneration
 * (`edit`) replaces the images of the frame it was made from, unless `asNew`; anything else becomes
 * a new frame at `place` (plugin/job-images.ts).
 */
export interface InsertMessage {
  type: 'insert';
  requestId: string;
  jobId: string;
  /** The layout the job was generated from (the frame may have changed since). */
  layout: FrameLayout;
  seed: number;
  model: string;
  prompt: string;
  tiny: boolean;
  /** A regeneration: the result frame and nodes its images go to; null for a generation. */
  edit: EditTarget | null;
  /** A new frame even for a regeneration or a job inserted before (an earlier version, inserted again). */
  asNew: boolean;
  place: InsertPlace;
  /** The selection stamp when Generate was clicked: a new frame is selected only if it is still current. */
  selectionStamp: number;
}

/**
 * UI -> main: one layer's PNG, sent as soon as the bridge delivers it (one message per layer, so
 * no message ever holds every PNG at once); the main thread makes it a Figma image at once.
 */
export interface LayerImageMessage {
  type: 'layer-image';
  requestId: string;
  index: number;
  png: Uint8Array;
}

export type UiToPlugin =
  | { type: 'ready' }
  | { type: 'save-settings'; settings: Settings }
  | LayerImageMessage
  | InsertMessage
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
