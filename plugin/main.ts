/**
 * The plugin's main thread: shows the UI, turns the selection into layouts for it, keeps the
 * settings and the jobs that must outlive the window, makes each streamed layer a Figma image, and
 * inserts finished jobs. All traffic with the UI goes through plugin/messages.ts.
 */
import { captionDraft } from './caption.ts';
import { insertLayers, insertSummary, type SceneApi } from './insert.ts';
import { resolveTarget, type TargetApi } from './insert-target.ts';
import { RememberedJobs, withInserted, withJob, withoutJob } from './remembered-jobs.ts';
import { frameLayout, skippedSummary } from './layout.ts';
import { JobImages, type Placement } from './job-images.ts';
import type { PluginToUi, SelectionItem, UiToPlugin } from './messages.ts';
import { readFrame, readResultFrame } from './read-scene.ts';
import { regeneratePlan } from './regenerate.ts';
import { replaceLayers, replaceSummary, type ReplaceApi, type ReplaceFrame } from './replace.ts';
import { afterSelectionChange, revealPlan, type SelectionState } from './reveal.ts';
import { parseResultFrameData, RESULT_FRAME_KEY, type ResultFrameData } from './result-data.ts';
import { FRAME_TYPES } from './scene.ts';
import { DEFAULT_SETTINGS, loadSettings, saveSettings, type Settings } from './settings.ts';

// The real API must satisfy the subsets insert.ts and insert-target.ts are written against (a
// compile-time check).
const scene: SceneApi<FrameNode, RectangleNode> = figma;
const targets: TargetApi<BaseNode> = figma;
const editor: ReplaceApi<RectangleNode> = figma;
const asReplaceFrame = (frame: FrameNode): ReplaceFrame<RectangleNode> => frame;

/** Most selected frames read per selection change; each costs main-thread time. */
export const MAX_SELECTED_FRAMES = 20;

let settings: Settings = DEFAULT_SETTINGS;
const remembered = new RememberedJobs(figma.clientStorage);

/** The designer's selection changes, and what the plugin selected itself (plugin/reveal.ts). */
let selectionState: SelectionState = { stamp: 0, own: [] };

function post(message: PluginToUi): void {
  figma.ui.postMessage(message);
}

/** The result frame a selected node is, or is a direct child of, with its data. */
function resultFrameOf(node: SceneNode): { frame: FrameNode; data: ResultFrameData; layer: boolean } | null {
  const read = (n: BaseNode | null) => {
    if (!n || n.type !== 'FRAME') return null;
    const data = parseResultFrameData(n.getPluginData(RESULT_FRAME_KEY));
    return data ? { frame: n, data } : null;
  };
  const own = read(node);
  if (own) return { ...own, layer: false };
  const parent = read(node.parent);
  return parent ? { ...parent, layer: true } : null;
}

/** A result frame and the layer nodes selected inside it: the two edits it offers. */
function resultItem(frame: FrameNode, data: ResultFrameData, selected: ReadonlySet<string>): SelectionItem {
  const edited = readResultFrame(frame, data, selected);
  return {
    kind: 'result',
    nodeId: frame.id,
    name: frame.name,
    result: data,
    selectedLayers: selected.size,
    regenerate: regeneratePlan(edited, 'selected'),
    variations: regeneratePlan(edited, 'variations'),
  };
}

/**
 * One item per selected frame; a result frame and any of its layer nodes make one item together
 * (selecting a layer inside a result picks it for regeneration, it is not a frame to generate).
 */
function selectionItems(nodes: readonly SceneNode[]): SelectionItem[] {
  const items: Array<SelectionItem | { frame: FrameNode; data: ResultFrameData; selected: Set<string> }> = [];
  const results = new Map<string, { frame: FrameNode; data: ResultFrameData; selected: Set<string> }>();
  for (const node of nodes) {
    const owner = resultFrameOf(node);
    if (!owner) {
      items.push(selectionItem(node));
      continue;
    }
    let group = results.get(owner.frame.id);
    if (!group) {
      group = { frame: owner.frame, data: owner.data, selected: new Set() };
      results.set(owner.frame.id, group);
      items.push(group);
    }
    if (owner.layer) group.selected.add(node.id);
  }
  return items.map((i) => ('kind' in i ? i : resultItem(i.frame, i.data, i.selected)));
}

function selectionItem(node: SceneNode): SelectionItem {
  // Types first: anything but a frame gets its message without reading bounds or children.
  if (!FRAME_TYPES.includes(node.type)) {
    const refused = frameLayout({ id: node.id, name: node.name, type: node.type, visible: node.visible, bounds: null }, settings.resolution);
    return { kind: 'unusable', nodeId: node.id, name: node.name, message: refused.ok ? '' : refused.message };
  }
  const plain = readFrame(node);
  const result = frameLayout(plain, settings.resolution);
  if (!result.ok) return { kind: 'unusable', nodeId: node.id, name: node.name, message: result.message };
  return { kind: 'frame', layout: result.value, draft: captionDraft(plain), note: skippedSummary(result.value.skipped) };
}

function postSelection(): void {
  const selection = figma.currentPage.selection;
  const items = selectionItems(selection.slice(0, MAX_SELECTED_FRAMES));
  if (selection.length > MAX_SELECTED_FRAMES)
    items.push({
      kind: 'unusable',
      nodeId: '',
      name: '',
      message: `${selection.length} layers are selected; only the first ${MAX_SELECTED_FRAMES} are used. Select fewer frames to generate the others.`,
    });
  post({ type: 'selection', items, resolution: settings.resolution, stamp: selectionState.stamp });
}

function onSelectionChange(): void {
  selectionState = afterSelectionChange(selectionState, figma.currentPage.selection.map((n) => n.id));
  postSelection();
}

/** Selects and shows the new frame only if the designer has not moved on since Generate. */
function reveal(frame: FrameNode, page: BaseNode, stamp: number): void {
  const current = figma.currentPage.selection;
  const plan = revealPlan(
    selectionState,
    { stamp, onCurrentPage: page === figma.currentPage },
    current.map((n) => n.id),
    { id: frame.id, box: frame.absoluteBoundingBox },
    figma.viewport.bounds,
  );
  if (!plan.select) return;
  const keep = current.filter((n) => plan.select!.includes(n.id));
  selectionState = plan.state;
  figma.currentPage.selection = [...keep, frame];
  if (plan.zoom) figma.viewport.scrollAndZoomIntoView([frame]);
}

async function insert({ job: message, images }: Extract<Placement, { kind: 'insert' }>): Promise<void> {
  const { layout } = message;
  const layerCount = layout.regions.length - 2;
  const stored = (await remembered.list()).find((j) => j.jobId === message.jobId);
  if (stored?.insertedFrameId && !message.asNew) {
    const existing = await figma.getNodeByIdAsync(stored.insertedFrameId);
    if (existing && !existing.removed) {
      post({
        type: 'inserted',
        requestId: message.requestId,
        jobId: message.jobId,
        sourceFrameId: layout.frameId,
        frameId: existing.id,
        frameName: existing.name,
        layerCount,
        already: true,
      });
      return;
    }
  }

  const target = await resolveTarget(targets, layout, message.place);
  const container = target.container;
  if (container.type !== 'PAGE' && container.type !== 'SECTION') throw new Error('No page to insert into. Open a page, then insert again.');
  const frame = insertLayers<FrameNode, RectangleNode>(scene, container, {
    sourceName: target.sourceName,
    position: target.position,
    layout,
    job: { jobId: message.jobId, model: message.model, seed: message.seed, prompt: message.prompt },
    layers: images,
  });

  // The frame is in the document now: nothing below may report the insert as failed.
  try {
    await remembered.update((list) => withInserted(list, message.jobId, frame.id));
  } catch (error) {
    console.warn('ART for Figma: could not mark the job inserted:', error);
  }
  try {
    reveal(frame, target.page, message.selectionStamp);
  } catch (error) {
    console.warn('ART for Figma: could not select the new frame:', error);
  }
  figma.notify(insertSummary(frame.name, layerCount, message.tiny));
  post({
    type: 'inserted',
    requestId: message.requestId,
    jobId: message.jobId,
    sourceFrameId: layout.frameId,
    frameId: frame.id,
    frameName: frame.name,
    layerCount,
    already: false,
  });
}

async function replace({ job: message, target, images }: Extract<Placement, { kind: 'replace' }>): Promise<void> {
  const node = await figma.getNodeByIdAsync(target.frameId);
  if (!node || node.removed || node.type !== 'FRAME')
    throw new Error('The result frame this job was made for is gone. Insert the result as a new frame instead.');
  const summary = replaceLayers(editor, asReplaceFrame(node), {
    baseJobId: target.baseJobId,
    layout: message.layout,
    layers: target.layers,
    images,
    job: { jobId: message.jobId, model: message.model, seed: message.seed, prompt: message.prompt },
  });
  // The frame shows the new job now: nothing below may report the replace as failed.
  try {
    await remembered.update((list) => withInserted(list, message.jobId, node.id));
  } catch (error) {
    console.warn('ART for Figma: could not mark the job inserted:', error);
  }
  figma.notify(replaceSummary(node.name, summary, message.tiny));
  post({ type: 'replaced', requestId: message.requestId, jobId: message.jobId, frameId: node.id, frameName: node.name, ...summary });
  postSelection(); // the selected result frame now offers edits of the new job
}

/** Each job's layer images until it is placed. */
const arriving = new JobImages();

/** Placements run one at a time: two inserts of one job cannot both pass the "inserted already?" check. */
let placing: Promise<void> = Promise.resolve();

/** Puts a job whose images are all held on the canvas, after any placement already under way. */
async function place(placement: Placement | null): Promise<void> {
  if (!placement) return;
  const run = placing.then(() => (placement.kind === 'insert' ? insert(placement) : replace(placement)));
  placing = run.catch(() => undefined);
  try {
    await run;
    arriving.placed(placement.job.requestId);
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    notifyError(text);
    post({ type: 'insert-failed', requestId: placement.job.requestId, message: text });
  }
}

function notifyError(text: string): void {
  figma.notify(text.length > 99 ? `${text.slice(0, 98)}…` : text, { error: true });
}

async function handle(message: UiToPlugin): Promise<void> {
  switch (message.type) {
    case 'ready': {
      settings = await loadSettings(figma.clientStorage);
      post({ type: 'init', settings, jobs: (await remembered.list()).filter((j) => !j.insertedFrameId) });
      postSelection();
      return;
    }
    case 'save-settings': {
      const resolutionChanged = message.settings.resolution !== settings.resolution;
      settings = await saveSettings(figma.clientStorage, message.settings);
      if (resolutionChanged) postSelection();
      return;
    }
    case 'layer-image': {
      // One image per message: the PNG is dropped as soon as Figma holds it.
      let hash: string;
      try {
        hash = figma.createImage(message.png).hash;
      } catch (error) {
        arriving.refused(message.requestId);
        const why = error instanceof Error ? error.message : String(error);
        post({ type: 'layer-refused', requestId: message.requestId, index: message.index, message: why });
        return;
      }
      return place(arriving.stored(message.requestId, message.index, hash));
    }
    case 'insert':
      return place(arriving.asked(message));
    case 'remember-job':
      try {
        await remembered.update((list) => withJob(list, message.job));
      } catch (error) {
        console.warn('ART for Figma: could not store the job for later:', error);
      }
      return;
    case 'forget-job':
      await remembered.update((list) => withoutJob(list, message.jobId));
      return;
    case 'notify':
      figma.notify(message.message.slice(0, 99), { error: message.error });
      return;
  }
}

// Figma: "we recommend setting figma.skipInvisibleInstanceChildren = true as that often makes
// document traversal significantly faster" (@figma/plugin-typings); hidden layers inside instances
// never become layers anyway.
figma.skipInvisibleInstanceChildren = true;
figma.showUI(__html__, { width: 400, height: 680, themeColors: true, title: 'ART for Figma' });
figma.ui.onmessage = (message: UiToPlugin) => {
  handle(message).catch((error: unknown) => console.error('ART for Figma:', error));
};
figma.on('selectionchange', onSelectionChange);
