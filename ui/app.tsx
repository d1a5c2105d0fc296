/**
 * The plugin window: connection to the bridge, the selected frames' layouts, the prompt and
 * settings, Generate/Cancel, progress and this session's results. State lives here; the pieces
 * below only draw it.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { MAX_PROMPT_CHARS, MAX_SEED, type ImageFrame } from '../bridge/protocol.ts';
import type { PluginToUi, SelectionItem } from '../plugin/messages.ts';
import { DEFAULT_SETTINGS, type Settings } from '../plugin/settings.ts';
import { BridgeClient, type BridgeEvent, type ConnectionState } from './bridge-client.ts';
import { ConnectionPanel } from './connection-panel.tsx';
import { applyBridgeMessage, isActive, jobFor, newJob, type Job } from './jobs.ts';
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
  const layersRef = useRef(new Map<string, Map<number, Uint8Array>>());

  const setImage = (key: string, png: Uint8Array) =>
    setImages((all) => {
      if (all[key]) URL.revokeObjectURL(all[key]);
      return { ...all, [key]: pngUrl(png) };
    });

  const onImage = (frame: ImageFrame) => {
    const job = jobFor(jobsRef.current, { jobId: frame.jobId });
    if (!job) return;
    if (frame.kind === 'preview') return setImage(`preview:${job.requestId}`, frame.png);
    let layers = layersRef.current.get(frame.jobId);
    if (!layers) layersRef.current.set(frame.jobId, (layers = new Map()));
    layers.set(frame.layerIndex, frame.png.slice());
    if (frame.layerIndex === 0) setImage(`thumb:${job.requestId}`, frame.png);
  };

  const onBridgeEvent = (event: BridgeEvent) => {
    if (event.type === 'image') return onImage(event.frame);
    if (event.type === 'error' && !jobFor(jobsRef.current, event)) {
      setNotice(errorText(event));
      return;
    }
    const next = applyBridgeMessage(jobsRef.current, event);
    jobsRef.current = next;
    setJobs(next);
    // Layers stream in before `done`; a job that ends in an error drops the ones received.
    if (event.type === 'error' && event.jobId !== undefined) layersRef.current.delete(event.jobId);
    if (event.type === 'done') {
      const job = jobFor(next, event);
      const layers = layersRef.current.get(event.jobId);
      if (!job || job.status !== 'inserting') return;
      layersRef.current.delete(event.jobId);
      postToPlugin({
        type: 'insert',
        requestId: job.requestId,
        layout: job.layout,
        seed: event.seed,
        tiny: event.tiny,
        layers: [...(layers ?? new Map<number, Uint8Array>())].map(([index, png]) => ({ index, png })),
      });
    }
  };

  const clientRef = useRef<BridgeClient | null>(null);
  if (!clientRef.current) clientRef.current = new BridgeClient(setConnection, (e) => onBridgeEvent(e));
  const client = clientRef.current;

  // Jobs the bridge was running when the connection dropped: ask for them again once paired.
  useEffect(() => {
    if (connection.status !== 'paired') return;
    for (const job of jobsRef.current)
      if (isActive(job) && job.jobId) client.send({ type: 'fetch', jobId: job.jobId });
  }, [connection.status]);

  useEffect(() => {
    const off = onPluginMessage((message: PluginToUi) => {
      switch (message.type) {
        case 'init':
          setSettings(message.settings);
          setLoaded(true);
          if (message.settings.token) client.connect(message.settings.bridgeUrl, message.settings.token);
          return;
        case 'selection':
          setItems(message.items);
          return;
        case 'inserted':
          setJobs((all) =>
            all.map((j) => (j.requestId === message.requestId ? { ...j, status: 'inserted', insertedName: message.frameName } : j)),
          );
          return;
        case 'insert-failed':
          setJobs((all) =>
            all.map((j) => (j.requestId === message.requestId ? { ...j, status: 'failed', error: message.message } : j)),
          );
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
  const frames = items.filter((i): i is Extract<SelectionItem, { ok: true }> => i.ok);
  useEffect(() => {
    if (!promptEdited) setPrompt(frames[0]?.draft ?? '');
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
      ? 'Select one or more frames on the canvas.'
      : !promptText && !frames.every((f) => f.draft)
        ? 'Write a prompt.'
        : promptText.length > MAX_PROMPT_CHARS
          ? `The prompt is longer than ${MAX_PROMPT_CHARS} characters.`
          : null;

  const generate = () => {
    if (blocker) return;
    setNotice(null);
    const created: Job[] = [];
    for (const frame of frames) {
      const text = promptEdited && promptText ? promptText : frame.draft;
      const seed = settings.seedMode === 'random' ? randomSeed() : settings.seed;
      const job = newJob(nextRequestId(), frame.layout, text, seed);
      const sent = client.send({
        type: 'generate',
        requestId: job.requestId,
        prompt: text,
        layout: frame.layout.layout,
        params: {
          resolution: Math.max(frame.layout.layout.width, frame.layout.layout.height),
          steps: settings.steps,
          guidance: settings.guidance,
          trueCfg: settings.trueCfg,
          seed,
        },
      });
      created.push(sent ? job : { ...job, status: 'failed', error: 'The connection to the bridge was lost. Reconnect, then generate again.' });
    }
    const next = [...created, ...jobsRef.current];
    jobsRef.current = next;
    setJobs(next);
  };

  const cancel = () => {
    const next = jobsRef.current.map((job) => {
      if (!isActive(job)) return job;
      if (job.jobId) client.send({ type: 'cancel', jobId: job.jobId });
      return { ...job, cancelRequested: true };
    });
    jobsRef.current = next;
    setJobs(next);
  };

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
            {frames.length === 0 ? ' · none' : ` · ${frames.length} frame${frames.length > 1 ? 's' : ''}`}
          </span>
        </h2>
        {items.length === 0 && <p class="muted">Select a frame. Each visible layer in it becomes a generated layer.</p>}
        {items.map((item) =>
          item.ok ? (
            <LayoutPreview key={item.layout.frameId} layout={item.layout} note={item.note} />
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

      <JobList jobs={jobs} images={images} tiny={connection.status === 'paired' && connection.welcome.tiny} />
    </main>
  );
}
