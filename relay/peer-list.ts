/**
 * `/webtensor/peers/1`: answer one frame listing the peers that hold a reservation (other than the asker), then
 * close. Tabs poll it to learn whom to dial; this replaces pubsub discovery storms (P2P.md pitfall 5). Peers that
 * listen on an address anyone can dial (a headless node's WebSocket) are listed with it, learned by identify.
 */
import type { PeerId } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import { MAX_FRAME_BYTES, encodeFrame } from '../shared/p2p/messages.ts';
import { PROTOCOLS } from '../shared/names.ts';
import type { RelayNode } from './node.ts';

/** At most this many peers per answer: one frame must stay under MAX_FRAME_BYTES. */
const MAX_LISTED = 1000;
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

export async function servePeerList(node: RelayNode): Promise<void> {
  await node.handle(
    PROTOCOLS.peers,
    async (stream, connection) => {
      const asker = connection.remotePeer.toString();
      // A reservation outlives its peer's connection until its TTL runs out: list only peers still connected.
      const listed = [...node.services.relay.reservations.keys()]
        .filter((p) => node.getConnections(p).length > 0 && p.toString() !== asker)
        .slice(0, MAX_LISTED);
      const addrs: Record<string, string[]> = {};
      for (const p of listed) {
        if (Object.keys(addrs).length >= MAX_WITH_ADDRS) break;
        const dialable = await dialableAddrs(node, p);
        if (dialable.length > 0) addrs[p.toString()] = dialable;
      }
      const signal = AbortSignal.timeout(5000);
      try {
        const peers = listed.map((p) => p.toString());
        await lpStream(stream, { maxDataLength: MAX_FRAME_BYTES }).write(encodeFrame({ peers, addrs }), { signal });
        await stream.close({ signal });
      } catch (err) {
        stream.abort(err as Error);
      }
    },
    { maxInboundStreams: 8 },
  );
}
