/** Rate limits as plain state machines over a clock; the server supplies `now`. */

export interface GuessLimits {
  /** Wrong tokens within `windowMs` that are answered at once. */
  free: number;
  windowMs: number;
  /** Delay of the first answer beyond the free ones; doubles with each further wrong token. */
  delayMs: number;
  maxDelayMs: number;
}

/**
 * Slows token guessing for everyone at once, and never the holder of the right token (the
 * server checks the token first and welcomes it without asking this). Counting per address
 * would let any local process, a web page included, lock the designer out: every local client
 * shares 127.0.0.1. The first `free` wrong tokens within the window are answered at once; the
 * answer to each further one waits `delayMs * 2^(n - free - 1)`, at most `maxDelayMs`. With one
 * guess per connection and a bounded number of connections, guessing a 32-byte token stays
 * hopeless; a stranger's guesses only slow the strangers' answers.
 */
export class GuessThrottle {
  private failures: number[] = [];
  constructor(private readonly limits: GuessLimits) {}

  /** Records a wrong token at `now`; returns how long to wait before answering it. */
  fail(now: number): number {
    const { free, windowMs, delayMs, maxDelayMs } = this.limits;
    this.failures = this.failures.filter((t) => now - t < windowMs);
    this.failures.push(now);
    // Bounded: beyond the count that reaches maxDelayMs, older entries change nothing.
    const cap = free + Math.ceil(Math.log2(Math.max(2, maxDelayMs / Math.max(1, delayMs)))) + 1;
    if (this.failures.length > cap) this.failures.splice(0, this.failures.length - cap);
    const beyond = this.failures.length - free;
    return beyond <= 0 ? 0 : Math.min(maxDelayMs, delayMs * 2 ** (beyond - 1));
  }
}

/**
 * A token bucket: `capacity` messages at once, refilled at `perSecond`. `charge` bills extra
 * (the time a message took to handle), so a client whose messages are slow to handle cannot
 * earn its budget back from the very time the bridge spent on it: the budget follows arrivals,
 * not the bridge's speed. Debt is capped at one bucket.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly capacity: number,
    private readonly perSecond: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.last = now;
  }

  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Bills `amount` more tokens (may go into debt, at most `capacity`). */
  charge(amount: number, now: number): void {
    this.refill(now);
    this.tokens = Math.max(-this.capacity, this.tokens - amount);
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.capacity, this.tokens + (Math.max(0, now - this.last) / 1000) * this.perSecond);
    this.last = Math.max(this.last, now);
  }
}
