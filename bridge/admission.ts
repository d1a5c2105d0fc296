/**
 * Admission: which WebSocket upgrades become connections. An origin not allowed is refused; when
 * the connection slots (in all, or from one address) are full, the oldest connection that has not
 * paired makes room, and paired ones are never pushed out. Holds the open connections.
 */
import type { IncomingMessage } from 'node:http';
import type { Connection } from './connection.ts';
import { originAllowed } from './origin.ts';

export interface AdmissionLimits {
  /** WebSocket connections in all, and from one address. */
  maxConnections: number;
  connectionsPerAddress: number;
}

export type AdmissionVerdict = { ok: true; address: string } | { ok: false; status: string; why: string };

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
      return { ok: false, status: '403 Forbidden', why: 'origin not allowed' };
    }
    const address = req.socket.remoteAddress ?? 'unknown';
    if (!this.makeRoom(address)) return { ok: false, status: '503 Service Unavailable', why: 'too many connections; close another client and retry' };
    return { ok: true, address };
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
    victim.terminate();
    return true;
  }
}
