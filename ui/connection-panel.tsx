/** Bridge address, pairing token, and what the connection is doing, in plain words. */
import type { Settings } from '../plugin/settings.ts';
import type { ConnectionState } from './bridge-client.ts';
import { START_COMMAND, errorText } from './words.ts';

interface Props {
  settings: Settings;
  state: ConnectionState;
  onChange: (change: Partial<Settings>) => void;
  onConnect: () => void;
  onDisconnect: () => void;
}

function isLocalhost(url: string): boolean {
  try {
    return new URL(url).hostname === 'localhost';
  } catch {
    return false;
  }
}

function StatusLine({ state }: { state: ConnectionState }) {
  switch (state.status) {
    case 'idle':
      return <p class="status">Not connected. Paste the token the bridge printed, then Connect.</p>;
    case 'connecting':
      return <p class="status">Connecting to {state.url}…</p>;
    case 'paired': {
      const w = state.welcome;
      return (
        <div>
          <p class="status ok">
            {w.model !== '' ? (
              <>
                Paired · model <strong>{w.model}</strong> on <strong>{w.provider}</strong>
              </>
            ) : (
              <>Paired · no model yet</>
            )}
          </p>
          {w.note && (
            <p class="warning" role="note">
              {w.note}
            </p>
          )}
          {w.tiny && (
            <p class="warning" role="note">
              Tiny test model: its images are random noise. Convert the real ART weights (npm run convert) and start the
              bridge with --model to get real images.
            </p>
          )}
        </div>
      );
    }
    case 'wrong-token':
      return (
        <p class="error" role="alert">
          Wrong token. {errorText({ code: 'unauthorized', message: state.message })}
        </p>
      );
    case 'unreachable':
      return (
        <p class="error" role="alert">
          No bridge is running at {state.url}. Start it in the project folder with <code>{START_COMMAND}</code>, then
          Connect.
          {!isLocalhost(state.url) &&
            ' Figma lets the plugin reach only the addresses listed in its manifest.json (devAllowedDomains); for another machine, an SSH tunnel to localhost is simplest.'}
        </p>
      );
    case 'blocked':
      return (
        <p class="error" role="alert">
          Figma blocked {state.url}: the plugin may reach only the addresses listed in its manifest.json (networkAccess,
          devAllowedDomains; ws://localhost:8765 to 8767 as shipped). Use one of those, or add this address there and
          import the manifest again. For another machine, an SSH tunnel to localhost is simplest.
        </p>
      );
    case 'refused':
      return (
        <p class="error" role="alert">
          The bridge refused the connection: {state.message}
        </p>
      );
    case 'bad-address':
      return (
        <p class="error" role="alert">
          {state.message}
        </p>
      );
  }
}

export function ConnectionPanel({ settings, state, onChange, onConnect, onDisconnect }: Props) {
  const busy = state.status === 'connecting';
  return (
    <section class="panel" aria-label="Bridge">
      <h2>Bridge</h2>
      <div class="row">
        <label class="field grow">
          <span>Address</span>
          <input
            aria-label="Bridge address"
            value={settings.bridgeUrl}
            spellcheck={false}
            onInput={(e) => onChange({ bridgeUrl: e.currentTarget.value.trim() })}
          />
        </label>
        <label class="field grow">
          <span>Token</span>
          <input
            aria-label="Pairing token"
            type="password"
            value={settings.token}
            spellcheck={false}
            autocomplete="off"
            onInput={(e) => onChange({ token: e.currentTarget.value.trim() })}
          />
        </label>
      </div>
      <div class="row">
        {state.status === 'paired' ? (
          <button onClick={onDisconnect}>Disconnect</button>
        ) : (
          <button class="primary-outline" disabled={busy} onClick={onConnect}>
            {state.status === 'idle' ? 'Connect' : 'Connect again'}
          </button>
        )}
        <span data-testid="connection-status" class="sr-status">
          {state.status}
        </span>
      </div>
      <StatusLine state={state} />
    </section>
  );
}
