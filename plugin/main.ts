/**
 * The plugin's main thread: shows the UI, turns the selection into layouts for it, keeps the
 * settings, and inserts finished jobs. All traffic with the UI goes through plugin/messages.ts.
 */
import { captionDraft } from './caption.ts';
import { insertLayers, insertSummary, type SceneApi, type SceneParent } from './insert.ts';
import { frameLayout, skippedSummary } from './layout.ts';
import type { InsertRequestMessage, PluginToUi, SelectionItem, UiToPlugin } from './messages.ts';
import { readNode } from './read-scene.ts';
import { DEFAULT_SETTINGS, loadSettings, saveSettings, type Settings } from './settings.ts';

// The real API must satisfy the subset insert.ts is written against (a compile-time check).
const scene: SceneApi<FrameNode, RectangleNode> = figma;

let settings: Settings = DEFAULT_SETTINGS;

function post(message: PluginToUi): void {
  figma.ui.postMessage(message);
}

function selectionItems(): SelectionItem[] {
  return figma.currentPage.selection.map((node): SelectionItem => {
    const plain = readNode(node);
    const result = frameLayout(plain, settings.resolution);
    if (!result.ok) return { ok: false, nodeId: node.id, name: node.name, message: result.message };
    return { ok: true, layout: result.value, draft: captionDraft(plain), note: skippedSummary(result.value.skipped) };
  });
}

function postSelection(): void {
  post({ type: 'selection', items: selectionItems(), resolution: settings.resolution });
}

async function insert(message: InsertRequestMessage): Promise<void> {
  const { layout } = message;
  const found = await figma.getNodeByIdAsync(layout.frameId);
  const source = found && found.type !== 'DOCUMENT' && found.type !== 'PAGE' && 'x' in found ? found : null;
  // The source may have been deleted while the job ran: then the result lands in view.
  const parent: SceneParent<FrameNode> = source?.parent ?? figma.currentPage;
  const place = source
    ? { name: source.name, x: source.x, y: source.y, width: source.width, height: source.height }
    : {
        name: layout.frameName,
        x: figma.viewport.center.x,
        y: figma.viewport.center.y,
        width: 0,
        height: layout.frameHeight,
      };
  const frame = insertLayers(scene, parent, { source: place, layout, seed: message.seed, layers: message.layers });
  const layerCount = layout.regions.length - 2;
  try {
    figma.currentPage.selection = [frame];
  } catch {
    // the source lives on another page; selecting across pages is not allowed
  }
  figma.viewport.scrollAndZoomIntoView([frame]);
  figma.notify(insertSummary(frame.name, layerCount, message.tiny));
  post({
    type: 'inserted',
    requestId: message.requestId,
    sourceFrameId: layout.frameId,
    frameId: frame.id,
    frameName: frame.name,
    layerCount,
  });
}

async function handle(message: UiToPlugin): Promise<void> {
  switch (message.type) {
    case 'ready':
      settings = await loadSettings(figma.clientStorage);
      post({ type: 'init', settings });
      postSelection();
      return;
    case 'save-settings': {
      const resolutionChanged = message.settings.resolution !== settings.resolution;
      settings = await saveSettings(figma.clientStorage, message.settings);
      if (resolutionChanged) postSelection();
      return;
    }
    case 'insert':
      try {
        await insert(message);
      } catch (error) {
        const text = error instanceof Error ? error.message : String(error);
        figma.notify(text.length > 99 ? `${text.slice(0, 98)}…` : text, { error: true });
        post({ type: 'insert-failed', requestId: message.requestId, message: text });
      }
      return;
    case 'notify':
      figma.notify(message.message.slice(0, 99), { error: message.error });
      return;
  }
}

figma.showUI(__html__, { width: 400, height: 680, themeColors: true, title: 'ART for Figma' });
figma.ui.onmessage = (message: UiToPlugin) => {
  handle(message).catch((error: unknown) => console.error('ART for Figma:', error));
};
figma.on('selectionchange', postSelection);
