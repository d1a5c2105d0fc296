/**
 * The WebSocket client that speaks the bridge protocol (bridge/protocol/): pairs with `hello`, sends jobs, and hands
 * every bridge message (and every decoded image frame) to the app. Knows nothing of Figma.
 */
import { PROTOCOL_VERSION, type BridgeMessage, type ClientMessage, type WelcomeMessage } from '../bridge/protocol/messages.ts';
import { decodeImageFrame, type ImageFrame } from '../bridge/protocol/image-frame.ts';

export type ConnectionState =
  | { status: 'idle' }
  | { status: 'connecting'; url: string }
  | { status: 'paired'; url: string; welcome: WelcomeMessage }
  | { status: 'wrong-token'; url: string; message: string }
  | { status: 'unreachable'; url: string }
  /** Figma's content security policy refused the address: it is not in manifest.json's networkAccess. */
  | { status: 'blocked'; url: string }
  | { status: 'refused'; url: string; message: string }
  | { status: 'bad-address'; message: string };

export type BridgeEvent = BridgeMessage | { type: 'image'; frame: ImageFrame };

export const CLIENT_NAME = 'ART for Figma plugin';

/** What is wrong with an address, or null. Figma only lets the plugin reach ws:// or wss://. */
export function addressProblem(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `“${url}” is not an address. Use the form ws://localhost:8765.`;
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:')
    return `The address must start with ws:// (or wss://), like ws://localhost:8765.`;
  return null;
}

/** The origin of a ws(s) address as a CSP report names it (`ws://host:port`), or null. */
function originOf(url: string): string | null {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return null;
  }
}

export class BridgeClient {
  private socket: WebSocket | null = null;
  private state: ConnectionState = { status: 'idle' };
  /** Origins Figma's policy refused (reported by `securitypolicyviolation`, before or after the close). */
  private readonly blocked = new Set<string>();

  constructor(
    private readonly onState: (state: ConnectionState) => void,
    private readonly onEvent: (event: BridgeEvent) => void,
  ) {
    // Figma enforces the manifest's networkAccess as a content security policy ("Figma blocks the
    // requests and throws content-security policy (CSP) errors", Version 1 Update 66); the browser
    // reports each refusal, and a refused socket otherwise looks like one nobody answered.
    if (typeof document !== 'undefined')
      document.addEventListener('securitypolicyviolation', (event) => {
        const origin = originOf(event.blockedURI);
        if (!origin) return;
        this.blocked.add(origin);
        const s = this.state;
        if ((s.status === 'connecting' || s.status === 'unreachable') && originOf(s.url) === origin)
          this.setState({ status: 'blocked', url: s.url });
      });
  }

  get current(): ConnectionState {
    return this.state;
  }

  private setState(state: ConnectionState): void {
    this.state = state;
    this.onState(state);
  }

  connect(url: string, token: string): void {
    this.disconnect();
    const problem = addressProblem(url);
    if (problem) return this.setState({ status: 'bad-address', message: problem });
    let socket: WebSocket;
    try {
      socket = new WebSocket(url);
    } catch (error) {
      return this.setState({ status: 'bad-address', message: error instanceof Error ? error.message : String(error) });
    }
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.setState({ status: 'connecting', url });

    socket.onopen = () => {
      this.sendRaw(socket, { type: 'hello', protocol: PROTOCOL_VERSION, token: token.trim() || '-', client: CLIENT_NAME });
    };
    socket.onmessage = (event: MessageEvent) => {
      if (this.socket !== socket) return;
      if (event.data instanceof ArrayBuffer) {
        try {
          this.onEvent({ type: 'image', frame: decodeImageFrame(new Uint8Array(event.data)) });
        } catch (error) {
          console.warn('ART: ignoring a binary frame:', error);
        }
        return;
      }
      let message: BridgeMessage;
      try {
        message = JSON.parse(String(event.data)) as BridgeMessage;
      } catch {
        return;
      }
      if (typeof message !== 'object' || message === null || typeof message.type !== 'string') return;
      this.handle(url, message);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      const s = this.state.status;
      // Closed before pairing and without a reason: nothing (or no bridge) listens there.
      if (s === 'connecting') {
        const origin = originOf(url);
        this.setState(origin && this.blocked.has(origin) ? { status: 'blocked', url } : { status: 'unreachable', url });
      }
      else if (s === 'paired') this.setState({ status: 'unreachable', url });
    };
  }

  private handle(url: string, message: BridgeMessage): void {
    if (message.type === 'welcome') {
      this.setState({ status: 'paired', url, welcome: message });
    } else if (message.type === 'error' && this.state.status === 'connecting') {
      if (message.code === 'unauthorized' || message.code === 'rate_limited')
        this.setState({ status: 'wrong-token', url, message: message.message });
      else this.setState({ status: 'refused', url, message: message.message });
      return;
    }
    this.onEvent(message);
  }

  disconnect(): void {
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      socket.close();
    }
    if (this.state.status !== 'idle') this.setState({ status: 'idle' });
  }

  private sendRaw(socket: WebSocket, message: ClientMessage): boolean {
    if (socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  /** Sends a message once paired; false if there is no paired connection. */
  send(message: ClientMessage): boolean {
    if (!this.socket || this.state.status !== 'paired') return false;
    return this.sendRaw(this.socket, message);
  }
}
