/**
 * The job queue: waiting jobs are served round-robin across clients, FIFO within a client, so one
 * client's burst cannot starve another. Several jobs may run at once (one per idle pipeline: the
 * caller says which jobs can start now). Pure state, no I/O.
 *
 * Fairness: each job gets a turn number when it is added, one past its client's previous job
 * but never behind the turn now being served; jobs run in (turn, arrival) order.
 */
export interface QueueLimits {
  /** Jobs one client may have waiting or running. */
  perClient: number;
  /** Jobs waiting in all (the running one not counted). */
  global: number;
}

export type AddResult = { ok: true; position: number } | { ok: false; reason: 'client_full' | 'global_full' };

interface Entry<T> {
  id: string;
  client: string;
  turn: number;
  seq: number;
  item: T;
}

export class JobQueue<T> {
  private waiting: Entry<T>[] = [];
  private readonly current = new Map<string, Entry<T>>();
  private servingTurn = 0;
  private seq = 0;
  private readonly lastTurn = new Map<string, number>();

  constructor(private readonly limits: QueueLimits) {}

  add(id: string, client: string, item: T): AddResult {
    let mine = this.waiting.filter((e) => e.client === client).length;
    for (const e of this.current.values()) if (e.client === client) mine++;
    if (mine >= this.limits.perClient) return { ok: false, reason: 'client_full' };
    if (this.waiting.length >= this.limits.global) return { ok: false, reason: 'global_full' };
    const turn = Math.max(this.servingTurn, (this.lastTurn.get(client) ?? -1) + 1);
    this.lastTurn.set(client, turn);
    const entry = { id, client, turn, seq: this.seq++, item };
    // Insert after every entry that comes before it in (turn, seq) order.
    let at = this.waiting.length;
    while (at > 0 && this.waiting[at - 1].turn > turn) at--;
    this.waiting.splice(at, 0, entry);
    return { ok: true, position: this.position(id) as number };
  }

  /**
   * Starts the first waiting job, in turn order, that `canStart` accepts (by default: the first
   * waiting job); returns it. A job that cannot start yet (no idle pipeline for its model) keeps
   * its place.
   */
  start(canStart: (item: T) => boolean = () => true): { id: string; item: T } | undefined {
    const at = this.waiting.findIndex((e) => canStart(e.item));
    if (at < 0) return undefined;
    const [next] = this.waiting.splice(at, 1);
    this.current.set(next.id, next);
    this.servingTurn = Math.max(this.servingTurn, next.turn);
    return { id: next.id, item: next.item };
  }

  /** A running job ended (done, failed or cancelled). */
  finish(id: string): void {
    this.current.delete(id);
  }

  /** Removes a waiting job; false if it is not waiting. */
  remove(id: string): boolean {
    const at = this.waiting.findIndex((e) => e.id === id);
    if (at < 0) return false;
    this.waiting.splice(at, 1);
    return true;
  }

  /** Jobs ahead of `id` (running ones included; 0: it runs now), or undefined if it is neither waiting nor running. */
  position(id: string): number | undefined {
    if (this.current.has(id)) return 0;
    const at = this.waiting.findIndex((e) => e.id === id);
    if (at < 0) return undefined;
    return at + this.current.size;
  }

  /** Running jobs, oldest start first. */
  runningJobs(): { id: string; item: T }[] {
    return [...this.current.values()].map((e) => ({ id: e.id, item: e.item }));
  }

  get runningCount(): number {
    return this.current.size;
  }

  /** Waiting jobs in the order they will run. */
  waitingJobs(): { id: string; item: T }[] {
    return this.waiting.map((e) => ({ id: e.id, item: e.item }));
  }

  get waitingCount(): number {
    return this.waiting.length;
  }
}
