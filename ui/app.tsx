/**
 * The plugin window: connection to the bridge, the selected frames' layouts, the prompt and
 * settings, Generate/Cancel, progress and this session's results. State lives here; the pieces
 * below only draw it.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { MAX_PROMPT_CHARS, MAX_SEED } from '../domain/params.ts';
import type { GenerateMessage } from '../bridge/protocol/messages.ts';
import type { ImageFrame } from '../bridge/protocol/image-frame.ts';
import type { InsertPlace, PluginToUi, ResultSelection, SelectionItem } from '../plugin/messages.ts';
import { DEFAULT_SETTINGS, type Settings } from '../plugin/settings.ts';
import { BridgeClient, type BridgeEvent, type ConnectionState } from './bridge-client.ts';
import { ConnectionPanel } from './connection-panel.tsx';
import { EditPanel, type EditMode } from './edit-panel.tsx';
import { applyBridgeMessage, DEFAULT_JOBS_PER_CLIENT, isActive, jobFor, neededLayers, newJob, restoredJob, roomAtBridge, type Job } from './jobs.ts';
import { JobList } from './job-list.tsx';
import { LayoutPreview } from './layout-preview.tsx';
import { onPluginMessage, postToPlugin } from './plugin-channel.ts';
import { SettingsPanel } from './settings-panel.tsx';
import { errorText } from './words.ts';

let requestCounter = 0;
function nextRequestId(): string {
  requestCounter++;
  return `r${Date.now().toString(36)}-${requestCounter}`;
}

function randomSeed(): number {
  const word = new Uint32Array(1);
  crypto.getRandomValues(word);
  return word[0] % (MAX_SEED + 1);
}

function pngUrl(png: Uint8Array): string {
  return URL.createObjectURL(new Blob([png.slice()], { type: 'image/png' }));
}

export function App() {
  const [settings, setSettings] = useState<Settings>(DEFAULT_SETTINGS);
  const [loaded, setLoaded] = useState(false);
  const [connection, setConnection] = useState<ConnectionState>({ status: 'idle' });
  const [items, setItems] = useState<SelectionItem[]>([]);
  const [prompt, setPrompt] = useState('');
  const [promptEdited, setPromptEdited] = useState(false);
  const [jobs, setJobs] = useState<Job[]>([]);
  const [images, setImages] = useState<Record<string, string>>({});
  const [notice, setNotice] = useState<string | null>(null);

  const jobsRef = useRef<Job[]>([]);
  jobsRef.current = jobs;
  /** Per request: each layer's PNG, kept until the main thread confirms the insert (a retry needs them). */
  const layersRef = useRef(new Map<string, Map<number, Uint8Array>>());
  /** Per request: each layer's Figma image hash, from `layer-stored`. */
  const hashesRef = useRef(new Map<string, Map<number, string>>());
  /** Per request: the layers already posted to the main thread (each is made a Figma image once). */
  const postedRef = useRef(new Map<string, Set<number>>());
  const insertSentRef = useRef(new Set<string>());
  /** Held jobs' generate messages in the order they were made, sent as the bridge has room (`roomAtBridge`). */
  const heldRef = useRef(new Map<string, GenerateMessage>());
  const selectionStampRef = useRef(0);

  const setJobsNow = (next: Job[]) => {
    jobsRef.current = next;
    setJobs(next);
  };
  const changeJob = (requestId: string, change: Partial<Job>) =>
    setJobsNow(jobsRef.current.map((j) => (j.requestId === requestId ? { ...j, ...change } : j)));

  const setImage = (key: string, png: Uint8Array) =>
    setImages((all) => {
      if (all[key]) URL.revokeObjectURL(all[key]);
      return { ...all, [key]: pngUrl(png) };
    });

  const sendInsert = (job: Job, place: InsertPlace) => {
    const hashes = hashesRef.current.get(job.requestId) ?? new Map<number, string>();
    insertSentRef.current.add(job.requestId);
    changeJob(job.requestId, { status: 'inserting', error: null });
    postToPlugin({
      type: 'insert',
      requestId: job.requestId,
      jobId: job.jobId ?? '',
      layout: job.layout,
      seed: job.seed,
      model: job.model ?? 'unknown',
      prompt: job.prompt,
      tiny: job.tiny,
      layers: [...hashes].map(([index, hash]) => ({ index, hash })),
      place,
      selectionStamp: job.selectionStamp,
      asNew: job.asNew,
    });
  };

  /** A regeneration's new images onto the result frame it was made from. */
  const sendReplace = (job: Job) => {
    const hashes = hashesRef.current.get(job.requestId) ?? new Map<number, string>();
    insertSentRef.current.add(job.requestId);
    postToPlugin({
      type: 'replace',
      requestId: job.requestId,
      jobId: job.jobId ?? '',
      target: job.edit!,
      layout: job.layout,
      seed: job.seed,
      model: job.model ?? 'unknown',
      prompt: job.prompt,
      tiny: job.tiny,
      layers: neededLayers(job).map((index) => ({ index, hash: hashes.get(index)! })),
    });
  };

  /** Hands the main thread each layer it needs and has not had yet (one message per layer). */
  const postLayers = (job: Job) => {
    const layers = layersRef.current.get(job.requestId);
    if (!layers) return;
    let posted = postedRef.current.get(job.requestId);
    if (!posted) postedRef.current.set(job.requestId, (posted = new Set()));
    for (const index of neededLayers(job)) {
      const png = layers.get(index);
      if (!png || posted.has(index)) continue;
      posted.add(index);
      postToPlugin({ type: 'layer-image', requestId: job.requestId, index, png });
    }
  };

  /** Once the bridge said `done` and the main thread holds every needed image: replace in place, or insert. */
  const applyWhenComplete = (requestId: string) => {
    const job = jobsRef.current.find((j) => j.requestId === requestId);
    if (!job || job.status !== 'inserting' || insertSentRef.current.has(requestId)) return;
    const hashes = hashesRef.current.get(requestId);
    if (!hashes || !neededLayers(job).every((i) => hashes.has(i))) return;
    if (job.edit && !job.asNew) sendReplace(job);
    else sendInsert(job, 'beside');
  };

  /** Insert a job as a new frame: an earlier version, or a regeneration whose frame is gone. */
  const insertAsNew = (job: Job) => {
    insertSentRef.current.delete(job.requestId);
    const next = { ...job, asNew: true, error: null };
    const layers = layersRef.current.get(job.requestId);
    if (layers && job.layout.regions.every((_, i) => layers.has(i))) {
      changeJob(job.requestId, { asNew: true, status: 'inserting', error: null });
      postLayers(next);
      applyWhenComplete(job.requestId);
      return;
    }
    // The layers were let go after the insert: the bridge replays the stored job.
    layersRef.current.delete(job.requestId);
    hashesRef.current.delete(job.requestId);
    postedRef.current.delete(job.requestId);
    if (!job.jobId || !client.send({ type: 'fetch', jobId: job.jobId }))
      return changeJob(job.requestId, { error: 'Connect to the bridge first, then insert again.' });
    changeJob(job.requestId, { asNew: true, status: 'refetching', error: null });
  };

  const onImage = (frame: ImageFrame) => {
    const job = jobFor(jobsRef.current, { jobId: frame.jobId });
    if (!job) return;
    if (frame.kind === 'preview') return setImage(`preview:${job.requestId}`, frame.png);
    let layers = layersRef.current.get(job.requestId);
    if (!layers) layersRef.current.set(job.requestId, (layers = new Map()));
    // A copy of just this PNG (the frame is a view into the whole WebSocket message).
    const png = frame.png.slice();
    layers.set(frame.layerIndex, png);
    if (frame.layerIndex === 0) setImage(`thumb:${job.requestId}`, png);
    // Streamed: one message per layer, so the main thread never holds every PNG at once.
    postLayers(job);
  };

  const onBridgeEvent = (event: BridgeEvent) => {
    if (event.type === 'image') return onImage(event.frame);
    const before = event.type === 'welcome' || event.type === 'pong' ? undefined : jobFor(jobsRef.current, event);
    if (event.type === 'error' && !before) {
      setNotice(errorText(event));
      return;
    }
    setJobsNow(applyBridgeMessage(jobsRef.current, event));
    const job = before && jobsRef.current.find((j) => j.requestId === before.requestId);
    if (!job) return;
    if (event.type === 'queued' && before.jobId === null && job.jobId) {
      // What a later session needs to insert this job if the window closes first.
      postToPlugin({
        type: 'remember-job',
        job: {
          jobId: job.jobId,
          requestId: job.requestId,
          layout: job.layout,
          seed: job.seed,
          prompt: job.prompt,
          queuedAt: Date.now(),
          insertedFrameId: null,
          edit: job.edit,
          lineage: job.lineage,
        },
      });
    }
    if (event.type === 'error' && job.jobId && (event.code === 'unknown_job' || event.code === 'cancelled' || job.restored))
      postToPlugin({ type: 'forget-job', jobId: job.jobId });
    if (event.type === 'done') applyWhenComplete(job.requestId);
    // A job left the bridge's queue: a held one may take its place.
    if (event.type === 'done' || event.type === 'error') releaseHeld();
  };

  const clientRef = useRef<BridgeClient | null>(null);
  if (!clientRef.current) clientRef.current = new BridgeClient(setConnection, (e) => onBridgeEvent(e));
  const client = clientRef.current;

  /** Sends held jobs while the bridge has room for this connection's jobs. */
  const releaseHeld = () => {
    const state = client.current;
    if (state.status !== 'paired') return;
    let room = roomAtBridge(jobsRef.current, state.welcome.jobsPerClient ?? DEFAULT_JOBS_PER_CLIENT);
    for (const [requestId, message] of heldRef.current) {
      if (room-- <= 0 || !client.send(message)) return;
      heldRef.current.delete(requestId);
      changeJob(requestId, { status: 'sending' });
    }
  };

  /** New jobs, newest first in the list: held, then sent as far as the bridge takes them. */
  const submit = (created: Array<{ job: Job; message: GenerateMessage }>) => {
    for (const { job, message } of created) heldRef.current.set(job.requestId, message);
    setJobsNow([...created.map((c) => ({ ...c.job, status: 'held' as const })), ...jobsRef.current]);
    releaseHeld();
  };

  // Jobs the bridge was running when the connection dropped: ask for them again once paired.
  useEffect(() => {
    if (connection.status !== 'paired') return;
    for (const job of jobsRef.current)
      if (isActive(job) && job.jobId) client.send({ type: 'fetch', jobId: job.jobId });
    releaseHeld();
    // Restored jobs the bridge had already finished arrive as `done` with `fetched: true`.
  }, [connection.status]);

  useEffect(() => {
    const off = onPluginMessage((message: PluginToUi) => {
      switch (message.type) {
        case 'init':
          setSettings(message.settings);
          setLoaded(true);
          if (message.jobs.length) setJobsNow([...jobsRef.current, ...message.jobs.map(restoredJob)]);
          if (message.settings.token) client.connect(message.settings.bridgeUrl, message.settings.token);
          return;
        case 'selection':
          selectionStampRef.current = message.stamp;
          setItems(message.items);
          return;
        case 'layer-stored': {
          let hashes = hashesRef.current.get(message.requestId);
          if (!hashes) hashesRef.current.set(message.requestId, (hashes = new Map()));
          hashes.set(message.index, message.hash);
          applyWhenComplete(message.requestId);
          return;
        }
        case 'layer-refused': {
          const job = jobsRef.current.find((j) => j.requestId === message.requestId);
          const name = job?.layout.regions[message.index]?.name ?? `layer ${message.index}`;
          changeJob(message.requestId, {
            status: 'failed',
            error: `Figma could not read the image of layer “${name}” (${message.message}). Generate again.`,
          });
          return;
        }
        case 'inserted':
        case 'replaced':
          layersRef.current.delete(message.requestId);
          hashesRef.current.delete(message.requestId);
          postedRef.current.delete(message.requestId);
          changeJob(message.requestId, { status: 'inserted', insertedName: message.frameName });
          return;
        case 'insert-failed':
          // The layers stay: the designer can insert them again on the page.
          insertSentRef.current.delete(message.requestId);
          changeJob(message.requestId, { status: 'insert-failed', error: message.message });
          return;
      }
    });
    postToPlugin({ type: 'ready' });
    return () => {
      off();
      client.disconnect();
    };
  }, []);

  // The draft follows the selection until the designer types their own prompt.
  const frames = items.filter((i): i is Extract<SelectionItem, { kind: 'frame' }> => i.kind === 'frame');
  const results = items.filter((i): i is ResultSelection => i.kind === 'result');
  // A result frame's prompt is the one its job used.
  const draft = frames[0]?.draft ?? results[0]?.result.prompt ?? '';
  useEffect(() => {
    if (!promptEdited) setPrompt(draft);
  }, [items]);

  const changeSettings = (change: Partial<Settings>) => {
    const next = { ...settings, ...change };
    setSettings(next);
    postToPlugin({ type: 'save-settings', settings: next });
  };

  const paired = connection.status === 'paired';
  const running = jobs.some(isActive);
  const promptText = prompt.trim();
  const blocker = !paired
    ? 'Connect to the bridge first.'
    : frames.length === 0
      ? results.length
        ? 'To generate anew, select the source frame; a result frame is edited above.'
        : 'Select one or more frames on the canvas.'
      : !promptText && !frames.every((f) => f.draft)
        ? 'Write a prompt.'
        : promptText.length > MAX_PROMPT_CHARS
          ? `The prompt is longer than ${MAX_PROMPT_CHARS} characters.`
          : null;

  const generate = () => {
    if (blocker) return;
    setNotice(null);
    submit(
      frames.map((frame) => {
        const text = promptEdited && promptText ? promptText : frame.draft;
        const seed = settings.seedMode === 'random' ? randomSeed() : settings.seed;
        const job = newJob(nextRequestId(), frame.layout, text, seed, selectionStampRef.current);
        return { job, message: generateMessage(job, frame.layout.layout) };
      }),
    );
  };

  /** The bridge's `generate` for a job, with the current settings. */
  const generateMessage = (job: Job, layout: GenerateMessage['layout'], base?: GenerateMessage['base']): GenerateMessage => ({
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
  });

  /** Regenerate some layers of a result frame, or make variations of it; the images land in place. */
  const edit = (item: ResultSelection, mode: EditMode) => {
    const plan = mode === 'selected' ? item.regenerate : item.variations;
    if (!plan.ok || editBlocker) return;
    setNotice(null);
    const text = promptEdited && promptText ? promptText : item.result.prompt;
    // Variations always draw anew; a regeneration follows the seed setting (random by default).
    const seed = mode === 'variations' || settings.seedMode === 'random' ? randomSeed() : settings.seed;
    const target = { frameId: item.nodeId, baseJobId: item.result.jobId, layers: plan.value.layers };
    const lineage = [...item.result.lineage, item.result.jobId];
    const job = newJob(nextRequestId(), plan.value.layout, text, seed, selectionStampRef.current, { target, lineage });
    submit([{ job, message: generateMessage(job, plan.value.layout.layout, { jobId: item.result.jobId, keep: plan.value.keep }) }]);
  };

  const cancel = () => {
    const next = jobsRef.current.map((job): Job => {
      // A refetch is a finished job read again: nothing runs to cancel.
      if (!isActive(job) || job.status === 'refetching') return job;
      if (job.status === 'held') {
        heldRef.current.delete(job.requestId);
        return { ...job, status: 'cancelled' };
      }
      if (job.jobId) client.send({ type: 'cancel', jobId: job.jobId });
      return { ...job, cancelRequested: true };
    });
    jobsRef.current = next;
    setJobs(next);
  };

  const editBlocker = !paired
    ? 'Connect to the bridge first.'
    : promptText.length > MAX_PROMPT_CHARS
      ? `The prompt is longer than ${MAX_PROMPT_CHARS} characters.`
      : null;

  const generateRef = useRef(generate);
  generateRef.current = generate;
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (event.key === 'Enter' && (event.metaKey || event.ctrlKey)) {
        event.preventDefault();
        generateRef.current();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);

  const resolutions = useMemo(
    () => (connection.status === 'paired' ? connection.welcome.resolutions : [512, 1024]),
    [connection],
  );

  if (!loaded) return <main class="app loading">Loading…</main>;

  return (
    <main class="app">
      <ConnectionPanel
        settings={settings}
        state={connection}
        onChange={changeSettings}
        onConnect={() => client.connect(settings.bridgeUrl, settings.token)}
        onDisconnect={() => client.disconnect()}
      />

      <section class="panel" aria-label="Selection">
        <h2>
          Selection
          <span class="muted" data-testid="frame-count">
            {frames.length + results.length === 0
              ? ' · none'
              : ` · ${[
                  frames.length && `${frames.length} frame${frames.length > 1 ? 's' : ''}`,
                  results.length && `${results.length} result${results.length > 1 ? 's' : ''} to edit`,
                ]
                  .filter(Boolean)
                  .join(', ')}`}
          </span>
        </h2>
        {items.length === 0 && <p class="muted">Select a frame. Each visible layer in it becomes a generated layer.</p>}
        {items.map((item) =>
          item.kind === 'frame' ? (
            <LayoutPreview key={item.layout.frameId} layout={item.layout} note={item.note} />
          ) : item.kind === 'result' ? (
            <EditPanel
              key={item.nodeId}
              item={item}
              version={item.result.lineage.length + 1}
              blocker={
                editBlocker ??
                (jobs.some((j) => isActive(j) && j.edit?.frameId === item.nodeId)
                  ? 'This frame is being regenerated; wait for it to finish.'
                  : null)
              }
              tiny={connection.status === 'paired' && connection.welcome.tiny}
              onEdit={edit}
            />
          ) : (
            <p key={item.nodeId} class="error" role="alert">
              {item.message}
            </p>
          ),
        )}
      </section>

      <section class="panel" aria-label="Prompt and settings">
        <label class="field">
          <span>Prompt{frames.length > 1 && !promptEdited ? ' (each frame uses its own draft)' : ''}</span>
          <textarea
            aria-label="Prompt"
            rows={4}
            value={prompt}
            placeholder="Describe the image. Text to show goes in quotes."
            onInput={(e) => {
              setPrompt(e.currentTarget.value);
              setPromptEdited(true);
            }}
          />
        </label>
        {promptEdited && frames[0] && (
          <button
            class="link"
            onClick={() => {
              setPromptEdited(false);
              setPrompt(frames[0].draft);
            }}
          >
            Use the frame’s draft again
          </button>
        )}
        <SettingsPanel settings={settings} resolutions={resolutions} onChange={changeSettings} />
        <div class="actions">
          <button class="primary" disabled={blocker !== null} title={blocker ?? 'Ctrl/Cmd+Enter'} onClick={generate}>
            Generate{frames.length > 1 ? ` ${frames.length} frames` : ''}
          </button>
          <button disabled={!running} onClick={cancel}>
            Cancel
          </button>
        </div>
        {blocker && <p class="muted hint">{blocker}</p>}
        {notice && (
          <p class="error" role="alert">
            {notice}
          </p>
        )}
      </section>

      <JobList
        jobs={jobs}
        images={images}
        tiny={connection.status === 'paired' && connection.welcome.tiny}
        onInsert={(job, place) => {
          // A job that finished while the plugin was closed: its images go where the job says.
          if (job.status !== 'ready') return sendInsert(job, place);
          changeJob(job.requestId, { status: 'inserting', error: null });
          applyWhenComplete(job.requestId);
        }}
        onInsertAsNew={insertAsNew}
      />
    </main>
  );
}
