/// <reference path="../../node_modules/@figma/plugin-typings/plugin-api.d.ts" />
/**
 * A fake of the Figma document and the API subset the plugin uses, typed against
 * @figma/plugin-typings through the plugin's Pick<> declarations: if Figma's types change, this
 * stops compiling. Every behaviour the plugin relies on follows Figma's documentation, quoted where
 * it is modelled, refusals included. No Node APIs, so the e2e harness bundles it for the browser too.
 *
 * Simplification: a parent's rotation does not move its children (the scenes rotate leaves only).
 */
import type { SceneApi } from '../../plugin/insert.ts';
import type { TargetApi } from '../../plugin/insert-target.ts';

let nextId = 100;

const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
/** figma.createImage: "Images have a maximum size of 4096 pixels (4K) in width and height." */
export const MAX_IMAGE_SIDE = 4096;
/** Version 1 Update 109: "The total client storage limit is now 5 MB". */
export const CLIENT_STORAGE_BYTES = 5 * 1024 * 1024;
/** setPluginData: "The total size of your entry (pluginId, key, value) cannot exceed 100 kB." */
export const PLUGIN_DATA_BYTES = 100 * 1024;
export const PLUGIN_ID = 'art-for-figma-local';

export function pngSize(bytes: Uint8Array): { width: number; height: number } | null {
  if (bytes.length < 24 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

function isGif(b: Uint8Array) {
  return b.length >= 10 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46;
}
function isJpeg(b: Uint8Array) {
  return b.length >= 4 && b[0] === 0xff && b[1] === 0xd8;
}

/** Node types that hold children in Figma. */
const CONTAINERS = ['DOCUMENT', 'PAGE', 'SECTION', 'FRAME', 'GROUP', 'COMPONENT', 'COMPONENT_SET', 'INSTANCE', 'BOOLEAN_OPERATION'];

export type FakeType =
  | 'DOCUMENT'
  | 'PAGE'
  | 'SECTION'
  | 'FRAME'
  | 'GROUP'
  | 'COMPONENT'
  | 'COMPONENT_SET'
  | 'INSTANCE'
  | 'RECTANGLE'
  | 'ELLIPSE'
  | 'TEXT'
  | 'SLICE'
  | 'VECTOR';

export interface NodeInit {
  id?: string;
  type: FakeType;
  name?: string;
  x?: number;
  y?: number;
  width?: number;
  height?: number;
  /** Degrees, counter-clockwise around the top-left corner, as in Figma. */
  rotation?: number;
  visible?: boolean;
  isMask?: boolean;
  characters?: string;
  layoutMode?: 'NONE' | 'HORIZONTAL' | 'VERTICAL';
  itemSpacing?: number;
  clipsContent?: boolean;
  /** How far what is drawn (shadow, stroke, overflowing text) reaches past the box on each side. */
  renderMargin?: { left: number; top: number; right: number; bottom: number };
  children?: NodeInit[];
}

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Axis-aligned bounds of a `width` x `height` node at (x, y), rotated `rotation` degrees around that corner. */
export function rotatedBox(x: number, y: number, width: number, height: number, rotation: number): Box {
  const a = (rotation * Math.PI) / 180;
  const cos = Math.cos(a);
  const sin = Math.sin(a);
  // Figma's rotation is counter-clockwise on screen (y down): x' = x cos + y sin, y' = -x sin + y cos.
  const corners = [
    [0, 0],
    [width, 0],
    [0, height],
    [width, height],
  ].map(([u, v]) => [x + u * cos + v * sin, y - u * sin + v * cos]);
  const xs = corners.map((c) => c[0]);
  const ys = corners.map((c) => c[1]);
  const minX = Math.min(...xs);
  const minY = Math.min(...ys);
  return { x: minX, y: minY, width: Math.max(...xs) - minX, height: Math.max(...ys) - minY };
}

/** The smallest box holding every one of `boxes` (a group's bounds, in Figma). */
export function unionBox(boxes: Box[]): Box {
  const x = Math.min(...boxes.map((r) => r.x));
  const y = Math.min(...boxes.map((r) => r.y));
  return {
    x,
    y,
    width: Math.max(...boxes.map((r) => r.x + r.width)) - x,
    height: Math.max(...boxes.map((r) => r.y + r.height)) - y,
  };
}

export class FakeNode {
  readonly id: string;
  readonly type: FakeType;
  private nm: string;
  private px = 0;
  private py = 0;
  private w: number;
  private h: number;
  rotation: number;
  private shown: boolean;
  isMask: boolean;
  characters?: string;
  layoutMode: 'NONE' | 'HORIZONTAL' | 'VERTICAL';
  itemSpacing: number;
  clipsContent: boolean;
  private lock = false;
  private paints: FrameNode['fills'] = [];
  renderMargin: NodeInit['renderMargin'];
  removed = false;
  parent: FakeNode | null = null;
  private readonly kids: FakeNode[] = [];
  private readonly pluginData = new Map<string, string>();
  /** Pages: under "documentAccess": "dynamic-page" only the current page starts loaded. */
  loaded = true;
  private sel: FakeNode[] = [];
  /** Test hook: fail the n-th appendChild into this node. */
  failOnAppend: number | null = null;
  private appends = 0;

  constructor(
    readonly doc: FakeDocument,
    init: NodeInit,
  ) {
    this.id = init.id ?? `${nextId++}:1`;
    this.type = init.type;
    this.nm = init.name ?? init.type.charAt(0) + init.type.slice(1).toLowerCase();
    this.px = init.x ?? 0;
    this.py = init.y ?? 0;
    this.w = init.width ?? 100;
    this.h = init.height ?? 100;
    this.rotation = init.rotation ?? 0;
    this.shown = init.visible ?? true;
    this.isMask = init.isMask ?? false;
    if (init.characters !== undefined) this.characters = init.characters;
    this.layoutMode = init.layoutMode ?? 'NONE';
    this.itemSpacing = init.itemSpacing ?? 0;
    this.clipsContent = init.clipsContent ?? init.type === 'FRAME';
    this.renderMargin = init.renderMargin;
    doc.register(this);
    for (const c of init.children ?? []) this.attach(new FakeNode(doc, c));
  }

  /**
   * Pages' selection. figma.on: "selectionchange: The selection on the current page changed",
   * whoever changed it: a plugin setting `selection` gets the event too, after its code returns.
   */
  get selection(): readonly FakeNode[] {
    return [...this.sel];
  }
  set selection(nodes: readonly FakeNode[]) {
    this.sel = [...nodes];
    if (this === this.doc.currentPage) this.doc.selectionChanged();
  }

  get children(): readonly FakeNode[] {
    this.assertLoaded('children');
    return [...this.kids];
  }

  /** Sets a property through the document, so the change joins the open undo step. */
  private change<T>(get: () => T, set: (v: T) => void, value: T): void {
    const old = get();
    set(value);
    this.doc.recordUndo(() => set(old));
  }

  get name(): string {
    return this.nm;
  }
  set name(v: string) {
    this.change(() => this.nm, (x) => (this.nm = x), v);
  }
  get width(): number {
    return this.w;
  }
  get height(): number {
    return this.h;
  }
  get visible(): boolean {
    return this.shown;
  }
  set visible(v: boolean) {
    this.change(() => this.shown, (x) => (this.shown = x), v);
  }
  get locked(): boolean {
    return this.lock;
  }
  set locked(v: boolean) {
    this.change(() => this.lock, (x) => (this.lock = x), v);
  }
  /** Figma hands out frozen copies: "you cannot mutate the paints array in place" (Paint docs). */
  get fills(): FrameNode['fills'] {
    return this.paints;
  }
  set fills(v: FrameNode['fills']) {
    const frozen = Object.freeze(structuredClone(v) as Paint[]);
    this.change(() => this.paints, (x) => (this.paints = x), frozen);
  }

  /** In an auto-layout frame the parent computes x and y: "The translation components ... is
   * automatically computed in children of auto-layout frames" (relativeTransform, plugin-typings). */
  get x(): number {
    return this.px;
  }
  set x(v: number) {
    if (!this.inAutoLayout()) this.change(() => this.px, (x) => (this.px = x), v);
  }
  get y(): number {
    return this.py;
  }
  set y(v: number) {
    if (!this.inAutoLayout()) this.change(() => this.py, (x) => (this.py = x), v);
  }

  private inAutoLayout(): boolean {
    return !!this.parent && this.parent.layoutMode !== 'NONE';
  }

  private assertLoaded(what: string): void {
    // ChildrenMixin: "If the manifest contains "documentAccess": "dynamic-page", and the node is a
    // PageNode, you must first call PageNode.loadAsync to access this property/function."
    if (this.type === 'PAGE' && !this.loaded)
      throw new Error(`in ${what}: Cannot access children on a page that has not been explicitly loaded. Remember to await PageNode.loadAsync() first.`);
  }

  async loadAsync(): Promise<void> {
    this.loaded = true;
  }

  /** Page coordinates of this node's parent's origin. */
  private parentOrigin(): { x: number; y: number } {
    let x = 0;
    let y = 0;
    for (let p = this.parent; p && p.type !== 'PAGE' && p.type !== 'DOCUMENT'; p = p.parent) {
      x += p.px;
      y += p.py;
    }
    return { x, y };
  }

  /** "The bounds of the node that does not include rendered properties like drop shadows or strokes." */
  get absoluteBoundingBox(): Box | null {
    return this.box();
  }

  /** The same, for the fake's own use (tests count the plugin's reads of the getter). */
  box(): Box | null {
    if (this.type === 'PAGE' || this.type === 'DOCUMENT') return null;
    if (this.type === 'GROUP') {
      // A group is as big as what it holds.
      const kids = this.kids.map((k) => k.box()).filter((b): b is Box => b !== null);
      return kids.length ? unionBox(kids) : null;
    }
    const o = this.parentOrigin();
    return rotatedBox(o.x + this.px, o.y + this.py, this.width, this.height, this.rotation);
  }

  /** "accounting for drop shadows, thick strokes ... This value will be null if the node is invisible." */
  get absoluteRenderBounds(): Box | null {
    return this.renderBox();
  }

  renderBox(): Box | null {
    if (!this.visible) return null;
    const box = this.box();
    if (!box) return null;
    const m = this.renderMargin;
    const own = m ? { x: box.x - m.left, y: box.y - m.top, width: box.width + m.left + m.right, height: box.height + m.top + m.bottom } : box;
    const kids = this.clipsContent ? [] : this.kids.map((k) => k.renderBox()).filter((b): b is Box => b !== null);
    return unionBox([own, ...kids]);
  }

  resize(width: number, height: number): void {
    if (!(width >= 0.01 && height >= 0.01)) throw new Error(`in resize: ${width}x${height} is below Figma's minimum of 0.01`);
    const [w, h] = [this.w, this.h];
    this.w = width;
    this.h = height;
    this.doc.recordUndo(() => ([this.w, this.h] = [w, h]));
  }

  private insideInstance(): boolean {
    for (let p: FakeNode | null = this; p; p = p.parent) if (p.type === 'INSTANCE') return true;
    return false;
  }

  /** Attaches without the API's checks (building a scene), at the top or at `index`. */
  attach(child: FakeNode, index = this.kids.length): void {
    const from = child.parent;
    const at = from ? from.kids.indexOf(child) : -1;
    if (from) from.kids.splice(at, 1);
    this.kids.splice(Math.min(index, this.kids.length), 0, child);
    child.parent = this;
    this.doc.recordUndo(() => {
      this.kids.splice(this.kids.indexOf(child), 1);
      child.parent = from;
      if (from) from.kids.splice(at, 0, child);
    });
  }

  appendChild(child: FakeNode): void {
    this.insertChild(this.kids.length, child, 'appendChild');
  }

  /** ChildrenMixin.insertChild: "Adds a new child at the specified index in the children array." */
  insertChild(index: number, child: FakeNode, what = 'insertChild'): void {
    if (this.removed) throw new Error(`in ${what}: The node (parent) has been removed`);
    this.assertLoaded(what);
    if (!CONTAINERS.includes(this.type)) throw new Error(`in ${what}: A ${this.type} node cannot have children`);
    if (!Number.isInteger(index) || index < 0 || index > this.kids.length)
      throw new Error(`in ${what}: index ${index} is outside 0..${this.kids.length}`);
    // Figma's refusals, as the issue and real plugins saw them ("Reparenting nodes is subject to
    // many restrictions", ChildrenMixin.appendChild).
    if (this.insideInstance()) throw new Error('in appendChild: Cannot move node. New parent is an instance or is inside of an instance');
    if (this.type === 'COMPONENT_SET' && child.type !== 'COMPONENT')
      throw new Error(`in appendChild: A COMPONENT_SET node cannot have children of type other than COMPONENT`);
    if (this.failOnAppend !== null && ++this.appends === this.failOnAppend) throw new Error('appendChild failed (test)');
    this.attach(child, index);
    this.doc.log.push(`append ${child.id} -> ${this.id}`);
    // "If this is called on an auto-layout frame, calling this function can cause this layer to
    // be resized and children to be moved."
    if (this.layoutMode !== 'NONE') this.reflow();
  }

  /** Auto layout: children in a row or column with `itemSpacing`, the frame hugging them. */
  private reflow(): void {
    let at = 0;
    let cross = 0;
    for (const k of this.kids) {
      if (!k.visible) continue;
      if (this.layoutMode === 'HORIZONTAL') {
        k.px = at;
        k.py = 0;
        at += k.width + this.itemSpacing;
        cross = Math.max(cross, k.height);
      } else {
        k.px = 0;
        k.py = at;
        at += k.height + this.itemSpacing;
        cross = Math.max(cross, k.width);
      }
    }
    const main = Math.max(0.01, at - this.itemSpacing);
    if (this.layoutMode === 'HORIZONTAL') this.resize(main, Math.max(0.01, cross));
    else this.resize(Math.max(0.01, cross), main);
  }

  remove(): void {
    if (this.removed) throw new Error('in remove: The node has been removed');
    const from = this.parent;
    const at = from ? from.kids.indexOf(this) : -1;
    if (from) from.kids.splice(at, 1);
    this.parent = null;
    const mark = (n: FakeNode, removed: boolean) => {
      n.removed = removed;
      n.kids.forEach((k) => mark(k, removed));
    };
    mark(this, true);
    this.doc.recordUndo(() => {
      mark(this, false);
      this.parent = from;
      if (from) from.kids.splice(at, 0, this);
    });
  }

  setPluginData(key: string, value: string): void {
    if (PLUGIN_ID.length + key.length + value.length > PLUGIN_DATA_BYTES)
      throw new Error('in setPluginData: Total size of the plugin data entry cannot exceed 100 kB');
    const old = this.pluginData.get(key);
    // "If you set the value to the empty string (""), the key/value pair is removed."
    if (value === '') this.pluginData.delete(key);
    else this.pluginData.set(key, value);
    this.doc.recordUndo(() => (old === undefined ? this.pluginData.delete(key) : this.pluginData.set(key, old)));
  }

  getPluginData(key: string): string {
    // "If there is no data stored for the provided key, an empty string is returned."
    return this.pluginData.get(key) ?? '';
  }

  getPluginDataKeys(): string[] {
    return [...this.pluginData.keys()];
  }

  /** Descendants of the given types, in document order. With skipInvisibleInstanceChildren,
   * invisible nodes inside instances (and their descendants) are left out. */
  findAllWithCriteria(criteria: { types: readonly string[] }): FakeNode[] {
    this.assertLoaded('findAllWithCriteria');
    const out: FakeNode[] = [];
    const walk = (n: FakeNode, inInstance: boolean) => {
      for (const k of n.kids) {
        if (this.doc.skipInvisibleInstanceChildren && inInstance && !k.visible) continue;
        if (criteria.types.includes(k.type)) out.push(k);
        walk(k, inInstance || k.type === 'INSTANCE');
      }
    };
    walk(this, this.insideInstance());
    return out;
  }
}

export class FakeImage {
  constructor(
    readonly hash: string,
    readonly bytes: Uint8Array,
  ) {}
}

/** A document with pages, and the `figma` API subset over it. */
export class FakeDocument implements SceneApi<FakeNode, FakeNode>, TargetApi<FakeNode> {
  readonly nodes = new Map<string, FakeNode>();
  readonly root: FakeNode;
  currentPage: FakeNode;
  readonly images = new Map<string, FakeImage>();
  readonly log: string[] = [];
  undoCommits = 0;
  skipInvisibleInstanceChildren = false;
  readonly viewport = {
    center: { x: 0, y: 0 },
    zoom: 1,
    /** The visible area (1000x800 screen pixels at `zoom`). */
    get bounds(): Box {
      const w = 1000 / this.zoom;
      const h = 800 / this.zoom;
      return { x: this.center.x - w / 2, y: this.center.y - h / 2, width: w, height: h };
    },
    scrolledTo: [] as string[][],
    scrollAndZoomIntoView(nodes: readonly { id: string; absoluteBoundingBox: Box | null }[]) {
      this.scrolledTo.push(nodes.map((n) => n.id));
      const boxes = nodes.map((n) => n.absoluteBoundingBox).filter((b): b is Box => b !== null);
      if (!boxes.length) return;
      const u = unionBox(boxes);
      this.center = { x: u.x + u.width / 2, y: u.y + u.height / 2 };
      this.zoom = Math.min(1000 / u.width, 800 / u.height, 1);
    },
  };
  private readonly selectionListeners: Array<() => void> = [];
  private readonly storage = new Map<string, unknown>();
  /** Undo history: what reverts each change since the last commit, and the committed steps. */
  private pendingUndo: Array<() => void> = [];
  readonly undoSteps: Array<Array<() => void>> = [];

  constructor(pages: NodeInit[][] = [[]], stored: Record<string, unknown> = {}) {
    this.root = new FakeNode(this, { id: '0:0', type: 'DOCUMENT', name: 'Document' });
    pages.forEach((children, i) => {
      const page = new FakeNode(this, { id: `0:${i + 1}`, type: 'PAGE', name: `Page ${i + 1}`, children });
      page.loaded = i === 0;
      this.root.attach(page);
    });
    this.currentPage = this.root.children[0];
    for (const [k, v] of Object.entries(stored)) this.storage.set(k, structuredClone(v));
    this.pendingUndo = []; // the scene as it opened is not an action
  }

  recordUndo(revert: () => void): void {
    this.pendingUndo.push(revert);
  }

  register(node: FakeNode): void {
    this.nodes.set(node.id, node);
  }

  node(id: string): FakeNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  get pages(): readonly FakeNode[] {
    return this.root.children;
  }

  async getNodeByIdAsync(id: string): Promise<FakeNode | null> {
    const n = this.nodes.get(id);
    return n && !n.removed ? n : null;
  }

  /** "By default, the new node ... is parented under figma.currentPage." */
  createFrame(): FakeNode {
    const frame = new FakeNode(this, { type: 'FRAME', name: 'Frame' });
    frame.fills = [{ type: 'SOLID', color: { r: 1, g: 1, b: 1 } }];
    this.currentPage.attach(frame);
    this.log.push(`createFrame ${frame.id}`);
    return frame;
  }

  createRectangle(): FakeNode {
    const rect = new FakeNode(this, { type: 'RECTANGLE', name: 'Rectangle' });
    this.currentPage.attach(rect);
    this.log.push(`createRectangle ${rect.id}`);
    return rect;
  }

  /** "The data passed in must be encoded as a PNG, JPEG, or GIF. Images have a maximum size of
   * 4096 pixels (4K) in width and height. Invalid images will throw an error." */
  createImage(data: Uint8Array): FakeImage {
    this.log.push('createImage');
    const size = pngSize(data);
    if (!size && !isGif(data) && !isJpeg(data)) throw new Error('Image type is unsupported');
    if (size && (size.width > MAX_IMAGE_SIDE || size.height > MAX_IMAGE_SIDE))
      throw new Error(`Image is too large (${size.width}x${size.height}; at most ${MAX_IMAGE_SIDE} on each side)`);
    const hash = `img${this.images.size}-${data.length}`;
    const image = new FakeImage(hash, data.slice());
    this.images.set(hash, image);
    return image;
  }

  getImageByHash(hash: string): FakeImage | null {
    return this.images.get(hash) ?? null;
  }

  /**
   * figma.commitUndo: "By default, plugin actions are not committed to undo history. Call
   * figma.commitUndo() so that triggered undos can revert a subset of plugin actions": everything
   * changed since the last commit becomes one step.
   */
  commitUndo(): void {
    this.undoCommits++;
    this.log.push('commitUndo');
    if (this.pendingUndo.length) this.undoSteps.push(this.pendingUndo);
    this.pendingUndo = [];
  }

  /** The designer finished an action of their own (a drag, a resize): it is its own undo step. */
  endUserAction(): void {
    if (this.pendingUndo.length) this.undoSteps.push(this.pendingUndo);
    this.pendingUndo = [];
  }

  /** figma.triggerUndo: "This reverts to the last state in undo history" (the designer's Cmd+Z). */
  triggerUndo(): void {
    const step = this.pendingUndo.length ? this.pendingUndo : (this.undoSteps.pop() ?? []);
    this.pendingUndo = [];
    for (const revert of step.reverse()) revert();
  }

  onSelectionChange(listener: () => void): void {
    this.selectionListeners.push(listener);
  }

  /** The plugin closed: its listeners go with it. */
  removeListeners(): void {
    this.selectionListeners.length = 0;
  }

  selectionChanged(): void {
    queueMicrotask(() => this.selectionListeners.forEach((l) => l()));
  }

  readonly clientStorage = {
    getAsync: async (key: string): Promise<unknown> => structuredClone(this.storage.get(key)),
    /** "The returned promise will resolve if storage is successful, or reject with an error
     * message if storage failed"; the total is 5 MB per plugin. */
    setAsync: async (key: string, value: unknown): Promise<void> => {
      const next = new Map(this.storage);
      next.set(key, structuredClone(value));
      let bytes = 0;
      for (const [k, v] of next) bytes += k.length + JSON.stringify(v ?? null).length;
      if (bytes > CLIENT_STORAGE_BYTES) throw new Error('Client storage quota exceeded (5 MB per plugin)');
      this.storage.set(key, structuredClone(value));
    },
    deleteAsync: async (key: string): Promise<void> => {
      this.storage.delete(key);
    },
    keysAsync: async (): Promise<string[]> => [...this.storage.keys()],
  };
}

/** Everything the plugin can change on a node and below it, as plain data: compare before and after. */
export function nodeState(n: FakeNode): unknown {
  return {
    id: n.id,
    name: n.name,
    box: n.absoluteBoundingBox,
    x: n.x,
    y: n.y,
    w: n.width,
    h: n.height,
    fills: n.fills,
    visible: n.visible,
    locked: n.locked,
    parent: n.parent?.id,
    data: n.getPluginDataKeys().map((k) => [k, n.getPluginData(k)]),
    children: n.children.map(nodeState),
  };
}

/**
 * The `figma` global's document members over a fake document; the browser harness and the bench
 * add the window's own (`showUI`, `ui`, `on`, `notify`) with `withWindowApi`.
 */
export function figmaDocumentApi(doc: FakeDocument) {
  return {
    mixed: Symbol('mixed'),
    get skipInvisibleInstanceChildren() {
      return doc.skipInvisibleInstanceChildren;
    },
    set skipInvisibleInstanceChildren(v: boolean) {
      doc.skipInvisibleInstanceChildren = v;
    },
    get currentPage() {
      return doc.currentPage;
    },
    getNodeByIdAsync: (id: string) => doc.getNodeByIdAsync(id),
    clientStorage: doc.clientStorage,
    viewport: doc.viewport,
    createFrame: () => doc.createFrame(),
    createRectangle: () => doc.createRectangle(),
    createImage: (bytes: Uint8Array) => doc.createImage(bytes),
    getImageByHash: (hash: string) => doc.getImageByHash(hash),
    commitUndo: () => doc.commitUndo(),
  };
}

/** The document members plus the window's, getters and setters kept (a spread would read them once). */
export function withWindowApi<W extends object>(doc: FakeDocument, windowApi: W): ReturnType<typeof figmaDocumentApi> & W {
  return Object.defineProperties(figmaDocumentApi(doc), Object.getOwnPropertyDescriptors(windowApi)) as ReturnType<typeof figmaDocumentApi> & W;
}
