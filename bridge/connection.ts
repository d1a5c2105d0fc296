/**
 * One WebSocket client: where it stands with pairing, its message budget, its heartbeat, and sending
 * that respects how fast it reads (a client that stops reading is disconnected, not buffered for).
 */
import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import { MAX_FLAT_IMAGE_BYTES } from '../domain/layout.ts';
import type { BridgeMessage, ErrorCode } from './protocol/messages.ts';
import { TokenBucket } from './rate-limit.ts';
import type { Subscriber } from './job-lifecycle.ts';
import type { PendingUpload } from './upload.ts';

export interface ConnectionLimits {
  /** Messages a connection may send at once, and per second after that. */
  burst: number;
  perSecond: number;
  /** Delivery of layers waits while more than this is unsent to the client. */
  highWaterBytes: number;
  /** A client whose unsent bytes stay above the high-water mark this long is disconnected. */
  drainTimeoutMs: number;
  /** Unsent bytes beyond this disconnect the client at once (what progress and previews may pile up). */
  maxBufferedBytes: number;
}

/**
 * Where a connection stands with pairing (pairing.ts moves it): `unpaired` until a hello with the
 * right token; `refused` once a failed hello was answered (or is about to be): everything else it
 * sends is ignored, and it is closed.
 */
export type PairingState = 'unpaired' | 'paired' | 'refused';

/**
 * Close codes the bridge sends when it closes a connection on purpose (bridge/PROTOCOL.md): the
 * client sees a code and a reason, never 1006 (abnormal closure, as after a crash).
 */
export const CLOSE = {
  /** The bridge is shutting down. */
  goingAway: 1001,
  /** The client broke a rule (no hello, a refused hello, a flood, no pong, not reading). */
  policy: 1008,
  /** The bridge is full: try again later. */
  tryAgainLater: 1013,
} as const;

/** A peer that does not answer a close frame within this is dropped (it may not be reading at all). */
const CLOSE_GRACE_MS = 1000;

export class Connection implements Subscriber {
  readonly id = randomUUID();
  readonly openedAt = Date.now();
  private pairing: PairingState = 'unpaired';
  /** Answered the last heartbeat ping. */
  alive = true;
  /** Uploaded images of this client on the decoder's thread. */
  decoding = 0;
  /** `fetch`es of stored jobs this client has in flight. */
  fetching = 0;
  private readonly bucket: TokenBucket;
  /** Dropped messages, leaking away at `perSecond`: a flood that lasts closes the socket, an
   *  occasional burst from a long-lived client does not add up. */
  private readonly drops: TokenBucket;
  private lastRateWarning = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** What the next frame must be: the image a `decompose` announced (see upload.ts). */
  private upload: { pending: PendingUpload; timer: NodeJS.Timeout } | undefined;

  constructor(
    private readonly ws: WebSocket,
    readonly address: string,
    private readonly limits: ConnectionLimits,
    private readonly log: (line: string) => void = () => {},
  ) {
    const now = Date.now();
    this.bucket = new TokenBucket(limits.burst, limits.perSecond, now);
    this.drops = new TokenBucket(limits.burst * 10, limits.perSecond, now);
    ws.on('pong', () => (this.alive = true));
    ws.on('close', () => {
      for (const t of this.timers) clearTimeout(t);
      this.timers.clear();
      this.takeUpload(); // a pending image dies with its connection: nothing of it is kept
    });
  }

  get state(): PairingState {
    return this.pairing;
  }

  /** A hello with the right token (again, for a paired one). A refused connection stays refused. */
  pair(): void {
    if (this.pairing === 'refused') return;
    this.pairing = 'paired';
    if (!this.allowFrames(MAX_FLAT_IMAGE_BYTES)) this.log('this ws version has no per-socket frame limit: uploads over 1 MiB will be refused (1009)');
  }

  /** A failed hello: nothing more is read from this connection. */
  refuse(): void {
    this.pairing = 'refused';
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(message: BridgeMessage): void {
    if (this.open) this.ws.send(JSON.stringify(message));
    this.checkBuffer();
  }

  sendFrame(frame: Uint8Array): void {
    if (this.open) this.ws.send(frame);
    this.checkBuffer();
  }

  sendError(code: ErrorCode, message: string, ids: { requestId?: string; jobId?: string } = {}): void {
    this.send({ type: 'error', code, message, ...ids });
  }

  /** Closes with a code and a reason (at most 123 bytes); a peer that does not answer is dropped soon after. */
  close(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close(code, reason);
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  /**
   * Closes with `code` without waiting for the client's close frame, as ws does for a frame over
   * its own limit (a client that sends too much is not owed a handshake).
   */
  closeNow(code: number, reason: string): void {
    this.ws.close(code, reason);
    const timer = setTimeout(() => this.ws.terminate(), 20);
    timer.unref();
  }

  /** Runs `fn` after `ms` unless the connection closed first. */
  later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.ws.readyState !== WebSocket.CLOSED) fn();
    }, ms);
    this.timers.add(timer);
  }

  /**
   * The next frame is the image of a `decompose` (`pending`); `onLate` runs if no frame came within
   * `ms`. Replaces an earlier pending upload (the caller answered it).
   */
  expectUpload(pending: PendingUpload, ms: number, onLate: (pending: PendingUpload) => void): void {
    this.takeUpload();
    const timer = setTimeout(() => {
      const late = this.takeUpload();
      if (late && this.ws.readyState !== WebSocket.CLOSED) onLate(late);
    }, ms);
    this.upload = { pending, timer };
  }

  /** The pending upload, which the frame now arriving settles (or undefined); the connection expects none after. */
  takeUpload(): PendingUpload | undefined {
    const upload = this.upload;
    if (!upload) return undefined;
    clearTimeout(upload.timer);
    this.upload = undefined;
    return upload.pending;
  }

  /**
   * Lets this (paired) connection send frames of up to `bytes`: uploads are bigger than any text
   * message, and a stranger must not be able to make the bridge buffer that much. ws has one
   * `maxPayload` per server; its per-socket copy is the receiver's `_maxPayload` (ws 8,
   * lib/receiver.js), checked as each frame's length arrives. Returns false if ws has no such field.
   */
  private allowFrames(bytes: number): boolean {
    const receiver = (this.ws as unknown as { _receiver?: { _maxPayload?: unknown } })._receiver;
    if (!receiver || typeof receiver._maxPayload !== 'number') return false;
    receiver._maxPayload = bytes;
    return true;
  }

  /** One heartbeat: a client that did not answer the previous ping is dropped. */
  heartbeat(): void {
    if (!this.alive) {
      this.log(`dropped a client that did not answer a ping (${this.address})`);
      return this.close(CLOSE.policy, 'no answer to ping');
    }
    this.alive = false;
    if (this.open) this.ws.ping();
  }

  /**
   * True once the unsent bytes are at most the high-water mark; false if the client closed, or
   * never got there within `drainTimeoutMs` (it is then disconnected).
   */
  drained(): Promise<boolean> {
    if (!this.open) return Promise.resolve(false);
    if (this.ws.bufferedAmount <= this.limits.highWaterBytes) return Promise.resolve(true);
    return new Promise((resolve) => {
      const started = Date.now();
      const poll = () => {
        if (!this.open) return resolve(false);
        if (this.ws.bufferedAmount <= this.limits.highWaterBytes) return resolve(true);
        if (Date.now() - started >= this.limits.drainTimeoutMs) {
          this.log(`dropped a client that stopped reading (${this.ws.bufferedAmount} bytes unsent for ${this.limits.drainTimeoutMs} ms)`);
          this.close(CLOSE.policy, 'stopped reading: too much unsent');
          return resolve(false);
        }
        setTimeout(poll, 20);
      };
      poll();
    });
  }

  /**
   * Takes one message from the budget. False: drop the message; the client is warned at most
   * once a second, and a client that keeps flooding is disconnected.
   */
  spend(now: number): boolean {
    if (this.bucket.take(now)) return true;
    if (now - this.lastRateWarning >= 1000) {
      this.lastRateWarning = now;
      this.sendError('rate_limited', `too many messages; at most ${this.limits.perSecond} a second, the rest are dropped`);
    }
    if (!this.drops.take(now)) this.close(CLOSE.policy, 'message flood');
    return false;
  }

  /** Bills the time a message took to handle against the budget (see TokenBucket.charge). */
  charge(ms: number, now: number): void {
    this.bucket.charge((ms / 1000) * this.limits.perSecond, now);
  }

  private checkBuffer(): void {
    if (this.ws.readyState !== WebSocket.OPEN || this.ws.bufferedAmount <= this.limits.maxBufferedBytes) return;
    this.log(`dropped a client that stopped reading (${this.ws.bufferedAmount} bytes unsent)`);
    this.close(CLOSE.policy, 'stopped reading: too much unsent');
  }
}
