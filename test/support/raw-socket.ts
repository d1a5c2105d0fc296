/**
 * A hostile local process's view of the bridge: raw TCP, hand-written HTTP upgrades and
 * WebSocket frames (RFC 6455 section 5), so tests can send what a well-behaved client library
 * never would (resets mid-handshake, bad opcodes, half frames) and stop reading at will.
 */
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { PROTOCOL_VERSION } from '../../bridge/protocol/messages.ts';

export function upgradeRequest(port: number, headers: Record<string, string> = {}): string {
  const lines = [
    'GET / HTTP/1.1',
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  return lines.join('\r\n') + '\r\n\r\n';
}

export function tcp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** A client frame: masked, as RFC 6455 5.3 requires of clients. */
export function clientFrame(opcode: number, payload: Buffer | string, fin = true): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const len = data.length;
  const head = len < 126 ? Buffer.alloc(2) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  head[0] = (fin ? 0x80 : 0) | opcode;
  if (len < 126) head[1] = 0x80 | len;
  else if (len < 65536) {
    head[1] = 0x80 | 126;
    head.writeUInt16BE(len, 2);
  } else {
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  const mask = randomBytes(4);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = data[i] ^ mask[i & 3];
  return Buffer.concat([head, mask, masked]);
}

export const text = (s: string) => clientFrame(0x1, s);

/** A WebSocket opened by hand; parses the server's (unmasked) frames it reads. */
export class RawWebSocket {
  readonly texts: string[] = [];
  closeCode: number | undefined;
  ended = false;
  /** Answer the bridge's heartbeat pings, as browsers do (RFC 6455 5.5.2); a silent attacker would not. */
  answerPings = true;
  private buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.parse();
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  /** Upgrades; rejects with the HTTP status line when the bridge refuses. */
  static async open(port: number, headers: Record<string, string> = { Origin: 'null' }): Promise<RawWebSocket> {
    const socket = await tcp(port);
    socket.write(upgradeRequest(port, headers));
    const response = await new Promise<{ head: string; rest: Buffer }>((resolve, reject) => {
      let got = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        const end = got.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        resolve({ head: got.subarray(0, end).toString('latin1'), rest: got.subarray(end + 4) });
      };
      socket.on('data', onData);
      socket.once('close', () => reject(new Error(`closed during the upgrade: ${got.toString('latin1')}`)));
    });
    if (!response.head.startsWith('HTTP/1.1 101')) {
      socket.destroy();
      throw new Error(response.head.split('\r\n')[0]);
    }
    const ws = new RawWebSocket(socket);
    if (response.rest.length) socket.emit('data', response.rest);
    return ws;
  }

  /** Opens and pairs: sends hello with `token`, waits for welcome. */
  static async paired(port: number, token: string): Promise<RawWebSocket> {
    const ws = await RawWebSocket.open(port);
    ws.write(text(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, token, client: 'raw' })));
    await ws.until(() => ws.texts.some((t) => t.includes('"welcome"')));
    return ws;
  }

  /** Messages read so far, parsed. */
  messages(): { type: string; code?: string; [key: string]: unknown }[] {
    return this.texts.map((t) => JSON.parse(t) as { type: string });
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Waits until `match` holds (checked after each frame read and at close). */
  async until(match: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!match()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; read so far: ${JSON.stringify(this.texts.slice(-5))}, close ${this.closeCode}, ended ${this.ended}`);
      if (this.ended && !match()) throw new Error(`socket closed; read: ${JSON.stringify(this.texts.slice(-5))}, close ${this.closeCode}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Error codes of the error messages read so far. */
  errorCodes(): string[] {
    return this.texts.flatMap((t) => {
      const m = JSON.parse(t) as { type: string; code?: string };
      return m.type === 'error' && m.code ? [m.code] : [];
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private parse(): void {
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      const opcode = b[0] & 0x0f;
      let len = b[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      if (b.length < at + len) return;
      const payload = b.subarray(at, at + len);
      this.buffer = b.subarray(at + len);
      if (opcode === 0x1) this.texts.push(payload.toString('utf8'));
      else if (opcode === 0x9 && this.answerPings && !this.socket.destroyed) this.socket.write(clientFrame(0xa, Buffer.from(payload)));
      else if (opcode === 0x8) this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }
}
