/**
 * Stands in for Figma in the browser: a global `figma` over the fake document of
 * test/plugin/fake-figma.ts, the plugin UI in a sandboxed iframe (opaque origin, so the bridge sees
 * `Origin: null` as from Figma) and Figma's postMessage wiring between the two. `window.harness`
 * lets the test drive and inspect the scene.
 *
 * Network access follows the manifest as Figma enforces it: "if your plugin makes a network
 * request to a domain that is not specified in the list of permitted domains, that request is
 * blocked", and Figma "blocks the requests and throws content-security policy (CSP) errors"
 * (developers.figma.com, Version 1 Update 66, networkAccess). A development plugin may also reach
 * `devAllowedDomains` (developers.figma.com/docs/plugins/manifest). The UI document gets the same
 * kind of policy: a Content-Security-Policy `connect-src` of exactly those entries.
 */
import { FakeDocument, FakeNode, PLUGIN_ID, type NodeInit } from '../../plugin/fake-figma.ts';

type Listener = () => void;

export interface ManifestNetwork {
  allowedDomains: string[];
  devAllowedDomains?: string[];
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
  scaleModes: string[];
  pluginData: Record<string, string>;
  children: DumpedNode[];
}

export interface Dump {
  pages: DumpedNode[][];
  images: Record<string, string>;
  notifications: { message: string; error: boolean }[];
  undoCommits: number;
  selection: string[];
  scrolledTo: string[][];
  /**
   * Every UI -> main message: its type, its structured-clone size in bytes (PNG bytes counted),
   * when it arrived (epoch ms, `performance.timeOrigin + now()`) and how long the plugin's
   * handler held the main thread before returning (its synchronous part).
   */
  uiMessages: { type: string; bytes: number; at: number; handlerMs: number }[];
  /** Every main -> UI message's type and when the plugin posted it (epoch ms). */
  pluginMessages: { type: string; at: number }[];
  /** With `observeSockets`: each WebSocket message as the UI's JavaScript got it (text: its `type[:stage]`). */
  socketMessages: { at: number; binary: boolean; type: string }[];
  cspViolations: string[];
}

function base64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s);
}

/** The connect-src policy Figma derives from the manifest's network access (a dev plugin: both lists). */
export function connectSrc(network: ManifestNetwork): string {
  const entries = [...network.allowedDomains, ...(network.devAllowedDomains ?? [])].filter((d) => d !== 'none');
  return `connect-src ${entries.length ? entries.join(' ') : "'none'"}`;
}

function messageBytes(value: unknown): number {
  if (value instanceof Uint8Array) return value.byteLength;
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + messageBytes(v), 0);
  if (value && typeof value === 'object') return Object.values(value).reduce((n: number, v) => n + messageBytes(v), 0);
  return typeof value === 'string' ? value.length : 8;
}

/**
 * Injected into the UI document when asked (benches): the time each WebSocket message reaches the
 * UI's JavaScript, posted to the host. A listener added in the constructor runs before the app's.
 */
const SOCKET_OBSERVER = `<script>(()=>{const W=WebSocket;window.WebSocket=class extends W{constructor(...a){super(...a);this.addEventListener('message',(e)=>{const at=performance.timeOrigin+performance.now();let type='';if(typeof e.data==='string'){try{const m=JSON.parse(e.data);type=m.type+(m.stage?':'+m.stage:'')}catch{}}parent.postMessage({socket:{at,binary:typeof e.data!=='string',type}},'*')})}}})()<\/script>`;

export interface HarnessOptions {
  /** Record when each WebSocket message reaches the UI (Dump.socketMessages). */
  observeSockets?: boolean;
}

export function installFakeFigma(pages: NodeInit[][], stored: Record<string, unknown>, network: ManifestNetwork, harnessOptions: HarnessOptions = {}) {
  const doc = new FakeDocument(pages, stored);
  const notifications: Dump['notifications'] = [];
  const uiMessages: Dump['uiMessages'] = [];
  const pluginMessages: Dump['pluginMessages'] = [];
  const socketMessages: Dump['socketMessages'] = [];
  const epoch = () => performance.timeOrigin + performance.now();
  const cspViolations: string[] = [];
  let iframe: HTMLIFrameElement | null = null;
  let onmessage: ((message: unknown) => void) | undefined;
  let closeListeners: Listener[] = [];

  window.addEventListener('message', (event) => {
    if (!iframe || event.source !== iframe.contentWindow) return;
    const data = event.data as { pluginMessage?: { type?: string }; csp?: string; socket?: Dump['socketMessages'][number] };
    if (data && typeof data.csp === 'string') cspViolations.push(data.csp);
    if (data && data.socket) socketMessages.push(data.socket);
    if (data && 'pluginMessage' in data) {
      const at = epoch();
      onmessage?.(data.pluginMessage);
      uiMessages.push({ type: String(data.pluginMessage?.type), bytes: messageBytes(data.pluginMessage), at, handlerMs: epoch() - at });
    }
  });

  const figma = {
    mixed: Symbol('mixed'),
    get skipInvisibleInstanceChildren() {
      return doc.skipInvisibleInstanceChildren;
    },
    set skipInvisibleInstanceChildren(v: boolean) {
      doc.skipInvisibleInstanceChildren = v;
    },
    showUI(html: string, options: { width?: number; height?: number } = {}) {
      iframe = document.createElement('iframe');
      iframe.id = 'plugin-ui';
      // No allow-same-origin: an opaque origin, like Figma's plugin iframe.
      iframe.setAttribute('sandbox', 'allow-scripts allow-forms');
      iframe.style.width = `${options.width ?? 300}px`;
      iframe.style.height = `${options.height ?? 200}px`;
      const policy = `<meta http-equiv="Content-Security-Policy" content="${connectSrc(network)}">`;
      // The harness hears of blocked connections (for the test's record, not the plugin's).
      const report = `<script>document.addEventListener('securitypolicyviolation',e=>parent.postMessage({csp:e.blockedURI},'*'))<\/script>`;
      iframe.srcdoc = html.replace('<head>', `<head>${policy}${report}${harnessOptions.observeSockets ? SOCKET_OBSERVER : ''}`);
      document.getElementById('host')!.appendChild(iframe);
    },
    ui: {
      postMessage(message: unknown) {
        pluginMessages.push({ type: String((message as { type?: unknown })?.type), at: epoch() });
        iframe?.contentWindow?.postMessage({ pluginMessage: message, pluginId: PLUGIN_ID }, '*');
      },
      set onmessage(handler: ((message: unknown) => void) | undefined) {
        onmessage = handler;
      },
      get onmessage() {
        return onmessage;
      },
    },
    on(event: string, listener: Listener) {
      if (event === 'selectionchange') doc.onSelectionChange(listener);
      if (event === 'close') closeListeners.push(listener);
    },
    get currentPage() {
      return doc.currentPage;
    },
    getNodeByIdAsync: (id: string) => doc.getNodeByIdAsync(id),
    clientStorage: doc.clientStorage,
    notify(message: string, options: { error?: boolean } = {}) {
      notifications.push({ message, error: !!options.error });
      return { cancel() {} };
    },
    viewport: doc.viewport,
    createFrame: () => doc.createFrame(),
    createRectangle: () => doc.createRectangle(),
    createImage: (bytes: Uint8Array) => doc.createImage(bytes),
    getImageByHash: (hash: string) => doc.getImageByHash(hash),
    commitUndo: () => doc.commitUndo(),
  };
  (window as unknown as { figma: unknown }).figma = figma;

  const dumpNode = (n: FakeNode): DumpedNode => {
    const fills = Array.isArray(n.fills) ? (n.fills as Array<{ type: string; imageHash?: string; scaleMode?: string }>) : [];
    const pluginData: Record<string, string> = {};
    for (const k of n.getPluginDataKeys()) pluginData[k] = n.getPluginData(k);
    return {
      id: n.id,
      type: n.type,
      name: n.name,
      x: n.x,
      y: n.y,
      width: n.width,
      height: n.height,
      visible: n.visible,
      locked: n.locked,
      imageHashes: fills.filter((f) => f.type === 'IMAGE').map((f) => f.imageHash ?? ''),
      scaleModes: fills.filter((f) => f.type === 'IMAGE').map((f) => f.scaleMode ?? ''),
      pluginData,
      children: n.loaded ? n.children.map(dumpNode) : [],
    };
  };

  return {
    select(ids: string[]) {
      doc.currentPage.selection = ids.map((id) => doc.node(id));
    },
    /** The designer moves, resizes or hides a node (one undo step of their own). */
    edit(id: string, change: { x?: number; y?: number; width?: number; height?: number; visible?: boolean }) {
      const n = doc.node(id);
      if (change.x !== undefined) n.x = change.x;
      if (change.y !== undefined) n.y = change.y;
      if (change.width !== undefined || change.height !== undefined) n.resize(change.width ?? n.width, change.height ?? n.height);
      if (change.visible !== undefined) n.visible = change.visible;
      doc.endUserAction();
    },
    /** The designer draws a node into a container (on top of its children); returns its id. */
    add(parentId: string, init: NodeInit): string {
      const n = new FakeNode(doc, init);
      doc.node(parentId).appendChild(n);
      doc.endUserAction();
      return n.id;
    },
    /** The designer's Cmd+Z. */
    undo() {
      doc.triggerUndo();
    },
    /** The plugin window closes: Figma ends the plugin (the page is then dropped by the test). */
    close() {
      closeListeners.forEach((l) => l());
      closeListeners = [];
      doc.removeListeners();
      iframe?.remove();
      iframe = null;
      onmessage = undefined;
    },
    storage: () => doc.clientStorage.keysAsync(),
    dump(): Dump {
      const images: Record<string, string> = {};
      doc.images.forEach((image, hash) => (images[hash] = base64(image.bytes)));
      return {
        pages: doc.pages.map((p) => (p.loaded ? p.children.map(dumpNode) : [])),
        images,
        notifications,
        undoCommits: doc.undoCommits,
        selection: doc.currentPage.selection.map((n) => n.id),
        scrolledTo: doc.viewport.scrolledTo,
        uiMessages,
        pluginMessages,
        socketMessages,
        cspViolations,
      };
    },
    /** clientStorage as JSON, to carry into the next "launch" of the plugin. */
    async stored(): Promise<Record<string, unknown>> {
      const out: Record<string, unknown> = {};
      for (const k of await doc.clientStorage.keysAsync()) out[k] = await doc.clientStorage.getAsync(k);
      return out;
    },
  };
}

export type Harness = ReturnType<typeof installFakeFigma>;

(window as unknown as { installFakeFigma: typeof installFakeFigma }).installFakeFigma = installFakeFigma;
