/**
 * The plugin window: connection to the bridge, the selected frames' layouts, the prompt and
 * settings, Generate/Cancel, progress and this session's results. A view: the jobs and what the
 * plugin and the bridge say live in ui/job-desk.ts; only the prompt field's text is kept here.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { MAX_SEED } from '../domain/params.ts';
import type { ResultSelection } from '../plugin/messages.ts';
import { DecomposePanel } from './decompose-panel.tsx';
import { BridgeClient } from './bridge-client.ts';
import { ConnectionPanel } from './connection-panel.tsx';
import { EditPanel } from './edit-panel.tsx';
import { canDecompose, decomposeBlocker, editBlocker, framesOf, generateBlocker, JobDesk, type DeskPorts, type FlatSelection } from './job-desk.ts';
import { JobList } from './job-list.tsx';
import { isActive } from './jobs.ts';
import { LayoutPreview } from './layout-preview.tsx';
import { onPluginMessage, postToPlugin } from './plugin-channel.ts';
import { SettingsPanel } from './settings-panel.tsx';

let requestCounter = 0;

/** The browser's side of the desk: a WebSocket client, Figma's postMessage, object URLs. */
const BROWSER: DeskPorts = {
  bridge: (onState, onEvent) => new BridgeClient(onState, onEvent),
  plugin: postToPlugin,
  imageUrl: (png) => URL.createObjectURL(new Blob([png.slice()], { type: 'image/png' })),
  revokeUrl: (url) => URL.revokeObjectURL(url),
  randomSeed() {
    const word = new Uint32Array(1);
    crypto.getRandomValues(word);
    return word[0] % (MAX_SEED + 1);
  },
  requestId: () => `r${Date.now().toString(36)}-${++requestCounter}`,
  now: () => Date.now(),
};

export function App() {
  const deskRef = useRef<JobDesk | null>(null);
  const desk = (deskRef.current ??= new JobDesk(BROWSER));
  const [state, setState] = useState(desk.state);
  const [prompt, setPrompt] = useState('');
  const [promptEdited, setPromptEdited] = useState(false);

  useEffect(() => {
    const unsubscribe = desk.subscribe(setState);
    const off = onPluginMessage((message) => desk.fromPlugin(message));
    desk.open();
    return () => {
      off();
      unsubscribe();
      desk.close();
    };
  }, []);

  const { settings, connection, selection: items, jobs, notice } = state;
  const frames = framesOf(items);
  const results = items.filter((i): i is ResultSelection => i.kind === 'result');
  const flats = items.filter((i): i is FlatSelection => i.kind === 'flat');
  // The draft follows the selection until the designer types their own prompt; a result frame's
  // prompt is the one its job used, a flat picture's draft names its frame and marks.
  const draft = frames[0]?.draft ?? flats[0]?.draft ?? results[0]?.result.prompt ?? '';
  useEffect(() => {
    if (!promptEdited) setPrompt(draft);
  }, [items]);

  const field = { text: prompt, edited: promptEdited };
  const blocker = generateBlocker(state, field);
  const generate = () => desk.generate(field);
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

  const paired = connection.status === 'paired';
  const tiny = paired && connection.welcome.tiny;
  const resolutions = paired ? connection.welcome.resolutions : [512, 1024];
  const running = jobs.some(isActive);

  if (!state.loaded) return <main class="app loading">Loading…</main>;

  return (
    <main class="app">
      <ConnectionPanel
        settings={settings}
        state={connection}
        onChange={(change) => desk.changeSettings(change)}
        onConnect={() => desk.connect()}
        onDisconnect={() => desk.disconnect()}
      />

      <section class="panel" aria-label="Selection">
        <h2>
          Selection
          <span class="muted" data-testid="frame-count">
            {frames.length + flats.length + results.length === 0
              ? ' · none'
              : ` · ${[
                  frames.length && `${frames.length} frame${frames.length > 1 ? 's' : ''}`,
                  flats.length && `${flats.length} picture${flats.length > 1 ? 's' : ''} to decompose`,
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
          ) : item.kind === 'flat' ? (
            <DecomposePanel
              key={item.layout.frameId}
              item={item}
              offered={canDecompose(state)}
              blocker={decomposeBlocker(state, field, item)}
              tiny={tiny}
              onDecompose={() => desk.decompose(item, field)}
            />
          ) : item.kind === 'result' ? (
            <EditPanel
              key={item.nodeId}
              item={item}
              version={item.result.lineage.length + 1}
              blocker={editBlocker(state, field, item)}
              tiny={tiny}
              onEdit={(edited, mode) => desk.edit(edited, mode, field)}
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
        <SettingsPanel settings={settings} resolutions={resolutions} onChange={(change) => desk.changeSettings(change)} />
        <div class="actions">
          <button class="primary" disabled={blocker !== null} title={blocker ?? 'Ctrl/Cmd+Enter'} onClick={generate}>
            Generate{frames.length > 1 ? ` ${frames.length} frames` : ''}
          </button>
          <button disabled={!running} onClick={() => desk.cancel()}>
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
        images={state.images}
        tiny={tiny}
        onInsert={(job, place) => desk.insert(job, place)}
        onInsertAsNew={(job) => desk.insertAsNew(job)}
      />
    </main>
  );
}
