/**
 * Who dials whom: the lower peer id dials, so two tabs never race to connect to each other; at most
 * `concurrency` dials at once (12 tabs dialling everyone at once never converged on 2 cores, P2P.md pitfall 5);
 * each dial has a timeout; failures back off exponentially per peer; and at most `maxDials` dials start per
 * `dialWindowMs` whatever the peer list says (a list full of unreachable peers, or peers churning, must not turn
 * every node into a source of dial storms); a dial over the cap waits in the queue for the next window. If a
 * peer stays unconnected for `fallbackMs` although it is the other side's turn (its dials keep failing, or it
 * does not dial), this side dials too: otherwise one side's trouble would keep the pair apart for good.
 */
import { RateLimiter, type RateLimitError } from '@libp2p/utils';
import { boundedBy } from './bounded.ts';

/** Dials a node starts at most per window, by default: enough to reach TARGET_PEERS in the first window. */
export const MAX_DIALS_PER_WINDOW = 16;
export const DIAL_WINDOW_MS = 10_000;
/** How long one dial may take (a WebRTC dial through a busy relay takes several relay round trips). */
export const DIAL_TIMEOUT_MS = 15_000;

export interface DialerOptions {
  self: string;
  concurrency?: number;
  /** Dial one peer directly; resolves when connected, rejects on failure. */
  dial: (peer: string, signal: AbortSignal) => Promise<void>;
  isConnected: (peer: string) => boolean;
  /** Whether this node is the one to dial `peer`; default: the lower peer id dials. */
  shouldDial?: (peer: string) => boolean;
  timeoutMs?: number;
  /** How long a listed peer may stay unconnected before this node dials it although it is not its turn. */
  fallbackMs?: number;
  /**
   * Stop dialling once this many peers are connected: gossipsub's mesh carries records across a network of any
   * size, so nobody needs everyone (libp2p's own bound, higher, caps what others dial in).
   */
  targetPeers?: number;
  /** How many peers are connected now (for `targetPeers`). */
  connectedCount?: () => number;
  /** Dials started at most per `dialWindowMs` (a fixed window; default MAX_DIALS_PER_WINDOW per DIAL_WINDOW_MS). */
  maxDials?: number;
  dialWindowMs?: number;
  now?: () => number;
}

/** Below this many connected peers a node dials whoever is listed, whoever's turn it is. */
const STARVING = 3;

export class Dialer {
  private readonly inFlight = new Set<string>();
  private readonly backoff = new Map<string, { until: number; delay: number }>();
  private readonly queue: string[] = [];
  /** When each listed peer was first seen unconnected (cleared once connected). */
  private readonly waitingSince = new Map<string, number>();
  private readonly concurrency: number;
  /** The dial-rate cap (its clock is the real one: Date.now and timers). */
  private readonly dialRate: RateLimiter;
  /** Set while queued dials wait for the next window. */
  private nextWindow: ReturnType<typeof setTimeout> | null = null;
  failures = 0;
  /** Why the last failed dial failed (diagnostics). */
  lastFailure: string | null = null;
  /** How many times a dial had to wait for the rate cap. */
  rateLimited = 0;

  constructor(private readonly options: DialerOptions) {
    this.concurrency = options.concurrency ?? 3;
    this.dialRate = new RateLimiter({
      points: options.maxDials ?? MAX_DIALS_PER_WINDOW,
      duration: (options.dialWindowMs ?? DIAL_WINDOW_MS) / 1000,
    });
  }

  describe() {
    return {
      inFlight: this.inFlight.size,
      queued: this.queue.length,
      backingOff: this.backoff.size,
      failures: this.failures,
      lastFailure: this.lastFailure,
      rateLimited: this.rateLimited,
    };
  }

  /** Forget the queue and stop waiting for the next window (dials in flight finish on their own). */
  stop(): void {
    this.queue.length = 0;
    if (this.nextWindow) clearTimeout(this.nextWindow);
    this.nextWindow = null;
  }

  private now() {
    return (this.options.now ?? Date.now)();
  }

  /** Offer the current peer list; dials the ones this node is responsible for, up to `targetPeers`. */
  offer(peers: readonly string[]): void {
    const listed = new Set(peers);
    const connected = this.options.connectedCount?.() ?? 0;
    let room = (this.options.targetPeers ?? Infinity) - connected - this.inFlight.size - this.queue.length;
    const starving = this.options.connectedCount !== undefined && connected < STARVING;
    for (const peer of this.waitingSince.keys()) if (!listed.has(peer)) this.waitingSince.delete(peer);
    for (const peer of peers) {
      if (peer === this.options.self) continue;
      if (this.options.isConnected(peer)) {
        this.waitingSince.delete(peer);
        continue;
      }
      const since = this.waitingSince.get(peer) ?? this.now();
      this.waitingSince.set(peer, since);
      const myTurn = this.options.shouldDial?.(peer) ?? this.options.self < peer;
      const overdue = this.now() - since >= (this.options.fallbackMs ?? 20_000);
      if (!myTurn && !overdue && !starving) continue;
      if (this.inFlight.has(peer) || this.queue.includes(peer)) continue;
      if ((this.backoff.get(peer)?.until ?? 0) > this.now()) continue;
      if (room <= 0) break;
      room--;
      this.queue.push(peer);
    }
    this.pump();
  }

  private pump() {
    while (this.inFlight.size < this.concurrency && this.queue.length > 0 && this.nextWindow === null) {
      const peer = this.queue[0]!;
      // It may have connected (dialling this node) while it waited.
      if (this.options.isConnected(peer)) {
        this.queue.shift();
        continue;
      }
      try {
        this.dialRate.consume('dials');
      } catch (err) {
        this.rateLimited++;
        const wait = Math.max(1, (err as RateLimitError).msBeforeNext);
        this.nextWindow = setTimeout(() => {
          this.nextWindow = null;
          this.pump();
        }, wait);
        // A waiting dial must not keep a Node process alive (browsers' timers have no unref).
        (this.nextWindow as { unref?: () => void }).unref?.();
        return;
      }
      this.queue.shift();
      this.inFlight.add(peer);
      const signal = AbortSignal.timeout(this.options.timeoutMs ?? DIAL_TIMEOUT_MS);
      // A dial that ignores its signal must not hold a slot forever: with every slot held, nobody new is dialled.
      boundedBy(this.options.dial(peer, signal), signal, 'dial timed out')
        .then(() => this.backoff.delete(peer))
        .catch((err: unknown) => {
          this.failures++;
          this.lastFailure = `${peer}: ${(err as Error)?.message ?? String(err)}`;
          const delay = Math.min(30_000, (this.backoff.get(peer)?.delay ?? 500) * 2);
          this.backoff.set(peer, { until: this.now() + delay, delay });
        })
        .finally(() => {
          this.inFlight.delete(peer);
          this.pump();
        });
    }
  }
}
