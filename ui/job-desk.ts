/**
 * The plugin window's jobs, from Generate to the nodes on the canvas: the settings and selection
 * the plugin reports, the bridge connection, each job's status (ui/jobs.ts), its layer PNGs until
 * they are inserted, its preview and thumbnail, and the jobs held back until the bridge has room.
 * The view subscribes and calls the designer's actions; nothing here touches the DOM, so
 * `node --test` drives it with a bridge and a plugin that behave as the real ones do.
 *
 * Layers go to the main thread one `layer-image` message each as they arrive; when the bridge says
 * `done` (or the designer presses Insert) one `insert` follows, and the main thread places the job
 * once it holds every image (plugin/job-images.ts).
 *
 * A new kind of job adds its shape in ui/jobs.ts and a method here that builds its bridge message
 * and calls `submit`; holding, sending, streaming and inserting are the same for every kind.
 */
import type { ClientMessage, DecomposeMessage, GenerateMessage } from '../bridge/protocol/messages.ts';
import { DEFAULT_CONDITIONING_SCALE, MAX_PROMPT_CHARS } from '../domain/params.ts';
import { neededLayers } from '../plugin/job-images.ts';
import type { InsertPlace, PluginToUi, ResultSelection, SelectionItem, UiToPlugin } from '../plugin/messages.ts';
import type { RegenerateMode } from '../plugin/regenerate.ts';
import { DEFAULT_SETTINGS, type Settings } from '../plugin/settings.ts';
import type { BridgeEvent, ConnectionState } from './bridge-client.ts';
import {
  applyBridgeMessage,
  baseOf,
  finishedBase,
  isActive,
  jobFor,
  jobIdOf,
  newJob,
  restoredJob,
  roomAtBridge,
  type FinishedJob,
  type Job,
  type JobIn,
} from './jobs.ts';
import { errorText } from './words.ts';

export type FrameSelection = Extract<SelectionItem, { kind: 'frame' }>;
export type FlatSelection = Extract<SelectionItem, { kind: 'flat' }>;

/** What the view draws. A new object after every change. */
export interface DeskState {
  /** The plugin has sent the stored settings (`init`). */
  loaded: boolean;
  settings: Settings;
  connection: ConnectionState;
  selection: readonly SelectionItem[];
  jobs: readonly Job[];
  /** Object URLs: `preview:<requestId>` (live preview) and `thumb:<requestId>` (the merged layer). */
  images: Readonly<Record<string, string>>;
  /** A bridge error about no job (shown under Generate). */
  notice: string | null;
}

/** The prompt field: its text, and whether the designer typed it (else it shows the selection's draft). */
export interface PromptField {
  text: string;
  edited: boolean;
}

/** The bridge connection as ui/bridge-client.ts's BridgeClient offers it. */
export interface BridgeLink {
  connect(url: string, token: string): void;
  disconnect(): void;
  /** Sends once paired; false if there is no paired connection. `image`: sent as the next frame (a `decompose`'s PNG). */
  send(message: ClientMessage, image?: Uint8Array): boolean;
}

export interface DeskPorts {
  /** Opens the bridge link; it reports its state and every bridge message through the two callbacks. */
  bridge(onState: (state: ConnectionState) => void, onEvent: (event: BridgeEvent) => void): BridgeLink;
  /** Posts to the plugin's main thread (ui/plugin-channel.ts). */
  plugin(message: UiToPlugin): void;
  /** An object URL for a PNG, and its release (URL.createObjectURL / revokeObjectURL in the browser). */
  imageUrl(png: Uint8Array): string;
  revokeUrl(url: string): void;
  randomSeed(): number;
  requestId(): string;
  now(): number;
}

/** Why Generate cannot run now, or null. */
export function generateBlocker(state: DeskState, prompt: PromptField): string | null {
  const frames = framesOf(state.selection);
  const text = prompt.text.trim();
  if (state.connection.status !== 'paired') return 'Connect to the bridge first.';
  if (frames.length === 0)
    return state.selection.some((i) => i.kind === 'result')
      ? 'To generate anew, select the source frame; a result frame is edited above.'
      : state.selection.some((i) => i.kind === 'flat')
        ? 'A frame with an image and marks over it is decomposed above; to generate, select a frame of shapes.'
        : 'Select one or more frames on the canvas.';
  if (!text && !frames.every((f) => f.draft)) return 'Write a prompt.';
  return tooLong(text);
}

/** Why an edit of this result frame cannot run now, or null. */
export function editBlocker(state: DeskState, prompt: PromptField, item: ResultSelection): string | null {
  if (state.connection.status !== 'paired') return 'Connect to the bridge first.';
  const long = tooLong(prompt.text.trim());
  if (long) return long;
  return state.jobs.some((j) => isActive(j) && j.edit?.frameId === item.nodeId)
    ? 'This frame is being regenerated; wait for it to finish.'
    : null;
}

/** Whether the bridge's default model runs `decompose` (welcome.models[].jobs): Decompose is offered only then. */
export function canDecompose(state: DeskState): boolean {
  const { connection } = state;
  if (connection.status !== 'paired') return false;
  const { welcome } = connection;
  return welcome.models.some((m) => m.model === welcome.model && m.jobs.includes('decompose'));
}

/** Why Decompose cannot run now for this flat picture, or null. */
export function decomposeBlocker(state: DeskState, prompt: PromptField, item: FlatSelection): string | null {
  if (state.connection.status !== 'paired') return 'Connect to the bridge first.';
  if (!canDecompose(state)) return 'The bridge’s model cannot decompose images: start it with a model that has an adapter (npm run convert --adapter).';
  if (!prompt.text.trim() && !item.draft) return 'Write a caption of the whole picture.';
  return tooLong(prompt.text.trim());
}

function tooLong(text: string): string | null {
  return text.length > MAX_PROMPT_CHARS ? `The prompt is longer than ${MAX_PROMPT_CHARS} characters.` : null;
}

export function framesOf(items: readonly SelectionItem[]): FrameSelection[] {
  return items.filter((i): i is FrameSelection => i.kind === 'frame');
}

export class JobDesk {
  private current: DeskState = {
    loaded: false,
    settings: DEFAULT_SETTINGS,
    connection: { status: 'idle' },
    selection: [],
    jobs: [],
    images: {},
    notice: null,
  };
  private readonly listeners = new Set<(state: DeskState) => void>();
  private readonly bridge: BridgeLink;
  private selectionStamp = 0;
  /** Per request: each layer's PNG, kept until the job is inserted (a retry, or "as new", needs them). */
  private readonly layers = new Map<string, Map<number, Uint8Array>>();
  /** Per request: the layers already posted to the main thread (each is made a Figma image once). */
  private readonly posted = new Map<string, Set<number>>();
  /** Held jobs' bridge messages in the order they were made, sent as the bridge has room (`roomAtBridge`). */
  private readonly held = new Map<string, { message: ClientMessage; image?: Uint8Array }>();
  /** Decompositions whose picture the main thread is exporting: held once it comes (`image-exported`). */
  private readonly exporting = new Map<string, DecomposeMessage>();

  constructor(private readonly ports: DeskPorts) {
    this.bridge = ports.bridge(
      (state) => this.connectionChanged(state),
      (event) => this.bridgeEvent(event),
    );
  }

  get state(): DeskState {
    return this.current;
  }

  /** Calls `listener` after every change; returns the unsubscribe function. */
  subscribe(listener: (state: DeskState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private set(change: Partial<DeskState>): void {
    this.current = { ...this.current, ...change };
    for (const listener of this.listeners) listener(this.current);
  }

  private setJobs(jobs: readonly Job[]): void {
    this.set({ jobs });
  }

  private job(requestId: string): Job | undefined {
    return this.current.jobs.find((j) => j.requestId === requestId);
  }

  private replaceJob(job: Job): void {
    this.setJobs(this.current.jobs.map((j) => (j.requestId === job.requestId ? job : j)));
  }

  // ---- the window ---------------------------------------------------------------------------

  /** The window is up: the plugin answers with `init` (settings, remembered jobs) and the selection. */
  open(): void {
    this.ports.plugin({ type: 'ready' });
  }

  close(): void {
    this.bridge.disconnect();
  }

  connect(): void {
    this.bridge.connect(this.current.settings.bridgeUrl, this.current.settings.token);
  }

  disconnect(): void {
    this.bridge.disconnect();
  }

  changeSettings(change: Partial<Settings>): void {
    const settings = { ...this.current.settings, ...change };
    this.set({ settings });
    this.ports.plugin({ type: 'save-settings', settings });
  }

  // ---- the designer's actions ---------------------------------------------------------------

  /** One job per selected frame, with the typed prompt or each frame's own draft. */
  generate(prompt: PromptField): void {
    if (generateBlocker(this.current, prompt)) return;
    const text = prompt.text.trim();
    const { settings } = this.current;
    this.submit(
      framesOf(this.current.selection).map((frame) => {
        const seed = settings.seedMode === 'random' ? this.ports.randomSeed() : settings.seed;
        const job = newJob(this.ports.requestId(), frame.layout, prompt.edited && text ? text : frame.draft, seed, this.selectionStamp);
        return { job, message: this.generateMessage(job, frame.layout.layout) };
      }),
    );
  }

  /** Regenerate some layers of a result frame, or make variations of it; the images land in place. */
  edit(item: ResultSelection, mode: RegenerateMode, prompt: PromptField): void {
    const plan = mode === 'selected' ? item.regenerate : item.variations;
    if (!plan.ok || editBlocker(this.current, prompt, item)) return;
    const text = prompt.edited && prompt.text.trim() ? prompt.text.trim() : item.result.prompt;
    const { settings } = this.current;
    // Variations always draw anew; a regeneration follows the seed setting (random by default).
    const seed = mode === 'variations' || settings.seedMode === 'random' ? this.ports.randomSeed() : settings.seed;
    const target = { frameId: item.nodeId, baseJobId: item.result.jobId, layers: plan.value.layers };
    const lineage = [...item.result.lineage, item.result.jobId];
    const job = newJob(this.ports.requestId(), plan.value.layout, text, seed, this.selectionStamp, { target, lineage });
    const base = { jobId: item.result.jobId, keep: plan.value.keep };
    this.submit([{ job, message: this.generateMessage(job, plan.value.layout.layout, base) }]);
  }

  /**
   * Decompose a flat picture along its marks: the main thread exports the image at the layout's
   * canvas size, then the job is held and sent like any other, the PNG right after its message.
   */
  decompose(item: FlatSelection, prompt: PromptField): void {
    if (decomposeBlocker(this.current, prompt, item)) return;
    const text = prompt.edited && prompt.text.trim() ? prompt.text.trim() : item.draft;
    const { settings } = this.current;
    const seed = settings.seedMode === 'random' ? this.ports.randomSeed() : settings.seed;
    const job = newJob(this.ports.requestId(), item.layout, text, seed, this.selectionStamp, null, 'decompose');
    const { layout } = item.layout;
    const generate = this.generateMessage(job, layout);
    this.exporting.set(job.requestId, {
      ...generate,
      type: 'decompose',
      params: { ...generate.params, conditioningScale: DEFAULT_CONDITIONING_SCALE },
      image: { bytes: 0 },
    });
    this.set({ notice: null, jobs: [job, ...this.current.jobs] });
    this.ports.plugin({ type: 'export-image', requestId: job.requestId, imageNodeId: item.imageNodeId, width: layout.width, height: layout.height });
  }

  /** Cancels every job not finished: held ones at once, the others at the bridge. */
  cancel(): void {
    this.setJobs(
      this.current.jobs.map((job): Job => {
        switch (job.status) {
          case 'held':
            this.held.delete(job.requestId);
            this.exporting.delete(job.requestId);
            return { ...baseOf(job), status: 'cancelled', jobId: null };
          case 'restored':
          case 'queued':
          case 'running':
            this.bridge.send({ type: 'cancel', jobId: job.jobId });
            return { ...job, cancelRequested: true };
          case 'sending':
            // No job id yet: the cancel goes out with `queued`.
            return { ...job, cancelRequested: true };
          default:
            // A refetch is a finished job read again: nothing runs to cancel.
            return job;
        }
      }),
    );
  }

  /** Insert a finished job: one that finished while the plugin was closed, or one whose insert failed. */
  insert(job: JobIn<'ready' | 'insert-failed'>, place: InsertPlace): void {
    this.startInsert(job, place);
  }

  /**
   * Insert a job as a new frame: a regeneration whose frame is gone (its layers are still here),
   * or an earlier version already inserted (its layers were let go: the bridge replays the job).
   */
  insertAsNew(job: JobIn<'ready' | 'insert-failed' | 'inserted'>): void {
    if (job.status !== 'inserted') {
      const again = { ...job, asNew: true };
      this.postLayers(again);
      return this.startInsert(again, 'beside');
    }
    if (!this.bridge.send({ type: 'fetch', jobId: job.jobId }))
      return this.replaceJob({ ...job, error: 'Connect to the bridge first, then insert again.' });
    this.replaceJob({ ...finishedBase(job), asNew: true, status: 'refetching' });
  }

  // ---- what the plugin says -----------------------------------------------------------------

  fromPlugin(message: PluginToUi): void {
    switch (message.type) {
      case 'init': {
        const restored = message.jobs.map(restoredJob);
        this.set({ settings: message.settings, loaded: true, jobs: [...this.current.jobs, ...restored] });
        if (message.settings.token) this.connect();
        return;
      }
      case 'selection':
        this.selectionStamp = message.stamp;
        this.set({ selection: message.items });
        return;
      case 'layer-refused': {
        const job = this.job(message.requestId);
        if (!job) return;
        const name = job.layout.regions[message.index]?.name ?? `layer ${message.index}`;
        const error = `Figma could not read the image of layer “${name}” (${message.message}). Generate again.`;
        return this.replaceJob({ ...baseOf(job), status: 'failed', jobId: jobIdOf(job), error });
      }
      case 'inserted':
      case 'replaced': {
        const job = this.job(message.requestId);
        if (job?.status !== 'inserting') return;
        this.letGo(job.requestId);
        return this.replaceJob({ ...finishedBase(job), status: 'inserted', insertedName: message.frameName, error: null });
      }
      case 'image-exported':
        return this.exported(message.requestId, message.png);
      case 'export-failed': {
        const job = this.job(message.requestId);
        if (!this.exporting.delete(message.requestId) || !job) return;
        return this.replaceJob({ ...baseOf(job), status: 'failed', jobId: null, error: message.message });
      }
      case 'insert-failed': {
        // The layers stay: the designer can insert them again.
        const job = this.job(message.requestId);
        if (job?.status !== 'inserting') return;
        return this.replaceJob({ ...finishedBase(job), status: 'insert-failed', error: message.message });
      }
    }
  }

  // ---- what the bridge says -----------------------------------------------------------------

  /** BridgeClient reports `paired` once per pairing (on the bridge's `welcome`). */
  private connectionChanged(connection: ConnectionState): void {
    this.set({ connection });
    if (connection.status !== 'paired') return;
    // Jobs the bridge was running when the connection dropped, or remembered from the last
    // session: ask for them again (a finished one comes back as `done` with `fetched: true`).
    for (const job of this.current.jobs) {
      const jobId = jobIdOf(job);
      if (isActive(job) && jobId) this.bridge.send({ type: 'fetch', jobId });
    }
    this.releaseHeld();
  }

  private bridgeEvent(event: BridgeEvent): void {
    if (event.type === 'image') {
      const { frame } = event;
      const job = jobFor(this.current.jobs, { jobId: frame.jobId });
      if (!job) return;
      if (frame.kind === 'preview') return this.setImage(`preview:${job.requestId}`, frame.png);
      let layers = this.layers.get(job.requestId);
      if (!layers) this.layers.set(job.requestId, (layers = new Map()));
      // A copy of just this PNG (the frame is a view into the whole WebSocket message).
      const png = frame.png.slice();
      layers.set(frame.layerIndex, png);
      if (frame.layerIndex === 0) this.setImage(`thumb:${job.requestId}`, png);
      return this.postLayers(job);
    }
    const before = jobFor(this.current.jobs, event);
    if (!before) {
      if (event.type === 'error') this.set({ notice: errorText(event) });
      return;
    }
    this.setJobs(applyBridgeMessage(this.current.jobs, event));
    const job = this.job(before.requestId)!;
    if (event.type === 'queued' && before.status === 'sending') {
      this.remember(event.jobId, job);
      if (before.cancelRequested) this.bridge.send({ type: 'cancel', jobId: event.jobId });
    }
    if (event.type === 'error') {
      const jobId = jobIdOf(job);
      if (jobId && (event.code === 'unknown_job' || event.code === 'cancelled' || job.restored)) this.ports.plugin({ type: 'forget-job', jobId });
    }
    if (event.type === 'done' && job.status === 'inserting') this.startInsert(job, 'beside');
    // A job may have left the bridge's queue: a held one takes its place.
    this.releaseHeld();
  }

  // ---- holding, streaming, inserting ----------------------------------------------------------

  /** New jobs, newest first in the list: held, then sent as far as the bridge takes them. */
  private submit(created: Array<{ job: JobIn<'held'>; message: ClientMessage }>): void {
    for (const { job, message } of created) this.held.set(job.requestId, { message });
    this.set({ notice: null, jobs: [...created.map((c) => c.job), ...this.current.jobs] });
    this.releaseHeld();
  }

  /** A decomposition's picture came from the main thread: checked against the bridge's cap, then held to send. */
  private exported(requestId: string, png: Uint8Array): void {
    const message = this.exporting.get(requestId);
    const job = this.job(requestId);
    if (!message || !job) return;
    this.exporting.delete(requestId);
    const connection = this.current.connection;
    const cap = connection.status === 'paired' ? connection.welcome.maxImageBytes : Infinity;
    if (png.length > cap) {
      const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;
      const error = `The exported picture is ${mb(png.length)}, more than the bridge takes (${mb(cap)}). Choose a lower resolution in Settings and decompose again.`;
      return this.replaceJob({ ...baseOf(job), status: 'failed', jobId: null, error });
    }
    this.held.set(requestId, { message: { ...message, image: { bytes: png.length } }, image: png });
    this.releaseHeld();
  }

  /** Sends held jobs while the bridge has room for this connection's jobs. */
  private releaseHeld(): void {
    const connection = this.current.connection;
    if (connection.status !== 'paired') return;
    let room = roomAtBridge(this.current.jobs, connection.welcome.jobsPerClient);
    for (const [requestId, { message, image }] of this.held) {
      if (room-- <= 0 || !this.bridge.send(message, image)) return;
      this.held.delete(requestId);
      const job = this.job(requestId)!;
      this.replaceJob({ ...baseOf(job), status: 'sending', cancelRequested: false });
    }
  }

  /** What a later session needs to insert this job if the window closes first. */
  private remember(jobId: string, job: Job): void {
    this.ports.plugin({
      type: 'remember-job',
      job: {
        jobId,
        kind: job.kind,
        requestId: job.requestId,
        layout: job.layout,
        seed: job.seed,
        prompt: job.prompt,
        queuedAt: this.ports.now(),
        insertedFrameId: null,
        edit: job.edit,
        lineage: job.lineage,
      },
    });
  }

  /** The bridge's `generate` for a job, with the current settings. */
  private generateMessage(job: Job, layout: GenerateMessage['layout'], base?: GenerateMessage['base']): GenerateMessage {
    const { settings } = this.current;
    return {
      type: 'generate',
      requestId: job.requestId,
      prompt: job.prompt,
      layout,
      params: {
        resolution: Math.max(layout.width, layout.height),
        steps: settings.steps,
        guidance: settings.guidance,
        trueCfg: settings.trueCfg,
        seed: job.seed,
      },
      ...(base && { base }),
    };
  }

  /** Hands the main thread each layer the job needs and it has not had yet (one message per layer). */
  private postLayers(job: Job): void {
    const layers = this.layers.get(job.requestId) ?? new Map<number, Uint8Array>();
    let posted = this.posted.get(job.requestId);
    if (!posted) this.posted.set(job.requestId, (posted = new Set()));
    for (const index of neededLayers(job)) {
      const png = layers.get(index);
      if (!png || posted.has(index)) continue;
      posted.add(index);
      this.ports.plugin({ type: 'layer-image', requestId: job.requestId, index, png });
    }
  }

  /** Asks the main thread to place a finished job: it does once it holds every image the job needs. */
  private startInsert(job: FinishedJob, place: InsertPlace): void {
    this.replaceJob({ ...finishedBase(job), status: 'inserting' });
    this.ports.plugin({
      type: 'insert',
      requestId: job.requestId,
      jobId: job.jobId,
      layout: job.layout,
      seed: job.seed,
      model: job.result.model,
      prompt: job.prompt,
      tiny: job.result.tiny,
      edit: job.edit,
      asNew: job.asNew,
      place,
      selectionStamp: job.selectionStamp,
    });
  }

  private letGo(requestId: string): void {
    this.layers.delete(requestId);
    this.posted.delete(requestId);
  }

  private setImage(key: string, png: Uint8Array): void {
    const old = this.current.images[key];
    if (old) this.ports.revokeUrl(old);
    this.set({ images: { ...this.current.images, [key]: this.ports.imageUrl(png) } });
  }
}
