/**
 * Peers this node will not talk to for a while: those whose gossip score fell under the graylist threshold
 * (core/services/record-gossip.ts). gossipsub forgets a peer's score when it reconnects (in @libp2p/gossipsub
 * 17.1.1 `addPeer` starts fresh stats, despite `retainScore`), so a flooder that was hung up on would be back in a
 * second with a clean slate. libp2p's connection gater consults this list: no dial to a banned peer, and its
 * inbound connections are refused once encrypted (when its id is known). Bounded: at most MAX_BANS entries.
 */
export const BAN_MS = 10 * 60_000;
const MAX_BANS = 4096;

export class PeerBans {
  private readonly until = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  ban(peer: string, ms = BAN_MS): void {
    const t = this.now();
    if (this.until.size >= MAX_BANS) for (const [p, end] of this.until) if (end <= t) this.until.delete(p);
    // Still full of live bans: the oldest ban makes room (Map order is insertion order).
    if (this.until.size >= MAX_BANS) this.until.delete(this.until.keys().next().value!);
    this.until.set(peer, t + ms);
  }

  has(peer: string): boolean {
    const end = this.until.get(peer);
    if (end === undefined) return false;
    if (end > this.now()) return true;
    this.until.delete(peer);
    return false;
  }

  get size(): number {
    return this.until.size;
  }
}
