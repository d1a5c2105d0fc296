/**
 * Admission: which WebSocket upgrades become connections. An origin not allowed is refused at the
 * handshake; when the connection slots (in all, or from one address) are full, the oldest
 * connection that has not paired makes room (closed with 1013, try again later), and paired ones
 * are never pushed out: with only paired ones left, the newcomer is closed the same way. Holds the
 * open connections.
 */
import type { IncomingMessage } from 'node:http';
import { CLOSE, type Connection } from './connection.ts';
import { originAllowed } from './origin.ts';

export interface AdmissionLimits {
  /** WebSocket connections in all, and from one address. */
  maxConnections: number;
  connectionsPerAddress: number;
}

/**
 * `admit`: a connection; `full`: the WebSocket opens and is closed at once with 1013 and `why`
 * (a client sees a code and a reason, not a failed handshake); `refuse`: an HTTP error status.
 */
export type AdmissionVerdict = { kind: 'admit'; address: string } | { kind: 'full'; why: string } | { kind: 'refuse'; status: string; why: string };

/** Close reasons (at most 123 bytes) for a full bridge. */
const MADE_ROOM = 'bridge full: closed to make room for a newer connection; pair sooner or try again later';
const FULL = 'bridge full: every slot holds a paired client; try again later';

export class Admission {
  /** Open connections in the order they opened (making room takes the oldest unpaired). */
  private readonly open = new Set<Connection>();

  constructor(
    private readonly limits: AdmissionLimits,
    /** Origins allowed besides `null` (Figma plugin iframes). */
    private readonly allowOrigins: string[],
    /** Logs what was refused or closed (throttled by the caller). */
    private readonly note: (line: string) => void,
  ) {}

  /** Whether an upgrade request may become a connection; makes room for it if it may. */
  admit(req: IncomingMessage): AdmissionVerdict {
    if (!originAllowed(req.headers.origin, this.allowOrigins)) {
      this.note(`refused a WebSocket from origin ${JSON.stringify(req.headers.origin).slice(0, 80)} (start with --allow-origin to allow it)`);
      return { kind: 'refuse', status: '403 Forbidden', why: 'origin not allowed' };
    }
    const address = req.socket.remoteAddress ?? 'unknown';
    if (!this.makeRoom(address)) {
      this.note('closed new connections: every slot holds a paired client');
      return { kind: 'full', why: FULL };
    }
    return { kind: 'admit', address };
  }

  add(client: Connection): void {
    this.open.add(client);
  }

  remove(client: Connection): void {
    this.open.delete(client);
  }

  /** The open connections, oldest first. */
  connections(): Iterable<Connection> {
    return this.open;
  }

  /** Makes room for one more connection from `address`: false when only paired ones hold the slots. */
  private makeRoom(address: string): boolean {
    const fromAddress = [...this.open].filter((c) => c.address === address);
    const full = this.open.size >= this.limits.maxConnections;
    const addressFull = fromAddress.length >= this.limits.connectionsPerAddress;
    if (!full && !addressFull) return true;
    const victim = (addressFull ? fromAddress : [...this.open]).find((c) => c.state !== 'paired');
    if (!victim) return false;
    this.note('closed the oldest unpaired connections to make room for new ones');
    this.open.delete(victim);
    victim.close(CLOSE.tryAgainLater, MADE_ROOM);
    return true;
  }
}
