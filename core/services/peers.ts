/**
 * The peer table: which peers this node is connected to (the relay aside), whether directly (WebRTC, or a
 * peer's own listener) or only through the relay, and the round-trip time libp2p's connection monitor measured.
 */
import type { Connection } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Libp2pNode } from '../platform.ts';
import { Store } from '../store.ts';

export interface PeerView {
  peerId: string;
  direct: boolean;
  rttMs: number | null;
}

export interface PeerTableComponents {
  libp2p: Libp2pNode;
  /** The relays' peer ids: a link to one is not a peer. */
  relayPeers: readonly string[];
}

/**
 * A connection is direct when it is not limited (relayed) and goes over WebRTC or a plain transport. Outbound
 * WebRTC connections still show `p2p-circuit` in their address (P2P.md pitfall 6), hence the /webrtc test first.
 */
export function isDirect(connection: { limits?: unknown; remoteAddr: { toString(): string } }): boolean {
  if (connection.limits != null) return false;
  const addr = connection.remoteAddr.toString();
  return addr.includes('/webrtc') || !addr.includes('/p2p-circuit');
}

export class PeerTable {
  readonly peers = new Store<readonly PeerView[]>([]);
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly refresh = () => this.recompute();

  constructor(private readonly components: PeerTableComponents) {}

  start(): void {
    const libp2p = this.components.libp2p;
    for (const event of ['connection:open', 'connection:close', 'peer:disconnect'] as const)
      libp2p.addEventListener(event, this.refresh);
    // RTTs change without an event.
    this.timer = setInterval(this.refresh, 1000);
  }

  stop(): void {
    const libp2p = this.components.libp2p;
    for (const event of ['connection:open', 'connection:close', 'peer:disconnect'] as const)
      libp2p.removeEventListener(event, this.refresh);
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Peer ids this node reaches over a direct connection. */
  direct(): string[] {
    return this.peers
      .get()
      .filter((p) => p.direct)
      .map((p) => p.peerId);
  }

  directConnection(peer: string): Connection | undefined {
    return this.components.libp2p
      .getConnections(peerIdFromString(peer))
      .find((c) => isDirect(c) && c.status === 'open');
  }

  private recompute(): void {
    const seen = new Map<string, PeerView>();
    for (const c of this.components.libp2p.getConnections()) {
      const peer = c.remotePeer.toString();
      if (this.components.relayPeers.includes(peer) || c.status !== 'open') continue;
      const direct = isDirect(c);
      const prev = seen.get(peer);
      if (!prev || (direct && !prev.direct)) seen.set(peer, { peerId: peer, direct, rttMs: c.rtt ?? null });
    }
    const peers = [...seen.values()].sort((a, b) => a.peerId.localeCompare(b.peerId));
    if (JSON.stringify(peers) !== JSON.stringify(this.peers.get())) this.peers.set(peers);
  }
}
