/** Per-peer protections for a request handler: freshness, replay and rate limits. Pure; time is passed in. */
import { MAX_CLOCK_SKEW_MS } from './messages.ts';

/** Remembers request ids for the freshness window, so a replayed request is refused. */
export class ReplayGuard {
  private readonly seen = new Map<string, number>();
  constructor(private readonly windowMs = 2 * MAX_CLOCK_SKEW_MS) {}

  /** 'ok', or why the request must be refused. Records accepted ids. */
  check(from: string, id: string, ts: number, now: number): 'ok' | 'stale' | 'replay' {
    if (Math.abs(now - ts) > MAX_CLOCK_SKEW_MS) return 'stale';
    this.prune(now);
    const key = `${from}/${id}`;
    if (this.seen.has(key)) return 'replay';
    this.seen.set(key, now + this.windowMs);
    return 'ok';
  }

  private prune(now: number) {
    for (const [key, expiry] of this.seen) {
      if (expiry > now) break; // insertion order is expiry order
      this.seen.delete(key);
    }
  }
}

/** Token bucket per peer: `rate` requests per second with bursts of `burst`. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly rate = 50,
    private readonly burst = 100,
  ) {}

  take(peer: string, now: number): boolean {
    const b = this.buckets.get(peer) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    this.buckets.set(peer, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  forget(peer: string) {
    this.buckets.delete(peer);
  }
}
