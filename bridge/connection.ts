/**
 * One WebSocket client: whether it has paired, its message budget, and sending that skips a
 * socket that is no longer open.
 */
import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import type { BridgeMessage, ErrorCode } from './protocol.ts';
import { TokenBucket } from './rate-limit.ts';
import type { Subscriber } from './jobs.ts';

export interface MessageBudget {
  /** Messages a connection may send at once, and per second after that. */
  burst: number;
  perSecond: number;
}

export class Connection implements Subscriber {
  readonly id = randomUUID();
  paired = false;
  /** The protocol version this client's `hello` named (set when it pairs). */
  protocol = 0;
  private readonly bucket: TokenBucket;
  private lastRateWarning = 0;
  private dropped = 0;

  constructor(
    private readonly ws: WebSocket,
    readonly address: string,
    private readonly budget: MessageBudget,
  ) {
    this.bucket = new TokenBucket(budget.burst, budget.perSecond, Date.now());
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(message: BridgeMessage): void {
    if (this.open) this.ws.send(JSON.stringify(message));
  }

  sendFrame(frame: Uint8Array): void {
    if (this.open) this.ws.send(frame);
  }

  sendError(code: ErrorCode, message: string, ids: { requestId?: string; jobId?: string } = {}): void {
    this.send({ type: 'error', code, message, ...ids });
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }

  /**
   * Takes one message from the budget. False: drop the message; the client is warned at most
   * once a second, and a client that keeps flooding is disconnected.
   */
  admit(now: number): boolean {
    if (this.bucket.take(now)) return true;
    this.dropped++;
    if (now - this.lastRateWarning >= 1000) {
      this.lastRateWarning = now;
      this.sendError('rate_limited', `too many messages; at most ${this.budget.perSecond} a second, the rest are dropped`);
    }
    if (this.dropped > this.budget.burst * 10) this.close(1008, 'message flood');
    return false;
  }
}
