/**
 * Peer discovery: poll the peer list of every relay this node holds a reservation on, dial the peers this node
 * is responsible for (through the Dialer: bounded, with timeouts and backoff), and hang up on peers that left
 * every list and stopped answering pings. With several relays, losing one loses nothing: the others still list
 * and signal for this node.
 */
import type { Connection } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { lpStream } from '@libp2p/utils';
import type { Multiaddr } from '@multiformats/multiaddr';
import { decodeFrame, MAX_FRAME_BYTES, peerListSchema } from '../../shared/p2p/messages.ts';
import { PROTOCOLS } from '../../shared/names.ts';
import type { Libp2pNode, Platform } from '../platform.ts';
import { Store } from '../store.ts';
import { Dialer, DIAL_TIMEOUT_MS } from './dialer.ts';
import type { PeerTable } from './peers.ts';
import type { RelayLink } from './relay-link.ts';

/** Peers a node dials from the relays' samples and keeps (gossipsub's mesh needs a handful; D is 6). */
export const TARGET_PEERS = 10;
/** An on-demand connection (to a miner asked, say) unused this long is closed. */
const ON_DEMAND_IDLE_MS = 60_000;
/** Peer-list requests a relay may leave unanswered in a row before its connection is dropped and dialled again. */
export const UNANSWERED_BEFORE_REDIAL = 10;

/**
 * A relayed (limited) connection open this long with no stream on it is spent: it carried the signalling of a
 * WebRTC dial that has connected or failed by now (a dial takes at most DIAL_TIMEOUT_MS). Nothing else of ours
 * runs over the relay.
 */
export const SPENT_CIRCUIT_MS = DIAL_TIMEOUT_MS;

/**
 * The spent circuits among `connections`. libp2p keeps a dial's relayed connection open until the relay's limit
 * (two minutes) ends it, and every one counts against MAX_CONNECTIONS: on 2 cores, 44 nodes dialling (and retrying
 * failed dials) left some nodes at the bound, where libp2p refuses every inbound connection and prunes new
 * outbound ones, so all their dials failed (scale.spec).
 */
export function spentCircuits<C extends Pick<Connection, 'limits' | 'status' | 'streams' | 'timeline'>>(
  connections: readonly C[],
  now: number,
): C[] {
  return connections.filter(
    (c) =>
      c.limits != null && c.status === 'open' && c.streams.length === 0 && now - c.timeline.open >= SPENT_CIRCUIT_MS,
  );
}

export interface DiscoveryState {
  /** When the relay's list last arrived and how many peers it named. */
  lastList: { at: number; count: number } | null;
  lastError: string | null;
  dialFailures: number;
}

export interface DiscoveryComponents {
  libp2p: Libp2pNode;
  /** The relays this node holds reservations on (one, or several to survive losing one). */
  relays: readonly RelayLink[];
  peers: PeerTable;
  platform: Pick<Platform, 'dialPeer' | 'listens' | 'clock'>;
}

export class Discovery {
  readonly state = new Store<DiscoveryState>({ lastList: null, lastError: null, dialFailures: 0 });
  private readonly dialer: Dialer;
  /** Addresses the relays listed for peers that listen on their own. */
  private addrs: Record<string, string[]> = {};
  /** Which relay listed each peer last (it holds a reservation there: dial through it). */
  private listedBy = new Map<string, RelayLink>();
  /** Peer-list requests each relay has left unanswered in a row. */
  private readonly unanswered = new Map<RelayLink, number>();
  private polling = false;
  /** Spent relayed connections this node closed (diagnostics). */
  private closedCircuits = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private stopReserved: (() => void) | null = null;
  /** Peers connected on demand (not from the sample), with when they were last used. */
  private readonly onDemand = new Map<string, number>();

  constructor(private readonly components: DiscoveryComponents) {
    const { libp2p, peers, platform } = components;
    const self = libp2p.peerId.toString();
    this.dialer = new Dialer({
      self,
      isConnected: (peer) => peers.directConnection(peer) !== undefined,
      targetPeers: TARGET_PEERS,
      connectedCount: () => peers.peers.get().filter((p) => p.direct).length,
      // A peer with its own listener is dialled by those without one; among equals, the lower id dials.
      shouldDial: (peer) => {
        const theyListen = (this.addrs[peer]?.length ?? 0) > 0;
        if (theyListen !== platform.listens) return theyListen;
        return self < peer;
      },
      dial: (peer, signal) =>
        platform.dialPeer(libp2p, { peer, relay: this.relayFor(peer), addrs: this.addrs[peer] ?? [] }, signal),
    });
  }

  start(): void {
    this.timer = setInterval(() => void this.poll(), 2000);
    // Ask at once whenever a reservation is (re)made.
    const stops = this.components.relays.map((r) => r.state.subscribe((s) => s.reserved && void this.poll()));
    this.stopReserved = () => stops.forEach((stop) => stop());
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.stopReserved?.();
    this.dialer.stop();
  }

  /**
   * Connect to `peer` now, whether or not the relay's sample listed it (a client asking a chosen miner, a
   * validator challenging one): at its own listener if known, else WebRTC through the relay. Closed again once
   * unused for a minute.
   */
  async reach(peer: string, signal: AbortSignal): Promise<void> {
    const { libp2p, platform } = this.components;
    this.onDemand.set(peer, platform.clock.now());
    await platform.dialPeer(libp2p, { peer, relay: this.relayFor(peer), addrs: this.addrs[peer] ?? [] }, signal);
  }

  /** The relay to reach `peer` through: the one that listed it, else the first this node holds a reservation on. */
  private relayFor(peer: string): Multiaddr {
    const { relays } = this.components;
    const listed = this.listedBy.get(peer);
    if (listed?.state.get().reserved) return listed.address;
    return (relays.find((r) => r.state.get().reserved) ?? relays[0]!).address;
  }

  /** Note that `peer` was just used, if it is connected on demand. */
  touch(peer: string): void {
    if (this.onDemand.has(peer)) this.onDemand.set(peer, this.components.platform.clock.now());
  }

  describe() {
    const { lastList, lastError } = this.state.get();
    return {
      peerList: lastList ? { ageMs: this.components.platform.clock.now() - lastList.at, count: lastList.count } : null,
      peerListError: lastError,
      dials: this.dialer.describe(),
      closedCircuits: this.closedCircuits,
    };
  }

  private async poll(): Promise<void> {
    // One poll at a time: a relay that does not answer holds one for seconds, and polls piling up on it would
    // count its silence several times over.
    if (this.polling) return;
    this.polling = true;
    try {
      await this.pollOnce();
    } finally {
      this.polling = false;
    }
  }

  private async pollOnce(): Promise<void> {
    const { relays, peers, libp2p } = this.components;
    for (const circuit of spentCircuits(libp2p.getConnections(), Date.now())) {
      this.closedCircuits++;
      await circuit.close().catch((err: Error) => circuit.abort(err));
    }
    const reserved = relays.filter((r) => r.state.get().reserved);
    if (reserved.length === 0) return;
    const lists = await Promise.all(reserved.map((r) => this.askForPeers(r)));
    const answered = lists.filter((l) => l !== null);
    if (answered.length === 0) return;
    const addrs: Record<string, string[]> = {};
    const listed = new Map<string, RelayLink>();
    for (const { relay, list } of answered) {
      Object.assign(addrs, list.addrs ?? {});
      for (const peer of list.peers) if (!listed.has(peer)) listed.set(peer, relay);
    }
    this.addrs = addrs;
    this.listedBy = listed;
    this.dialer.offer([...listed.keys()]);
    this.state.update({
      lastList: { at: this.components.platform.clock.now(), count: listed.size },
      lastError: null,
      dialFailures: this.dialer.failures,
    });
    // Absence proves a peer gone only from a list of everyone: a sample leaves most peers out each time.
    if (answered.every(({ list }) => list.complete === true)) await this.pruneGone(new Set(listed.keys()), peers);
    await this.closeIdle(peers);
  }

  /** One relay's peer list, or null if it does not answer now (it may be restarting: its link reconnects). */
  private async askForPeers(relay: RelayLink) {
    try {
      const stream = await this.components.libp2p.dialProtocol(peerIdFromString(relay.peer), PROTOCOLS.peers, {
        signal: AbortSignal.timeout(5000),
      });
      const bytes = await lpStream(stream, { maxDataLength: MAX_FRAME_BYTES }).read({
        signal: AbortSignal.timeout(5000),
      });
      // Close our end: the relay's close waits for it, and open streams count against its limit.
      await stream.close({ signal: AbortSignal.timeout(2000) }).catch(() => stream.abort(new Error('closing failed')));
      this.unanswered.delete(relay);
      return { relay, list: decodeFrame(bytes.subarray(), peerListSchema) };
    } catch (err) {
      const message = (err as Error).message;
      this.state.update({ lastError: `${relay.peer}: ${message}` });
      // libp2p can keep a connection whose muxer has closed, without announcing peer:disconnect: every stream to
      // the relay then fails with ConnectionClosedError ("The connection muxer is closed"), and the node is cut off
      // without knowing it (seen in scale.spec: two nodes for the whole test). Dial such a relay afresh at once.
      // Any other failure may be a busy relay missing a request (redialling costs every circuit on it): only a
      // long run of them counts as a dead connection.
      const missed = (this.unanswered.get(relay) ?? 0) + 1;
      this.unanswered.set(relay, missed);
      const dead = (err as Error).name === 'ConnectionClosedError';
      if (dead || missed >= UNANSWERED_BEFORE_REDIAL) {
        this.unanswered.delete(relay);
        relay.redial(
          dead
            ? `The connection to the relay is dead (${message}); dialling it again.`
            : `The relay answered none of ${missed} peer-list requests in a row (${message}); dialling it again.`,
        );
      }
      return null;
    }
  }

  /** Close on-demand connections unused for a while, when this node holds more than its target. */
  private async closeIdle(peers: PeerTable): Promise<void> {
    const now = this.components.platform.clock.now();
    const direct = peers.peers.get().filter((p) => p.direct).length;
    if (direct <= TARGET_PEERS) return;
    for (const [peer, used] of this.onDemand) {
      if (now - used < ON_DEMAND_IDLE_MS) continue;
      this.onDemand.delete(peer);
      await this.components.libp2p.hangUp(peerIdFromString(peer)).catch(() => {});
    }
  }

  /**
   * A tab that closed vanishes from the relay's list at once, while its connection can linger for many seconds.
   * Drop a peer that is missing from a complete list *and* does not answer a ping: right after a relay restart the
   * list is incomplete until every peer has re-reserved, but a live peer still answers. Only silence proves a peer
   * gone; other ping failures (its one ping stream busy) are inconclusive and must not cut a connection.
   * From a sampled list (a large network) nothing is pruned: pinging every connected peer the sample left out,
   * every poll, with a 2 s deadline cut healthy connections on a loaded machine (scale.spec: nodes' direct peers
   * churned between 0 and 8 for minutes). There a closed tab's WebRTC connection ends by itself (its DTLS close,
   * or ICE consent failing).
   */
  private async pruneGone(listed: Set<string>, peers: PeerTable): Promise<void> {
    const libp2p = this.components.libp2p;
    await Promise.all(
      peers.peers
        .get()
        .filter((view) => !listed.has(view.peerId))
        .map(async (view) => {
          const peer = peerIdFromString(view.peerId);
          const silent = await libp2p.services.ping.ping(peer, { signal: AbortSignal.timeout(2000) }).then(
            () => false,
            (err: Error) => err.name === 'TimeoutError' || err.name === 'AbortError',
          );
          if (silent) await libp2p.hangUp(peer).catch(() => {});
        }),
    );
  }
}
