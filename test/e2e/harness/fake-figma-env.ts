/**
 * Stands in for Figma in the browser: a global `figma` with the API plugin/main.ts uses, the
 * plugin UI in a sandboxed iframe (opaque origin, so the bridge sees `Origin: null` as from
 * Figma) and Figma's postMessage wiring between the two. Created nodes are the typed fakes of
 * test/plugin/fake-figma.ts; `window.harness` lets the test drive and inspect the scene.
 */
import { FakeFrame, FakeParent, FakeRect, FakeScene } from '../../plugin/fake-figma.ts';
import { toPlain, type NodeSpec } from './scene-spec.ts';

type Listener = () => void;

/** A node of the designer's document, built from a spec; read by plugin/read-scene.ts. */
class SourceNode {
  readonly id: string;
  readonly type: string;
  name: string;
  visible: boolean;
  x: number;
  y: number;
  width: number;
  height: number;
  declare characters?: string;
  declare children?: SourceNode[];
  absoluteBoundingBox: { x: number; y: number; width: number; height: number } | null;
  parent: unknown = null;

  constructor(spec: NodeSpec, originX: number, originY: number) {
    const plain = toPlain(spec, originX, originY);
    this.id = spec.id;
    this.type = spec.type;
    this.name = spec.name;
    this.visible = spec.visible ?? true;
    this.x = spec.x;
    this.y = spec.y;
    this.width = spec.width;
    this.height = spec.height;
    this.absoluteBoundingBox = plain.bounds;
    if (spec.characters !== undefined) this.characters = spec.characters;
    if (spec.children) {
      this.children = spec.children.map((c) => new SourceNode(c, originX + spec.x, originY + spec.y));
      for (const c of this.children) c.parent = this;
    }
  }
}

export interface DumpedNode {
  id: string;
  type: string;
  name: string;
  x: number;
  y: number;
  width: number;
  height: number;
  visible: boolean;
  locked: boolean;
  imageHashes: string[];
  children: DumpedNode[];
}

export interface Dump {
  page: DumpedNode[];
  images: Record<string, string>;
  notifications: { message: string; error: boolean }[];
  undoCommits: number;
  selection: string[];
  scrolledTo: string[][];
}

function base64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s);
}

export function installFakeFigma(specs: NodeSpec[], stored: Record<string, unknown> = {}) {
  const scene = new FakeScene();
  const page = new FakeParent() as FakeParent & { children: Array<FakeFrame | SourceNode> };
  const sources = new Map<string, SourceNode>();
  const index = (n: SourceNode) => {
    sources.set(n.id, n);
    n.children?.forEach(index);
  };
  for (const spec of specs) {
    const node = new SourceNode(spec, 0, 0);
    node.parent = page;
    page.children.push(node);
    index(node);
  }

  let selection: unknown[] = [];
  const selectionListeners: Listener[] = [];
  const storage = new Map<string, unknown>(Object.entries(stored));
  const notifications: Dump['notifications'] = [];
  const scrolledTo: string[][] = [];
  let iframe: HTMLIFrameElement | null = null;
  let onmessage: ((message: unknown) => void) | undefined;

  window.addEventListener('message', (event) => {
    if (!iframe || event.source !== iframe.contentWindow) return;
    const data = event.data as { pluginMessage?: unknown };
    if (data && 'pluginMessage' in data) onmessage?.(data.pluginMessage);
  });

  const figma = {
    mixed: Symbol('mixed'),
    showUI(html: string, options: { width?: number; height?: number } = {}) {
      iframe = document.createElement('iframe');
      iframe.id = 'plugin-ui';
      // No allow-same-origin: an opaque origin, like Figma's plugin iframe.
      iframe.setAttribute('sandbox', 'allow-scripts allow-forms');
      iframe.style.width = `${options.width ?? 300}px`;
      iframe.style.height = `${options.height ?? 200}px`;
      iframe.srcdoc = html;
      document.getElementById('host')!.appendChild(iframe);
    },
    ui: {
      postMessage(message: unknown) {
        iframe?.contentWindow?.postMessage({ pluginMessage: message, pluginId: 'art-for-figma-local' }, '*');
      },
      set onmessage(handler: ((message: unknown) => void) | undefined) {
        onmessage = handler;
      },
      get onmessage() {
        return onmessage;
      },
    },
    on(event: string, listener: Listener) {
      if (event === 'selectionchange') selectionListeners.push(listener);
    },
    currentPage: {
      get selection() {
        return selection;
      },
      set selection(nodes: unknown[]) {
        selection = [...nodes];
        queueMicrotask(() => selectionListeners.forEach((l) => l()));
      },
      appendChild: (child: FakeFrame) => page.appendChild(child),
    },
    async getNodeByIdAsync(id: string) {
      return sources.get(id) ?? page.children.find((c) => c.id === id) ?? null;
    },
    clientStorage: {
      async getAsync(key: string) {
        return structuredClone(storage.get(key));
      },
      async setAsync(key: string, value: unknown) {
        storage.set(key, structuredClone(value));
      },
    },
    notify(message: string, options: { error?: boolean } = {}) {
      notifications.push({ message, error: !!options.error });
      return { cancel() {} };
    },
    viewport: {
      center: { x: 0, y: 0 },
      scrollAndZoomIntoView(nodes: Array<{ id: string }>) {
        scrolledTo.push(nodes.map((n) => n.id));
      },
    },
    createFrame: () => scene.createFrame(),
    createRectangle: () => scene.createRectangle(),
    createImage: (bytes: Uint8Array) => scene.createImage(bytes),
    commitUndo: () => scene.commitUndo(),
  };
  (window as unknown as { figma: unknown }).figma = figma;

  const dumpNode = (n: FakeFrame | FakeRect | SourceNode): DumpedNode => {
    const fills = 'fills' in n && Array.isArray(n.fills) ? (n.fills as Array<{ type: string; imageHash?: string }>) : [];
    const children = 'children' in n && n.children ? (n.children as Array<FakeFrame | FakeRect | SourceNode>) : [];
    return {
      id: n.id,
      type: n.type,
      name: n.name,
      x: n.x,
      y: n.y,
      width: n.width,
      height: n.height,
      visible: 'visible' in n ? n.visible : true,
      locked: 'locked' in n ? n.locked : false,
      imageHashes: fills.filter((f) => f.type === 'IMAGE').map((f) => f.imageHash ?? ''),
      children: children.map(dumpNode),
    };
  };

  return {
    select(ids: string[]) {
      figma.currentPage.selection = ids.map((id) => sources.get(id) ?? page.children.find((c) => c.id === id));
    },
    dump(): Dump {
      const images: Record<string, string> = {};
      scene.images.forEach((bytes, hash) => (images[hash] = base64(bytes)));
      return {
        page: page.children.map(dumpNode),
        images,
        notifications,
        undoCommits: scene.events.filter((e) => e === 'commitUndo').length,
        selection: (selection as Array<{ id: string }>).map((n) => n.id),
        scrolledTo,
      };
    },
  };
}

export type Harness = ReturnType<typeof installFakeFigma>;

(window as unknown as { installFakeFigma: typeof installFakeFigma }).installFakeFigma = installFakeFigma;
