/**
 * What the plugin's main thread and its UI iframe say to each other over postMessage. One file,
 * imported by both sides, so a message cannot change on one side only. Plain data (structured
 * clone): PNG bytes travel as Uint8Array.
 */
import type { FrameLayout } from './layout.ts';
import type { Settings } from './settings.ts';

/** One selected node: a frame with its layout and caption draft, or why it cannot be used. */
export type SelectionItem =
  | { ok: true; layout: FrameLayout; draft: string; note: string | null }
  | { ok: false; nodeId: string; name: string; message: string };

export type PluginToUi =
  | { type: 'init'; settings: Settings }
  | { type: 'selection'; items: SelectionItem[]; resolution: number }
  | {
      type: 'inserted';
      requestId: string;
      sourceFrameId: string;
      frameId: string;
      frameName: string;
      layerCount: number;
    }
  | { type: 'insert-failed'; requestId: string; message: string };

export interface LayerPng {
  /** Layer index in the layout: 0 merged, 1 background, 2.. child layers. */
  index: number;
  png: Uint8Array;
}

export interface InsertRequestMessage {
  type: 'insert';
  requestId: string;
  /** The layout the job was generated from (the frame may have changed since). */
  layout: FrameLayout;
  seed: number;
  tiny: boolean;
  layers: LayerPng[];
}

export type UiToPlugin =
  | { type: 'ready' }
  | { type: 'save-settings'; settings: Settings }
  | InsertRequestMessage
  | { type: 'notify'; message: string; error: boolean };

/** Figma wraps UI -> plugin messages as `{ pluginMessage }` on the way out of the iframe. */
export interface PluginMessageEnvelope {
  pluginMessage: UiToPlugin;
  pluginId?: string;
}
