/**
 * A JobDesk with the two things around it in the plugin window: a bridge link and the plugin's
 * main thread, each behaving as the real one is documented, so the desk's tests act as a
 * designer does (select, generate, insert, close and reopen) without a browser.
 */
import assert from 'node:assert/strict';
import type { BridgeMessage, ClientMessage, WelcomeMessage } from '../../bridge/protocol/messages.ts';
import { JobImages, type Placement } from '../../plugin/job-images.ts';
import type { FrameLayout } from '../../plugin/layout.ts';
import type { PluginToUi, SelectionItem, UiToPlugin } from '../../plugin/messages.ts';
import type { RememberedJob } from '../../plugin/remembered-jobs.ts';
import { DEFAULT_SETTINGS, type Settings } from '../../plugin/settings.ts';
import type { BridgeEvent, ConnectionState } from '../../ui/bridge-client.ts';
import { JobDesk, type BridgeLink } from '../../ui/job-desk.ts';
import type { Job, JobIn } from '../../ui/jobs.ts';

export const WELCOME: WelcomeMessage = {
  type: 'welcome', protocol: 2, model: 'tiny-art', provider: 'cpu', tiny: true, maxLayers: 52, resolutions: [512, 1024],
  maxCanvasSide: 1024, grid: 16, maxPromptChars: 4000, jobsPerClient: 4, models: [], maxImageBytes: 20_000_000,
};

/**
 * The bridge link as ui/bridge-client.ts's BridgeClient behaves: `connect` reports `connecting`,
 * the bridge's `welcome` makes it `paired`, a closed socket makes it `unreachable`, and `send`
 * "Sends a message once paired; false if there is no paired connection".
 */
export class FakeBridge implements BridgeLink {
  readonly sent: ClientMessage[] = [];
  connects: Array<{ url: string; token: string }> = [];
  private state: ConnectionState = { status: 'idle' };

  constructor(
    private readonly onState: (state: ConnectionState) => void,
    private readonly onEvent: (event: BridgeEvent) => void,
  ) {}

  connect(url: string, token: string): void {
    this.connects.push({ url, token });
    this.setState({ status: 'connecting', url });
  }

  disconnect(): void {
    if (this.state.status !== 'idle') this.setState({ status: 'idle' });
  }

  send(message: ClientMessage): boolean {
    if (this.state.status !== 'paired') return false;
    this.sent.push(message);
    return true;
  }

  /** The bridge answered `hello` with this welcome. */
  pair(welcome: WelcomeMessage = WELCOME): void {
    const url = this.state.status === 'connecting' ? this.state.url : 'ws://localhost:8765';
    this.setState({ status: 'paired', url, welcome });
    this.onEvent(welcome);
  }

  /** The socket closed: the bridge stopped, or the network went. */
  drop(): void {
    if (this.state.status === 'paired') this.setState({ status: 'unreachable', url: this.state.url });
  }

  say(message: BridgeMessage): void {
    this.onEvent(message);
  }

  /** One binary frame: a layer's PNG (or a preview) of a job. */
  image(jobId: string, layerIndex: number, png: Uint8Array, kind: 'layer' | 'preview' = 'layer'): void {
    this.onEvent({ type: 'image', frame: { kind, jobId, layerIndex, png } });
  }

  /** Sent messages of one type, and forgets them (so each step checks only what it caused). */
  take<T extends ClientMessage['type']>(type: T): Array<Extract<ClientMessage, { type: T }>> {
    const found = this.sent.filter((m): m is Extract<ClientMessage, { type: T }> => m.type === type);
    for (const m of found) this.sent.splice(this.sent.indexOf(m), 1);
    return found;
  }

  private setState(state: ConnectionState): void {
    this.state = state;
    this.onState(state);
  }
}

const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

/**
 * The plugin's main thread as plugin/main.ts runs it: `layer-image` -> figma.createImage (which
 * refuses bytes that are not an image: "Throws an error if the image is not a valid PNG, JPG, or
 * GIF", @figma/plugin-typings), the hashes and the decision in plugin/job-images.ts, then
 * `inserted` or `replaced` (or `insert-failed` when Figma cannot place it: `failNext`). Messages
 * cross as postMessage does: asynchronously, so answers wait for `flush`.
 */
export class FakeMainThread {
  readonly fromUi: UiToPlugin[] = [];
  readonly placed: Placement[] = [];
  readonly remembered = new Map<string, RememberedJob>();
  failNext: string | null = null;
  readonly images = new JobImages();
  private readonly outbox: PluginToUi[] = [];

  receive(message: UiToPlugin): void {
    this.fromUi.push(structuredClone(message));
    switch (message.type) {
      case 'layer-image': {
        if (PNG_SIGNATURE.some((b, i) => message.png[i] !== b)) {
          this.images.refused(message.requestId);
          this.outbox.push({ type: 'layer-refused', requestId: message.requestId, index: message.index, message: 'Image type is unsupported' });
          return;
        }
        return this.place(this.images.stored(message.requestId, message.index, hashOf(message.png)));
      }
      case 'insert':
        return this.place(this.images.asked(message));
      case 'remember-job':
        this.remembered.set(message.job.jobId, message.job);
        return;
      case 'forget-job':
        this.remembered.delete(message.jobId);
        return;
      default:
        return;
    }
  }

  /** Main -> UI. */
  post(message: PluginToUi): void {
    this.outbox.push(message);
  }

  takeOutbox(): PluginToUi[] {
    return this.outbox.splice(0);
  }

  /** UI -> main messages of one type so far, and forgets them. */
  take<T extends UiToPlugin['type']>(type: T): Array<Extract<UiToPlugin, { type: T }>> {
    const found = this.fromUi.filter((m): m is Extract<UiToPlugin, { type: T }> => m.type === type);
    for (const m of found) this.fromUi.splice(this.fromUi.indexOf(m), 1);
    return found;
  }

  private place(placement: Placement | null): void {
    if (!placement) return;
    const { requestId, jobId, layout } = placement.job;
    if (this.failNext) {
      this.outbox.push({ type: 'insert-failed', requestId, message: this.failNext });
      this.failNext = null;
      return;
    }
    this.images.placed(requestId);
    this.placed.push(placement);
    const frameName = `${layout.frameName} · ART · seed ${placement.job.seed}`;
    this.outbox.push(
      placement.kind === 'insert'
        ? { type: 'inserted', requestId, jobId, sourceFrameId: layout.frameId, frameId: `new:${requestId}`, frameName, layerCount: layout.regions.length - 2, already: false }
        : { type: 'replaced', requestId, jobId, frameId: placement.target.frameId, frameName, replaced: placement.images.length - 1, added: 0, kept: 0 },
    );
  }
}

/** A PNG-looking byte string naming its job and layer (the hash is made of the bytes). */
export function png(tag: string): Uint8Array {
  return new Uint8Array([...PNG_SIGNATURE, ...new TextEncoder().encode(tag)]);
}

function hashOf(bytes: Uint8Array): string {
  return `hash:${new TextDecoder().decode(bytes.subarray(PNG_SIGNATURE.length))}`;
}

export function frameItem(layout: FrameLayout, draft = `a ${layout.frameName.toLowerCase()}`): SelectionItem {
  return { kind: 'frame', layout, draft, note: null };
}

export const SETTINGS: Settings = { ...DEFAULT_SETTINGS, token: 'tok', steps: 3, guidance: 3.5, trueCfg: 2, seedMode: 'fixed', seed: 77 };

export interface World {
  desk: JobDesk;
  bridge: FakeBridge;
  main: FakeMainThread;
  /** Object URLs made and revoked. */
  urls: { made: string[]; revoked: string[] };
  /** Delivers the main thread's answers (postMessage is asynchronous). */
  flush(): void;
  job(requestId: string): Job;
  jobIn<S extends Job['status']>(requestId: string, status: S): JobIn<S>;
}

/** A desk whose window has opened: the plugin sent `init` (with `remembered` jobs) and nothing is selected. */
export function world(settings: Settings = SETTINGS, remembered: RememberedJob[] = []): World {
  let bridge: FakeBridge | undefined;
  const main = new FakeMainThread();
  for (const job of remembered) main.remembered.set(job.jobId, job);
  const urls = { made: [] as string[], revoked: [] as string[] };
  let seeds = 1000;
  let ids = 0;
  const desk = new JobDesk({
    bridge: (onState, onEvent) => (bridge = new FakeBridge(onState, onEvent)),
    plugin: (message) => main.receive(message),
    imageUrl: (bytes) => {
      urls.made.push(`blob:${urls.made.length}:${hashOf(bytes)}`);
      return urls.made.at(-1)!;
    },
    revokeUrl: (url) => urls.revoked.push(url),
    randomSeed: () => ++seeds,
    requestId: () => `r${++ids}`,
    now: () => 1_700_000_000_000,
  });
  assert.deepEqual(desk.state, { loaded: false, settings: DEFAULT_SETTINGS, connection: { status: 'idle' }, selection: [], jobs: [], images: {}, notice: null });
  desk.open();
  assert.deepEqual(main.take('ready'), [{ type: 'ready' }]);
  desk.fromPlugin({ type: 'init', settings, jobs: remembered });
  const flush = () => {
    for (let answers = main.takeOutbox(); answers.length; answers = main.takeOutbox()) for (const m of answers) desk.fromPlugin(m);
  };
  const job = (requestId: string) => {
    const found = desk.state.jobs.find((j) => j.requestId === requestId);
    assert.ok(found, `a job ${requestId}`);
    return found;
  };
  return {
    desk,
    bridge: bridge!,
    main,
    urls,
    flush,
    job,
    jobIn<S extends Job['status']>(requestId: string, status: S) {
      const found = job(requestId);
      assert.equal(found.status, status, `job ${requestId}`);
      return found as JobIn<S>;
    },
  };
}
