/**
 * The WebSocket client that speaks bridge/protocol.ts: pairs with `hello`, sends jobs, and hands
 * every bridge message (and every decoded image frame) to the app. Knows nothing of Figma.
 */
import {
  PROTOCOL_VERSION,
  decodeImageFrame,
  type BridgeMessage,
  type ClientMessage,
  type ImageFrame,
  type WelcomeMessage,
} from '../bridge/protocol.ts';

export type ConnectionState =
  | { status: 'idle' }
  | { status: 'connecting'; url: string }
  | { status: 'paired'; url: string; welcome: WelcomeMessage }
  | { status: 'wrong-token'; url: string; message: string }
  | { status: 'unreachable'; url: string }
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

export class BridgeClient {
  private socket: WebSocket | null = null;
  private state: ConnectionState = { status: 'idle' };

  constructor(
    private readonly onState: (state: ConnectionState) => void,
    private readonly onEvent: (event: BridgeEvent) => void,
  ) {}

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
      if (s === 'connecting') this.setState({ status: 'unreachable', url });
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
