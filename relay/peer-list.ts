/**
 * `/webtensor/peers/1`: answer one frame listing a random sample of the peers that hold a reservation (other than
 * the asker), then close. Nodes poll it to learn whom to dial; this replaces pubsub discovery storms (P2P.md
 * pitfall 5). A sample, not everyone: each node keeps a few connections and gossipsub's mesh does the rest, so no
 * node ends up dialling the whole network; `complete` tells the asker whether the list is everyone. Peers that
 * listen on an address anyone can dial (a headless node's WebSocket) are listed with it, learned by identify. Each
 * peer may ask `--peer-list-rate` times a minute (limits.ts); beyond that its stream is reset unanswered.
 */
import type { PeerId } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import { MAX_FRAME_BYTES, encodeFrame } from '../shared/p2p/messages.ts';
import { PROTOCOLS } from '../shared/names.ts';
import type { RelayNode } from './node.ts';

/** Peers per answer by default: a sample, fresh each time. */
export const DEFAULT_PEER_SAMPLE = 24;
/** At most this many peers listed with addresses, and addresses per peer. */
const MAX_WITH_ADDRS = 200;
const MAX_ADDRS = 4;

/** Addresses a peer can be dialled at without the relay: WebSockets, not circuit or WebRTC. */
async function dialableAddrs(node: RelayNode, peer: PeerId): Promise<string[]> {
  const known = await node.peerStore.get(peer).catch(() => null);
  return (known?.addresses ?? [])
    .map((a) => a.multiaddr.toString())
    .filter((a) => /\/(ws|wss|tls\/ws)(\/|$)/.test(a) && !a.includes('/p2p-circuit') && !a.includes('/webrtc'))
    .slice(0, MAX_ADDRS);
}

/** `count` of `items` chosen uniformly at random (a partial Fisher-Yates shuffle). */
function sample<T>(items: T[], count: number): T[] {
  const out = [...items];
  for (let k = 0; k < Math.min(count, out.length); k++) {
    const j = k + Math.floor(Math.random() * (out.length - k));
    [out[k], out[j]] = [out[j]!, out[k]!];
  }
  return out.slice(0, count);
}

export async function servePeerList(node: RelayNode, sampleSize = DEFAULT_PEER_SAMPLE): Promise<void> {
  await node.handle(
    PROTOCOLS.peers,
    async (stream, connection) => {
      if (!node.services.limits.allowPeerList(connection.remotePeer)) {
        stream.abort(new Error('peer list rate limit exceeded'));
        return;
      }
      const asker = connection.remotePeer.toString();
      // A reservation outlives its peer's connection until its TTL runs out: list only peers still connected.
      const present = [...node.services.relay.reservations.keys()].filter(
        (p) => node.getConnections(p).length > 0 && p.toString() !== asker,
      );
      const listed = sample(present, sampleSize);
      const addrs: Record<string, string[]> = {};
      for (const p of listed) {
        if (Object.keys(addrs).length >= MAX_WITH_ADDRS) break;
        const dialable = await dialableAddrs(node, p);
        if (dialable.length > 0) addrs[p.toString()] = dialable;
      }
      const signal = AbortSignal.timeout(5000);
      try {
        const peers = listed.map((p) => p.toString());
        const complete = listed.length === present.length;
        await lpStream(stream, { maxDataLength: MAX_FRAME_BYTES }).write(encodeFrame({ peers, addrs, complete }), {
          signal,
        });
        await stream.close({ signal });
      } catch (err) {
        stream.abort(err as Error);
      }
    },
    { maxInboundStreams: 8 },
  );
}
