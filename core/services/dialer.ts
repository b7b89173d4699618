/**
 * Who dials whom: the lower peer id dials, so two tabs never race to connect to each other; at most
 * `concurrency` dials at once (12 tabs dialling everyone at once never converged on 2 cores, P2P.md pitfall 5);
 * each dial has a timeout; failures back off exponentially per peer. If a peer stays unconnected for
 * `fallbackMs` although it is the other side's turn (its dials keep failing, or it does not dial), this side
 * dials too: otherwise one side's trouble would keep the pair apart for good.
 */
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
  failures = 0;

  constructor(private readonly options: DialerOptions) {
    this.concurrency = options.concurrency ?? 3;
  }

  describe() {
    return {
      inFlight: this.inFlight.size,
      queued: this.queue.length,
      backingOff: this.backoff.size,
      failures: this.failures,
    };
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
    while (this.inFlight.size < this.concurrency && this.queue.length > 0) {
      const peer = this.queue.shift()!;
      this.inFlight.add(peer);
      const signal = AbortSignal.timeout(this.options.timeoutMs ?? 15_000);
      // A dial that ignores its signal must not hold a slot forever: with every slot held, nobody new is dialled.
      const timedOut = new Promise<never>((_, reject) =>
        signal.addEventListener('abort', () => reject(new Error('dial timed out')), { once: true }),
      );
      Promise.race([this.options.dial(peer, signal), timedOut])
        .then(() => this.backoff.delete(peer))
        .catch(() => {
          this.failures++;
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
